/**
 * The request as the verifier sees it: a method, the absolute URL the client
 * called, its headers and, on a TLS connection, the client's certificate.
 * Framework adapters build this shape; nothing here knows a framework.
 */
import type { X509Certificate } from 'node:crypto';
import type { AuthScheme } from './challenge.ts';
import { VerifyError } from './errors.ts';

/** Node's `IncomingHttpHeaders`, a plain record, or a fetch `Headers`. */
export type HeaderSource = Headers | Readonly<Record<string, string | readonly string[] | undefined>>;

export interface VerifyRequest {
  readonly method: string;
  /** The absolute URL the client called (scheme, host, path; the query is ignored by DPoP). */
  readonly url: string | URL;
  readonly headers: HeaderSource;
  /** The TLS client certificate (DER bytes or parsed), for certificate-bound tokens (RFC 8705 section 3). */
  readonly peerCertificate?: Uint8Array | X509Certificate;
}

/** A fetch `Headers` of any implementation (Node's global, undici's): by shape, not by class. */
function isHeaders(headers: HeaderSource): headers is Headers {
  return typeof (headers as Partial<Headers>).get === 'function' && typeof (headers as Partial<Headers>).has === 'function';
}

/** Every value of the header `name` (any case), one entry per field line. */
export function headerValues(headers: HeaderSource, name: string): string[] {
  if (isHeaders(headers)) {
    // Headers joins repeated fields with ", "; a caller that must see them apart splits.
    const value = headers.get(name);
    return value === null ? [] : [value];
  }
  const lower = name.toLowerCase();
  let value = headers[lower];
  if (value === undefined) {
    for (const key of Object.keys(headers)) if (key.toLowerCase() === lower) value = headers[key];
  }
  if (value === undefined) return [];
  return typeof value === 'string' ? [value] : [...value];
}

export interface Credentials {
  readonly scheme: AuthScheme;
  readonly token: string;
}

/** RFC 9110 section 11.2 token68, which both RFC 6750 section 2.1 and RFC 9449 section 7.1 use for the token. */
const TOKEN68 = /^[A-Za-z0-9\-._~+/]+=*$/;
/** An access token larger than this is refused before it is parsed. */
export const MAX_TOKEN_LENGTH = 16 * 1024;

/**
 * The access token from `Authorization: Bearer …` or `Authorization: DPoP …`
 * (scheme names are case-insensitive, RFC 9110 section 11.1), or undefined
 * when the request carries none of those (RFC 6750 section 3.1: a bare
 * challenge). Two Authorization fields, or a malformed one, are
 * invalid_request (RFC 6750 section 3.1). The token is never read from the
 * query or the body: OAuth 2.1 section 5.2 dropped the query, and a
 * resource server should not parse bodies to find credentials.
 */
export function readCredentials(headers: HeaderSource): Credentials | undefined {
  const values = headerValues(headers, 'authorization');
  if (values.length === 0) return undefined;
  if (values.length > 1) throw new VerifyError('invalid_request', 'the request has more than one Authorization header');
  const match = /^([A-Za-z]+) +(\S+)\s*$/.exec(values[0]!);
  if (match === null) {
    if (/^(bearer|dpop)\b/i.test(values[0]!)) throw new VerifyError('invalid_request', 'the Authorization header is malformed');
    return undefined;
  }
  const scheme = match[1]!.toLowerCase();
  if (scheme !== 'bearer' && scheme !== 'dpop') return undefined;
  const token = match[2]!;
  if (!TOKEN68.test(token) || token.length > MAX_TOKEN_LENGTH) throw new VerifyError('invalid_request', 'the Authorization header is malformed');
  return { scheme: scheme === 'bearer' ? 'Bearer' : 'DPoP', token };
}

/**
 * The URL as DPoP compares it (RFC 9449 section 4.3, item 9): without query
 * and fragment, after the syntax- and scheme-based normalisation of RFC 3986
 * sections 6.2.2 and 6.2.3 (case of scheme and host, default port, dot
 * segments, an empty path as "/"), which the WHATWG URL parser performs.
 * Undefined for what is not an absolute http(s) URL.
 */
export function normalisedHtu(url: string | URL): string | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return undefined;
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') return undefined;
  return `${parsed.origin}${parsed.pathname}`;
}
