/**
 * Where the plugin SDK (`portcullis/sdk/plugin`) is, for the sandbox: the
 * one file of the package outside this directory a plugin child may read
 * (spawn.ts grants it by path), and what the child runtime maps the bare
 * specifier to (child.ts). `src/sdk/plugin/index.ts` when this runs from
 * src, `dist/sdk/plugin/index.js` from dist: the same extension as this file.
 *
 * Imports only `node:` built-ins: the child runtime loads it.
 */
import { extname, join } from 'node:path';

export const PLUGIN_SDK_SPECIFIER = 'portcullis/sdk/plugin';

export const PLUGIN_SDK_ENTRY = join(import.meta.dirname, '..', '..', 'sdk', 'plugin', `index${extname(import.meta.filename)}`);
