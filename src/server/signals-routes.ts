/**
 * The signal transmitter's HTTP API (OpenID Shared Signals Framework 1.0):
 * - `GET /.well-known/ssf-configuration` (section 7.1);
 * - stream configuration at `/signals/stream` (section 8.1.1: POST create,
 *   GET read, PATCH update, PUT replace, DELETE), status at
 *   `/signals/status` (8.1.2), subjects at `/signals/subjects/add|remove`
 *   (8.1.3), verification at `/signals/verify` (8.1.4);
 * - poll delivery at `/signals/poll/:streamId` (RFC 8936).
 *
 * Receivers authenticate with an access token for the resource
 * `<issuer>/signals` (scope `ssf:stream`), from client_credentials or a certificate-bound
 * token (`tls_client_auth`, RFC 8705), of a client an operator approved:
 * security events name users, so a self-registered client gets none.
 * Refused credentials are throttled per network; a success does not reset it.
 */
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { throttledFor, type FailureAggregator } from '../audit/index.ts';
import { isApproved, type AuthorizationServer } from '../oauth/index.ts';
import { DELIVERY_METHODS, SECURITY_EVENT_TYPES } from '../sdk/index.ts';
import { EVENTS_SUPPORTED, SSF_STREAM_SCOPE, StreamError, poll, signalsAudience, type Signals } from '../signals/index.ts';
import { presentedBearer } from './admin-auth.ts';
import { audiencesOf, provesBinding } from './bound-token.ts';
import { HttpError, type ErrorCode } from './errors.ts';

/** Refused receiver credentials one network may send per minute before the check is skipped (429). */
const AUTH_FAILURES_PER_MINUTE = 30;
const REALM = 'portcullis-signals';

export interface SignalsRoutesOptions {
  readonly signals: Signals;
  readonly oauth: AuthorizationServer | undefined;
  readonly failures: FailureAggregator;
  readonly issuer: string;
}

