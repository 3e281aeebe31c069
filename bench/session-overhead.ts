/**
 * What does the session check cost an authenticated request? Throughput and
 * latency of GET /account/session.json (a small JSON answer behind the
 * session check) against GET /healthz (no work of its own) on the same
 * Portcullis, with the embedded SQLite stores and with Redis as the hot store
 * (and PostgreSQL as the durable one when its URL is given, the scale-out
 * shape); and the lookup itself, timed in the server process.
 *
 *   node bench/session-overhead.ts [--rounds 5] [--duration 5] [--warmup 1]
 *     [--connections 50] [--pipelining 1] [--lookups 5000]
 *     [--database postgres://...]  default: PORTCULLIS_TEST_DATABASE_URL
 *     [--redis redis://...]        default: PORTCULLIS_TEST_REDIS_URL
 *     [--env PORTCULLIS_KEY=value ...]   extra config for the Portcullis children
 *     [--node-flag --cpu-prof ...]       extra node flags for the children
 *
 * Per configuration: one server child (servers/portcullis-account.ts), one
 * sign-in over HTTP for a session cookie, then autocannon from this process
 * alternately against the two paths, the order flipping every round (ABBA),
 * each measured run after a warm-up of the same path. Every session.json
 * answer must be a 200 (a 401 would measure the cheap refusal instead), and
 * the body says `authenticated: true` before and after the runs. Sliding
 * renewal writes at most once per renew interval (60 s) per session, so the
 * runs measure the steady state: a read of the hot store and of the user.
 *
 * HTTP latency at 50 connections is mostly queueing, so the lookup is also
 * timed directly: `sessions.resolve(id)`, and resolve plus `users.byId` (the
 * whole check a route makes), one call at a time in the server process,
 * `--lookups` times after a tenth as many warm-up calls.
 */
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { cpuMicros, startChild, URL_LINE } from './children.ts';
import { table, type LoadRun, machine, median, envOptions, option, options, positiveInteger, round2, runSql, summariseLoad, writeResult, loadRoundOptions } from './lib.ts';
import type { SessionTiming } from './servers/portcullis-account.ts';
import { deleteRedisKeys } from '../test/support/services.ts';

const settings = {
  ...loadRoundOptions(),
  lookups: positiveInteger('lookups', 5000),
  databaseUrl: option('database') ?? (process.env['PORTCULLIS_TEST_DATABASE_URL'] || undefined),
  redisUrl: option('redis') ?? (process.env['PORTCULLIS_TEST_REDIS_URL'] || undefined),
  // node:sqlite prints an ExperimentalWarning on Node 24; silence it in
  // every child alike so the flags stay identical.
  nodeFlags: ['--disable-warning=ExperimentalWarning', ...options('node-flag')],
  portcullisEnv: envOptions(),
};
const EMAIL = 'bench-session@example.test';
const PASSWORD = 'correct horse battery staple';
const SESSION_COOKIE = '__Host-portcullis';
const HEALTH = '/healthz';
const SESSION = '/account/session.json';
const STARTUP_TIMEOUT_MS = 60_000;

interface Configuration {
  readonly name: string;
  readonly databaseUrl?: string;
  readonly redisUrl?: string;
}
const configurations: Configuration[] = [
  { name: 'embedded' },
  ...(settings.redisUrl !== undefined
    ? [{ name: settings.databaseUrl !== undefined ? 'postgres+redis' : 'redis', redisUrl: settings.redisUrl, ...(settings.databaseUrl !== undefined && { databaseUrl: settings.databaseUrl }) }]
    : []),
];

// Whatever ends this process, its servers go with it (./children.ts).
process.once('SIGINT', () => process.exit(130));
const budgetMs = (configurations.length * (settings.rounds * 2 * (settings.durationSeconds + settings.warmupSeconds + 2) + 60) + 60) * 1000;
setTimeout(() => {
  console.error(`session-overhead: gave up after ${budgetMs / 1000} s`);
  process.exit(1);
}, budgetMs).unref();

interface Server {
  readonly url: string;
  readonly pid: number;
  readonly process: ChildProcess;
  stop(): Promise<void>;
}

