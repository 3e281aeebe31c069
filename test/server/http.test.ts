import type { Ledger } from '../../src/audit/index.ts';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import type { FastifyPluginAsync } from 'fastify';
import { startTestServer, type TestServer } from '../support/server.ts';
import { buildServer } from '../../src/server/index.ts';
import { Metrics, createLogger } from '../../src/observability/index.ts';
import { loadConfig } from '../../src/config/index.ts';
import { openMemoryHotStore } from '../../src/store/memory/hot-store.ts';
import { openInProcessMessageBus, type Stores } from '../../src/store/index.ts';
import { EventHub } from '../../src/events/index.ts';

/** Routes that exercise the server's rules; real feature routes arrive with later issues. */
const testRoutes: FastifyPluginAsync = async (app) => {
  app.post('/echo', { schema: { body: { type: 'object', required: ['name'], properties: { name: { type: 'string', maxLength: 20 } } } } }, async (request) => request.body);
  app.get('/boom', async () => {
    throw new Error('SELECT password FROM users WHERE id = 1 -- at /work/main/src/secret.ts:12');
  });
  app.post('/oauth-like', { config: { errorFormat: 'oauth' }, schema: { body: { type: 'object', required: ['grant_type'] } } }, async () => ({ ok: true }));
};

/** A generated request id: 64-bit instance prefix and a sequence number. */
const GENERATED_ID = /^[0-9a-f]{16}-[0-9a-z]+$/;

function assertSecurityHeaders(response: Response): void {
  assert.equal(response.headers.get('x-content-type-options'), 'nosniff');
  assert.equal(response.headers.get('referrer-policy'), 'no-referrer');
  assert.match(response.headers.get('content-security-policy') ?? '', /frame-ancestors 'none'/);
  assert.equal(response.headers.get('cache-control'), 'no-store');
  assert.match(response.headers.get('x-request-id') ?? '', /.+/);
}

async function assertProblem(response: Response, status: number, type: string): Promise<Record<string, unknown>> {
  assert.equal(response.status, status);
  assert.match(response.headers.get('content-type') ?? '', /^application\/problem\+json/);
  const body = (await response.json()) as Record<string, unknown>;
  assert.equal(body['status'], status);
  assert.equal(body['type'], `urn:portcullis:problem:${type}`);
  assert.equal(typeof body['title'], 'string');
  assert.equal(typeof body['detail'], 'string');
  assert.equal(body['request_id'], response.headers.get('x-request-id'), 'the problem carries the request id');
  return body;
}

describe('HTTP server (development mode, embedded stores)', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ plugins: [testRoutes] });
  });
  after(async () => {
    await server.close();
  });

  it('GET /healthz answers 200 with security headers', async () => {
    const response = await fetch(`${server.url}/healthz`);
    assert.equal(response.status, 200);
    assert.deepEqual(await response.json(), { status: 'ok' });
    assertSecurityHeaders(response);
    assert.equal(response.headers.get('strict-transport-security'), null, 'no HSTS over plain development HTTP');
  });

  it('GET /readyz answers 200 once both stores answer', async () => {
    const response = await fetch(`${server.url}/readyz`);
    assert.equal(response.status, 200);
    assert.deepEqual(await response.json(), { status: 'ready', checks: { durable: { driver: 'sqlite', status: 'up' }, hot: { driver: 'sqlite', status: 'up' } } });
  });

  it('GET /metrics answers Prometheus text with request and store metrics, routes by template only', async () => {
    await fetch(`${server.url}/healthz`);
    await fetch(`${server.url}/readyz`);
    await fetch(`${server.url}/no-such-page-7f3a`);
    const response = await fetch(`${server.url}/metrics`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const text = await response.text();
    assert.match(text, /portcullis_http_request_duration_seconds_count\{method="GET",route="\/healthz",status_code="200"\} [1-9]/);
    assert.match(text, /portcullis_store_operation_duration_seconds_count\{driver="sqlite",operation="ping"\} [1-9]/);
    assert.match(text, /route="unmatched",status_code="404"/);
    assert.ok(!text.includes('no-such-page-7f3a'), 'unmatched paths do not become label values');
  });

  it('generates a request id and ignores one sent by a client that is not a trusted proxy', async () => {
    const response = await fetch(`${server.url}/healthz`, { headers: { 'x-request-id': 'forged-id-123' } });
    const id = response.headers.get('x-request-id') ?? '';
    assert.match(id, GENERATED_ID);
    const next = await fetch(`${server.url}/healthz`);
    assert.notEqual(next.headers.get('x-request-id'), id, 'every request gets its own id');
    const line = server.logs.records().find((record) => record['reqId'] === id && record['msg'] === 'request completed');
    assert.ok(line, 'the log line of the request carries its id');
    assert.ok(!server.logs.text.includes('forged-id-123'));
  });

  it('answers an unknown path with a 404 problem', async () => {
    const body = await assertProblem(await fetch(`${server.url}/nothing-here`), 404, 'not-found');
    assert.equal(body['title'], 'Not found');
  });

  it('malformed JSON is a 400 problem', async () => {
    const response = await fetch(`${server.url}/echo`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"name": ' });
    await assertProblem(response, 400, 'malformed-body');
  });

  it('an empty JSON body is a 400 problem', async () => {
    const response = await fetch(`${server.url}/echo`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '' });
    await assertProblem(response, 400, 'malformed-body');
  });

  it('a body that fails the route schema is a 400 problem naming the field', async () => {
    const response = await fetch(`${server.url}/echo`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'x'.repeat(21) }) });
    const body = await assertProblem(response, 400, 'validation-failed');
    assert.match(String(body['detail']), /\/name/);
  });

  it('a content type the route does not accept is a 415 problem', async () => {
    const response = await fetch(`${server.url}/echo`, { method: 'POST', headers: { 'content-type': 'text/xml' }, body: '<name>x</name>' });
    await assertProblem(response, 415, 'unsupported-media-type');
  });

  it('a body over the limit is a 413 problem', async () => {
    const response = await fetch(`${server.url}/echo`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'x', pad: 'y'.repeat(200_000) }) });
    await assertProblem(response, 413, 'body-too-large');
  });

  it('a server fault is a 500 whose body names nothing internal, while the log keeps the stack', async () => {
    const response = await fetch(`${server.url}/boom`);
    const body = await assertProblem(response, 500, 'internal-error');
    const text = JSON.stringify(body);
    for (const leak of ['SELECT', 'password', '/work', '.ts', 'Error:', '    at ']) assert.ok(!text.includes(leak), `the response leaks ${leak}`);
    const logged = server.logs.records().find((record) => record['reqId'] === body['request_id'] && record['msg'] === 'request failed');
    assert.ok(logged && typeof logged['stack'] === 'string', 'the operator gets the stack in the log');
  });

  it('an OAuth endpoint answers RFC 6749 section 5.2 errors through the same handler', async () => {
    const response = await fetch(`${server.url}/oauth-like`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    assert.equal(response.status, 400);
    assert.match(response.headers.get('content-type') ?? '', /^application\/json/);
    const body = (await response.json()) as Record<string, unknown>;
    assert.equal(body['error'], 'invalid_request');
    assert.equal(typeof body['error_description'], 'string');
    assert.equal(body['request_id'], response.headers.get('x-request-id'));
  });

  it('a request the HTTP parser refuses gets a 400, not a crash', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const request = httpRequest(`${server.url}/echo`, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': '5', 'transfer-encoding': 'chunked' } }, (response) => {
        response.resume();
        resolve(response.statusCode ?? 0);
      });
      request.on('error', reject);
      request.end();
    });
    assert.equal(status, 400);
    assert.equal((await fetch(`${server.url}/healthz`)).status, 200, 'and the server still serves');
  });
});

