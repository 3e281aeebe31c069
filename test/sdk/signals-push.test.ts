/**
 * createPushHandler (RFC 8935) behind node:http, Express and as a Fetch-API
 * handler, against SETs from the transmitter stand-in. Each attack is tried
 * and refused: forged or replayed SETs, wrong media type, oversized bodies
 * (declared and streamed), missing or wrong Authorization.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { ManualClock } from '../support/clock.ts';
import { AUDIENCE, setClaims, signingKey, signSet, startTransmitter, type SigningKey, type Transmitter } from '../support/signals.ts';
import { createPushHandler, createSsfKeySet, type PushHandler, type PushHandlerOptions, type SecurityEventToken } from '../../src/sdk/signals/index.ts';

const AUTHORIZATION = 'Bearer 2YotnFZFEjr1zCsicMWpAA-push-secret';
let transmitter: Transmitter;
let key: SigningKey;

before(async () => {
  key = await signingKey('ES256');
  transmitter = await startTransmitter([key]);
});
after(() => transmitter.close());

interface Receiver {
  readonly url: string;
  readonly handler: PushHandler;
  readonly received: SecurityEventToken[];
  close(): Promise<void>;
}

async function receiver(options: Partial<PushHandlerOptions> = {}): Promise<Receiver> {
  const received: SecurityEventToken[] = [];
  const handler = createPushHandler({
    issuer: transmitter.issuer,
    audience: AUDIENCE,
    authorization: AUTHORIZATION,
    onEvent: (event) => {
      received.push(event);
    },
    ...options,
  });
  const server: Server = createServer((req, res) => void handler(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/events`,
    handler,
    received,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

const push = (url: string, body: string, headers: Record<string, string> = {}) =>
  fetch(url, { method: 'POST', headers: { 'content-type': 'application/secevent+jwt', authorization: AUTHORIZATION, ...headers }, body });

describe('signals: push endpoint (RFC 8935)', () => {
  it('answers 202 to a valid SET after the listener resolved, with the verified claims', async () => {
    const r = await receiver();
    try {
      const claims = setClaims(transmitter.issuer);
      const response = await push(r.url, await signSet(claims, key));
      assert.equal(response.status, 202);
      assert.deepEqual(r.received.map((event) => event.jti), [claims.jti]);
    } finally {
      await r.close();
    }
  });

  it('a replayed jti is acknowledged (202) but not passed to the listeners again, also when the copies arrive together', async () => {
    const r = await receiver();
    try {
      const jws = await transmitter.sign();
      assert.equal((await push(r.url, jws)).status, 202);
      assert.equal((await push(r.url, jws)).status, 202);
      const other = await transmitter.sign();
      const together = await Promise.all([push(r.url, other), push(r.url, other), push(r.url, other)]);
      assert.deepEqual(together.map((response) => response.status), [202, 202, 202]);
      assert.equal(r.received.length, 2);
    } finally {
      await r.close();
    }
  });

  it('refuses a forged SET, a wrong issuer, audience or typ with 400 and the RFC 8935 error body; the listener never sees them', async () => {
    const r = await receiver();
    try {
      const attacker = await signingKey('ES256', key.kid);
      const cases: [Promise<string>, string][] = [
        [signSet(setClaims(transmitter.issuer), attacker), 'invalid_key'],
        [transmitter.sign({ iss: 'https://attacker.example' }), 'invalid_issuer'],
        [transmitter.sign({ aud: 'https://someone-else.example' }), 'invalid_audience'],
        [signSet(setClaims(transmitter.issuer), key, { typ: 'JWT' }), 'invalid_request'],
      ];
      for (const [jws, err] of cases) {
        const response = await push(r.url, await jws);
        assert.equal(response.status, 400);
        assert.equal(response.headers.get('content-type'), 'application/json');
        const body = (await response.json()) as { err: string; description: string };
        assert.equal(body.err, err);
        assert.equal(typeof body.description, 'string');
      }
      assert.deepEqual(r.received, []);
    } finally {
      await r.close();
    }
  });

  it('refuses a missing Authorization with 401 and a wrong one with 403 (a prefix, a longer value, another scheme), before reading or verifying', async () => {
    const errors: Error[] = [];
    const r = await receiver({ onError: (error) => errors.push(error) });
    try {
      const jwksBefore = transmitter.hits.get('/jwks.json') ?? 0;
      const jws = await transmitter.sign();
      const missing = await fetch(r.url, { method: 'POST', headers: { 'content-type': 'application/secevent+jwt' }, body: jws });
      assert.equal(missing.status, 401);
      assert.match(missing.headers.get('www-authenticate') ?? '', /^Bearer /);
      assert.equal(((await missing.json()) as { err: string }).err, 'authentication_failed');
      for (const wrong of [AUTHORIZATION.slice(0, -1), `${AUTHORIZATION}x`, 'Bearer ', AUTHORIZATION.replace('Bearer', 'Basic'), AUTHORIZATION.toLowerCase()]) {
        const response = await push(r.url, jws, { authorization: wrong });
        assert.equal(response.status, 403, wrong);
        assert.equal(((await response.json()) as { err: string }).err, 'access_denied');
      }
      assert.deepEqual(r.received, []);
      assert.equal(transmitter.hits.get('/jwks.json') ?? 0, jwksBefore, 'no key fetch for an unauthenticated request');
      assert.ok(errors.length >= 6);
    } finally {
      await r.close();
    }
  });

  it('refuses another media type (415), another method (405), and a body over the limit, declared or streamed (413), without verifying', async () => {
    const r = await receiver({ maxBodyBytes: 1024, keys: createSsfKeySet({ issuer: transmitter.issuer }) });
    try {
      const jws = await transmitter.sign();
      assert.equal((await push(r.url, jws, { 'content-type': 'application/jwt' })).status, 415);
      assert.equal((await push(r.url, jws, { 'content-type': 'text/plain' })).status, 415);
      assert.equal((await fetch(r.url, { headers: { authorization: AUTHORIZATION } })).status, 405);
      const big = `${jws}${' '.repeat(2048)}`;
      const declared = await push(r.url, big);
      assert.equal(declared.status, 413);
      assert.equal(((await declared.json()) as { err: string }).err, 'invalid_request');
      // Chunked, no Content-Length: the reader stops at the limit and still answers.
      const streamed = await new Promise<number>((resolve, reject) => {
        const req = request(r.url, { method: 'POST', headers: { 'content-type': 'application/secevent+jwt', authorization: AUTHORIZATION } }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
        for (let i = 0; i < 64; i++) req.write('x'.repeat(512));
        req.end();
      });
      assert.equal(streamed, 413);
      assert.deepEqual(r.received, []);
      // The limit refuses only what is over it: a SET with a charset parameter and trailing newline is fine.
      assert.equal((await push(r.url, `${jws}\n`, { 'content-type': 'application/secevent+jwt; charset=utf-8' })).status, 202);
    } finally {
      await r.close();
    }
  });

  it('answers 500 when a listener fails, without remembering the jti: the retry runs the listener again, and a later replay does not', async () => {
    let failures = 1;
    const seen: string[] = [];
    const r = await receiver({
      onEvent: (event) => {
        seen.push(event.jti);
        if (failures-- > 0) throw new Error('database down');
      },
    });
    try {
      const jws = await transmitter.sign();
      assert.equal((await push(r.url, jws)).status, 500);
      assert.equal((await push(r.url, jws)).status, 202);
      assert.equal((await push(r.url, jws)).status, 202);
      assert.equal(seen.length, 2);
    } finally {
      await r.close();
    }
  });

  it('answers 503 when the transmitter keys cannot be fetched (the transmitter retries; the SET is not refused)', async () => {
    const r = await receiver({ issuer: 'http://127.0.0.1:1' });
    try {
      const response = await push(r.url, await signSet(setClaims('http://127.0.0.1:1'), key));
      assert.equal(response.status, 503);
    } finally {
      await r.close();
    }
  });

  it('security: a SET under a kid the cached keys lack, during the refetch cool-down, is 503 with Retry-After (retried), never 400 (dropped); it is accepted once a fetch is allowed', async () => {
    const clock = new ManualClock();
    const r = await receiver({ keys: createSsfKeySet({ issuer: transmitter.issuer, now: clock.now }) });
    const rotated = await signingKey('ES256');
    try {
      assert.equal((await push(r.url, await transmitter.sign())).status, 202);
      // The transmitter rotates; its first SET under the new key arrives inside the cool-down.
      transmitter.keys = [...transmitter.keys, rotated];
      const jws = await signSet(setClaims(transmitter.issuer), rotated);
      clock.advance(10_000);
      const during = await push(r.url, jws);
      assert.equal(during.status, 503);
      assert.equal(during.headers.get('retry-after'), '20');
      assert.equal(r.received.length, 1);
      // The transmitter's retry after the cool-down: fetched, verified, delivered.
      clock.advance(20_000);
      assert.equal((await push(r.url, jws)).status, 202);
      assert.equal(r.received.length, 2);
      // A forged signature under a known kid is still refused for good.
      const forged = await push(r.url, await signSet(setClaims(transmitter.issuer), await signingKey('ES256', rotated.kid)));
      assert.equal(forged.status, 400);
      assert.equal(((await forged.json()) as { err: string }).err, 'invalid_key');
    } finally {
      transmitter.keys = transmitter.keys.filter((candidate) => candidate !== rotated);
      await r.close();
    }
  });

  it('works as a Fetch-API handler, and onEvent(listener) adds and removes listeners', async () => {
    const handler = createPushHandler({ issuer: transmitter.issuer, audience: AUDIENCE });
    const got: string[] = [];
    const unsubscribe = handler.onEvent((event) => {
      got.push(event.jti);
    });
    const post = async (body: string, headers: Record<string, string> = {}) =>
      handler.fetch(new Request('https://receiver.example.com/events', { method: 'POST', headers: { 'content-type': 'application/secevent+jwt', ...headers }, body }));
    const first = await transmitter.sign();
    assert.equal((await post(first)).status, 202);
    unsubscribe();
    assert.equal((await post(await transmitter.sign())).status, 202);
    assert.equal(got.length, 1);
    const refused = await post(await transmitter.sign({ aud: 'nobody' }));
    assert.equal(refused.status, 400);
    assert.deepEqual(await refused.json(), { err: 'invalid_audience', description: 'the SET audience does not name this receiver' });
    assert.equal((await post('x'.repeat(70_000))).status, 413);
  });

  it('mounts on an Express route', async () => {
    const received: string[] = [];
    const app = express();
    app.post('/events', createPushHandler({ issuer: transmitter.issuer, audience: AUDIENCE, authorization: AUTHORIZATION, onEvent: (event) => void received.push(event.jti) }));
    const server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/events`;
      assert.equal((await push(url, await transmitter.sign())).status, 202);
      assert.equal((await push(url, await transmitter.sign(), { authorization: 'Bearer nope' })).status, 403);
      assert.equal(received.length, 1);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