function cookieValue(response: globalThis.Response, name: string): string | undefined {
  const header = response.headers.getSetCookie().find((line) => line.startsWith(`${name}=`));
  return header?.slice(name.length + 1).split(';')[0];
}

/** GET then POST /login, as a browser would; returns the session id from the cookie. */
async function signIn(base: string): Promise<string> {
  const form = await fetch(new URL('/login', base));
  const nonce = cookieValue(form, '__Host-portcullis-login');
  const csrf = /name="_csrf" value="([^"]+)"/.exec(await form.text())?.[1];
  if (form.status !== 200 || nonce === undefined || csrf === undefined) throw new Error(`GET /login: ${form.status}, no login cookie or CSRF field`);
  const answer = await fetch(new URL('/login', base), {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: `__Host-portcullis-login=${nonce}` },
    body: new URLSearchParams({ _csrf: csrf, email: EMAIL, password: PASSWORD }).toString(),
  });
  const id = cookieValue(answer, SESSION_COOKIE);
  if (answer.status !== 303 || id === undefined) throw new Error(`POST /login: ${answer.status} instead of 303 with a session cookie`);
  return id;
}

/** The session must be live: a 401 here would make every figure below meaningless. */
async function checkAuthenticated(base: string, sessionId: string): Promise<void> {
  const response = await fetch(new URL(SESSION, base), { headers: { cookie: `${SESSION_COOKIE}=${sessionId}` } });
  const body = (await response.json()) as { authenticated?: boolean; email?: string };
  if (response.status !== 200 || body.authenticated !== true || body.email !== EMAIL) throw new Error(`${SESSION}: ${response.status} ${JSON.stringify(body)}`);
  const health = await fetch(new URL(HEALTH, base));
  if (health.status !== 200) throw new Error(`${HEALTH}: ${health.status}`);
}

type Run = LoadRun;

async function load(server: Server, path: string, sessionId: string, durationSeconds: number): Promise<Run> {
  // autocannon's own latency histogram keeps whole milliseconds, too coarse
  // for sub-millisecond loopback answers: record the exact (hrtime) times.
  const latencies: number[] = [];
  let notOk = 0;
  const cpuBefore = cpuMicros(server.pid);
  // Both paths get the cookie, so the requests differ only in their path.
  const request = {
    url: server.url + path,
    connections: settings.connections,
    pipelining: settings.pipelining,
    duration: durationSeconds,
    headers: { cookie: `${SESSION_COOKIE}=${sessionId}` },
  };
  const run = autocannon(request);
  run.on('response', (_client, status, _bytes, responseTimeMs) => {
    if (status !== 200) notOk += 1;
    latencies.push(responseTimeMs);
  });
  const result = await run;
  const cpuAfter = cpuMicros(server.pid);
  if (result.errors + result.timeouts + result.non2xx + notOk > 0) {
    throw new Error(`${path}: ${result.errors} errors, ${result.timeouts} timeouts, ${result.non2xx + notOk} responses other than 200`);
  }
  return summariseLoad(result, latencies, cpuBefore, cpuAfter);
}

async function timeLookups(server: Server, sessionId: string): Promise<SessionTiming> {
  const answer = new Promise<SessionTiming>((resolve, reject) => {
    server.process.once('message', (message: SessionTiming | { type: 'error'; message: string }) => {
      if (message.type === 'session-timing') resolve(message);
      else reject(new Error(`lookup timing: ${message.message}`));
    });
  });
  server.process.send({ type: 'time-session', id: sessionId, iterations: settings.lookups, warmup: Math.ceil(settings.lookups / 10) });
  return answer;
}


type Path = 'healthz' | 'session';
interface Round {
  readonly round: number;
  readonly order: Path[];
  readonly healthz: Run;
  readonly session: Run;
  readonly ratio: number;
}
interface Result {
  readonly configuration: string;
  readonly hotStore: string;
  readonly durableStore: string;
  readonly rounds: Round[];
  readonly medians: Record<Path, { requestsPerSecond: number; latencyMs: { p50: number; p99: number }; cpuMicrosPerRequest: number | null }>;
  readonly ratio: number;
  readonly lookups: SessionTiming;
}

