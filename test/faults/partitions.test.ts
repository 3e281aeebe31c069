/**
 * Partitions between Portcullis and each of its stores (issue 16): the
 * durable store (the machine's PostgreSQL, a schema of the test's own) and
 * the hot store (a Redis of the test's own) are each reached through a TCP
 * fault proxy the test controls, with a small `store.timeoutMs`. While
 * bounded loops of requests run (introspection, which needs both stores,
 * and an admin read of the audit log, which needs the durable one), each
 * store's route in turn:
 *
 * (a) gets latency below the timeout: every request still succeeds;
 * (b) is black-holed: the requests that need the store answer 503, never 500,
 *     and never hang: each answer comes within http.requestTimeoutMs;
 * (c) comes back: requests succeed again, on the same server (the pools
 *     and connections recovered by themselves);
 * (d) has every connection cut: the server reconnects by itself.
 */
import { after, before, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { FALLBACK_POLL_MS } from '../../src/events/freshness.ts';
import { THROTTLE } from '../../src/identity/throttle.ts';
import { BrowserlessClient, csrfField } from '../support/browserless-client.ts';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.ts';
import { registerClient, type RegisteredClient } from '../support/oauth-flow.ts';
import { clientPost } from '../support/privacy-deployment.ts';
import { startOwnRedis, type OwnRedis } from '../support/redis-server.ts';
import { startTestServer, type TestServer } from '../support/server.ts';
import { createTestSchema, testDatabaseUrl } from '../support/services.ts';

const STORE_TIMEOUT_MS = 500;
const REQUEST_TIMEOUT_MS = 2000;
/** Latency added to each chunk, each way: a round trip takes twice this, still below the store timeout. */
const LATENCY_MS = 50;
const WORKERS = 2; // per kind of request
const ROUNDS = 8; // requests per worker and phase
const RECOVERY_DEADLINE_MS = 15_000;
const ADMIN_TOKEN = 'partitions-admin-token-0123456789abcdef';
const PASSWORD = 'correct horse battery staple';

type Kind = 'introspect' | 'audit';

interface Answer {
  readonly kind: Kind;
  readonly status: number;
  /** When it was sent (performance.now()). */
  readonly sentAt: number;
  readonly ms: number;
  readonly error?: unknown;
  readonly retryAfter: string | null;
}

describe('partitions between the server and its stores', { skip: testDatabaseUrl === undefined && 'PORTCULLIS_TEST_DATABASE_URL is not set' }, () => {
  let redis: OwnRedis;
  let redisProxy: FaultProxy;
  let postgresProxy: FaultProxy;
  let dropSchema: (() => Promise<void>) | undefined;
  let server: TestServer;
  let client: RegisteredClient;
  let token: string;

  before(async () => {
    redis = await startOwnRedis();
    redisProxy = await startFaultProxy({ host: '127.0.0.1', port: redis.port });
    const database = new URL(testDatabaseUrl!);
    postgresProxy = await startFaultProxy({ host: database.hostname, port: Number(database.port || '5432') });
    const schema = await createTestSchema(testDatabaseUrl!);
    dropSchema = schema.drop;
    const proxied = new URL(database);
    proxied.hostname = '127.0.0.1';
    proxied.port = String(postgresProxy.port);
    server = await startTestServer({
      env: {
        PORTCULLIS_DATABASE_URL: proxied.toString(),
        PORTCULLIS_DATABASE_SCHEMA: schema.schema,
        PORTCULLIS_REDIS_URL: `redis://127.0.0.1:${redisProxy.port}`,
        PORTCULLIS_REDIS_KEY_PREFIX: 'partitions:',
        PORTCULLIS_STORE_TIMEOUT_MS: String(STORE_TIMEOUT_MS),
        PORTCULLIS_HTTP_REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS),
        PORTCULLIS_ADMIN_TOKEN: ADMIN_TOKEN,
        PORTCULLIS_TRUST_PROXY: '127.0.0.1',
      },
    });
    client = await registerClient(server, { client_name: 'Partition probe', grant_types: ['client_credentials'], token_endpoint_auth_method: 'client_secret_basic', scope: 'openid' });
    token = await accessToken();
  });
  const accessToken = async () => {
    const issued = await clientPost(server.url, '/token', client, { grant_type: 'client_credentials' });
    assert.equal(issued.status, 200, JSON.stringify(issued.body));
    return issued.body['access_token'] as string;
  };
  after(async () => {
    await server?.close();
    await redisProxy?.close();
    await postgresProxy?.close();
    await redis?.remove();
    await dropSchema?.();
  });

  /** One request of `kind`, timed from sending to the whole answer; a request still unanswered long after the deadline is recorded as status 0. */
  async function request(kind: Kind, introspected = token): Promise<Answer> {
    const started = performance.now();
    try {
      const response =
        kind === 'introspect'
          ? await fetch(`${server.url}/introspect`, {
              method: 'POST',
              headers: { authorization: `Basic ${Buffer.from(`${encodeURIComponent(client.clientId)}:${encodeURIComponent(client.clientSecret!)}`).toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
              body: new URLSearchParams({ token: introspected }).toString(),
              signal: AbortSignal.timeout(3 * REQUEST_TIMEOUT_MS),
            })
          : await fetch(`${server.url}/audit/entries?start=0&end=1`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` }, signal: AbortSignal.timeout(3 * REQUEST_TIMEOUT_MS) });
      const body = (await response.json()) as Record<string, unknown>;
      if (response.status === 200 && kind === 'introspect') assert.equal(body['active'], true, 'a 200 introspection is the real answer');
      return { kind, status: response.status, sentAt: started, ms: performance.now() - started, error: body['error'] ?? body['type'], retryAfter: response.headers.get('retry-after') };
    } catch (error) {
      return { kind, status: 0, sentAt: started, ms: performance.now() - started, error: String(error), retryAfter: null };
    }
  }

  /** `WORKERS` loops of each kind, `ROUNDS` requests each; `during` runs meanwhile (a fault injected under load). */
  async function phase(during?: (answers: readonly Answer[]) => Promise<void>): Promise<Answer[]> {
    const answers: Answer[] = [];
    const loops = (['introspect', 'audit'] as const).flatMap((kind) =>
      Array.from({ length: WORKERS }, async () => {
        for (let round = 0; round < ROUNDS; round++) answers.push(await request(kind));
      }),
    );
    await Promise.all([...loops, during?.(answers)]);
    return answers;
  }

  /** Polls until both kinds answer 200 in a row; returns how long that took. */
  async function recovered(): Promise<number> {
    const started = performance.now();
    for (let attempt = 0; performance.now() - started < RECOVERY_DEADLINE_MS; attempt++) {
      const [introspection, audit] = [await request('introspect'), await request('audit')];
      if (introspection.status === 200 && audit.status === 200) return performance.now() - started;
      assert.ok([introspection.status, audit.status].every((status) => status === 200 || status === 503), `while recovering, only 200 or 503: ${JSON.stringify([introspection, audit])}`);
      await new Promise((resolve) => setImmediate(resolve));
    }
    assert.fail(`no recovery within ${RECOVERY_DEADLINE_MS} ms: ${JSON.stringify([await request("introspect"), await request("audit")])}`);
  }

  const figures = (answers: readonly Answer[]) => {
    if (answers.length === 0) return 'no requests';
    const ms = answers.map((answer) => answer.ms).sort((a, b) => a - b);
    const count = (status: number) => answers.filter((answer) => answer.status === status).length;
    return `${answers.length} requests: ${count(200)}×200 ${count(503)}×503; median ${ms[Math.floor(ms.length / 2)]!.toFixed(0)} ms, max ${ms.at(-1)!.toFixed(0)} ms`;
  };

  function assertAllOk(answers: readonly Answer[], what: string): void {
    assert.deepEqual(answers.filter((answer) => answer.status !== 200), [], `${what}: every request succeeds`);
  }

  function assertBounded(answers: readonly Answer[], what: string): void {
    assert.deepEqual(answers.filter((answer) => answer.status !== 200 && answer.status !== 503), [], `${what}: nothing but 200 and 503 (no 500, no hang)`);
    assert.ok(answers.every((answer) => answer.status === 200 || answer.retryAfter !== null), `${what}: every 503 has Retry-After`);
    const slow = answers.filter((answer) => answer.ms >= REQUEST_TIMEOUT_MS);
    assert.deepEqual(slow, [], `${what}: every answer within http.requestTimeoutMs (${REQUEST_TIMEOUT_MS} ms)`);
  }

  it('sign-ins an outage of the durable store refused (503) are given back: the person is not locked out afterwards', async () => {
    const email = 'through-the-outage@example.com';
    await server.running.identity.accounts.createUser(email, PASSWORD, { actor: 'test' });
    const browser = new BrowserlessClient(server.url, { ip: '198.51.100.71' });
    const form = async (from = browser) => csrfField((await from.get('/login')).body)!;
    const csrf = await form();
    postgresProxy.blackhole();
    try {
      // More retries than the account + address pair allows failures (5 in 15 minutes), each one refused by the outage.
      for (let attempt = 0; attempt <= THROTTLE.pairLimit + 1; attempt++) {
        const answer = await browser.post('/login', { _csrf: csrf, email, password: PASSWORD });
        assert.equal(answer.status, 503, `attempt ${attempt} while the database is unreachable`);
      }
    } finally {
      postgresProxy.pass();
    }
    await recovered();
    const signedIn = await browser.post('/login', { _csrf: await form(), email, password: PASSWORD });
    assert.equal(signedIn.status, 303, 'the right password signs in once the database is back');
    // Given back only because nothing was checked: wrong passwords still count and lock the pair.
    const guesser = new BrowserlessClient(server.url, { ip: '198.51.100.72' });
    const guesserCsrf = await form(guesser);
    const guesses: number[] = [];
    for (let attempt = 0; attempt <= THROTTLE.pairLimit; attempt++) guesses.push((await guesser.post('/login', { _csrf: guesserCsrf, email, password: `wrong-${attempt}` })).status);
    assert.equal(guesses.at(-1), 429, `the sixth wrong password from one address is refused: ${guesses.join(',')}`);
  });

  for (const role of ['hot', 'durable'] as const) {
    it(`survives latency, a black hole and cut connections on the ${role} store's route`, async (t: TestContext) => {
      const proxy = role === 'hot' ? redisProxy : postgresProxy;
      const needsIt = (answer: Answer) => role === 'hot' ? answer.kind === 'introspect' : true;

      const baseline = await phase();
      assertAllOk(baseline, 'baseline');
      t.diagnostic(`baseline: ${figures(baseline)}`);

      // (a) latency below the timeout
      proxy.latency(LATENCY_MS);
      const slow = await phase();
      proxy.pass();
      // Every statement and command waits a round trip more; a request makes several, so it takes longer, but none fails.
      assertAllOk(slow, `${LATENCY_MS} ms each way`);
      t.diagnostic(`latency ${LATENCY_MS} ms each way: ${figures(slow)}`);

      // (b) a black hole: 503s, each within the deadline
      const unchecked = role === 'hot' ? await accessToken() : undefined;
      proxy.blackhole();
      const holeStart = performance.now();
      const holed = await phase();
      assertBounded(holed, 'black hole');
      // An introspection may reuse its token's "not revoked" answer for FALLBACK_POLL_MS while the bus looked
      // connected (the propagation delay RFC 7009 section 2.2 allows, as in normal operation); never longer.
      const cached = (answer: Answer) => role === 'hot' && answer.status === 200 && answer.sentAt - holeStart < FALLBACK_POLL_MS;
      const refused = holed.filter((answer) => needsIt(answer) && !cached(answer));
      assert.ok((role === 'hot' || refused.length > 0) && refused.every((answer) => answer.status === 503), `black hole: every request that needs the ${role} store is refused: ${figures(refused)}`);
      if (unchecked !== undefined) {
        // A token whose revocation state was never read: no cached answer, so refused at once.
        const fresh = await request('introspect', unchecked);
        assert.deepEqual([fresh.status, fresh.error], [503, 'temporarily_unavailable'], 'a token never checked before is refused while the hot store is unreachable');
      }
      const unavailable = (answer: Answer) => (answer.kind === 'introspect' ? answer.error === 'temporarily_unavailable' : answer.error === 'urn:portcullis:problem:service-unavailable');
      assert.deepEqual(refused.filter((answer) => !unavailable(answer)), [], 'refused as temporarily unavailable (OAuth) or service unavailable (problem+json)');
      t.diagnostic(`black hole: ${figures(holed)}`);

      // (c) the route is back: the same server answers again
      proxy.pass();
      const recovery = await recovered();
      const back = await phase();
      assertAllOk(back, 'back after the black hole');
      t.diagnostic(`back after the black hole: recovered in ${recovery.toFixed(0)} ms; ${figures(back)}`);

      // (d) every connection cut under load
      const acceptedBefore = proxy.accepted;
      const cut = await phase(async (answers) => {
        for (let spin = 0; answers.length < WORKERS * ROUNDS && spin < 1_000_000; spin++) await new Promise((resolve) => setImmediate(resolve));
        proxy.drop();
      });
      assertBounded(cut, 'connections cut');
      const reconnected = await recovered();
      const afterCut = await phase();
      assertAllOk(afterCut, 'after the cut');
      assert.ok(proxy.accepted > acceptedBefore, 'the server opened new connections by itself');
      t.diagnostic(`connections cut: ${figures(cut)}; recovered in ${reconnected.toFixed(0)} ms; then ${figures(afterCut)}`);
    });
  }
});
