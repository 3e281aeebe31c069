/**
 * Security review 8: no input gives a 5xx, and every answer carries our
 * security headers. Random parameters, methods, headers and bodies go to
 * every route Fastify registered (learnt from Fastify itself, so a route
 * added later is covered without touching this file), plus Fastify's and
 * Node's own error paths (bad JSON, 413, 415, 404, 405, unknown method, bad
 * URL encoding) over a real socket.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import fc from 'fast-check';
import { validateClientMetadata } from '../../src/oauth/index.ts';
import { registeredRoutes } from '../../src/server/route-table.ts';
import { startTestServer, type TestServer } from '../support/server.ts';
import { BrowserlessClient, csrfField } from '../support/browserless-client.ts';

/** Bounded, so the whole file takes seconds; FUZZ_RUNS and FUZZ_SEED widen or vary a run by hand. */
/** Sent as a bearer now and then, so the admin routes are fuzzed past their authentication too. */
const ADMIN_TOKEN = 'fuzz-admin-token-0123456789abcdefghij';
const RUNS_PER_ROUTE = Number(process.env['FUZZ_RUNS'] ?? 300);
const SEED = Number(process.env['FUZZ_SEED'] ?? 20261204);

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'] as const;
const PARAMETER_NAMES = ['client_id', 'response_type', 'redirect_uri', 'scope', 'state', 'nonce', 'code', 'code_verifier', 'code_challenge', 'code_challenge_method', 'grant_type', 'refresh_token', 'token', 'id_token_hint', 'post_logout_redirect_uri', 'request_uri', 'request', 'prompt', 'max_age', 'login_hint', 'return_to', 'reauth', 'interaction', 'start', 'end', 'size', 'index', 'from', 'to', 'limit', 'email', 'password', '_csrf', 'resource', 'client_assertion', 'client_assertion_type', 'client_secret', 'decision', 'session', 'done', 'redirect_uris', 'token_type_hint', 'csr', 'ttl', 'enrolment_token', 'stream_id', 'delivery', 'events_requested', 'set_signing_alg', 'status', 'reason', 'subject', 'ack', 'setErrs', 'maxEvents', 'returnImmediately', 'opt_out', 'purpose', 'consent_newsletter', 'consent_constructor', 'consent___proto__', 'user', 'id', 'sub', 'userId', 'confirm', 'grace', 'after'] as const;

/** Strings that have broken parsers before: non-Latin-1, DEL, controls, bad percent-encoding, huge numbers, paths. */
const nasty = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.constantFrom('/中', '/%C4%80', '/\u007f', '%', '%zz', '%C0%AF', '//evil.example', '/\\evil', '-1', '1e309', '99999999999999999999', 'null', '[]', '{}', '\u0000', '../../etc/passwd', 'eyJhbGciOiJub25lIn0.e30.', 'http://127.0.0.1:1/x', 'Basic Og==', 'Bearer ' + 'a'.repeat(600)),
);

/** A header value Node lets a client send (Latin-1 without controls). */
const headerValue = fc.oneof(fc.string({ maxLength: 60 }).map((value) => value.replace(/[^\x20-\x7e]/g, '')), fc.constantFrom('Bearer x', 'Basic !!!', 'DPoP a.b.c', 'https://evil.example', 'null', 'text/html', '*/*', `Bearer ${ADMIN_TOKEN}`));

const contentTypes = fc.constantFrom(undefined, 'application/json', 'application/x-www-form-urlencoded', 'text/plain', 'application/jwt', 'multipart/form-data; boundary=x', 'application/json; charset=latin1', 'text/html', 'application/x-www-form-urlencoded; charset=utf-16', '');

const percentEncode = (value: string) => {
  try {
    return encodeURIComponent(value);
  } catch {
    return escape(value);
  }
};

/** Where admin requests come from: another network than the wrong bearers, whose failures the admin throttle counts (it would answer many of them 429). */
const ADMIN_ADDRESS = '192.0.2.10';

