import type { FastifyReply } from 'fastify';

/**
 * Headers every API response carries: the set the OWASP REST Security Cheat
 * Sheet ("Security headers") asks of a JSON API, plus the Referrer-Policy the
 * foundation issue requires. The API answers JSON only, so its CSP allows
 * nothing at all and forbids framing; X-Frame-Options repeats that for
 * browsers that predate CSP frame-ancestors.
 *
 * Document-only headers (Cross-Origin-Opener-Policy, the form-action and
 * base-uri CSP directives) mean nothing on a JSON response and cost bytes on
 * every one (bench/overhead.ts measured ~4 µs per request for the full set on
 * loopback); the server-rendered HTML views set their own, stricter policy.
 */
const API_HEADERS: Readonly<Record<string, string>> = {
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'content-security-policy': "default-src 'none'; frame-ancestors 'none'",
  'x-frame-options': 'DENY',
  // A cookie-authenticated JSON answer must not be readable by a page of a
  // sibling origin through a no-cors load (Spectre-style side channels).
  'cross-origin-resource-policy': 'same-origin',
  // Identity responses are personal: nothing is cached unless a route says so.
  'cache-control': 'no-store',
};

/** RFC 6797: two years, subdomains included; sent only in production (over TLS or behind a TLS proxy). */
const HSTS = 'max-age=63072000; includeSubDomains';

/** The same headers as a plain object, for answers written outside Fastify (HTTP parser errors). */
export function securityHeaderFields(production: boolean): Readonly<Record<string, string>> {
  return production ? { ...API_HEADERS, 'strict-transport-security': HSTS } : API_HEADERS;
}

export function securityHeaders(reply: FastifyReply, production: boolean): void {
  reply.headers(API_HEADERS);
  if (production) reply.header('strict-transport-security', HSTS);
}
