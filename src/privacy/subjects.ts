/**
 * How privacy records name a person without naming them: a keyed hash
 * (HMAC-SHA256 under the master key's `privacy-subjects` key) of their user
 * id, and another of their normalised email address. Records that must
 * outlive the person (erasure tracking, tombstones, consumer requests) keep
 * only these, so a copy of the database names nobody, yet the server can
 * still recognise the person if a restored backup brings them back.
 */
import { createHmac } from 'node:crypto';
import type { KeyVault } from '../crypto/index.ts';

export interface SubjectHasher {
  /** Keyed hash of a user id. */
  ofUser(userId: string): string;
  /** Keyed hash of an email address (normalise it first: NFKC, trimmed, lower-cased). */
  ofEmail(normalisedEmail: string): string;
}

export function subjectHasher(vault: Pick<KeyVault, 'derive'>): SubjectHasher {
  const key = vault.derive('privacy-subjects');
  const mac = (label: string, value: string) => createHmac('sha256', key).update(`${label}\u0000${value}`).digest('base64url');
  return {
    ofUser: (userId) => mac('user', userId),
    ofEmail: (email) => mac('email', email),
  };
}
