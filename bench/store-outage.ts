/**
 * What a request sees when a store dies, and how soon traffic is back when
 * it returns (issue 16: "Time to a 503 after a store dies: p99. Aim
 * < 100 ms once the breaker is open." and "Time to full throughput after
 * the store returns: aim < 2 s."), for the hot store and the durable one.
 *
 *   node --disable-warning=ExperimentalWarning bench/store-outage.ts
 *     [--store hot|durable|both] [--workers 8] [--rounds 5] [--down 3] [--baseline 2] [--after 3]
 *
 * One Portcullis in this process (the serve profile) per store under test,
 * the stores one after the other (`--store both`, the default: hot, then durable):
 *
 * - hot: embedded SQLite as the durable store and a Redis of the bench's own
 *   as the hot store (test/support/redis-server.ts: `redis-server` on a free
 *   loopback port, no persistence), killed with SIGKILL and started again on
 *   the same port. The load introspects one client_credentials token
 *   (introspection needs the hot store: its revocation check, and the
 *   client authentication's throttle).
 * - durable: a PostgreSQL cluster of the bench's own as the durable store
 *   (test/support/own-postgres.ts: initdb in a temporary directory, a free
 *   loopback port) and a Redis of the bench's own as the hot store (never
 *   killed). PostgreSQL is stopped with `pg_ctl stop -m immediate` and
 *   started again (`pg_ctl start -w`, crash recovery) on the same port and
 *   data. The load is the admin read `GET /audit/entries?start=0&end=1`
 *   with PORTCULLIS_ADMIN_TOKEN: PostgreSQL on every request (the log's
 *   size, the entry, and the read's own audit entry written durably).
 *
 * `--workers` loops on keep-alive loopback connections send that request,
 * one at a time each. Every request's send time, latency and status are kept.
 *
 * Each round: 1 s of warm-up, `--baseline` s of baseline, then the store is
 * killed; the breaker's opening is known from the server's one
 * "store unavailable" log line naming that store (captured through
 * logDestination, timed when it is written); the store is started again
 * `--down` s after the breaker opened (so every round has that long of open
 * breaker); the gauge `portcullis_store_up{store="hot"|"durable"}` is polled
 * (5 ms) to time the breaker closing; the load runs on `--after` s after
 * the store is ready (and at least 1 s after the breaker closed). Reported
 * per store and round:
 *
 * - kill to breaker open;
 * - "raw": the failures of requests sent before the breaker opened and
 *   answered after the kill (what a request costs while the driver still
 *   retries the dead connection);
 * - "breaker": the 503s of requests sent after it opened and before the
 *   store was back (the aim: p99 < 100 ms);
 * - throughput in 100 ms buckets of 200 answers: the baseline's median
 *   bucket, and, counting from the moment the restarted store says it
 *   accepts connections, the end of the first bucket with at least 90% of
 *   that median (aim < 2 s), the first 200, and the breaker closing.
 *
 * Any answer other than 200 and 503 (a 500, a lost connection, a client
 * timeout of 10 s) is counted and reported; the run fails if there is one.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent, request as httpRequest } from 'node:http';
import { Writable } from 'node:stream';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../src/config/index.ts';
import { validateClientMetadata } from '../src/oauth/index.ts';
import { startPortcullis, type RunningPortcullis } from '../src/server/lifecycle.ts';
import type { StoreRole } from '../src/store/index.ts';
import { startOwnPostgres } from '../test/support/own-postgres.ts';
import { startOwnRedis } from '../test/support/redis-server.ts';
import { giveUpAfter, machine, median, option, percentile, positiveInteger, round2, table, writeResult } from './lib.ts';

const STORE_CHOICES = { hot: ['hot'], durable: ['durable'], both: ['hot', 'durable'] } as const satisfies Record<string, readonly StoreRole[]>;
const storeOption = option('store', 'both');
if (!Object.hasOwn(STORE_CHOICES, storeOption)) throw new Error(`--store must be hot, durable or both, got "${storeOption}"`);
const settings = {
  store: storeOption as keyof typeof STORE_CHOICES,
  workers: positiveInteger('workers', 8),
  rounds: positiveInteger('rounds', 5),
  downSeconds: positiveInteger('down', 3),
  baselineSeconds: positiveInteger('baseline', 2),
  afterSeconds: positiveInteger('after', 3),
};
const roles: readonly StoreRole[] = STORE_CHOICES[settings.store];
const WARMUP_MS = 1000;
const BUCKET_MS = 100;
const FULL_SHARE = 0.9;
const CLIENT_TIMEOUT_MS = 10_000;
const AIM_503_P99_MS = 100;
const AIM_FULL_MS = 2000;
const DOWN_LINE = '"msg":"store unavailable';
const KEY_PREFIX = 'bench-outage:';
giveUpAfter('store-outage', roles.length * (60 + settings.rounds * (settings.downSeconds + settings.baselineSeconds + settings.afterSeconds + 60)) * 1000);

interface Answer {
  /** performance.now() when sent. */
  readonly sent: number;
  readonly ms: number;
  /** 0: no HTTP answer (connection error or the client's timeout). */
  readonly status: number;
  readonly retryAfter: boolean;
}

