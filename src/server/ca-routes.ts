/**
 * HTTP for the built-in CA: issuance (`POST /ca/sign`), renewal over mTLS
 * (`POST /ca/renew`), the CRLs (`GET /ca/crl`, DER, RFC 5280 section 5 and
 * RFC 2585 section 4.2's media type), and the trust bundles (`/ca/bundle`
 * PEM, `/ca/spiffe-bundle` as a SPIFFE JWKS). Refusals are problem+json
 * (RFC 9457) with one type per rule of the issuance policy.
 */
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { throttledFor, type FailureAggregator } from '../audit/index.ts';
import { parseDuration } from '../config/index.ts';
import type { AccessTokenClaims, AuthorizationServer } from '../oauth/index.ts';
import { AuthorityError, CertificateRequestError, type CertificateSummary, type EnrolmentGrant, type IssuedCertificate } from '../pki/index.ts';
import type { Pki } from '../runtime/index.ts';
import { presentedBearer } from './admin-auth.ts';
import { audiencesOf as audiences, peerCertificate, provesBinding } from './bound-token.ts';
import { HttpError, type ErrorCode } from './errors.ts';

export interface CaRoutesOptions {
  readonly pki: Pki;
  readonly oauth: AuthorizationServer | undefined;
  readonly failures: Pick<FailureAggregator, 'record' | 'count' | 'retryAfterMs'>;
  readonly issuer: string;
}

/** The scope a client needs to have certificates issued (its registration's `cert_sans` say which). */
export const CA_ISSUE_SCOPE = 'ca:issue';

/** Refused enrolment tokens or CA bearers one network may send per minute before the check is skipped (429). */
export const CA_AUTH_FAILURES_PER_MINUTE = 30;

/** RFC 8555 section 9.1. */
const PEM_CHAIN = 'application/pem-certificate-chain';

interface SignBody {
  readonly csr?: unknown;
  readonly ttl?: unknown;
  readonly enrolment_token?: unknown;
}

