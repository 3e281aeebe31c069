/**
 * Security review 17: /metrics tells anyone the Node version, memory and
 * per-route failure counts. In production it needs a bearer
 * (`metrics.token`) or a listener of its own (`metrics.port`, loopback by
 * default); without either it is not served, and the operator is told once.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer } from '../support/server.ts';

const PRODUCTION = { mode: 'production', issuer: 'https://id.example.com', trustProxy: ['loopback'], host: '127.0.0.1' } as const;
const METRICS_TOKEN = 'metrics-scraper-token-0123456789abcdef';

describe('security review 17: /metrics in production', () => {
  it('is not served on the main listener without a token or a port, and a warning says so once', async () => {
    const server = await startTestServer({ overrides: { ...PRODUCTION } });
    try {
      const response = await fetch(`${server.url}/metrics`);
      assert.equal(response.status, 404);
      assert.ok(!(await response.text()).includes('portcullis_'), 'no metric in the answer');
      assert.equal(response.headers.get('x-content-type-options'), 'nosniff');
      const warnings = server.logs.records().filter((line) => line['level'] === 'warn' && String(line['msg']).includes('metrics.token'));
      assert.equal(warnings.length, 1);
    } finally {
      await server.close();
    }
  });

  it('needs the metrics bearer when metrics.token is set: none or a wrong one is 401', async () => {
    const server = await startTestServer({ overrides: { ...PRODUCTION, metrics: { token: METRICS_TOKEN } } });
    try {
      const none = await fetch(`${server.url}/metrics`);
      assert.equal(none.status, 401);
      assert.equal(none.headers.get('www-authenticate'), 'Bearer realm="portcullis-metrics"');
      const wrong = await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN.slice(0, -1)}x` } });
      assert.equal(wrong.status, 401);
      assert.ok(!(await wrong.text()).includes('portcullis_'));
      const right = await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
      assert.equal(right.status, 200);
      assert.match(await right.text(), /portcullis_http_request_duration_seconds/);
      assert.ok(!server.logs.text.includes(METRICS_TOKEN), 'the token is never logged');
    } finally {
      await server.close();
    }
  });

  it('with metrics.port, is served on its own loopback listener and not on the main one', async () => {
    const server = await startTestServer({ overrides: { ...PRODUCTION, metrics: { port: 0 } } });
    try {
      assert.equal((await fetch(`${server.url}/metrics`)).status, 404);
      const metricsUrl = server.running.metricsUrl;
      assert.ok(metricsUrl !== undefined);
      assert.match(metricsUrl, /^http:\/\/127\.0\.0\.1:\d+$/, 'loopback by default');
      const response = await fetch(`${metricsUrl}/metrics`);
      assert.equal(response.status, 200);
      assert.match(await response.text(), /portcullis_/);
      assert.equal(response.headers.get('x-content-type-options'), 'nosniff');
      assert.ok(response.headers.get('x-request-id'));
      assert.equal((await fetch(`${metricsUrl}/healthz`)).status, 404, 'the metrics listener serves metrics only');
      assert.equal(server.logs.records().filter((line) => String(line['msg']).includes('metrics.token')).length, 0, 'no warning: metrics are served safely');
    } finally {
      await server.close();
    }
  });

  it('stays open on the main listener in development', async () => {
    const server = await startTestServer();
    try {
      assert.equal((await fetch(`${server.url}/metrics`)).status, 200);
    } finally {
      await server.close();
    }
  });
});
