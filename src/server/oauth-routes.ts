/**
 * HTTP for the authorization server's API side: discovery, JWKS, token,
 * PAR, userinfo, introspection, revocation. Every OAuth endpoint answers
 * RFC 6749 section 5.2 errors (route config `errorFormat: 'oauth'`)
 * carrying the request id.
 *
 * Token, PAR, introspection, revocation and userinfo hand the connection's
 * TLS client certificate to the authorization server (RFC 8705), read from
 * the socket: only a listener that asks for certificates (`requestCert`)
 * has one. Whether TLS trusted its chain travels with it (`authorized`);
 * the authorization server decides what each method needs.
 */
import { TLSSocket } from 'node:tls';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import fastifyFormbody from '@fastify/formbody';
import { ENDPOINT_PATHS, endpointUrl, type AuthorizationServer, type ClientCertificate } from '../oauth/index.ts';
import { isSelfIssued } from '../pki/index.ts';
import type { PortcullisRouteConfig } from './error-handler.ts';

export interface OAuthRoutesOptions {
  readonly server: AuthorizationServer;
}

const OAUTH: { config: PortcullisRouteConfig } = { config: { errorFormat: 'oauth' } };

/** RFC 6749 section 5.1: token responses are never cached. */
function noStore(reply: FastifyReply): FastifyReply {
  return reply.header('cache-control', 'no-store').header('pragma', 'no-cache');
}

function audit(request: FastifyRequest) {
  return { requestId: request.id, traceId: request.traceId, ip: request.ip };
}

/**
 * The certificate the TLS peer presented, if the connection is TLS and it
 * presented one; `chainVerified` is the socket's `authorized` (the chain
 * reaches a CA the listener trusts, within its validity). Never from a
 * header: a proxy's word about a certificate is not proof of its key.
 */
function clientCertificate(request: FastifyRequest): { clientCertificate?: ClientCertificate } {
  const socket = request.raw.socket;
  if (!(socket instanceof TLSSocket)) return {};
  const x509 = socket.getPeerX509Certificate();
  // A self-issued certificate passes the handshake only as a registered self-signed one (RFC 8705 section 2.2):
  // it is never a certificate a CA vouched for, whatever `authorized` says.
  return x509 === undefined ? {} : { clientCertificate: { x509, chainVerified: socket.authorized === true && !isSelfIssued(x509) } };
}

/**
 * Browser apps (public clients) call the token, revocation and userinfo
 * endpoints cross-origin. They authenticate with tokens and proofs in
 * headers, never cookies, so any origin may call them (no credentials mode).
 */
const CORS_HEADERS = {
  'access-control-allow-origin': '*',
  'access-control-expose-headers': 'dpop-nonce, www-authenticate, x-request-id',
  'cross-origin-resource-policy': 'cross-origin',
};

