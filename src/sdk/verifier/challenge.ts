/**
 * `WWW-Authenticate` values (RFC 9110 section 11.6.1): one challenge per
 * scheme the resource server accepts, in one header value. The refusal's
 * error sits on the scheme the client used; the other scheme is offered
 * bare, so a client learns both (RFC 9449 section 7.1 lets a resource server
 * answer Bearer and DPoP challenges together).
 */
import { VERIFY_ERRORS, type VerifyErrorCode } from './errors.ts';

export type AuthScheme = 'Bearer' | 'DPoP';

export interface ChallengeInput {
  readonly realm?: string;
  /** The DPoP algorithms accepted (RFC 9449 section 7.1 `algs`). */
  readonly dpopAlgorithms: readonly string[];
  /** The scheme whose challenge carries the error (the one the client used). */
  readonly scheme?: AuthScheme;
  readonly code?: VerifyErrorCode;
  readonly description?: string;
  /** The scopes the request needs, for insufficient_scope (RFC 6750 section 3.1). */
  readonly scope?: readonly string[];
}

/**
 * RFC 6750 section 3: error, error_description and scope values are limited
 * to %x20-21 / %x23-5B / %x5D-7E, so they need no escaping; anything else
 * is a programming error here, not something to quote around.
 */
const ATTRIBUTE_VALUE = /^[\x20\x21\x23-\x5B\x5D-\x7E]*$/;

function quoted(name: string, value: string): string {
  if (!ATTRIBUTE_VALUE.test(value)) throw new TypeError(`the ${name} attribute has a character RFC 6750 section 3 does not allow`);
  return `${name}="${value}"`;
}

function one(scheme: AuthScheme, input: ChallengeInput): string {
  const attributes: string[] = [];
  if (input.realm !== undefined) attributes.push(quoted('realm', input.realm));
  if (scheme === 'DPoP') attributes.push(quoted('algs', input.dpopAlgorithms.join(' ')));
  const error = input.code === undefined ? undefined : VERIFY_ERRORS[input.code].error;
  if (input.scheme === scheme && error !== undefined) {
    attributes.push(quoted('error', error));
    if (input.description !== undefined) attributes.push(quoted('error_description', input.description));
    if (input.code === 'insufficient_scope' && input.scope !== undefined) attributes.push(quoted('scope', input.scope.join(' ')));
  }
  return attributes.length === 0 ? scheme : `${scheme} ${attributes.join(', ')}`;
}

/** The header value: the Bearer challenge, then the DPoP one. */
export function wwwAuthenticate(input: ChallengeInput): string {
  return `${one('Bearer', input)}, ${one('DPoP', input)}`;
}