export const signalsRoutes: FastifyPluginAsync<SignalsRoutesOptions> = async (app, options) => {
  const { transmitter } = options.signals;
  const { manager } = transmitter;
  // SSF 1.0 section 7.1: `issuer` is the issuer identifier exactly as SETs carry it; endpoints are built from it without its trailing slash.
  const issuer = options.issuer;
  const base = issuer.replace(/\/$/, '');
  const url = (path: string): string => `${base}${path}`;
  const audience = signalsAudience(issuer);

  app.get('/.well-known/ssf-configuration', async (_request, reply) => {
    reply.header('cache-control', 'public, max-age=3600');
    return {
      spec_version: '1_0',
      issuer,
      jwks_uri: url('/jwks'),
      delivery_methods_supported: [DELIVERY_METHODS.push, DELIVERY_METHODS.poll, DELIVERY_METHODS.websocket],
      configuration_endpoint: url('/signals/stream'),
      status_endpoint: url('/signals/status'),
      add_subject_endpoint: url('/signals/subjects/add'),
      remove_subject_endpoint: url('/signals/subjects/remove'),
      verification_endpoint: url('/signals/verify'),
      critical_subject_members: [],
      authorization_schemes: [{ spec_urn: 'urn:ietf:rfc:6749' }, { spec_urn: 'urn:ietf:rfc:8705' }],
      default_subjects: 'ALL',
      events_supported: EVENTS_SUPPORTED,
    };
  });

  app.post('/signals/stream', async (request, reply) => {
    const clientId = await receiver(request);
    const { id, stream } = await managed(() => manager.create(clientId, request.body));
    return noStore(reply).code(201).send(manager.configuration(id, stream));
  });

  app.get('/signals/stream', async (request, reply) => {
    const clientId = await receiver(request);
    const streamId = queryStreamId(request);
    if (streamId !== undefined) {
      const record = await managed(() => manager.get(clientId, streamId));
      return noStore(reply).send(manager.configuration(record.id, record.data));
    }
    // Section 8.1.1.2: without stream_id, every stream of this receiver.
    return noStore(reply).send((await manager.list(clientId)).map((record) => manager.configuration(record.id, record.data)));
  });

  app.patch('/signals/stream', async (request, reply) => {
    const clientId = await receiver(request);
    const { id, stream } = await managed(() => manager.update(clientId, request.body, 'patch'));
    return noStore(reply).send(manager.configuration(id, stream));
  });

  app.put('/signals/stream', async (request, reply) => {
    const clientId = await receiver(request);
    const { id, stream } = await managed(() => manager.update(clientId, request.body, 'replace'));
    return noStore(reply).send(manager.configuration(id, stream));
  });

  app.delete('/signals/stream', async (request, reply) => {
    const clientId = await receiver(request);
    const streamId = queryStreamId(request);
    if (streamId === undefined) throw new HttpError('bad_request', 'stream_id is required.');
    await managed(() => manager.delete(clientId, streamId));
    return reply.code(204).send();
  });

  app.get('/signals/status', async (request, reply) => {
    const clientId = await receiver(request);
    const streamId = queryStreamId(request);
    if (streamId === undefined) throw new HttpError('bad_request', 'stream_id is required.');
    const record = await managed(() => manager.get(clientId, streamId));
    return noStore(reply).send(manager.status(record.id, record.data));
  });

  app.post('/signals/status', async (request, reply) => {
    const clientId = await receiver(request);
    const { id, stream } = await managed(() => manager.setStatus(clientId, request.body));
    // A resumed stream delivers what it held at once.
    options.signals.push.kick();
    return noStore(reply).send(manager.status(id, stream));
  });

  app.post('/signals/subjects/add', async (request, reply) => {
    const clientId = await receiver(request);
    await managed(() => manager.changeSubject(clientId, request.body, 'add'));
    return reply.code(200).send({});
  });

  app.post('/signals/subjects/remove', async (request, reply) => {
    const clientId = await receiver(request);
    await managed(() => manager.changeSubject(clientId, request.body, 'remove'));
    return reply.code(204).send();
  });

  app.post('/signals/verify', async (request, reply) => {
    const clientId = await receiver(request);
    const { id, state } = await managed(() => manager.requestVerification(clientId, request.body));
    // Section 8.1.4.1: the verification event carries the receiver's state; the stream itself is the subject.
    await transmitter.appendForStream(id, { type: SECURITY_EVENT_TYPES.verification, subject: { format: 'opaque', id }, members: { ...(state !== undefined && { state }) } });
    return reply.code(204).send();
  });

  app.post<{ Params: { streamId: string } }>('/signals/poll/:streamId', async (request, reply) => {
    const clientId = await receiver(request);
    const aborted = new AbortController();
    request.raw.once('close', () => aborted.abort());
    reply.raw.once('close', () => aborted.abort());
    const response = await managed(() => poll(transmitter, clientId, request.params.streamId, request.body, aborted.signal));
    return noStore(reply).send(response);
  });

  /** The receiver (client id) a request authenticates as; throws the right challenge otherwise. */
  async function receiver(request: FastifyRequest): Promise<string> {
    const wait = await throttledFor(options.failures, 'signals.auth.failed', request.ip, AUTH_FAILURES_PER_MINUTE);
    if (wait !== undefined) throw new HttpError('too_many_requests', 'Too many refused credentials from this network; try again later.', { headers: { 'retry-after': String(wait) } });
    const bearer = presentedBearer(request);
    // RFC 6750 section 3.1: no credential, no error code in the challenge.
    if (bearer === undefined) throw new HttpError('unauthorized', `Authenticate with an access token with scope ${SSF_STREAM_SCOPE} (Authorization: Bearer).`, { headers: { 'www-authenticate': `Bearer realm="${REALM}"` } });
    const claims = options.oauth === undefined ? null : await options.oauth.accessTokens.check(bearer);
    if (claims === null || !provesBinding(request, claims)) {
      await options.failures.record({ type: 'signals.auth.failed', outcome: 'denied', requestId: request.id, traceId: request.traceId, ip: request.ip, detail: { presented: claims === null ? 'an invalid access token' : 'a bound token without its proof' } });
      throw new HttpError('invalid_token', 'The access token is not valid (unknown, expired, revoked, or bound to a certificate this connection does not present).', {
        headers: { 'www-authenticate': `Bearer realm="${REALM}", error="invalid_token"` },
      });
    }
    // A receiver is a service: a token a user delegated (authorization code, refresh) names the user, and would let anyone who signs in to such a client read everyone's events.
    if (claims.sub !== claims.client_id) {
      throw new HttpError('insufficient_scope', 'Security events go to a client acting for itself (client_credentials, or its certificate), not to a user signed in to it.', {
        headers: { 'www-authenticate': `Bearer realm="${REALM}", error="insufficient_scope", scope="${SSF_STREAM_SCOPE}"` },
      });
    }
    if (!audiencesOf(claims).includes(audience) || !claims.scope.split(' ').includes(SSF_STREAM_SCOPE)) {
      throw new HttpError('insufficient_scope', `This needs an access token for ${audience} with scope ${SSF_STREAM_SCOPE}.`, {
        headers: { 'www-authenticate': `Bearer realm="${REALM}", error="insufficient_scope", scope="${SSF_STREAM_SCOPE}"` },
      });
    }
    const client = await options.oauth!.clients.get(claims.client_id);
    if (client === null || !isApproved(client)) throw new HttpError('forbidden', 'Only clients an operator created or approved receive security events.');
    return claims.client_id;
  }
};

function queryStreamId(request: FastifyRequest): string | undefined {
  const value = (request.query as Record<string, unknown> | undefined)?.['stream_id'];
  return typeof value === 'string' && value !== '' ? value : undefined;
}

function noStore(reply: FastifyReply): FastifyReply {
  return reply.header('cache-control', 'no-store');
}

const STREAM_ERRORS: Readonly<Record<StreamError['code'], ErrorCode>> = {
  invalid_request: 'bad_request',
  not_found: 'not_found',
  too_many_streams: 'too_many_streams',
  too_soon: 'too_many_requests',
  conflict: 'conflict',
};

/** A stream refusal as its SSF status code (section 8.1.1: 400, 404, 409, 429). */
async function managed<T>(action: () => Promise<T>): Promise<T> {
  try {
    return await action();
  } catch (error) {
    if (error instanceof StreamError) throw new HttpError(STREAM_ERRORS[error.code], error.message, error.code === 'too_soon' ? { headers: { 'retry-after': '1' } } : {});
    throw error;
  }
}