export const oauthRoutes: FastifyPluginAsync<OAuthRoutesOptions> = async (app, { server }) => {
  // RFC 7591 takes JSON bodies: its own scope, with the default JSON parser.
  await app.register(registrationRoutes, { server });
  // RFC 6749 section 3.2: the token endpoint takes form-encoded bodies (and
  // so do PAR, introspection and revocation: RFC 9126 section 2.1, RFC 7662
  // section 2.1, RFC 7009 section 2.1).
  // Forms only: a JSON or text body is refused with 415, never half-read.
  app.removeAllContentTypeParsers();
  await app.register(fastifyFormbody, { bodyLimit: 64 * 1024 });
  app.addHook('onRequest', (request, reply, done) => {
    if ((request.routeOptions.config as PortcullisRouteConfig | undefined)?.cors === true) reply.headers(CORS_HEADERS);
    done();
  });
  const api: { config: PortcullisRouteConfig } = { config: { errorFormat: 'oauth', cors: true } };

  // Public, cacheable documents.
  const publicDocument = (reply: FastifyReply, type: string, maxAgeSeconds: number, body: string) =>
    reply.headers(CORS_HEADERS).header('cache-control', `public, max-age=${maxAgeSeconds}`).type(type).send(body);
  app.get('/.well-known/oauth-authorization-server', (_request, reply) => publicDocument(reply, 'application/json', 3600, server.metadata));
  app.get('/.well-known/openid-configuration', (_request, reply) => publicDocument(reply, 'application/json', 3600, server.openIdMetadata));
  // RFC 7517 section 8.5: the JWK Set media type. Verifiers may cache it for
  // max-age, which is why a new key is published that long before it signs.
  app.get(ENDPOINT_PATHS.jwks, (_request, reply) => publicDocument(reply, 'application/jwk-set+json', server.jwksMaxAgeSeconds, server.keyring.jwks()));

  for (const path of [ENDPOINT_PATHS.token, ENDPOINT_PATHS.revocation, ENDPOINT_PATHS.userinfo, ENDPOINT_PATHS.introspection, ENDPOINT_PATHS.par]) {
    app.options(path, (_request, reply) =>
      reply
        .headers(CORS_HEADERS)
        .header('access-control-allow-methods', path === ENDPOINT_PATHS.userinfo ? 'GET, POST' : 'POST')
        .header('access-control-allow-headers', 'authorization, content-type, dpop')
        .header('access-control-max-age', '600')
        .code(204)
        .send(),
    );
  }

  /** RFC 9449 section 4.3: the proof's htu is the endpoint's public URL. */
  const dpopProof = async (request: FastifyRequest, path: string, accessToken?: string) =>
    server.dpop.verify(request.headers['dpop'], { method: request.method, url: endpointUrl(server.issuer, path), ...(accessToken !== undefined && { accessToken }) });

  app.post(ENDPOINT_PATHS.token, api, async (request, reply) => {
    const proof = request.headers['dpop'] === undefined ? undefined : await dpopProof(request, ENDPOINT_PATHS.token);
    const answer = await server.token.handle({ body: request.body, authorization: request.headers.authorization, audit: audit(request), ...(proof !== undefined && { dpopJkt: proof.jkt }), ...clientCertificate(request) });
    return noStore(reply).send(answer);
  });

  // RFC 9126 section 2.2: 201 Created with the request_uri.
  app.post(ENDPOINT_PATHS.par, OAUTH, async (request, reply) => {
    const proof = request.headers['dpop'] === undefined ? undefined : await dpopProof(request, ENDPOINT_PATHS.par);
    const answer = await server.par.handle({ body: request.body, authorization: request.headers.authorization, audit: audit(request), ...(proof !== undefined && { dpopJkt: proof.jkt }), ...clientCertificate(request) });
    return noStore(reply).code(201).send(answer);
  });

  app.post(ENDPOINT_PATHS.introspection, OAUTH, async (request, reply) => {
    const answer = await server.introspection.handle({ body: request.body, authorization: request.headers.authorization, audit: audit(request), ...clientCertificate(request) });
    return noStore(reply).send(answer);
  });

  // RFC 7009 section 2.2: 200 with an empty body, revoked or not.
  app.post(ENDPOINT_PATHS.revocation, api, async (request, reply) => {
    await server.revocation.handle({ body: request.body, authorization: request.headers.authorization, audit: audit(request), ...clientCertificate(request) });
    return noStore(reply).code(200).send();
  });

  // OIDC Core section 5.3.1: GET and POST.
  const userinfo = async (request: FastifyRequest, reply: FastifyReply) => {
    const claims = await server.userinfo.handle({ authorization: request.headers.authorization, checkDpop: (token) => dpopProof(request, ENDPOINT_PATHS.userinfo, token), ...clientCertificate(request) });
    return noStore(reply).send(claims);
  };
  app.get(ENDPOINT_PATHS.userinfo, api, userinfo);
  app.post(ENDPOINT_PATHS.userinfo, api, userinfo);
};

/** Dynamic client registration (RFC 7591) and management (RFC 7592). */
const registrationRoutes: FastifyPluginAsync<OAuthRoutesOptions> = async (app, { server }) => {
  const registration = server.registration;
  const send = (reply: FastifyReply, answer: { status: number; body?: Record<string, unknown> }) => noStore(reply).code(answer.status).send(answer.body);
  const clientId = (request: FastifyRequest) => (request.params as { clientId: string }).clientId;
  app.post(ENDPOINT_PATHS.registration, OAUTH, async (request, reply) =>
    send(reply, await registration.register({ body: request.body, authorization: request.headers.authorization, audit: audit(request) })),
  );
  app.get(`${ENDPOINT_PATHS.registration}/:clientId`, OAUTH, async (request, reply) => send(reply, await registration.read(clientId(request), { authorization: request.headers.authorization, audit: audit(request) })));
  app.put(`${ENDPOINT_PATHS.registration}/:clientId`, OAUTH, async (request, reply) =>
    send(reply, await registration.update(clientId(request), { body: request.body, authorization: request.headers.authorization, audit: audit(request) })),
  );
  app.delete(`${ENDPOINT_PATHS.registration}/:clientId`, OAUTH, async (request, reply) =>
    send(reply, await registration.delete(clientId(request), { authorization: request.headers.authorization, audit: audit(request) })),
  );
};
