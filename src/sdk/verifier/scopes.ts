/**
 * Scopes: the token's `scope` claim is a space-separated list (RFC 9068
 * section 2.2.3, RFC 8693 section 4.2); a request that needs scopes the
 * token lacks is insufficient_scope, 403, naming what it needs (RFC 6750
 * section 3.1).
 */
import { VerifyError } from './errors.ts';

/** RFC 6749 section 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ). */
const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]+$/;

export function scopesOf(claim: string | undefined): string[] {
  return claim === undefined ? [] : claim.split(' ').filter((scope) => scope !== '');
}

/** Checks scope names a program passes in, once (a typo should fail at start, not at the first request). */
export function checkedScopes(scopes: readonly string[] | undefined, what: string): readonly string[] {
  if (scopes === undefined) return [];
  for (const scope of scopes) if (typeof scope !== 'string' || !SCOPE_TOKEN.test(scope)) throw new TypeError(`${what}: "${String(scope)}" is not an RFC 6749 scope token`);
  return [...new Set(scopes)];
}

/** Throws insufficient_scope unless every required scope is granted; the challenge names the required ones. */
export function requireScopes(granted: readonly string[], required: readonly string[]): void {
  if (required.length === 0) return;
  const have = new Set(granted);
  if (required.some((scope) => !have.has(scope))) throw new InsufficientScope(required);
}

export class InsufficientScope extends VerifyError {
  readonly scopes: readonly string[];
  constructor(scopes: readonly string[]) {
    super('insufficient_scope', 'the token lacks a scope this request needs');
    this.scopes = scopes;
  }
}
