/**
 * A push receiver that stays down (RFC 8935 delivery, issue 13): the
 * transmitter retries with backoff, pauses the stream once the receiver has
 * failed for `signals.maxRetryHours`, holds what happens meanwhile, and
 * resumes from where it stopped when the receiver answers again, in order.
 * The server's clock is the test's, so hours pass without waiting.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { decodeJwt } from 'jose';
import { validateClientMetadata } from '../../src/oauth/index.ts';
import { SECURITY_EVENT_TYPES } from '../../src/sdk/index.ts';
import { ManualClock } from '../support/clock.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

describe('a push receiver that stays down', () => {
  const clock = new ManualClock(Date.now());
  let server: TestServer;
  let endpoint: Server;
  let up = false;
  let attempts = 0;
  const received: string[] = [];

  before(async () => {
    endpoint = createServer((request, response) => {
      let body = '';
      request.on('data', (chunk: Buffer) => (body += chunk.toString()));
      request.on('end', () => {
        attempts++;
        if (!up) return void response.writeHead(503).end();
        received.push(body);
        response.writeHead(202).end();
      });
    });
    await new Promise<void>((resolve) => endpoint.listen(0, '127.0.0.1', resolve));
    server = await startTestServer({ fixedPort: true, clock: clock.now, overrides: { signals: { pushPrivateNetworks: true, maxRetryHours: 0.01, retryCeiling: '1s', pushTimeout: '2s' } } });
  });
  after(async () => {
    await server.close();
    await new Promise<void>((resolve) => endpoint.close(() => resolve()));
  });

  it('pauses after maxRetryHours, holds events, and resumes in order once the receiver answers', async () => {
    const metadata = validateClientMetadata({ grant_types: ['client_credentials'], redirect_uris: [], scope: 'ssf:stream' }, { allowedScopes: ['ssf:stream'], defaultSigningAlgorithm: 'EdDSA' });
    const registered = await server.running.authorizationServer.clients.register(metadata, { actor: 'test' }, { approved: true });
    const basic = Buffer.from(`${registered.client.client_id}:${registered.clientSecret!}`).toString('base64');
    const token = ((await (await fetch(`${server.url}/token`, { method: 'POST', headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded' }, body: 'grant_type=client_credentials' })).json()) as { access_token: string }).access_token;
    const url = `http://127.0.0.1:${(endpoint.address() as AddressInfo).port}/`;
    const created = await fetch(`${server.url}/signals/stream`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ delivery: { method: 'urn:ietf:rfc:8935', endpoint_url: url }, events_requested: [SECURITY_EVENT_TYPES.accountDisabled] }),
    });
    const streamId = ((await created.json()) as { stream_id: string }).stream_id;
    const status = async (): Promise<{ status: string; reason?: string }> => (await (await fetch(`${server.url}/signals/status?stream_id=${streamId}`, { headers: { authorization: `Bearer ${token}` } })).json()) as { status: string; reason?: string };
    const users: string[] = [];
    const disable = async (): Promise<void> => {
      const user = await server.running.identity.accounts.createUser(`down-${users.length}@example.com`, null, { actor: 'test' });
      users.push(user.id);
      await server.running.identity.accounts.setDisabled(user.id, true, { actor: 'admin' });
    };
    /** One more push attempt: the backoff's time passes on the server's clock, then the worker is woken. */
    const attempt = async (): Promise<void> => {
      const before = attempts;
      clock.advance(1_100);
      server.running.signals.push.kick();
      await eventually(() => attempts > before);
    };

    for (let i = 0; i < 3; i++) await disable();
    await attempt();
    assert.equal((await status()).status, 'enabled', 'a failure alone does not pause');
    // 36 s of failures (maxRetryHours 0.01) on the test's clock.
    while ((await status()).status === 'enabled') await attempt();
    const paused = await status();
    assert.equal(paused.status, 'paused');
    assert.match(paused.reason ?? '', /has not accepted events since/);
    assert.ok(clock.now() - Date.now() >= 36_000 - 2_000, 'paused only after maxRetryHours of failures');

    // Held while paused, then everything in order from where it stopped.
    for (let i = 0; i < 2; i++) await disable();
    up = true;
    await attempt();
    await eventually(() => received.length >= 5);
    const subjects = received.map((set) => (decodeJwt(set)['sub_id'] as { sub: string }).sub);
    assert.deepEqual(subjects, users, 'every event once, in the order they happened');
    assert.equal((await status()).status, 'enabled', 'the transmitter lifted its own pause');
  });
});

/** Waits for a condition on real I/O (the push worker's HTTP requests), bounded. */
async function eventually(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
