import { version } from '../../package.json'

/** This package's version, bundled at build time. */
export const PACKAGE_VERSION: string = version
