/** The `--json` documents, schema version 1: README.md (section `--json`) says what each field means. */
import type { KeyedEntry } from '../core/entries'
import type { Project } from '../core/project'

export const JSON_VERSION = 1

export const jsonEntry = ({ location: { file, line, column }, name }: KeyedEntry) => ({ manifest: file, line, column, name: name ?? null })

/** The fields both documents begin with. */
export function jsonHeader<Command extends string>(command: Command, exitCode: number, project: Project) {
  const cacheDir = project.display(project.options.cacheDir)
  return { version: JSON_VERSION, command, ok: exitCode === 0, exitCode, root: project.root, cacheDir, provider: project.options.provider.name }
}

type Header<Command extends string> = ReturnType<typeof jsonHeader<Command>>
type Entry = ReturnType<typeof jsonEntry>

export interface GenerateJson extends Header<'generate'> {
  dryRun: boolean
  interrupted: boolean
  maxNewImages: number
  withinLimit: boolean
  summary: Record<'manifests' | 'entries' | 'images' | 'cached' | 'toGenerate' | 'generated' | 'failed' | 'pending', number>
  seconds: number
  images: Array<{
    key: string
    state: 'cached' | 'generated' | 'failed' | 'pending' | 'missing'
    entries: Entry[]
    prompt: string
    width: number
    height: number
    file: string | null
    predictionId: string | null
    error?: string
  }>
  error?: string
}

export interface StatusJson extends Header<'status'> {
  summary: Record<'manifests' | 'entries' | 'images' | 'cached' | 'missing', number>
  entries: Array<Entry & { key: string; state: 'cached' | 'missing'; file: string | null; pendingPredictionId: string | null }>
}