async function benchConfiguration(configuration: Configuration, baseEnv: NodeJS.ProcessEnv): Promise<Result> {
  const cleanups: (() => Promise<void>)[] = [];
  const env: NodeJS.ProcessEnv = { ...baseEnv, BENCH_ACCOUNT_EMAILS: EMAIL, BENCH_ACCOUNT_PASSWORD: PASSWORD };
  let server: Server | undefined;
  try {
    if (configuration.databaseUrl !== undefined) {
      const url = configuration.databaseUrl;
      const schema = `portcullis_bench_${randomBytes(6).toString('hex')}`;
      await runSql(url, `CREATE SCHEMA ${schema}`);
      cleanups.push(() => runSql(url, `DROP SCHEMA IF EXISTS ${schema} CASCADE`));
      Object.assign(env, { PORTCULLIS_DATABASE_URL: url, PORTCULLIS_DATABASE_SCHEMA: schema });
    }
    if (configuration.redisUrl !== undefined) {
      const url = configuration.redisUrl;
      const keyPrefix = `portcullis:bench:${randomBytes(6).toString('hex')}:`;
      cleanups.push(() => deleteRedisKeys(url, keyPrefix));
      Object.assign(env, { PORTCULLIS_REDIS_URL: url, PORTCULLIS_REDIS_KEY_PREFIX: keyPrefix, PORTCULLIS_HOT_STORE: 'redis' });
    }
    const child = await startChild(configuration.name, [join(import.meta.dirname, 'servers', 'portcullis-account.ts')], env, URL_LINE, settings.nodeFlags, STARTUP_TIMEOUT_MS);
    const running: Server = { url: child.ready, pid: child.pid, process: child.process, stop: () => child.stop() };
    server = running;
    const sessionId = await signIn(running.url);
    await checkAuthenticated(running.url, sessionId);

    const rounds: Round[] = [];
    for (let round = 1; round <= settings.rounds; round++) {
      const order: Path[] = round % 2 === 1 ? ['healthz', 'session'] : ['session', 'healthz'];
      const runs = new Map<Path, Run>();
      for (const path of order) {
        const target = path === 'healthz' ? HEALTH : SESSION;
        await load(running, target, sessionId, settings.warmupSeconds);
        runs.set(path, await load(running, target, sessionId, settings.durationSeconds));
      }
      const healthz = runs.get('healthz')!;
      const session = runs.get('session')!;
      rounds.push({ round, order, healthz, session, ratio: round2(session.requestsPerSecond / healthz.requestsPerSecond) });
      process.stderr.write(`${configuration.name}: round ${round}/${settings.rounds} done\n`);
    }
    await checkAuthenticated(running.url, sessionId);
    const lookups = await timeLookups(running, sessionId);

    const summary = (path: Path) => {
      const cpu = rounds.map((r) => r[path].cpuMicrosPerRequest);
      return {
        requestsPerSecond: median(rounds.map((r) => r[path].requestsPerSecond)),
        latencyMs: { p50: round2(median(rounds.map((r) => r[path].latencyMs.p50))), p99: round2(median(rounds.map((r) => r[path].latencyMs.p99))) },
        cpuMicrosPerRequest: cpu.includes(null) ? null : round2(median(cpu as number[])),
      };
    };
    const medians = { healthz: summary('healthz'), session: summary('session') };
    return {
      configuration: configuration.name,
      hotStore: lookups.hotStore,
      durableStore: lookups.durableStore,
      rounds,
      medians,
      ratio: round2(medians.session.requestsPerSecond / medians.healthz.requestsPerSecond),
      lookups,
    };
  } finally {
    await server?.stop();
    for (const cleanup of cleanups.reverse()) await cleanup();
  }
}