describe('security review 8: no 5xx for any input, with our headers on every answer', () => {
  let server: TestServer;
  let routes: { url: string; methods: string[] }[];
  let sessionCookie = '';
  let receiverBearer = '';

  before(async () => {
    server = await startTestServer({
      fixedPort: true,
      env: { PORTCULLIS_ADMIN_TOKEN: ADMIN_TOKEN },
      overrides: {
        signals: { pollWait: '1s' },
        // Purposes, so the consent pages and forms are fuzzed past "nothing to ask" (an id that is an Object.prototype name among them).
        privacy: {
          purposes: [
            { id: 'newsletter', description: 'Newsletter', legalBasis: 'consent', version: 2, scopes: ['email'] },
            { id: 'constructor', description: 'A prototype name', legalBasis: 'consent', version: 1 },
            { id: 'billing', description: 'Billing', legalBasis: 'contract', version: 1 },
          ],
        },
      },
    });
    routes = registeredRoutes(server.running.app);
    // The CA is initialised, so /ca/sign, /ca/renew and the CRLs are fuzzed past "no CA yet".
    await server.running.runtime.get('pki').authority.initialise({ keepRootOffline: false });
    // Half the requests come from a signed-in browser, so the signed-in paths are fuzzed too.
    await server.running.identity.accounts.createUser('fuzz@example.org', 'correct horse battery staple', { actor: 'test' });
    const browser = new BrowserlessClient(server.url);
    const form = await browser.get('/login');
    assert.equal((await browser.post('/login', { _csrf: csrfField(form.body)!, email: 'fuzz@example.org', password: 'correct horse battery staple' })).status, 303);
    sessionCookie = `__Host-portcullis=${browser.cookie('__Host-portcullis')!}`;
    // And half from a signal receiver with a stream, so the stream API is fuzzed past its authentication.
    const metadata = validateClientMetadata({ grant_types: ['client_credentials'], redirect_uris: [], scope: 'ssf:stream' }, { allowedScopes: ['ssf:stream'], defaultSigningAlgorithm: 'EdDSA' });
    const receiver = await server.running.authorizationServer.clients.register(metadata, { actor: 'test' }, { approved: true });
    const basic = Buffer.from(`${receiver.client.client_id}:${receiver.clientSecret!}`).toString('base64');
    const issued = await server.running.app.inject({ method: 'POST', url: '/token', headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded' }, payload: 'grant_type=client_credentials' });
    receiverBearer = `Bearer ${(JSON.parse(issued.body) as { access_token: string }).access_token}`;
    const stream = await server.running.app.inject({ method: 'POST', url: '/signals/stream', headers: { authorization: receiverBearer }, payload: { delivery: { method: 'urn:ietf:rfc:8936' } } });
    assert.equal(stream.statusCode, 201);
  });
  after(async () => {
    await server.close();
  });

  function assertOurAnswer(status: number, headers: Record<string, unknown>, what: string): void {
    assert.ok(status < 500, `${what}: ${status}`);
    assert.equal(headers['x-content-type-options'], 'nosniff', `${what}: nosniff`);
    assert.ok(String(headers['content-security-policy'] as string | undefined ?? '').includes("default-src 'none'"), `${what}: CSP`);
    assert.ok(headers['x-request-id'], `${what}: x-request-id`);
    assert.ok(headers['cache-control'], `${what}: cache-control`);
  }

  it('knows the routes from Fastify, and they include every part of the server', () => {
    const urls = routes.map((route) => route.url);
    for (const url of ['/healthz', '/login', '/authorize', '/token', '/par', '/logout', '/audit/entries', '/audit/cosignatures', '/', '/favicon.ico', '/ca/sign', '/ca/renew', '/ca/crl', '/ca/crl/:keyId', '/ca/bundle', '/ca/spiffe-bundle', '/.well-known/ssf-configuration', '/signals/stream', '/signals/status', '/signals/subjects/add', '/signals/subjects/remove', '/signals/verify', '/signals/poll/:streamId', '/.well-known/gpc.json', '/account/privacy/opt-out', '/account/privacy/purposes', '/privacy/purposes', '/account/export', '/admin/privacy/users/:id/export', '/privacy/export-schema.json', '/account/delete', '/account/delete/cancel', '/admin/privacy/requests', '/admin/privacy/erasures', '/admin/privacy/erasures/:id', '/admin/privacy/users/:id/erasure', '/admin/privacy/users/:id/hold']) assert.ok(urls.includes(url), url);
    assert.ok(routes.length >= 30, `${routes.length} routes`);
  });

  it('answers random requests to every route below 500, with the security headers', async () => {
    const request = fc.record({
      method: fc.oneof(fc.constantFrom(...METHODS), fc.constant('ROUTE')),
      pick: fc.nat(),
      signedIn: fc.boolean(),
      receiver: fc.boolean(),
      admin: fc.boolean(),
      pathParameter: nasty,
      query: fc.dictionary(fc.oneof(fc.constantFrom(...PARAMETER_NAMES), fc.string({ maxLength: 8 })), nasty, { maxKeys: 6 }),
      rawQuery: fc.constantFrom('', '&%', '&a=%zz', '&return_to=%2F%E4%B8%AD', '&return_to=%2F%7F', '&%C0=1'),
      headers: fc.record(
        { authorization: headerValue, cookie: headerValue, origin: headerValue, 'sec-fetch-site': headerValue, accept: headerValue, dpop: headerValue, 'x-forwarded-for': headerValue, 'content-type': contentTypes, 'sec-gpc': fc.oneof(headerValue, fc.constant('1')) },
        { requiredKeys: [] },
      ),
      body: fc.oneof(
        fc.constant(undefined),
        nasty,
        fc.dictionary(fc.constantFrom(...PARAMETER_NAMES), nasty, { maxKeys: 6 }).map((fields) => new URLSearchParams(fields).toString()),
        fc.json(),
        fc.dictionary(fc.constantFrom(...PARAMETER_NAMES), fc.oneof(nasty, fc.boolean(), fc.integer(), fc.constant(null)), { maxKeys: 4 }).map((fields) => JSON.stringify(fields)),
      ),
    });
    // Admin requests answered past the bearer check (neither 401 nor 429), so the admin handlers did run.
    let pastAdminAuth = 0;
    // Every route gets its own runs, so a route added later gets as many as the others.
    for (const route of routes) {
      await fc.assert(
        fc.asyncProperty(request, async (input) => {
          const method = input.method === 'ROUTE' ? route.methods[input.pick % route.methods.length]! : input.method;
          const path = route.url.replace(/:[^/]+/g, () => percentEncode(input.pathParameter) || 'x').replace('*', percentEncode(input.pathParameter));
          const query = new URLSearchParams(input.query).toString() + input.rawQuery;
          const headers: Record<string, string> = {};
          for (const [name, value] of Object.entries(input.headers)) if (value !== undefined) headers[name] = value;
          if (input.signedIn) headers['cookie'] = `${sessionCookie}; ${headers['cookie'] ?? ''}`;
          if (input.receiver) headers['authorization'] = receiverBearer;
          // Half the requests carry the admin bearer, so the admin APIs are fuzzed past their authentication.
          if (input.admin) headers['authorization'] = `Bearer ${ADMIN_TOKEN}`;
          const hasBody = method !== 'GET' && method !== 'HEAD' && input.body !== undefined;
          const response = await server.running.app.inject({ method, url: `${path}?${query}`, headers, ...(input.admin && { remoteAddress: ADMIN_ADDRESS }), ...(hasBody && { payload: input.body }) });
          assertOurAnswer(response.statusCode, response.headers, `${method} ${path}?${query}`);
          if (input.admin && route.url.startsWith('/admin/') && response.statusCode !== 401 && response.statusCode !== 429) pastAdminAuth += 1;
        }),
        { numRuns: RUNS_PER_ROUTE, seed: SEED },
      );
    }
    assert.ok(pastAdminAuth > RUNS_PER_ROUTE, `the admin handlers were reached ${pastAdminAuth} times`);
  });

  /** One raw HTTP/1.1 exchange over a socket: Node's parser and Fastify's own error paths. */
  function raw(request: string): Promise<{ status: number; headers: Record<string, string> }> {
    const { port } = new URL(server.url);
    return new Promise((resolve, reject) => {
      const socket = connect(Number(port), '127.0.0.1');
      let text = '';
      socket.on('data', (chunk) => (text += chunk.toString('latin1')));
      socket.on('error', reject);
      socket.on('close', () => {
        const [head = ''] = text.split('\r\n\r\n');
        const [statusLine = '', ...lines] = head.split('\r\n');
        const headers: Record<string, string> = {};
        for (const line of lines) {
          const colon = line.indexOf(':');
          headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
        }
        resolve({ status: Number(statusLine.split(' ')[1]), headers });
      });
      socket.end(request);
    });
  }

  it("answers Fastify's and Node's own error paths below 500, with the security headers", async () => {
    const big = 'a'.repeat(2 * 1024 * 1024);
    const cases: [string, string, number][] = [
      ['bad JSON', 'POST /register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 8\r\nConnection: close\r\n\r\n{"broken', 400],
      ['a body over the limit', `POST /register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${big.length}\r\nConnection: close\r\n\r\n${big}`, 413],
      ['an unsupported media type', 'POST /token HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 2\r\nConnection: close\r\n\r\nab', 415],
      ['an unknown path', 'GET /nothing-here HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 404],
      ['a known path, wrong method', 'DELETE /token HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 405],
      ['an unknown method', 'FROBNICATE / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 400],
      ['bad URL encoding in the path', 'GET /login%zz%C0 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 400],
      ['bad URL encoding in a parameter', 'GET /register/%E0%A4%A HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 400],
      ['a malformed request line', 'GET  HTTP/1.1 junk\r\n\r\n', 400],
      ['conflicting length headers', 'POST /token HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n', 400],
      ['a non-ASCII return_to', 'GET /login?return_to=/%C4%80 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 200],
    ];
    for (const [what, request, expected] of cases) {
      const response = await raw(request);
      assert.equal(response.status, expected, what);
      assertOurAnswer(response.status, response.headers, what);
    }
  });
});
