/** The `--json` documents, schema version 1: README.md (section `--json`) gives their fields and what each means. */
import type { KeyedEntry } from '../core/entries'
import type { Project } from '../core/project'
import type { CommandName } from './args'

export const JSON_VERSION = 1

export const jsonEntry = ({ location: { file, line, column }, name }: KeyedEntry) => ({ manifest: file, line, column, name: name ?? null })

/** The fields both documents begin with. */
export function jsonHeader(command: CommandName, exitCode: number, project: Project) {
  const cacheDir = project.display(project.options.cacheDir)
  return { version: JSON_VERSION, command, ok: exitCode === 0, exitCode, root: project.root, cacheDir, provider: project.options.provider.name }
}
