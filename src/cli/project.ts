import { stat } from 'node:fs/promises'
import { resolve } from 'node:path'
import { manifestProblems, type Project } from '../core/project'
import { usageError } from './terminal'

export const noManifests = (paths: readonly string[]) =>
  `imagegen: no manifests (*.images.yaml) under ${paths.length ? paths.join(', ') : 'the current folder'}`

/**
 * The manifests under `paths` (folders are searched, manifest files taken as they are; all of `cwd` when there are none)
 * and their entries. Problems in any manifest end the command (exit 2), all reported at once. */
export async function readManifests(project: Project, cwd: string, paths: readonly string[]) {
  const found = new Set<string>()
  for (const path of paths.length > 0 ? paths : [cwd]) {
    const absolute = resolve(cwd, path)
    const info = await stat(absolute).catch(() => undefined)
    if (!info) throw usageError(`\`${path}\` does not exist`)
    if (info.isDirectory()) for (const file of await project.findManifests(absolute)) found.add(file)
    else if (project.isManifest(absolute)) found.add(absolute)
    else throw usageError(`\`${path}\` is not a folder or a manifest (*.images.yaml)`)
  }
  const files = [...found].sort()
  const { entries, problems } = await project.readAll(files)
  if (problems.length > 0) throw manifestProblems(problems)
  return { files, entries }
}
