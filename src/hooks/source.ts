/**
 * The chain file of the source tree, read once. In a checkout and in the
 * container image Node runs src/ directly and the file sits beside this
 * module; an installed package runs dist/hooks/, and the package ships
 * src/ too (package.json "files"), where the file is.
 */
import { readFileSync } from 'node:fs';

const CANDIDATES = [new URL('./chains.cfg', import.meta.url), new URL('../../src/hooks/chains.cfg', import.meta.url)];
let cached: string | undefined;

/** The text of src/hooks/chains.cfg. */
export function bundledChainSource(): string {
  if (cached !== undefined) return cached;
  for (const candidate of CANDIDATES) {
    try {
      cached = readFileSync(candidate, 'utf8');
      return cached;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
  }
  throw new Error('src/hooks/chains.cfg is missing from this installation');
}
