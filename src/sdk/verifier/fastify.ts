/**
 * The verifier as a Fastify plugin. Structurally typed: the SDK does not
 * import Fastify. Registered, it adds an onRequest hook that verifies every
 * request of the instance it is registered on (like fastify-plugin, it
 * skips encapsulation, so register it inside the plugin whose routes it
 * protects), decorates the request with the result, and answers a refusal
 * with its status, WWW-Authenticate (and DPoP-Nonce) headers and a JSON
 * `{ error, error_description }` body.
 *
 * A route may ask for more scopes in its config: `{ config: { scopes: ['a'] } }`.
 */
import { isEncrypted, peerCertificateOf, refusalBody, requestUrl } from './adapter-request.ts';
import type { Verifier, VerifySuccess } from './verifier.ts';

export interface FastifyVerifierOptions {
  readonly verifier: Verifier;
  /** Scopes every route of this instance needs. */
  readonly scopes?: readonly string[];
  /** The public origin (`https://api.example.com`); by default from the connection and the Host header. */
  readonly origin?: string;
  /** The request property that receives the VerifySuccess (default `auth`). */
  readonly decorator?: string;
}

/** The parts of a Fastify request the plugin reads. */
export interface FastifyRequestLike {
  readonly method: string;
  readonly url: string;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly host?: string;
  readonly raw: { readonly socket: unknown };
  readonly routeOptions?: { readonly config?: unknown };
}

/** The parts of a Fastify reply the plugin uses. */
export interface FastifyReplyLike {
  code(status: number): FastifyReplyLike;
  header(name: string, value: string): FastifyReplyLike;
  send(payload?: unknown): unknown;
}

/** The parts of a Fastify instance the plugin uses. */
export interface FastifyInstanceLike {
  decorateRequest(property: string, value: null): unknown;
  addHook(name: 'onRequest', hook: (request: FastifyRequestLike, reply: FastifyReplyLike) => Promise<unknown>): unknown;
}

function routeScopes(request: FastifyRequestLike): readonly string[] | undefined {
  const config = request.routeOptions?.config as { scopes?: unknown } | undefined;
  return Array.isArray(config?.scopes) ? (config.scopes as string[]) : undefined;
}

async function plugin(instance: FastifyInstanceLike, options: FastifyVerifierOptions): Promise<void> {
  const { verifier } = options;
  const property = options.decorator ?? 'auth';
  instance.decorateRequest(property, null);
  instance.addHook('onRequest', async (request, reply) => {
    const socket = request.raw.socket;
    const peerCertificate = peerCertificateOf(socket);
    const result = await verifier.verify(
      {
        method: request.method,
        url: requestUrl(options.origin, isEncrypted(socket), request.host ?? (request.headers['host'] as string | undefined), request.url),
        headers: request.headers,
        ...(peerCertificate !== undefined && { peerCertificate }),
      },
      { scopes: [...(options.scopes ?? []), ...(routeScopes(request) ?? [])] },
    );
    if (result.ok) {
      (request as unknown as Record<string, VerifySuccess>)[property] = result;
      return;
    }
    reply.code(result.status);
    for (const [name, value] of Object.entries(result.headers)) reply.header(name, value);
    reply.header('content-type', 'application/json; charset=utf-8').header('cache-control', 'no-store');
    return reply.send(refusalBody(result));
  });
}

/** `app.register(fastifyVerifier, { verifier })`. */
export const fastifyVerifier = Object.assign(plugin, {
  // fastify-plugin's markers, without depending on it: decorate and hook the registering instance.
  [Symbol.for('skip-override')]: true,
  [Symbol.for('fastify.display-name')]: 'portcullis-verifier',
});