export const caRoutes: FastifyPluginAsync<CaRoutesOptions> = async (app, options) => {
  const { authority, enrolment } = options.pki;
  const caAudience = `${options.issuer.replace(/\/$/, '')}/ca`;

  const requireInitialised = () => {
    if (!authority.initialised) throw new HttpError('ca_not_initialised', 'This server has no CA yet: an operator runs `portcullis ca init`.');
  };

  app.get('/ca/bundle', (_request, reply) => {
    requireInitialised();
    return reply.header('cache-control', 'public, max-age=300').type(PEM_CHAIN).send(authority.bundlePem());
  });
  app.get('/ca/spiffe-bundle', (_request, reply) => {
    requireInitialised();
    return reply.header('cache-control', 'public, max-age=300').type('application/json').send(authority.spiffeBundle());
  });
  const sendCrl = async (reply: FastifyReply, keyId?: string) => {
    requireInitialised();
    const crl = await authority.crl(keyId);
    if (crl === undefined) throw new HttpError('not_found', 'There is no CRL for that CA certificate.');
    return reply.header('cache-control', 'public, max-age=60').type('application/pkix-crl').send(crl);
  };
  app.get('/ca/crl', (_request, reply) => sendCrl(reply));
  app.get<{ Params: { keyId: string } }>('/ca/crl/:keyId', (request, reply) => {
    if (!/^[0-9a-f]{40}$/.test(request.params.keyId)) throw new HttpError('not_found', 'There is no CRL for that CA certificate.');
    return sendCrl(reply, request.params.keyId);
  });

  app.post<{ Body: SignBody }>('/ca/sign', async (request, reply) => {
    requireInitialised();
    const body = jsonBody(request.body);
    const csr = csrOf(body);
    const ttlMs = ttlOf(body.ttl);
    const context = { requestId: request.id, traceId: request.traceId, ip: request.ip };
    const caller = await authorise(request, body);
    const issued = await refusalsAnswered(async () => {
      if (caller.kind === 'client') return authority.issue({ csr, allowed: caller.allowed, ...(ttlMs !== undefined && { ttlMs }), requestedBy: `client:${caller.clientId}`, context: { ...context, clientId: caller.clientId, actorService: caller.clientId } });
      // Checked before the token is used up, so a CSR mistake does not burn it.
      const grant = caller.grant;
      return authority.issue({
        csr,
        allowed: grant.names,
        ...(ttlMs !== undefined && { ttlMs }),
        requestedBy: `enrolment:${grant.jti}`,
        context: { ...context, actorService: 'enrolment' },
        beforeSigning: async () => {
          if (!(await enrolment.redeem(grant))) throw new HttpError('unauthorized', 'This enrolment token was already used.', { headers: { 'www-authenticate': 'Bearer realm="portcullis-ca", error="invalid_token"' } });
        },
      });
    });
    return sendChain(reply.code(201), issued);
  });

  app.post<{ Body: { csr?: unknown } | undefined }>('/ca/renew', async (request, reply) => {
    requireInitialised();
    const presented = peerCertificate(request);
    if (presented === undefined) {
      throw new HttpError('unauthorized', 'Renewal authenticates with the current certificate: call this over mutual TLS (the mTLS port) with it.', { headers: { 'www-authenticate': 'Mutual-TLS realm="portcullis-ca"' } });
    }
    const body = request.body === undefined || request.body === null ? {} : jsonBody(request.body);
    const csr = body.csr === undefined ? undefined : csrOf(body);
    const issued = await refusalsAnswered(() =>
      authority.renew({ presented, ...(csr !== undefined && { csr }), context: { requestId: request.id, traceId: request.traceId, ip: request.ip, actorService: 'renewal' }, authorise: stillAllowed }),
    );
    return sendChain(reply.code(201), issued);
  });

  /**
   * A certificate a client had issued renews only while that client exists
   * and may still have its names (its cert_sans): deleting the client, or
   * taking a name from it, ends its workloads' renewals. One issued for an
   * enrolment token renews on its own (the token was the operator's say).
   */
  async function stillAllowed(certificate: CertificateSummary): Promise<void> {
    if (!certificate.requestedBy.startsWith('client:')) return;
    const client = await options.oauth?.clients.get(certificate.requestedBy.slice('client:'.length));
    const allowed = new Set(client?.cert_sans ?? []);
    const names = [certificate.spiffeId, ...certificate.dns.map((name) => `dns:${name}`), ...certificate.ips.map((ip) => `ip:${ip}`)];
    if (client === undefined || client === null || names.some((name) => !allowed.has(name))) {
      throw new HttpError('name_not_permitted', 'The client this certificate was issued to no longer exists, or may no longer have its names: it does not renew.');
    }
  }

  type Caller = { readonly kind: 'client'; readonly clientId: string; readonly allowed: readonly string[] } | { readonly kind: 'enrolment'; readonly grant: EnrolmentGrant };

  /** An access token with `ca:issue` (the client's registered names), or a one-time enrolment token; both throttled per network. */
  async function authorise(request: FastifyRequest, body: SignBody): Promise<Caller> {
    const wait = await throttledFor(options.failures, 'ca.auth.failed', request.ip, CA_AUTH_FAILURES_PER_MINUTE);
    if (wait !== undefined) throw new HttpError('too_many_requests', 'Too many refused CA credentials from this network; try again later.', { headers: { 'retry-after': String(wait) } });
    const bearer = presentedBearer(request);
    const token = typeof body.enrolment_token === 'string' ? body.enrolment_token : undefined;
    if ((bearer === undefined) === (token === undefined)) {
      throw new HttpError('unauthorized', 'Authenticate with exactly one of: an access token with scope ca:issue (Authorization: Bearer), or an enrolment token (enrolment_token).', {
        headers: { 'www-authenticate': 'Bearer realm="portcullis-ca"' },
      });
    }
    const fail = async (presented: string, detail: string): Promise<never> => {
      await options.failures.record({ type: 'ca.auth.failed', outcome: 'denied', requestId: request.id, traceId: request.traceId, ip: request.ip, detail: { presented } });
      throw new HttpError('unauthorized', detail, { headers: { 'www-authenticate': 'Bearer realm="portcullis-ca", error="invalid_token"' } });
    };
    if (token !== undefined) {
      try {
        return { kind: 'enrolment', grant: enrolment.verify(token) };
      } catch (error) {
        if (error instanceof AuthorityError) return fail('an invalid enrolment token', 'The enrolment token is not valid: wrong signature, type or audience, or expired.');
        throw error;
      }
    }
    const claims = options.oauth === undefined ? null : await options.oauth.accessTokens.check(bearer!);
    if (claims === null) return fail('an invalid access token', 'The access token is not valid (unknown, expired or revoked).');
    checkBinding(request, claims);
    if (!audiences(claims).includes(caAudience) || !claims.scope.split(' ').includes(CA_ISSUE_SCOPE)) {
      throw new HttpError('insufficient_scope', `This needs an access token for ${caAudience} with scope ${CA_ISSUE_SCOPE}.`, {
        headers: { 'www-authenticate': `Bearer realm="portcullis-ca", error="insufficient_scope", scope="${CA_ISSUE_SCOPE}"` },
      });
    }
    const client = await options.oauth!.clients.get(claims.client_id);
    const allowed = client?.cert_sans ?? [];
    if (allowed.length === 0) throw new HttpError('name_not_permitted', 'This client has no certificate names registered (client create --cert-san).');
    return { kind: 'client', clientId: claims.client_id, allowed };
  }
};

