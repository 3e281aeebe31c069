/**
 * SPIFFE IDs (SPIFFE-ID specification, section 2): `spiffe://` + a trust
 * domain + an optional path. The grammar is the specification's
 * restrictions on RFC 3986, checked byte by byte rather than through
 * `URL`, whose normalisation (lowercasing, percent-decoding, resolving
 * `..`) would turn an ID the specification refuses into one it accepts.
 */

/** A parsed SPIFFE ID: `spiffe://example.org/ns/prod` is `{ trustDomain: 'example.org', path: '/ns/prod' }`. */
export interface SpiffeId {
  readonly trustDomain: string;
  /** '' for the ID of the trust domain itself; otherwise '/' followed by segments joined by '/'. */
  readonly path: string;
}

/**
 * Only the lowercase scheme: section 2.4 calls the scheme case-insensitive,
 * but an ID is compared as a string (allow-lists, audit), and X509-SVID
 * section 5.2 has the validator check the scheme is `spiffe`.
 */
const SCHEME = 'spiffe://';

/** Section 2.3: implementations support IDs up to 2048 bytes; longer ones are refused here. */
const MAX_ID_BYTES = 2048;

/** Section 2.3: the trust domain is an RFC 3986 host, at most 255 bytes. */
const MAX_TRUST_DOMAIN_BYTES = 255;

/**
 * Section 2.1: lowercase letters, digits, dot, dash, underscore; so no
 * uppercase, no `:port`, no `user@`, no percent-encoding, no IPv6 literal.
 */
const TRUST_DOMAIN = /^[a-z0-9._-]+$/;

/** Section 2.2: letters, digits, dot, dash, underscore; so no `%`, `?`, `#`. */
const SEGMENT = /^[A-Za-z0-9._-]+$/;

/** Reads a trust domain name (no scheme), or throws a TypeError saying what is wrong. */
export function parseTrustDomain(name: string): string {
  if (name.length === 0) throw new TypeError('a SPIFFE ID needs a trust domain');
  if (name.length > MAX_TRUST_DOMAIN_BYTES) throw new TypeError(`a SPIFFE trust domain is at most ${MAX_TRUST_DOMAIN_BYTES} bytes`);
  if (!TRUST_DOMAIN.test(name)) {
    throw new TypeError('a SPIFFE trust domain has only lowercase letters, digits, dots, dashes and underscores (no port, user info or percent-encoding)');
  }
  return name;
}

/**
 * Reads `text` as a SPIFFE ID, or throws a TypeError saying what is wrong.
 * Accepts the ID of a trust domain (`spiffe://example.org`, empty path);
 * a workload certificate never carries one (see spiffeIdOf).
 */
export function parseSpiffeId(text: string): SpiffeId {
  if (typeof text !== 'string') throw new TypeError('a SPIFFE ID is a string');
  // Every accepted character is ASCII, so length is the byte count for any ID that passes.
  if (text.length > MAX_ID_BYTES) throw new TypeError(`a SPIFFE ID is at most ${MAX_ID_BYTES} bytes`);
  if (!text.startsWith(SCHEME)) throw new TypeError("a SPIFFE ID starts with 'spiffe://'");
  const rest = text.slice(SCHEME.length);
  const slash = rest.indexOf('/');
  const trustDomain = parseTrustDomain(slash === -1 ? rest : rest.slice(0, slash));
  const path = slash === -1 ? '' : rest.slice(slash);
  if (path !== '') {
    for (const segment of path.slice(1).split('/')) {
      // An empty segment is '//' inside the path or a trailing '/'.
      if (segment === '') throw new TypeError('a SPIFFE ID path has no empty segment and no trailing slash');
      if (segment === '.' || segment === '..') throw new TypeError("a SPIFFE ID path has no '.' or '..' segment");
      if (!SEGMENT.test(segment)) {
        throw new TypeError('a SPIFFE ID path segment has only letters, digits, dots, dashes and underscores (no query, fragment or percent-encoding)');
      }
    }
  }
  return { trustDomain, path };
}

/** Whether `text` is a SPIFFE ID; never throws. */
export function isSpiffeId(text: unknown): text is string {
  if (typeof text !== 'string') return false;
  try {
    parseSpiffeId(text);
    return true;
  } catch {
    return false;
  }
}
