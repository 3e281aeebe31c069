import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import type { Ledger } from '../audit/index.ts';
import { HttpError } from './errors.ts';

export interface AdminAuthenticator {
  /** Resolves for the admin; otherwise records the failure and throws a 401. */
  authenticate(request: FastifyRequest): Promise<void>;
}

const BEARER = /^Bearer ([\x21-\x7e]+)$/;

/**
 * The static admin bearer token from config (until the OAuth issue brings
 * real admin credentials). Compared in constant time over SHA-256 digests, so
 * neither the content nor the length of the token leaks through timing.
 */
export function staticAdminAuthenticator(token: string | undefined, ledger: Ledger): AdminAuthenticator {
  const expected = token === undefined ? undefined : createHash('sha256').update(token).digest();
  return {
    async authenticate(request) {
      const presented = BEARER.exec(request.headers.authorization ?? '')?.[1];
      if (expected !== undefined && presented !== undefined && timingSafeEqual(createHash('sha256').update(presented).digest(), expected)) return;
      await ledger.record({
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
