import type { FastifyReply, FastifyRequest } from 'fastify';

/** Names of this machine's loopback interface that a browser treats as different sites. */
const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

/**
 * Development only (first-hour D4): `localhost` and `127.0.0.1` are one
 * server but two origins (RFC 6454 section 4), so a form loaded from one and
 * checked against the issuer's origin would be refused. A page request
 * (GET/HEAD) whose Host is another loopback name than the issuer's is sent
 * to the issuer's origin, same path and query, before any form is shown.
 * POSTs are never redirected. 303, not 308: a browser must not remember it,
 * so changing the issuer later does not leave a redirect loop behind.
 * Production leaves Host handling to the issuer and the proxy.
 */
export function developmentHostRedirect(ownOrigin: () => string): (request: FastifyRequest, reply: FastifyReply) => Promise<FastifyReply | undefined> {
  return async (request, reply) => {
    if (request.method !== 'GET' && request.method !== 'HEAD') return undefined;
    const own = new URL(ownOrigin());
    let requested: URL;
    try {
      requested = new URL(`${own.protocol}//${request.host}`);
    } catch {
      return undefined;
    }
    // The same listener (same port) under another loopback name; anything else is not this case.
    if (!LOOPBACK_HOSTS.has(own.hostname) || !LOOPBACK_HOSTS.has(requested.hostname) || requested.port !== own.port || requested.hostname === own.hostname) return undefined;
    // The raw path, appended to our origin (never resolved as a URL, so `//x` stays a path); only printable ASCII goes into Location.
    if (!request.url.startsWith('/') || !/^[\x21-\x7e]*$/.test(request.url)) return undefined;
    // Fastify: an async hook that answers returns the reply.
    return reply.redirect(`${own.origin}${request.url}`, 303);
  };
}
