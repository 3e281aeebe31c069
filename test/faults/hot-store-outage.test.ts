/**
 * The hot store dies under load (issue 16): a Redis of the test's own is
 * killed (SIGKILL) while clients introspect a token in bounded loops, then
 * started again on the same port.
 *
 * While it is down: no answer is a 500; once the store's breaker has
 * opened, every introspection is a 503 `temporarily_unavailable` with
 * Retry-After (it needs the revocation check, so it fails closed: never
 * `active: true` without it); `/readyz` says 503; the `portcullis_store_up`
 * gauge of the hot store is 0; exactly one error line says the store went
 * down, and no refused request logs an error or a stack of its own. A
 * client_credentials token with a client secret is still issued (it needs
 * no revocation or replay check), and the client-authentication throttle
 * keeps counting wrong secrets in the process: the 100th in the minute
 * from one network is refused with 429, and so is the right secret from
 * there after it; sign-in is refused (503) and leaves no session; the JWKS
 * and discovery documents still answer.
 * When it is back: exactly one info line, the gauge 1, and introspection
 * answers 200 again, without a restart.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { BrowserlessClient, csrfField } from '../support/browserless-client.ts';
import { CLIENT_AUTH_FAILURES_PER_MINUTE } from '../../src/oauth/client-auth.ts';
import { registerClient, type RegisteredClient } from '../support/oauth-flow.ts';
import { clientPost } from '../support/privacy-deployment.ts';
import { startOwnRedis, type OwnRedis } from '../support/redis-server.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

const WORKERS = 4;
const PASSWORD = 'correct horse battery staple';
const DOWN_LINE = /"msg":"store unavailable/;
const UP_LINE = /"msg":"store available again"/;

interface Answer {
  readonly status: number;
  readonly error?: unknown;
  readonly active?: unknown;
  readonly retryAfter: string | null;
}

async function introspect(url: string, client: RegisteredClient, token: string): Promise<Answer> {
  const response = await fetch(`${url}/introspect`, {
    method: 'POST',
    headers: { authorization: `Basic ${Buffer.from(`${encodeURIComponent(client.clientId)}:${encodeURIComponent(client.clientSecret!)}`).toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token }).toString(),
  });
  const body = (await response.json()) as Record<string, unknown>;
  return { status: response.status, error: body['error'], active: body['active'], retryAfter: response.headers.get('retry-after') };
}

/** `WORKERS` loops introspecting until `stop()`; every answer is kept, in order, with the phase it was sent in. */
function load(url: string, client: RegisteredClient, token: string) {
  const answers: (Answer & { phase: string })[] = [];
  let phase = 'before';
  let running = true;
  const loops = Array.from({ length: WORKERS }, async () => {
    while (running) {
      const sentIn = phase;
      const answer = await introspect(url, client, token).catch((error: unknown) => ({ status: 0, error: String(error), retryAfter: null }));
      answers.push({ ...answer, phase: sentIn });
    }
  });
  return {
    answers,
    enter(next: string) {
      phase = next;
    },
    /** Resolves once `count` answers of requests sent in `of` have come. */
    async until(of: string, count: number) {
      while (answers.filter((answer) => answer.phase === of).length < count) await new Promise((resolve) => setImmediate(resolve));
    },
    async stop() {
      running = false;
      await Promise.all(loops);
    },
  };
}

/** A network of its own for the secret guesser, so the throttle it trips does not touch the load's. */
const GUESSER_NETWORK = '203.0.113.9';

async function storeUp(server: TestServer): Promise<string | undefined> {
  const text = await server.running.runtime.get('telemetry').metrics.render();
  return /^portcullis_store_up\{store="hot"\} (\d)$/m.exec(text)?.[1];
}

