import type { FastifyReply } from 'fastify';

/**
 * Headers every response carries. The API answers JSON only, so its CSP
 * allows nothing at all; HTML views (later) set their own stricter-than-
 * default policy per route.
 */
const BASE_HEADERS: Readonly<Record<string, string>> = {
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'content-security-policy': "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
  'x-frame-options': 'DENY',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  // Identity responses are personal: nothing is cached unless a route says so.
  'cache-control': 'no-store',
};

/** RFC 6797: two years, subdomains included; sent only in production (over TLS or behind a TLS proxy). */
const HSTS = 'max-age=63072000; includeSubDomains';

export function securityHeaders(reply: FastifyReply, production: boolean): void {
  reply.headers(BASE_HEADERS);
  if (production) reply.header('strict-transport-security', HSTS);
}
