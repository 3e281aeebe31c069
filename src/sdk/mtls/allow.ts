/**
 * Authorisation by SPIFFE ID: an allow-list of exact IDs and prefixes, and
 * the request-handler check that answers 403 for everything else.
 */
import type { IncomingMessage } from 'node:http';
import { TLSSocket } from 'node:tls';
import { spiffeIdOf } from './peer.ts';
import { parseSpiffeId } from './spiffe-id.ts';

/** Decides whether a peer's SPIFFE ID (undefined: the peer has none) may go on. */
export type SpiffeIdPredicate = (id: string | undefined) => boolean;

/**
 * A predicate over SPIFFE IDs from patterns, each one of:
 *
 * - an exact ID, `spiffe://example.org/ns/prod/sa/billing`: that ID only
 *   (paths are case-sensitive, SPIFFE-ID section 2.4);
 * - a prefix, `spiffe://example.org/ns/prod/*`: every ID of that trust
 *   domain whose path starts with `/ns/prod/` and has one or more segments
 *   after it, so `/ns/prod/sa/billing` and `/ns/prod/x`, but not `/ns/prod`
 *   itself and not `/ns/production`. `spiffe://example.org/*` is every
 *   workload ID of the trust domain.
 *
 * `*` is allowed only as the whole last segment. Every pattern is checked
 * here (a TypeError names the bad one), and every ID is parsed before it is
 * compared, so an ID the SPIFFE grammar refuses (`..`, `%2e`, uppercase
 * trust domain) never matches. No pattern, no match: an empty list allows
 * nothing.
 */
export function allowSpiffeIds(patterns: readonly string[]): SpiffeIdPredicate {
  const given: unknown = patterns;
  if (!Array.isArray(given)) throw new TypeError('allowSpiffeIds takes an array of SPIFFE IDs and prefixes');
  const exact = new Set<string>();
  const prefixes: string[] = [];
  for (const pattern of patterns) {
    if (typeof pattern === 'string' && pattern.endsWith('/*')) {
      const base = pattern.slice(0, -2);
      check(base, pattern);
      prefixes.push(`${base}/`);
    } else {
      check(pattern, pattern);
      exact.add(pattern);
    }
  }
  return (id) => {
    if (id === undefined) return false;
    try {
      parseSpiffeId(id);
    } catch {
      return false;
    }
    // An ID has no empty segment, so a match after the prefix's '/' is one or more whole segments.
    return exact.has(id) || prefixes.some((prefix) => id.startsWith(prefix) && id.length > prefix.length);
  };
}

function check(id: unknown, pattern: unknown): void {
  try {
    parseSpiffeId(id as string);
  } catch (error) {
    throw new TypeError(`not a SPIFFE ID or prefix ('spiffe://td/path' or 'spiffe://td/path/*'): ${JSON.stringify(pattern)}: ${(error as Error).message}`);
  }
}

/** Thrown by requireSpiffeId's check: `statusCode` 403 is what Fastify and most frameworks answer with. */
export class SpiffeIdForbiddenError extends Error {
  readonly statusCode = 403;
  readonly code = 'SPIFFE_ID_FORBIDDEN';
  /** The SPIFFE ID the peer presented (undefined: none, or not over verified TLS). */
  readonly spiffeId: string | undefined;

  constructor(spiffeId: string | undefined) {
    super(spiffeId === undefined ? 'the peer presented no verified SPIFFE ID' : `the SPIFFE ID ${spiffeId} is not allowed here`);
    this.name = 'SpiffeIdForbiddenError';
    this.spiffeId = spiffeId;
  }
}

/**
 * A check for request handlers: `requireSpiffeId(allow)(req)` returns the
 * SPIFFE ID of the verified client certificate on `req`'s TLS connection,
 * or throws a SpiffeIdForbiddenError (statusCode 403) when there is none
 * or `allow` refuses it. `allow` is a predicate or patterns for
 * allowSpiffeIds.
 */
export function requireSpiffeId(allow: SpiffeIdPredicate | readonly string[]): (req: IncomingMessage) => string {
  const allowed = typeof allow === 'function' ? allow : allowSpiffeIds(allow);
  return (req) => {
    const id = req.socket instanceof TLSSocket ? spiffeIdOf(req.socket) : undefined;
    if (id === undefined || !allowed(id)) throw new SpiffeIdForbiddenError(id);
    return id;
  };
}
