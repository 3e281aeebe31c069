import { createRequire } from 'node:module';
import type { dictionary as ZxcvbnDictionary } from '@zxcvbn-ts/language-common';

/**
 * The shipped list of common breached passwords that a new password is
 * checked against (NIST SP 800-63B section 5.1.1.2: "passwords obtained from
 * previous breach corpuses").
 *
 * Source: the npm package @zxcvbn-ts/language-common, its
 * `dictionary['passwords-common']`: 49,233 passwords (version 4.1.3) that
 * zxcvbn-ts builds from Mark Burnett's "ten million passwords" corpus
 * (xato.net, 2015), ordered by frequency, lowercased, ASCII only, each seen
 * more than ten times, minus those that zxcvbn's pattern matchers would
 * guess sooner anyway (so a pure repeat such as "aaaaaaaa" is not on it).
 *
 * Only the 17,950 entries of at least PASSWORD_MIN_LENGTH code points are
 * kept: a shorter password is refused for its length before the list is
 * consulted. Loaded once, on first use (about 25 ms, a few MB of heap), so a
 * process that never sets a password never pays for it.
 */
export const BREACHED_LIST_MIN_LENGTH = 8;

let breachedPasswords: ReadonlySet<string> | undefined;

function load(): ReadonlySet<string> {
  // createRequire keeps the check synchronous; the package is CommonJS and
  // its entry point is the documented way to reach the list.
  const require = createRequire(import.meta.url);
  const { dictionary } = require('@zxcvbn-ts/language-common') as { dictionary: typeof ZxcvbnDictionary };
  const set = new Set<string>();
  for (const entry of dictionary['passwords-common']) {
    if ([...entry].length >= BREACHED_LIST_MIN_LENGTH) set.add(entry.toLowerCase());
  }
  return set;
}

/** True when `password` (already NFKC-normalised) is on the list, ignoring case. */
export function isBreachedPassword(password: string): boolean {
  breachedPasswords ??= load();
  return breachedPasswords.has(password.toLowerCase());
}

/** How many entries the check holds (for documentation and tests). */
export function breachedPasswordCount(): number {
  breachedPasswords ??= load();
  return breachedPasswords.size;
}