describe('the hot store (Redis) killed under load, then back', () => {
  let redis: OwnRedis;
  let server: TestServer;
  let client: RegisteredClient;
  let token: string;
  let person: { id: string; email: string };
  let signInBrowser: BrowserlessClient;
  let signInCsrf: string;

  before(async () => {
    redis = await startOwnRedis();
    server = await startTestServer({ env: { PORTCULLIS_REDIS_URL: redis.url, PORTCULLIS_REDIS_KEY_PREFIX: 'faults:', PORTCULLIS_TRUST_PROXY: '127.0.0.1' } });
    client = await registerClient(server, { client_name: 'Fault probe', grant_types: ['client_credentials'], token_endpoint_auth_method: 'client_secret_basic', scope: 'openid' });
    const issued = await clientPost(server.url, '/token', client, { grant_type: 'client_credentials' });
    assert.equal(issued.status, 200, JSON.stringify(issued.body));
    token = issued.body['access_token'] as string;
    person = await server.running.identity.accounts.createUser('outage@example.com', PASSWORD, { actor: 'test' });
    // The sign-in form is fetched while the store is up; it is posted while the store is down.
    signInBrowser = new BrowserlessClient(server.url, { ip: '198.51.100.44' });
    signInCsrf = csrfField((await signInBrowser.get('/login')).body)!;
  });
  after(async () => {
    await server?.close();
    await redis?.remove();
  });

  it('answers 503 with Retry-After (never 500) while it is down, logs the outage once each way, and recovers by itself', async () => {
    assert.deepEqual(await introspect(server.url, client, token), { status: 200, error: undefined, active: true, retryAfter: null });
    assert.equal(await storeUp(server), '1');
    const traffic = load(server.url, client, token);
    try {
      await outage(traffic);
    } finally {
      await traffic.stop();
    }

    const { answers } = traffic;
    assert.deepEqual(answers.filter((answer) => answer.status !== 200 && answer.status !== 503), [], 'nothing but 200 and 503, no 500, no lost connection');
    assert.ok(answers.every((answer) => answer.status !== 200 || answer.active === true), 'a 200 is the real answer');
    const refused = answers.filter((answer) => answer.status === 503);
    assert.ok(refused.length >= 40);
    assert.ok(refused.every((answer) => answer.error === 'temporarily_unavailable' && answer.retryAfter !== null && Number(answer.retryAfter) >= 1), 'each 503 is temporarily_unavailable with Retry-After');
    assert.ok(answers.filter((answer) => answer.phase === 'down').every((answer) => answer.status === 503), 'while the breaker is open, every introspection is refused (it needs the revocation check)');
    assert.ok(answers.filter((answer) => answer.phase === 'back').every((answer) => answer.status === 200), 'back: every introspection answers again');
    assert.equal(await storeUp(server), '1');

    const lines = server.logs.records();
    assert.equal(lines.filter((line) => DOWN_LINE.test(JSON.stringify(line))).length, 1, 'one line on the way down');
    assert.equal(lines.filter((line) => UP_LINE.test(JSON.stringify(line))).length, 1, 'one line on the way up');
    const errors = lines.filter((line) => line['level'] === 'error' || line['level'] === 'fatal');
    assert.equal(errors.length, 1, `one error line in all: ${errors.map((line) => String(line['msg'])).join(' | ')}`);
    assert.ok(!server.logs.text.includes('"stack"'), 'no stack in the log');
  });

  const tokenFrom = async (ip: string, secret: string) => {
    const response = await fetch(`${server.url}/token`, {
      method: 'POST',
      headers: { authorization: `Basic ${Buffer.from(`${encodeURIComponent(client.clientId)}:${encodeURIComponent(secret)}`).toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded', 'x-forwarded-for': ip },
      body: new URLSearchParams({ grant_type: 'client_credentials' }).toString(),
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  };

  /** Kills the store under `traffic`, waits for the breaker, starts it again, waits for recovery. */
  async function outage(traffic: ReturnType<typeof load>): Promise<void> {
    await traffic.until('before', 20);

    const down = server.logs.next(DOWN_LINE);
    traffic.enter('dying');
    await redis.kill();
    const downLine = JSON.parse(await down) as Record<string, unknown>;
    assert.equal(downLine['level'], 'error', 'the transition is an error line');
    assert.equal(downLine['store'], 'hot');
    traffic.enter('down');
    await traffic.until('down', 40);
    assert.equal(await storeUp(server), '0', 'the gauge says the hot store is down');
    const ready = await fetch(`${server.url}/readyz`);
    assert.equal(ready.status, 503);
    // Token issuance that needs no hot-store state goes on; its client authentication is still throttled.
    const issued = await tokenFrom(GUESSER_NETWORK, client.clientSecret!);
    assert.equal(issued.status, 200, `a client_credentials token while the hot store is down: ${JSON.stringify(issued.body)}`);
    assert.equal((await introspect(server.url, client, issued.body['access_token'] as string)).status, 503, 'checking it needs the revocation list: refused');
    const guesses: number[] = [];
    for (let guess = 0; guess < CLIENT_AUTH_FAILURES_PER_MINUTE + 1; guess += 1) guesses.push((await tokenFrom(GUESSER_NETWORK, `wrong-${guess}`)).status);
    // The window is a wall-clock minute: a guess loop that crosses its edge starts counting again.
    const refusedAt = guesses.indexOf(429);
    assert.ok(guesses.slice(0, refusedAt === -1 ? undefined : refusedAt).every((status) => status === 401), `wrong secrets are 401 until the throttle refuses: ${guesses.join(',')}`);
    if (refusedAt !== -1 && (await tokenFrom(GUESSER_NETWORK, client.clientSecret!)).status !== 429) assert.fail('after the limit, the right secret from that network is refused too');
    assert.ok(refusedAt === CLIENT_AUTH_FAILURES_PER_MINUTE || guesses.filter((status) => status === 401).length >= CLIENT_AUTH_FAILURES_PER_MINUTE, 'refused at the 101st guess in one window');
    // Sign-in without the hot store: refused, and no session is left that could not be ended.
    const refusedSignIn = await signInBrowser.post('/login', { _csrf: signInCsrf, email: person.email, password: PASSWORD });
    assert.equal(refusedSignIn.status, 503, `sign-in without the hot store: ${refusedSignIn.status}`);
    // What needs no hot store answers: the keys resource servers verify tokens with, and the discovery document.
    assert.equal((await fetch(`${server.url}/jwks`)).status, 200);
    assert.equal((await fetch(`${server.url}/.well-known/openid-configuration`)).status, 200);

    const up = server.logs.next(UP_LINE);
    traffic.enter('restarting');
    await redis.start();
    await up;
    traffic.enter('back');
    await traffic.until('back', 20);
    assert.deepEqual(await server.running.identity.accounts.sessions.list(person.id), [], 'the refused sign-in left no session');
    assert.equal(signInBrowser.cookie('__Host-portcullis'), undefined, 'and no session cookie');
  }
});
