/**
 * Sender-constrained access tokens at Portcullis's own APIs (the CA, the
 * signal streams): a token bound to a certificate (RFC 8705 section 3) is
 * used only over a connection with that certificate. DPoP-bound tokens are
 * for the OAuth endpoints, not here, so they are refused.
 */
import { createHash } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import type { FastifyRequest } from 'fastify';
import type { AccessTokenClaims } from '../oauth/index.ts';
import { isSelfIssued } from '../pki/index.ts';

/** The current, TLS-verified client certificate of this connection (DER), if any. */
export function peerCertificate(request: FastifyRequest): Buffer | undefined {
  const socket = request.raw.socket as Partial<TLSSocket>;
  if (socket.authorized !== true || typeof socket.getPeerX509Certificate !== 'function') return undefined;
  const certificate = socket.getPeerX509Certificate();
  // A registered self-signed client certificate is trusted as itself, never as one this CA issued.
  return certificate === undefined || isSelfIssued(certificate) ? undefined : certificate.raw;
}

/** Whether the request proves what the token is bound to (an unbound token: true). */
export function provesBinding(request: FastifyRequest, claims: AccessTokenClaims): boolean {
  const cnf = claims['cnf'] as Record<string, unknown> | undefined;
  if (cnf === undefined) return true;
  const thumbprint = cnf['x5t#S256'];
  const presented = peerCertificate(request);
  return typeof thumbprint === 'string' && presented !== undefined && createHash('sha256').update(presented).digest('base64url') === thumbprint;
}

export function audiencesOf(claims: AccessTokenClaims): string[] {
  return typeof claims.aud === 'string' ? [claims.aud] : [...claims.aud];
}
