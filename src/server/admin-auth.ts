import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { throttledFor, type FailureAggregator } from '../audit/index.ts';
import { HttpError } from './errors.ts';

export interface AdminAuthenticator {
  /** Resolves for the admin; otherwise records the failure and throws a 401. */
  authenticate(request: FastifyRequest): Promise<void>;
}

const BEARER = /^Bearer ([\x21-\x7e]+)$/;

/** The bearer token of an Authorization header (RFC 6750 section 2.1), if any. */
export function presentedBearer(request: FastifyRequest): string | undefined {
  return BEARER.exec(request.headers.authorization ?? '')?.[1];
}

/**
 * Whether a presented secret equals the configured one, compared in
 * constant time over SHA-256 digests, so neither the content nor the length
 * of the secret leaks through timing. Never matches when none is configured.
 */
export function secretMatcher(secret: string | undefined): (presented: string | undefined) => boolean {
  const expected = secret === undefined ? undefined : createHash('sha256').update(secret).digest();
  return (presented) => expected !== undefined && presented !== undefined && timingSafeEqual(createHash('sha256').update(presented).digest(), expected);
}

/**
 * The static admin bearer token from config (until the OAuth issue brings
 * real admin credentials), checked by `secretMatcher`.
 */
/** Wrong admin bearers one network may send per minute before the check is skipped (429). */
export const ADMIN_FAILURES_PER_MINUTE = 100;

export function staticAdminAuthenticator(token: string | undefined, failures: Pick<FailureAggregator, 'record' | 'count' | 'retryAfterMs'>): AdminAuthenticator {
  const matches = secretMatcher(token);
  return {
    async authenticate(request) {
      // Every credential check goes through a throttle (OWASP Authentication
      // Cheat Sheet); the count is per network and minute, and a right token
      // does not reset it. Throttled attempts are not counted again: the
      // ledger already has this window's entries.
      const wait = await throttledFor(failures, 'admin.auth.failed', request.ip, ADMIN_FAILURES_PER_MINUTE);
      if (wait !== undefined) throw new HttpError('too_many_requests', 'Too many failed admin attempts from this network; try again later.', { headers: { 'retry-after': String(wait) } });
      const presented = presentedBearer(request);
      if (matches(presented)) return;
      // Aggregated per network and minute (security review 11): anyone can
      // send wrong bearers, and the ledger keeps every entry for ever.
      await failures.record({
        type: 'admin.auth.failed',
        outcome: 'denied',
        requestId: request.id,
        traceId: request.traceId,
        ip: request.ip,
        detail: { route: request.routeOptions.url ?? 'unmatched', presented: presented === undefined ? 'nothing' : 'a wrong bearer' },
      });
      // RFC 6750 section 3: a bearer challenge, with invalid_token only when one was sent.
      throw new HttpError('unauthorized', 'This endpoint needs the admin bearer token.', {
        headers: { 'www-authenticate': presented === undefined ? 'Bearer realm="portcullis-admin"' : 'Bearer realm="portcullis-admin", error="invalid_token"' },
      });
    },
  };
}