function print(result: Result): void {
  const cells = (run: { requestsPerSecond: number; latencyMs: { p50: number; p99: number }; cpuMicrosPerRequest: number | null }) => [
    run.requestsPerSecond,
    `${run.latencyMs.p50} / ${run.latencyMs.p99}`,
    run.cpuMicrosPerRequest === null ? '-' : run.cpuMicrosPerRequest.toFixed(1),
  ];
  console.log(`\n${result.configuration} (hot store ${result.hotStore}, durable store ${result.durableStore}):`);
  console.log(
    table(
      ['round', 'first', `${HEALTH} req/s`, 'p50/p99 ms', 'CPU µs/req', `${SESSION} req/s`, 'p50/p99 ms', 'CPU µs/req', 'ratio'],
      [
        ...result.rounds.map((r) => [String(r.round), r.order[0]!, ...cells(r.healthz), ...cells(r.session), r.ratio.toFixed(2)]),
        ['median', '', ...cells(result.medians.healthz), ...cells(result.medians.session), result.ratio.toFixed(2)],
      ],
    ),
  );
  const ratios = result.rounds.map((r) => r.ratio);
  console.log(`ratio session.json/healthz (of medians) = ${result.ratio.toFixed(2)} (rounds ${Math.min(...ratios).toFixed(2)} to ${Math.max(...ratios).toFixed(2)})`);
  const [healthz, session] = [result.medians.healthz.cpuMicrosPerRequest, result.medians.session.cpuMicrosPerRequest];
  if (healthz !== null && session !== null) {
    console.log(`server CPU per request (medians): healthz ${healthz.toFixed(1)} µs, session.json ${session.toFixed(1)} µs: ${session >= healthz ? '+' : ''}${(session - healthz).toFixed(1)} µs (x${(session / healthz).toFixed(2)})`);
  }
  const { resolve, check, renewals } = result.lookups;
  console.log(
    `session lookup in-process, ${resolve.samples} calls one at a time: sessions.resolve median ${resolve.medianUs} µs, p99 ${resolve.p99Us} µs; ` +
      `resolve + users.byId median ${check.medianUs} µs, p99 ${check.p99Us} µs (${renewals} renewal writes)`,
  );
}

async function main(): Promise<void> {
  // A clean environment: no PORTCULLIS_* of the caller's may change what
  // "default Portcullis" means here.
  const baseEnv = { ...Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('PORTCULLIS_'))), PORTCULLIS_LOG_LEVEL: 'warn', ...settings.portcullisEnv };
  console.log(
    `GET ${HEALTH} vs GET ${SESSION} with a session cookie: ${settings.rounds} rounds of ${settings.durationSeconds} s per path (after ${settings.warmupSeconds} s warm-up), ` +
      `${settings.connections} connections, pipelining ${settings.pipelining}, configurations ${configurations.map((c) => c.name).join(', ')}` +
      (Object.keys(settings.portcullisEnv).length > 0 ? `, portcullis env ${JSON.stringify(settings.portcullisEnv)}` : ''),
  );
  const results: Result[] = [];
  for (const configuration of configurations) {
    const result = await benchConfiguration(configuration, baseEnv);
    print(result);
    results.push(result);
  }
  console.log('\nsummary (medians):');
  console.log(
    table(
      ['configuration', `${HEALTH} req/s`, `${SESSION} req/s`, 'ratio', 'CPU µs/req +', 'session.json p99 ms', 'resolve median/p99 µs', 'resolve+byId median/p99 µs'],
      results.map((r) => [
        r.configuration,
        r.medians.healthz.requestsPerSecond,
        r.medians.session.requestsPerSecond,
        r.ratio.toFixed(2),
        r.medians.healthz.cpuMicrosPerRequest === null || r.medians.session.cpuMicrosPerRequest === null ? '-' : (r.medians.session.cpuMicrosPerRequest - r.medians.healthz.cpuMicrosPerRequest).toFixed(1),
        r.medians.session.latencyMs.p99.toFixed(2),
        `${r.lookups.resolve.medianUs} / ${r.lookups.resolve.p99Us}`,
        `${r.lookups.check.medianUs} / ${r.lookups.check.p99Us}`,
      ]),
    ),
  );
  const file = writeResult('session-overhead', {
    benchmark: 'session-overhead',
    at: new Date().toISOString(),
    machine: machine(),
    settings: { ...settings, databaseUrl: settings.databaseUrl !== undefined, redisUrl: settings.redisUrl !== undefined },
    results,
  });
  console.log(`wrote ${file}`);
}


await main();