/** The one request every worker repeats. */
interface LoadRequest {
  readonly method: 'GET' | 'POST';
  readonly path: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body?: string;
}

/** A store the bench kills and starts again under load, and what its Portcullis needs around it. */
interface StoreUnderTest {
  readonly role: StoreRole;
  /** The driver Portcullis must have opened for that store. */
  readonly driver: string;
  /** What is killed and how, and what the load asks, for the reports. */
  readonly server: string;
  readonly killedBy: string;
  readonly requestName: string;
  /** Portcullis' environment: the stores' URLs, and what the load request needs. */
  readonly env: Readonly<Record<string, string>>;
  /** Kills the store; resolves once it is down. */
  kill(): Promise<void>;
  /** Starts it again on the same port; resolves once it accepts connections. */
  start(): Promise<void>;
  /** The request the workers repeat, one that needs this store every time (the server is up). */
  loadRequest(running: RunningPortcullis): Promise<LoadRequest>;
  /** Stops for good and removes every store the bench started for this one. */
  remove(): Promise<void>;
}

/** Embedded SQLite as the durable store; a Redis of the bench's own as the hot store, killed with SIGKILL. */
async function hotStoreUnderTest(): Promise<StoreUnderTest> {
  const redis = await startOwnRedis();
  return {
    role: 'hot',
    driver: 'redis',
    server: 'Redis',
    killedBy: 'SIGKILL',
    requestName: 'introspection',
    env: { PORTCULLIS_REDIS_URL: redis.url, PORTCULLIS_REDIS_KEY_PREFIX: KEY_PREFIX },
    kill: () => redis.kill(),
    start: () => redis.start(),
    loadRequest: introspectionRequest,
    remove: () => redis.remove(),
  };
}

/** A PostgreSQL cluster of the bench's own as the durable store, stopped with `pg_ctl stop -m immediate`; a Redis of its own as the hot store (left running). */
async function durableStoreUnderTest(): Promise<StoreUnderTest> {
  const redis = await startOwnRedis();
  const postgres = await startOwnPostgres().catch(async (error: unknown) => {
    await redis.remove();
    throw error;
  });
  const adminToken = randomBytes(32).toString('base64url');
  return {
    role: 'durable',
    driver: 'postgres',
    server: 'PostgreSQL',
    killedBy: 'pg_ctl stop -m immediate',
    requestName: 'admin audit read',
    env: { PORTCULLIS_DATABASE_URL: postgres.url, PORTCULLIS_REDIS_URL: redis.url, PORTCULLIS_REDIS_KEY_PREFIX: KEY_PREFIX, PORTCULLIS_ADMIN_TOKEN: adminToken },
    kill: () => postgres.stopImmediately(),
    start: () => postgres.start(),
    // The log's size and its first entry read, and this read's own audit entry written: PostgreSQL every time.
    loadRequest: async () => ({ method: 'GET', path: '/audit/entries?start=0&end=1', headers: { authorization: `Bearer ${adminToken}`, accept: 'application/json' } }),
    remove: async () => {
      await postgres.remove();
      await redis.remove();
    },
  };
}

