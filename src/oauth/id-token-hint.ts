/**
 * `id_token_hint` (OIDC Core section 3.1.2.1, RP-Initiated Logout 1.0
 * section 2): an ID token this server issued, handed back by a client to say
 * which person it means. Its signature and issuer are checked with the
 * keyring; its expiry is not (the specifications let the server accept an
 * expired hint: it names a person, it grants nothing).
 */
import { JwtError, verifyJwt, type Keyring } from '../tokens/index.ts';

/** An expired hint still names its person and client, for about a year. */
const HINT_TOLERANCE_SECONDS = 366 * 24 * 3600;
const MAX_HINT_LENGTH = 8192;

export interface IdTokenHint {
  readonly subject: string;
  /** The clients the ID token was issued to (`aud`). */
  readonly audiences: readonly string[];
}

/** The hint's subject and audiences, or null when it is not an ID token this issuer signed. */
export function readIdTokenHint(hint: string, options: { keyring: Keyring; issuer: string; now: number }): IdTokenHint | null {
  if (hint.length > MAX_HINT_LENGTH) return null;
  try {
    const { header, payload } = verifyJwt(hint, options.keyring, { now: options.now, issuer: options.issuer, clockToleranceSeconds: HINT_TOLERANCE_SECONDS });
    // Our ID tokens carry no typ; access tokens (at+jwt) and logout tokens
    // (logout+jwt) are signed with the same keys and are no ID tokens.
    if (header['typ'] !== undefined || payload['events'] !== undefined) return null;
    const subject = payload['sub'];
    const aud = payload['aud'];
    const audiences = typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud.filter((value): value is string => typeof value === 'string') : [];
    if (typeof subject !== 'string' || audiences.length === 0) return null;
    return { subject, audiences };
  } catch (error) {
    if (error instanceof JwtError) return null;
    throw error;
  }
}
