import { Project } from './core/project'
import { resolveOptions, type Options } from './options'

/**
 * The pipeline the plugin and the CLI share, for scripts: `root` and the options are settled as
 * the plugin settles them (`imagegen.config.json`, the environment), searching for the root from
 * `from` (default: the current folder). `project.findManifests()`, `project.readAll(files)` and
 * `project.plan(entries)` then tell what is cached and what is missing, without a bundler.
 * Throws an `ImagegenError` (code `OPTIONS`) for bad options.
 */
export function openProject(options: Options = {}, where: { from?: string; env?: NodeJS.ProcessEnv } = {}): Project {
  return new Project(resolveOptions(options, where))
}

export type { Project, ReadManifest } from './core/project'