/** Introspection of one client_credentials token, authenticated as the client that got it. */
async function introspectionRequest(running: RunningPortcullis): Promise<LoadRequest> {
  const metadata = validateClientMetadata({ client_name: 'bench outage probe', grant_types: ['client_credentials'], token_endpoint_auth_method: 'client_secret_basic', scope: 'openid' }, { allowedScopes: ['openid'] });
  const registered = await running.authorizationServer.clients.register(metadata, { actor: 'bench' }, { approved: true });
  const authorization = `Basic ${Buffer.from(`${encodeURIComponent(registered.client.client_id)}:${encodeURIComponent(registered.clientSecret!)}`).toString('base64')}`;
  const tokenResponse = await fetch(`${running.url}/token`, { method: 'POST', headers: { authorization, 'content-type': 'application/x-www-form-urlencoded' }, body: 'grant_type=client_credentials' });
  const tokenBody = (await tokenResponse.json()) as Record<string, unknown>;
  if (tokenResponse.status !== 200) throw new Error(`no token: ${tokenResponse.status} ${JSON.stringify(tokenBody)}`);
  const body = new URLSearchParams({ token: String(tokenBody['access_token']) }).toString();
  return { method: 'POST', path: '/introspect', headers: { authorization, 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json', 'content-length': String(Buffer.byteLength(body)) }, body };
}

/** Log lines the server writes, with the time each was written; waits for one containing every given string. */
class Logs {
  readonly #waiters: { readonly needles: readonly string[]; readonly resolve: (at: number) => void }[] = [];
  readonly stream = new Writable({
    write: (chunk: Buffer, _encoding, done) => {
      const at = performance.now();
      const text = chunk.toString('utf8');
      for (const waiter of this.#waiters.filter((candidate) => candidate.needles.every((needle) => text.includes(needle)))) {
        this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
        waiter.resolve(at);
      }
      done();
    },
  });
  /** The time of the next line containing every one of `needles`. */
  next(...needles: string[]): Promise<number> {
    return new Promise((resolve) => this.#waiters.push({ needles, resolve }));
  }
}

function send(agent: Agent, port: number, load: LoadRequest): Promise<Answer> {
  const sent = performance.now();
  return new Promise((resolve) => {
    let settled = false;
    const finish = (status: number, retryAfter: boolean) => {
      if (settled) return;
      settled = true;
      resolve({ sent, ms: performance.now() - sent, status, retryAfter });
    };
    const request = httpRequest({ agent, host: '127.0.0.1', port, method: load.method, path: load.path, headers: load.headers, timeout: CLIENT_TIMEOUT_MS }, (response) => {
      response.resume();
      response.on('end', () => finish(response.statusCode ?? 0, response.headers['retry-after'] !== undefined));
      response.on('error', () => finish(0, false));
    });
    request.on('timeout', () => request.destroy(new Error('client timeout')));
    request.on('error', () => finish(0, false));
    request.end(load.body);
  });
}

/** `workers` loops, one request in flight each, until stop(); every answer kept. */
function startLoad(agent: Agent, port: number, load: LoadRequest) {
  const answers: Answer[] = [];
  let running = true;
  const loops = Array.from({ length: settings.workers }, async () => {
    while (running) answers.push(await send(agent, port, load));
  });
  return {
    answers,
    async stop() {
      running = false;
      await Promise.all(loops);
    },
  };
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, ms)));

async function within<T>(what: string, ms: number, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

function latencySummary(values: readonly number[]) {
  return { count: values.length, p50: round2(percentile(values, 50)), p99: round2(percentile(values, 99)), max: values.length === 0 ? Number.NaN : round2(values.reduce((most, value) => Math.max(most, value), Number.NEGATIVE_INFINITY)) };
}

/** 200 answers per bucket of BUCKET_MS, by completion time, over [from, to) (whole buckets only). */
function buckets(answers: readonly Answer[], from: number, to: number): number[] {
  const counts = new Array<number>(Math.max(0, Math.floor((to - from) / BUCKET_MS))).fill(0);
  for (const answer of answers) {
    if (answer.status !== 200) continue;
    const index = Math.floor((answer.sent + answer.ms - from) / BUCKET_MS);
    if (index >= 0 && index < counts.length) counts[index]! += 1;
  }
  return counts;
}

function countBy(answers: readonly Answer[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const answer of answers) counts[answer.status] = (counts[answer.status] ?? 0) + 1;
  return counts;
}

async function storeUp(running: RunningPortcullis, role: StoreRole): Promise<boolean> {
  const gauge = await running.runtime.get('telemetry').metrics.storeUp.get();
  return gauge.values.find((value) => value.labels['store'] === role)?.value === 1;
}

/** The moments of one round (performance.now()). */
interface RoundTimes {
  readonly loadStart: number;
  readonly killedAt: number;
  readonly openedAt: number;
  readonly restartAt: number;
  readonly readyAt: number;
  readonly upAt: number;
  readonly endAt: number;
}

/** One round's figures, from every answer and the round's moments. */
function roundFigures(round: number, answers: readonly Answer[], times: RoundTimes) {
  const { loadStart, killedAt, openedAt, restartAt, readyAt, upAt, endAt } = times;
  const baselineFrom = Math.max(loadStart + WARMUP_MS, killedAt - Math.floor((killedAt - loadStart - WARMUP_MS) / BUCKET_MS) * BUCKET_MS);
  const baseline = buckets(answers, baselineFrom, killedAt);
  const baselineMedian = median(baseline);
  const after = buckets(answers, readyAt, endAt);
  const fullIndex = after.findIndex((count) => count >= FULL_SHARE * baselineMedian);
  const first200 = answers.filter((answer) => answer.status === 200 && answer.sent + answer.ms >= readyAt).reduce((earliest, answer) => Math.min(earliest, answer.sent + answer.ms), Number.POSITIVE_INFINITY);
  // Failures of requests sent before the breaker opened that ended after the kill; 503s of requests sent while it was open and the store away.
  const raw = answers.filter((answer) => answer.status !== 200 && answer.sent < openedAt && answer.sent + answer.ms >= killedAt);
  const whileOpen = answers.filter((answer) => answer.sent >= openedAt && answer.sent < restartAt);
  const refused = whileOpen.filter((answer) => answer.status === 503);
  const baselineOk = answers.filter((answer) => answer.status === 200 && answer.sent >= baselineFrom && answer.sent + answer.ms < killedAt);
  return {
    figures: {
      round,
      killToOpenMs: round2(openedAt - killedAt),
      storeStartMs: round2(readyAt - restartAt),
      killToReadyMs: round2(readyAt - killedAt),
      baseline: { ...latencySummary(baselineOk.map((answer) => answer.ms)), medianPerSecond: baselineMedian * (1000 / BUCKET_MS), buckets: baseline.length },
      raw: { ...latencySummary(raw.map((answer) => answer.ms)), statuses: countBy(raw) },
      breaker: { ...latencySummary(refused.map((answer) => answer.ms)), sentWhileOpen: whileOpen.length, not503: countBy(whileOpen.filter((answer) => answer.status !== 503)), withoutRetryAfter: refused.filter((answer) => !answer.retryAfter).length },
      readyToFirst200Ms: Number.isFinite(first200) ? round2(first200 - readyAt) : null,
      readyToBreakerClosedMs: round2(upAt - readyAt),
      readyToFullMs: fullIndex >= 0 ? (fullIndex + 1) * BUCKET_MS : null,
      // Throughput in the second after the first 200, against the baseline (both as 200s per second).
      firstSecondShare: Number.isFinite(first200) && first200 + 1000 <= endAt ? round2(buckets(answers, first200, first200 + 1000).reduce((sum, count) => sum + count, 0) / (baselineMedian * (1000 / BUCKET_MS))) : null,
      afterBuckets: after.slice(0, Math.ceil(3000 / BUCKET_MS)).map((count) => count * (1000 / BUCKET_MS)),
      statusesFromKill: countBy(answers.filter((answer) => answer.sent + answer.ms >= killedAt)),
    },
    refusedMs: refused.map((answer) => answer.ms),
  };
}

type RoundResult = ReturnType<typeof roundFigures>['figures'];

/** Every round against one store, on a Portcullis of its own; removes the store's servers at the end. */
async function measure(store: StoreUnderTest) {
  const dataDir = mkdtempSync(join(tmpdir(), 'portcullis-bench-outage-'));
  const logs = new Logs();
  const agent = new Agent({ keepAlive: true, maxSockets: settings.workers });
  let running: RunningPortcullis | undefined;
  const rounds: RoundResult[] = [];
  /** Every round's breaker 503 latencies, pooled (kept out of the JSON: hundreds of thousands with a long --down). */
  const pooled503: number[] = [];
  try {
    const config = loadConfig({ env: { ...store.env }, overrides: { port: 0, dataDir, log: { level: 'warn' } } });
    running = await startPortcullis(config, { logDestination: logs.stream });
    const driver = running.runtime.get('stores')[store.role].driver;
    if (driver !== store.driver) throw new Error(`the ${store.role} store is ${driver}, not ${store.driver}`);
    const port = Number(new URL(running.url).port);
    const load = await store.loadRequest(running);
    const check = await send(agent, port, load);
    if (check.status !== 200) throw new Error(`the ${store.requestName} answers ${check.status} before any outage`);

    for (let round = 1; round <= settings.rounds; round++) {
      if (!(await storeUp(running, store.role))) throw new Error(`${store.role} round ${round}: the ${store.role} store is not up at the start`);
      const loadRun = startLoad(agent, port, load);
      const loadStart = performance.now();
      await sleep(WARMUP_MS + settings.baselineSeconds * 1000);
      const opened = logs.next(DOWN_LINE, `"store":"${store.role}"`);
      const killedAt = performance.now();
      await store.kill();
      const openedAt = await within('the breaker opening', 30_000, opened);
      await sleep(openedAt + settings.downSeconds * 1000 - performance.now());
      const restartAt = performance.now();
      await store.start();
      const readyAt = performance.now();
      let upAt = Number.NaN;
      while (Number.isNaN(upAt)) {
        if (performance.now() - readyAt > 30_000) throw new Error(`${store.role} round ${round}: the breaker did not close within 30 s of ${store.server} being back`);
        if (await storeUp(running, store.role)) upAt = performance.now();
        else await sleep(5);
      }
      await sleep(Math.max(readyAt + settings.afterSeconds * 1000, upAt + 1000) - performance.now());
      await loadRun.stop();
      const { figures: result, refusedMs } = roundFigures(round, loadRun.answers, { loadStart, killedAt, openedAt, restartAt, readyAt, upAt, endAt: performance.now() });
      rounds.push(result);
      for (const ms of refusedMs) pooled503.push(ms);
      console.error(
        `${store.role} round ${round}: open ${result.killToOpenMs} ms after the kill; raw failures ${result.raw.count} (p50 ${result.raw.p50} ms); ${result.breaker.count} 503s p99 ${result.breaker.p99} ms; ` +
          `first 200 ${result.readyToFirst200Ms} ms, closed ${result.readyToBreakerClosedMs} ms, full ${result.readyToFullMs} ms after ${store.server} was ready (its start took ${result.storeStartMs} ms); baseline ${result.baseline.medianPerSecond} req/s`,
      );
    }
  } finally {
    await running?.stop();
    agent.destroy();
    await store.remove();
    rmSync(dataDir, { recursive: true, force: true });
  }
  return { rounds, summary: summarise(rounds, pooled503) };
}

const pick = (values: readonly (number | null)[]) => values.filter((value): value is number => value !== null && Number.isFinite(value));
const across = (values: readonly (number | null)[]) => {
  const known = pick(values);
  return { median: round2(median(known)), p99: round2(percentile(known, 99)), min: round2(Math.min(...known)), max: round2(Math.max(...known)), missing: values.length - known.length };
};

function summarise(rounds: readonly RoundResult[], pooled503: readonly number[]) {
  const pooledRaw = rounds.flatMap((round) => (round.raw.count > 0 ? [round.raw.p50] : []));
  const pooledBaseline = rounds.map((round) => round.baseline.p50);
  return {
    killToOpenMs: across(rounds.map((round) => round.killToOpenMs)),
    breaker503Ms: { ...latencySummary(pooled503), perRoundP99: across(rounds.map((round) => round.breaker.p99)) },
    raw: { medianOfRoundP50: round2(median(pooledRaw)), perRoundP99: across(rounds.map((round) => (round.raw.count > 0 ? round.raw.p99 : null))), maxMs: round2(Math.max(...pick(rounds.map((round) => round.raw.max)))), count: rounds.reduce((sum, round) => sum + round.raw.count, 0) },
    baseline200Ms: { medianOfRoundP50: round2(median(pooledBaseline)), perRoundP99: across(rounds.map((round) => round.baseline.p99)), medianPerSecond: across(rounds.map((round) => round.baseline.medianPerSecond)) },
    killToReadyMs: across(rounds.map((round) => round.killToReadyMs)),
    storeStartMs: across(rounds.map((round) => round.storeStartMs)),
    readyToFirst200Ms: across(rounds.map((round) => round.readyToFirst200Ms)),
    readyToBreakerClosedMs: across(rounds.map((round) => round.readyToBreakerClosedMs)),
    readyToFullMs: across(rounds.map((round) => round.readyToFullMs)),
    firstSecondShare: across(rounds.map((round) => round.firstSecondShare)),
    notFull: rounds.filter((round) => round.readyToFullMs === null).length,
    unexpected: rounds.reduce((sum, round) => sum + Object.entries(round.statusesFromKill).filter(([status]) => status !== '200' && status !== '503').reduce((total, [, count]) => total + count, 0), 0),
  };
}

const measured: { readonly store: StoreUnderTest; readonly rounds: RoundResult[]; readonly summary: ReturnType<typeof summarise> }[] = [];
for (const role of roles) {
  const store = role === 'hot' ? await hotStoreUnderTest() : await durableStoreUnderTest();
  measured.push({ store, ...(await measure(store)) });
}

const met = (yes: boolean) => (yes ? 'met' : 'NOT met');
console.log(`${settings.workers} workers, ${settings.rounds} rounds per store, each store started again ${settings.downSeconds} s after its breaker opened; latencies in ms (the 503 rows pool every round's 503s; the others are medians of the rounds' figures)`);
for (const { store } of measured) console.log(`${store.role}: ${store.server} (${store.driver}) killed with ${store.killedBy} under ${store.requestName} load`);
console.log(
  table(
    ['store', 'requests', 'p50 ms', 'p99 ms', 'max ms', 'aim'],
    measured.flatMap(({ store, summary }) => [
      [store.role, `${store.requestName} 200 before the kill (baseline)`, summary.baseline200Ms.medianOfRoundP50, summary.baseline200Ms.perRoundP99.median, '', ''],
      [store.role, 'failures before the breaker opened (raw)', summary.raw.medianOfRoundP50, summary.raw.perRoundP99.median, summary.raw.maxMs, ''],
      [store.role, '503 once the breaker is open', summary.breaker503Ms.p50, summary.breaker503Ms.p99, summary.breaker503Ms.max, `p99 < ${AIM_503_P99_MS} ms: ${met(summary.breaker503Ms.p99 < AIM_503_P99_MS)}`],
    ]),
  ),
);
for (const { store, summary } of measured) {
  console.log(`${store.role}: raw / breaker at the p50: ${round2(summary.raw.medianOfRoundP50 / summary.breaker503Ms.p50)}x; ${summary.raw.count} raw failures and ${summary.breaker503Ms.count} breaker 503s in all; ${summary.unexpected} answers other than 200 and 503 after the kills`);
}
console.log('');
const perRound = (role: StoreRole, label: string, figures: ReturnType<typeof across>, aim = ''): (string | number)[] => [role, label, figures.median, figures.p99, figures.min, figures.max, aim];
console.log(
  table(
    ['store', 'per round', 'median', 'p99', 'min', 'max', 'aim'],
    measured.flatMap(({ store: { role, server }, summary }) => [
      perRound(role, 'kill -> breaker open, ms', summary.killToOpenMs),
      perRound(role, `kill -> ${server} ready again (downtime), ms`, summary.killToReadyMs),
      perRound(role, `${server} start (restart -> ready), ms`, summary.storeStartMs),
      perRound(role, `${server} ready -> first 200, ms`, summary.readyToFirst200Ms),
      perRound(role, `${server} ready -> breaker closed, ms`, summary.readyToBreakerClosedMs),
      perRound(role, `${server} ready -> ${FULL_SHARE * 100}% of baseline req/s, ms`, summary.readyToFullMs, `< ${AIM_FULL_MS} ms: ${met(summary.notFull === 0 && summary.readyToFullMs.p99 < AIM_FULL_MS)}`),
      perRound(role, 'req/s in the 1 s after the first 200 / baseline', summary.firstSecondShare),
      [role, 'baseline req/s (median 100 ms bucket)', summary.baseline200Ms.medianPerSecond.median, '', summary.baseline200Ms.medianPerSecond.min, summary.baseline200Ms.medianPerSecond.max, ''],
    ]),
  ),
);
for (const { store, summary } of measured) {
  if (summary.notFull > 0) console.log(`${store.role}: ${summary.notFull} round(s) never got back to ${FULL_SHARE * 100}% of the baseline within the measured time`);
}
const stores = measured.map(({ store, summary, rounds }) => ({ store: store.role, driver: store.driver, killedBy: store.killedBy, request: store.requestName, summary, rounds }));
console.log(`results: ${writeResult('store-outage', { machine: machine(), settings, stores })}`);
const unexpected = measured.reduce((sum, { summary }) => sum + summary.unexpected, 0);
if (unexpected > 0) {
  console.error(`store-outage: ${unexpected} answers were neither 200 nor 503`);
  process.exitCode = 1;
}
