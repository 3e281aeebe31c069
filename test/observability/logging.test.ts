/**
 * Secrets never reach a log, and personal data appears only as the
 * configured level allows: pushed through real request paths of a real
 * listening server, with the log output captured.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { FastifyPluginAsync } from 'fastify';
import { startTestServer } from '../support/server.ts';
import { maskEmail, maskIp, maskPhone, redactUrlQuery } from '../../src/observability/index.ts';

const SECRETS = {
  bearer: 'tok-8d1c0b7e2f5a4c3b',
  cookie: 'sess-3e9a7c1d5b2f8e4a',
  code: 'code-5f2e8a1c9d3b7e6f',
  accessToken: 'at-1a2b3c4d5e6f7a8b',
  password: 'pw-Correct-Horse-9',
  clientSecret: 'cs-9f8e7d6c5b4a3f2e',
  privateKey: 'pk-MC4CAQAwBQYDK2Vw',
  refreshInBody: 'rt-7e6d5c4b3a2f1e0d',
};
const EMAIL = 'alice.liddell@example.org';
const PHONE = '+44 7700 900123';

/** A route that logs what a careless handler might: secrets and personal data. */
const chattyRoute: FastifyPluginAsync = async (app) => {
  app.post('/attempt', async (request) => {
    request.log.info(
      {
        email: EMAIL,
        phone: PHONE,
        password: SECRETS.password,
        client_secret: SECRETS.clientSecret,
        nested: { access_token: SECRETS.accessToken, privateKey: SECRETS.privateKey, list: [{ refresh_token: SECRETS.refreshInBody }] },
        body: request.body,
      },
      `login attempt for ${EMAIL}`,
    );
    return { ok: true };
  });
};

async function exercise(url: string): Promise<void> {
  await fetch(`${url}/healthz?code=${SECRETS.code}&state=xyz&access_token=${SECRETS.accessToken}`, {
    headers: { authorization: `Bearer ${SECRETS.bearer}`, cookie: `__Host-portcullis=${SECRETS.cookie}`, 'x-forwarded-for': '198.51.100.23' },
  });
  await fetch(`${url}/attempt?email=${encodeURIComponent(EMAIL)}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Basic ${Buffer.from(`client:${SECRETS.clientSecret}`).toString('base64')}` },
    body: JSON.stringify({ username: EMAIL, password: SECRETS.password, refresh_token: SECRETS.refreshInBody }),
  });
  // An error path: a malformed body that carries a secret.
  await fetch(`${url}/attempt`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: `{"password": "${SECRETS.password}"` });
}

for (const personalData of ['mask', 'hash', 'redact'] as const) {
  describe(`logging with personalData=${personalData}`, () => {
    it('writes no secret and no raw personal data, from any request path', async () => {
      const server = await startTestServer({ overrides: { log: { level: 'trace', personalData } }, plugins: [chattyRoute] });
      try {
        await exercise(server.url);
      } finally {
        await server.close();
      }
      const text = server.logs.text;
      assert.ok(server.logs.lines.length >= 6, 'the requests were logged');
      for (const [name, secret] of Object.entries(SECRETS)) assert.ok(!text.includes(secret), `secret ${name} reached the log`);
      assert.ok(!text.includes(EMAIL), 'a raw email reached the log');
      assert.ok(!text.includes('alice.liddell'), 'the local part of an email reached the log');
      assert.ok(!text.includes('900123'), 'a raw phone number reached the log');
      assert.ok(!/"ip":"127\.0\.0\.1"/.test(text), 'a raw client IP reached the log');
      assert.ok(text.includes('[REDACTED]'), 'redacted values are marked');

      const attempt = server.logs.records().find((record) => String(record['msg']).startsWith('login attempt'));
      assert.ok(attempt, 'the handler log line is there, with its request id');
      assert.equal(typeof attempt['reqId'], 'string');
      if (personalData === 'mask') {
        assert.equal(attempt['email'], 'a***@example.org');
        assert.equal(attempt['msg'], 'login attempt for a***@example.org');
        assert.ok(/"ip":"127\.0\.0\.0"/.test(text), 'IPv4 addresses are cut to their /24');
      }
      if (personalData === 'hash') {
        assert.match(String(attempt['email']), /^email:[A-Za-z0-9_-]{16}$/);
        assert.match(String(attempt['phone']), /^phone:[A-Za-z0-9_-]{16}$/);
      }
      if (personalData === 'redact') {
        assert.equal(attempt['email'], '[REDACTED]');
        assert.equal(attempt['phone'], '[REDACTED]');
      }
    });
  });
}

describe('personal data masking', () => {
  it('masks IPv4, IPv4-mapped IPv6 and IPv6 to a network', () => {
    assert.equal(maskIp('203.0.113.77'), '203.0.113.0');
    assert.equal(maskIp('::ffff:203.0.113.77'), '203.0.113.0');
    assert.equal(maskIp('2001:db8:85a3:8d3:1319:8a2e:370:7348'), '2001:db8:85a3::');
    // Regression: a compressed address kept groups from after the "::".
    assert.equal(maskIp('2001:db8::7348'), '2001:db8:0::');
    assert.equal(maskIp('::1'), '0:0:0::');
    assert.equal(maskIp('not an ip'), '[REDACTED]');
  });

  it('masks emails and phone numbers', () => {
    assert.equal(maskEmail('bob@example.com'), 'b***@example.com');
    assert.equal(maskEmail('no-at-sign'), '[REDACTED]');
    assert.equal(maskPhone('+1 (555) 010-9999'), '***99');
  });

  it('redacts secret query parameters and keeps the others', () => {
    const redacted = redactUrlQuery('/authorize?client_id=app&code=abc&state=s1&code_verifier=v');
    assert.ok(!redacted.includes('abc') && !redacted.includes('=v'));
    assert.match(redacted, /client_id=app/);
    assert.match(redacted, /state=s1/);
    assert.equal(redactUrlQuery('/healthz'), '/healthz');
  });
});