describe('HTTP server behind a trusted proxy (production mode)', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({
      overrides: { mode: 'production', issuer: 'https://id.example.com', trustProxy: ['loopback'], host: '127.0.0.1' },
    });
  });
  after(async () => {
    await server.close();
  });

  it('sends HSTS', async () => {
    const response = await fetch(`${server.url}/healthz`);
    assert.match(response.headers.get('strict-transport-security') ?? '', /max-age=\d{8,}; includeSubDomains/);
  });

  it("accepts the proxy's request id and trace id, and rejects a malformed id", async () => {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const response = await fetch(`${server.url}/healthz`, {
      headers: { 'x-request-id': 'edge-req-42', traceparent: `00-${traceId}-00f067aa0ba902b7-01` },
    });
    assert.equal(response.headers.get('x-request-id'), 'edge-req-42');
    await fetch(`${server.url}/healthz`);
    const line = server.logs.records().find((record) => record['reqId'] === 'edge-req-42' && record['msg'] === 'request completed');
    assert.equal(line?.['traceId'], traceId);
    const malformed = await fetch(`${server.url}/healthz`, { headers: { 'x-request-id': 'has spaces and "quotes"' } });
    assert.match(malformed.headers.get('x-request-id') ?? '', GENERATED_ID);
  });
});

describe('readiness when a store is down', () => {
  it('GET /readyz answers 503 naming the store, with no error text', async () => {
    const hot = openMemoryHotStore();
    const failingHot = Object.assign(Object.create(hot) as typeof hot, {
      ping: () => Promise.reject(new Error('ECONNREFUSED redis://:pw@10.0.0.1')),
    });
    const durable = { driver: 'sqlite' as const, ping: () => Promise.resolve() } as unknown as Stores['durable'];
    const stores: Stores = { durable, hot: failingHot, bus: openInProcessMessageBus(), close: () => hot.close() };
    const config = loadConfig({ env: {} });
    const app = await buildServer({ config, stores, logger: createLogger({ level: 'silent', personalData: 'mask' }), metrics: new Metrics({ collectProcessMetrics: false }), ledger: {} as Ledger, events: new EventHub() });
    try {
      const response = await app.inject({ method: 'GET', url: '/readyz' });
      assert.equal(response.statusCode, 503);
      assert.deepEqual(response.json(), { status: 'unavailable', checks: { durable: { driver: 'sqlite', status: 'up' }, hot: { driver: 'memory', status: 'down' } } });
      assert.ok(!response.body.includes('ECONNREFUSED'));
    } finally {
      await app.close();
      await stores.close();
    }
  });
});