/**
 * A sender-constrained token is used only by its holder: one bound to a
 * certificate (RFC 8705 section 3) only over a connection with that
 * certificate. DPoP-bound tokens are for the OAuth endpoints, not here.
 */
function checkBinding(request: FastifyRequest, claims: AccessTokenClaims): void {
  if (provesBinding(request, claims)) return;
  throw new HttpError('invalid_token', 'This access token is bound to a key or certificate this request does not prove.', { headers: { 'www-authenticate': 'Bearer realm="portcullis-ca", error="invalid_token"' } });
}

function jsonBody(body: unknown): SignBody {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new HttpError('bad_request', 'The body is a JSON object: {"csr": "-----BEGIN CERTIFICATE REQUEST-----...", "ttl": "24h"}.');
  return body;
}

function csrOf(body: SignBody): string {
  if (typeof body.csr !== 'string' || body.csr.length === 0) throw new HttpError('malformed_csr', 'csr is required: a PEM PKCS#10 certificate signing request.');
  return body.csr;
}

function ttlOf(value: unknown): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value === 'string') {
    try {
      return parseDuration(value);
    } catch (error) {
      throw new HttpError('lifetime_too_long', `ttl: ${(error as Error).message}`);
    }
  }
  if (typeof value === 'number' && Number.isSafeInteger(value) && value > 0) return value * 1000;
  throw new HttpError('lifetime_too_long', 'ttl is a duration such as "24h", or a whole number of seconds.');
}

/** The CA's refusals as problem+json, each under its own type. */
async function refusalsAnswered<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (error instanceof CertificateRequestError) throw new HttpError(error.code, error.message);
    if (error instanceof AuthorityError) {
      const code: ErrorCode = error.code === 'not_initialised' ? 'ca_not_initialised' : error.code === 'certificate_revoked' || error.code === 'certificate_expired' || error.code === 'unknown_certificate' ? error.code : 'forbidden';
      throw new HttpError(code, error.message);
    }
    throw error;
  }
}

function sendChain(reply: FastifyReply, issued: IssuedCertificate): FastifyReply {
  return reply
    .header('cache-control', 'no-store')
    .header('x-certificate-serial', issued.serial)
    .header('x-certificate-not-after', issued.notAfter.toISOString())
    .type(PEM_CHAIN)
    .send(issued.chainPem);
}
