/**
 * Soak: does Portcullis keep its memory flat and its event loop responsive
 * under a steady mixed workload for a long time (issue: "Memory must stay
 * flat: a slope under 1 MB per 10 minutes after warm-up")?
 *
 *   node --disable-warning=ExperimentalWarning bench/soak.ts
 *     [--minutes 30]            how long the load runs
 *     [--warmup-minutes M]      left out of the slope; default a third of the run, at most 10
 *     [--sample 10]             seconds between the server's samples
 *     [--concurrency 4]         load loops, each with its own account and keep-alive connection
 *     [--rate 50]               operations per second, all loops together (paced, never caught up in bursts)
 *     [--driver sqlite|postgres]  default sqlite (embedded, in a temporary data directory)
 *     [--database URL]          default PORTCULLIS_TEST_DATABASE_URL (--driver postgres)
 *     [--redis URL]             default PORTCULLIS_TEST_REDIS_URL (--driver postgres: the hot store)
 *     [--env PORTCULLIS_KEY=value ...]  extra config for the server
 *     [--node-flag --inspect ...]       extra node flags for the server
 *     [--v8-defaults]           without the semi-space flags the server ships with
 *
 * The server is servers/portcullis-soak.ts in a child process, so the RSS
 * and event-loop delay are its own and not the load generator's. It runs
 * with the node flags `npm start` uses (test/support/process.ts
 * SERVER_NODE_FLAGS), which fix V8's young generation at 16 MB semi-spaces;
 * `--v8-defaults` leaves those out, and V8 then grows the young generation
 * in steps for 20 to 25 minutes under this load (bench/README.md). The
 * default warm-up covers one access-token lifetime (600 s), over which the
 * verified-token cache fills to its steady size. It samples
 * itself every `--sample` s (process.memoryUsage(), V8's heap spaces, CPU time,
 * and monitorEventLoopDelay reset at each sample) and sends the samples over IPC. With `--driver
 * postgres` it runs on a schema of its own and a Redis key prefix of its own
 * (Redis as the hot store), both removed at the end.
 *
 * The load: `--concurrency` loops in this process, each paced to
 * rate/concurrency operations per second (a loop that falls behind starts
 * its next operation at once and does not make up for the missed ones). Each
 * operation is drawn at random with the weights of MIX:
 * - introspect: POST /introspect (the web client, Basic) of the loop's
 *   latest access token; must answer 200 with active true;
 * - refresh: POST /token grant_type=refresh_token with the loop's refresh
 *   token; must give a new access token and a new (rotated) refresh token;
 * - flow: an authorization code flow with PKCE as a new browser (sign-in
 *   with a password, consent on the account's first flow only, code
 *   exchange; lib.ts codeFlow), scope with offline_access: its tokens become
 *   the loop's;
 * - sign-in: GET + POST /login as a new browser (lib.ts signIn): a new
 *   session each time; each account holds at most identity.maxSessionsPerUser
 *   (10) sessions, a new one ends its oldest, so sessions do not pile up.
 * A loop with no tokens yet (or after a failure) does a flow instead of a
 * refresh or an introspection. Audit writes come with the operations: every
 * sign-in (auth.login.succeeded, and session.revoked for the oldest session
 * it ends), code exchange (token.issued), refresh (token.refreshed) and first
 * consent (consent.granted) appends to the ledger; the ledger's size at the
 * end is reported from the verification. Sign-ins and
 * flows each cost an argon2id hash, so they are weighted far below
 * introspections and refreshes.
 *
 * Every operation that throws (an unexpected status, a failed check, a lost
 * connection) is a failure, counted per kind with its message; the run fails
 * if more than MAX_FAILURE_SHARE of all operations failed.
 *
 * After the run the load stops and the figures are computed: the
 * least-squares slope of RSS (and of heap used) against time over the
 * samples after the warm-up, in MB per 10 minutes (1 MB = 2^20 bytes); RSS
 * at the end of warm-up, at the end, and its maximum; where it went (outside
 * the JS heap, and each V8 heap space); the event-loop delay per minute. Verdict: "flat" when the RSS slope is under 1 MB per 10 minutes.
 * Then the server stops and `portcullis audit verify` (the real binary, as
 * test/faults/crash.test.ts runs it) checks the deployment's ledger, with the
 * log key the server announced pinned; the run fails if it does not pass.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Agent } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startChild, type Child } from './children.ts';
import { table, type ClientCredentials, codeFlow, driverSelection, type FlowTarget, giveUpAfter, machine, median, envOptions, option, options, portcullisChildEnvironment, positiveInteger, positiveNumber, postForm, ownStores, percentile, round2, signIn, writeResult } from './lib.ts';
import { runBinary, SERVER_NODE_FLAGS } from '../test/support/process.ts';

const PASSWORD = 'correct horse battery staple';
const REDIRECT_URI = 'http://127.0.0.1:9/callback';
const RESOURCE = 'https://api.bench.example/';
const API_SCOPE = 'api:read';
const FLOW_SCOPE = `openid email offline_access ${API_SCOPE}`;
const READY = /^ready \{/;
const STARTUP_TIMEOUT_MS = 60_000;
const MIB = 1024 * 1024;
/** The aim: RSS grows by less than this many MB per 10 minutes after warm-up. */
const FLAT_MB_PER_10_MIN = 1;
/** A fall of the JS heap's size by at least this many MB between two samples counts as V8 releasing old-space pages. */
const RELEASE_MB = 5;
/** More failed operations than this share of all fails the run. */
const MAX_FAILURE_SHARE = 0.001;
const email = (slot: number) => `bench-soak-${slot}@example.test`;

type Kind = 'introspect' | 'refresh' | 'flow' | 'sign-in';
const KINDS: readonly Kind[] = ['introspect', 'refresh', 'flow', 'sign-in'];
/** Relative weights of the operations drawn (an introspection is the most common call an IdP gets; argon2 makes sign-ins and flows dear). */
const MIX: Record<Kind, number> = { introspect: 12, refresh: 4, flow: 2, 'sign-in': 1 };

function settings() {
  const minutes = positiveNumber('minutes', 30);
  const warmupMinutes = positiveNumber('warmup-minutes', Math.min(10, minutes / 3));
  if (warmupMinutes >= minutes) throw new Error(`--warmup-minutes (${warmupMinutes}) must be shorter than --minutes (${minutes})`);
  const { onlyDriver, databaseUrl } = driverSelection();
  const driver = onlyDriver ?? 'sqlite';
  const redisUrl = option('redis') ?? (process.env['PORTCULLIS_TEST_REDIS_URL'] || undefined);
  if (driver === 'postgres' && redisUrl === undefined) throw new Error('--driver postgres needs --redis or PORTCULLIS_TEST_REDIS_URL');
  return {
    minutes,
    warmupMinutes,
    sampleSeconds: positiveNumber('sample', 10),
    concurrency: positiveInteger('concurrency', 4),
    rate: positiveNumber('rate', 50),
    driver,
    databaseUrl: driver === 'postgres' ? databaseUrl : undefined,
    redisUrl: driver === 'postgres' ? redisUrl : undefined,
    nodeFlags: [...SERVER_NODE_FLAGS.filter((flag) => !(process.argv.includes('--v8-defaults') && /^--(min|max)-semi-space-size=/.test(flag))), ...options('node-flag')],
    portcullisEnv: envOptions(),
  };
}
type Settings = ReturnType<typeof settings>;

/** One sample from the server, stamped with this process's clock (seconds since the load started). */
interface Sample {
  readonly atSeconds: number;
  /** The server's CPU time so far (user + system, all threads). */
  readonly cpuMicros: number;
  readonly rssBytes: number;
  readonly heapUsedBytes: number;
  readonly heapTotalBytes: number;
  readonly externalBytes: number;
  readonly arrayBuffersBytes: number;
  /** Per V8 heap space (new_space, old_space, code_space, large_object_space, ...): its size and what is used of it. */
  readonly heapSpacesBytes: Record<string, { readonly size: number; readonly used: number }>;
  readonly loopDelayMs: { readonly p50: number; readonly p99: number; readonly max: number; readonly count: number };
}

interface Ready {
  readonly url: string;
  readonly logKey: string;
  readonly service: ClientCredentials;
  readonly web: ClientCredentials;
}

/** What the load loops did: per kind, every latency and failure, and operations per minute. */
class Tally {
  readonly latenciesMs = Object.fromEntries(KINDS.map((kind) => [kind, [] as number[]])) as Record<Kind, number[]>;
  readonly failures = Object.fromEntries(KINDS.map((kind) => [kind, 0])) as Record<Kind, number>;
  /** Failure messages (status and step), with how often each came. */
  readonly messages = new Map<string, number>();
  readonly perMinute: { operations: number; failures: number }[] = [];
  /** Operations that started after their slot, because the loop's previous one overran its interval. */
  late = 0;
  consents = 0;

  ok(kind: Kind, ms: number, minute: number): void {
    this.latenciesMs[kind].push(ms);
    this.#minute(minute).operations += 1;
  }

  failed(kind: Kind, error: unknown, minute: number): void {
    this.failures[kind] += 1;
    const row = this.#minute(minute);
    row.operations += 1;
    row.failures += 1;
    // Ids and tokens vary; the message's shape is what tells failures apart.
    const message = `${kind}: ${error instanceof Error ? error.message : String(error)}`.slice(0, 300);
    this.messages.set(message, (this.messages.get(message) ?? 0) + 1);
  }

  #minute(minute: number) {
    while (this.perMinute.length <= minute) this.perMinute.push({ operations: 0, failures: 0 });
    return this.perMinute[minute]!;
  }
}

/** The state of one load loop: its connection, its account and the tokens of its latest flow. */
interface Loop {
  agent: Agent;
  readonly account: string;
  accessToken?: string | undefined;
  refreshToken?: string | undefined;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, ms)));

function draw(): Kind {
  const total = KINDS.reduce((sum, kind) => sum + MIX[kind], 0);
  let pick = Math.random() * total;
  for (const kind of KINDS) {
    pick -= MIX[kind];
    if (pick < 0) return kind;
  }
  return 'introspect';
}

/** Runs one operation of `kind`; anything but the expected answer throws. */
async function operate(kind: Kind, loop: Loop, ready: Ready, target: FlowTarget, tally: Tally): Promise<void> {
  switch (kind) {
    case 'sign-in':
      await signIn(loop.agent, ready.url, loop.account, PASSWORD);
      return;
    case 'flow': {
      loop.accessToken = loop.refreshToken = undefined;
      const flow = await codeFlow(target, loop.agent, loop.account);
      const refreshToken = flow.tokens['refresh_token'];
      if (typeof refreshToken !== 'string') throw new Error(`no refresh token (scope ${String(flow.tokens['scope'])})`);
      tally.consents += flow.consents;
      loop.accessToken = flow.tokens['access_token'] as string;
      loop.refreshToken = refreshToken;
      return;
    }
    case 'refresh': {
      const presented = loop.refreshToken!;
      loop.accessToken = loop.refreshToken = undefined;
      const answer = await postForm(loop.agent, new URL('/token', ready.url), { grant_type: 'refresh_token', refresh_token: presented }, ready.web);
      const { access_token: accessToken, refresh_token: refreshToken } = answer.json;
      if (answer.status !== 200 || typeof accessToken !== 'string' || typeof refreshToken !== 'string' || refreshToken === presented) {
        throw new Error(`${answer.status} ${JSON.stringify(answer.json).slice(0, 200)}`);
      }
      loop.accessToken = accessToken;
      loop.refreshToken = refreshToken;
      return;
    }
    case 'introspect': {
      const answer = await postForm(loop.agent, new URL('/introspect', ready.url), { token: loop.accessToken! }, ready.web);
      if (answer.status !== 200 || answer.json['active'] !== true || answer.json['client_id'] !== ready.web.id) {
        throw new Error(`${answer.status} ${JSON.stringify(answer.json).slice(0, 200)}`);
      }
      return;
    }
  }
}

/** `concurrency` paced loops until `endAt` (performance.now()); the operations in flight then finish and count. */
async function load(config: Settings, ready: Ready, startAt: number, endAt: number, tally: Tally): Promise<void> {
  const intervalMs = (1000 * config.concurrency) / config.rate;
  const target: FlowTarget = { name: 'portcullis', url: ready.url, client: ready.web, redirectUri: REDIRECT_URI, scope: FLOW_SCOPE, resource: RESOURCE, password: PASSWORD, promptConsent: false };
  const loops: Loop[] = Array.from({ length: config.concurrency }, (_, slot) => ({ agent: new Agent({ keepAlive: true, maxSockets: 1 }), account: email(slot) }));
  try {
    await Promise.all(
      loops.map(async (loop, slot) => {
        // Staggered, so the loops' operations spread over each interval.
        let due = startAt + (slot * intervalMs) / config.concurrency;
        while (due < endAt) {
          await sleep(due - performance.now());
          const start = performance.now();
          const minute = Math.floor((start - startAt) / 60_000);
          const drawn = draw();
          // No tokens yet (or after a failure): a flow gets them.
          const kind = (drawn === 'introspect' && loop.accessToken === undefined) || (drawn === 'refresh' && loop.refreshToken === undefined) ? 'flow' : drawn;
          try {
            await operate(kind, loop, ready, target, tally);
            tally.ok(kind, performance.now() - start, minute);
          } catch (error) {
            tally.failed(kind, error, minute);
            // A fresh connection and no tokens: the next operation starts clean.
            loop.agent.destroy();
            loop.agent = new Agent({ keepAlive: true, maxSockets: 1 });
            loop.accessToken = loop.refreshToken = undefined;
          }
          // An operation that overran its interval: the next starts at once (late), the missed slots are not made up.
          due += intervalMs;
          if (performance.now() > due) {
            tally.late += 1;
            due = performance.now();
          }
        }
      }),
    );
  } finally {
    for (const loop of loops) loop.agent.destroy();
  }
}

/** Least-squares slope of y against x (per unit of x); NaN with fewer than two distinct x. */
function slope(points: readonly { x: number; y: number }[]): number {
  const n = points.length;
  const meanX = points.reduce((sum, p) => sum + p.x, 0) / n;
  const meanY = points.reduce((sum, p) => sum + p.y, 0) / n;
  let covariance = 0;
  let variance = 0;
  for (const p of points) {
    covariance += (p.x - meanX) * (p.y - meanY);
    variance += (p.x - meanX) ** 2;
  }
  return variance === 0 ? Number.NaN : covariance / variance;
}

const mb = (bytes: number) => round2(bytes / MIB);
/** The server's CPU use between two samples, in % of one core. */
const cpuPercent = (from: Sample | undefined, to: Sample | undefined) =>
  from === undefined || to === undefined || to.atSeconds <= from.atSeconds ? null : Math.round((to.cpuMicros - from.cpuMicros) / 1e4 / (to.atSeconds - from.atSeconds));
const max = (values: readonly number[]) => values.reduce((most, value) => Math.max(most, value), Number.NEGATIVE_INFINITY);

function summarise(config: Settings, samples: readonly Sample[], tally: Tally, elapsedSeconds: number) {
  const inRun = samples.filter((s) => s.atSeconds >= 0 && s.atSeconds <= elapsedSeconds + 1);
  const steady = inRun.filter((s) => s.atSeconds >= config.warmupMinutes * 60);
  if (steady.length < 3) throw new Error(`only ${steady.length} samples after the warm-up: make the run longer or --sample shorter`);
  const per10Min = (bytes: (s: Sample) => number) => round2(slope(steady.map((s) => ({ x: s.atSeconds, y: bytes(s) / MIB }))) * 600);
  const rssSlope = per10Min((s) => s.rssBytes);
  const delays = (pick: (s: Sample) => number) => steady.map(pick);
  const minutes = Math.ceil(elapsedSeconds / 60 - 1e-9);
  const perMinute = Array.from({ length: minutes }, (_, minute) => {
    const within = inRun.filter((s) => s.atSeconds > minute * 60 && s.atSeconds <= (minute + 1) * 60);
    const last = within.at(-1);
    // From the last sample before the minute (or its first) to its last.
    const before = inRun.filter((s) => s.atSeconds <= minute * 60).at(-1) ?? within[0];
    const ops = tally.perMinute[minute] ?? { operations: 0, failures: 0 };
    return {
      minute: minute + 1,
      warmup: (minute + 1) * 60 <= config.warmupMinutes * 60,
      operations: ops.operations,
      failures: ops.failures,
      serverCpuPercent: cpuPercent(before, last),
      rssMb: last === undefined ? null : mb(last.rssBytes),
      heapUsedMb: last === undefined ? null : mb(last.heapUsedBytes),
      // Per minute: the median of the samples' p50s, the worst of their p99s and maxima.
      loopDelayMs: within.length === 0 ? null : { p50: round2(median(within.map((s) => s.loopDelayMs.p50))), p99: round2(max(within.map((s) => s.loopDelayMs.p99))), max: round2(max(within.map((s) => s.loopDelayMs.max))) },
    };
  });
  const operations = KINDS.reduce((sum, kind) => sum + tally.latenciesMs[kind].length + tally.failures[kind], 0);
  const failures = KINDS.reduce((sum, kind) => sum + tally.failures[kind], 0);
  return {
    afterWarmup: {
      samples: steady.length,
      fromSeconds: round2(steady[0]!.atSeconds),
      toSeconds: round2(steady.at(-1)!.atSeconds),
      rssSlopeMbPer10Min: rssSlope,
      // V8 giving old-space pages back at a compacting collection: the heap's size falls by
      // RELEASE_MB or more from one sample to the next. RSS is a sawtooth with that period;
      // a window holding fewer than two of them gives its phase, not a trend.
      oldSpaceReleases: steady.slice(1).filter((s, index) => steady[index]!.heapTotalBytes - s.heapTotalBytes >= RELEASE_MB * MIB).length,
      serverCpuPercent: cpuPercent(steady[0], steady.at(-1)),
      heapUsedSlopeMbPer10Min: per10Min((s) => s.heapUsedBytes),
      rssMb: { atWarmupEnd: mb(steady[0]!.rssBytes), last: mb(steady.at(-1)!.rssBytes), max: mb(max(steady.map((s) => s.rssBytes))) },
      heapUsedMb: { atWarmupEnd: mb(steady[0]!.heapUsedBytes), last: mb(steady.at(-1)!.heapUsedBytes), max: mb(max(steady.map((s) => s.heapUsedBytes))) },
      // RSS besides the JS heap: native memory (argon2's buffers while a hash runs, SQLite, sockets, code).
      outsideHeapMb: { atWarmupEnd: mb(steady[0]!.rssBytes - steady[0]!.heapTotalBytes), last: mb(steady.at(-1)!.rssBytes - steady.at(-1)!.heapTotalBytes), slopePer10Min: per10Min((s) => s.rssBytes - s.heapTotalBytes) },
      heapSpacesMb: Object.fromEntries(
        Object.keys(steady[0]!.heapSpacesBytes).map((name) => [
          name,
          { sizeAtWarmupEnd: mb(steady[0]!.heapSpacesBytes[name]!.size), sizeLast: mb(steady.at(-1)!.heapSpacesBytes[name]?.size ?? 0), usedSlopePer10Min: per10Min((s) => s.heapSpacesBytes[name]?.used ?? 0) },
        ]),
      ),
      // Over the samples: the median of their p50s, the median and the worst of their p99s, the worst maximum.
      loopDelayMs: {
        p50: round2(median(delays((s) => s.loopDelayMs.p50))),
        p99: round2(median(delays((s) => s.loopDelayMs.p99))),
        worstP99: round2(max(delays((s) => s.loopDelayMs.p99))),
        max: round2(max(delays((s) => s.loopDelayMs.max))),
      },
    },
    rssMb: { first: inRun[0] === undefined ? null : mb(inRun[0].rssBytes), last: mb(inRun.at(-1)!.rssBytes), max: mb(max(inRun.map((s) => s.rssBytes))) },
    verdict: rssSlope < FLAT_MB_PER_10_MIN ? 'flat' : 'NOT flat',
    operations: {
      total: operations,
      failures,
      perSecond: round2(operations / elapsedSeconds),
      late: tally.late,
      consents: tally.consents,
      byKind: Object.fromEntries(
        KINDS.map((kind) => {
          const latencies = tally.latenciesMs[kind];
          return [kind, { ok: latencies.length, failed: tally.failures[kind], p50Ms: round2(percentile(latencies, 50)), p99Ms: round2(percentile(latencies, 99)) }];
        }),
      ),
      failureMessages: Object.fromEntries([...tally.messages].sort((a, b) => b[1] - a[1]).slice(0, 20)),
    },
    perMinute,
  };
}

/** `portcullis audit verify` on the stopped deployment, its log key pinned; the real binary with no PORTCULLIS_* of this environment. */
async function verifyAudit(config: Settings, dataDir: string, storesEnv: Record<string, string>, logKey: string) {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-bench-soak-verify-'));
  try {
    const configFile = join(dir, 'portcullis.json');
    const database = config.driver === 'postgres' ? { database: { url: storesEnv['PORTCULLIS_DATABASE_URL'], schema: storesEnv['PORTCULLIS_DATABASE_SCHEMA'] } } : {};
    writeFileSync(configFile, JSON.stringify({ dataDir, log: { level: 'silent' }, ...database }));
    const start = performance.now();
    const run = await runBinary(['audit', 'verify', '--config', configFile, '--key', logKey], { cwd: dir, timeoutMs: 30 * 60_000 });
    const seconds = round2((performance.now() - start) / 1000);
    const entries = /^OK: (\d+) entries/m.exec(run.stdout)?.[1];
    return { ok: run.code === 0, code: run.code, seconds, entries: entries === undefined ? null : Number(entries), output: `${run.stdout}${run.stderr}`.trim() };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function print(config: Settings, summary: ReturnType<typeof summarise>): void {
  const cell = (value: number | null | undefined) => (value === null || value === undefined ? '-' : value.toFixed(1));
  console.log(
    `\n${table(
      ['minute', 'ops', 'failed', 'server CPU %', 'RSS MB', 'heap MB', 'loop p50 ms', 'p99 ms', 'max ms'],
      summary.perMinute.map((row) => [
        `${row.minute}${row.warmup ? ' (warm-up)' : ''}`,
        row.operations,
        row.failures,
        row.serverCpuPercent ?? '-',
        cell(row.rssMb),
        cell(row.heapUsedMb),
        row.loopDelayMs === null ? '-' : row.loopDelayMs.p50.toFixed(2),
        cell(row.loopDelayMs?.p99),
        cell(row.loopDelayMs?.max),
      ]),
    )}`,
  );
  const ops = summary.operations;
  console.log(
    `\n${table(
      ['operation', 'ok', 'failed', 'p50 ms', 'p99 ms'],
      KINDS.map((kind) => [kind, ops.byKind[kind]!.ok, ops.byKind[kind]!.failed, cell(ops.byKind[kind]!.p50Ms), cell(ops.byKind[kind]!.p99Ms)]),
    )}`,
  );
  console.log(`${ops.total} operations, ${ops.perSecond}/s (aimed at ${config.rate}/s), ${ops.late} started late, ${ops.failures} failed, ${ops.consents} consents`);
  for (const [message, count] of Object.entries(ops.failureMessages)) console.log(`  ${count} x ${message}`);
  const after = summary.afterWarmup;
  console.log(
    `\nafter warm-up (${after.samples} samples, ${after.fromSeconds} s to ${after.toSeconds} s): RSS ${after.rssMb.atWarmupEnd} -> ${after.rssMb.last} MB (max ${after.rssMb.max}), ` +
      `heap used ${after.heapUsedMb.atWarmupEnd} -> ${after.heapUsedMb.last} MB (max ${after.heapUsedMb.max}); ` +
      `RSS over the whole run: first ${cell(summary.rssMb.first)}, last ${summary.rssMb.last}, max ${summary.rssMb.max} MB`,
  );
  const spaces = Object.entries(after.heapSpacesMb).filter(([, space]) => space.sizeAtWarmupEnd >= 1 || space.sizeLast >= 1);
  console.log(
    `RSS outside the JS heap: ${after.outsideHeapMb.atWarmupEnd} -> ${after.outsideHeapMb.last} MB (slope ${after.outsideHeapMb.slopePer10Min} per 10 min); ` +
      `V8 spaces, size MB (used slope per 10 min): ${spaces.map(([name, space]) => `${name.replace(/_space$/, '')} ${space.sizeAtWarmupEnd} -> ${space.sizeLast} (${space.usedSlopePer10Min})`).join(', ')}`,
  );
  console.log(`server CPU after warm-up: ${after.serverCpuPercent ?? '-'}% of one core`);
  console.log(`event-loop delay after warm-up: p50 ${after.loopDelayMs.p50} ms, p99 ${after.loopDelayMs.p99} ms (worst sample ${after.loopDelayMs.worstP99}), max ${after.loopDelayMs.max} ms`);
  const window = (after.toSeconds - after.fromSeconds) / 60;
  console.log(
    `RSS slope after warm-up: ${after.rssSlopeMbPer10Min} MB per 10 min (heap used ${after.heapUsedSlopeMbPer10Min}); aim < ${FLAT_MB_PER_10_MIN}: ${summary.verdict}` +
      (window < 10 ? ` (over ${window.toFixed(1)} min only: too short a window to judge a slope per 10 min)` : ''),
  );
  console.log(
    `V8 released old-space pages (the heap's size falling ${RELEASE_MB} MB or more between samples) ${after.oldSpaceReleases} times after warm-up` +
      (after.oldSpaceReleases < 2 ? ': fewer than two cycles of that sawtooth, so the slope is largely its phase; run longer to judge it' : ''),
  );
}

async function main(): Promise<void> {
  const config = settings();
  process.once('SIGINT', () => process.exit(130));
  giveUpAfter('soak', (config.minutes * 60 + 40 * 60) * 1000);
  const { portcullisEnv } = portcullisChildEnvironment(config.portcullisEnv);
  const dataDir = mkdtempSync(join(tmpdir(), 'portcullis-bench-soak-'));
  const stores = await ownStores(config.databaseUrl, config.redisUrl);
  let server: Child | undefined;
  let failed = false;
  try {
    const samples: Sample[] = [];
    let loadStart = performance.now();
    const setup = { emails: Array.from({ length: config.concurrency }, (_, slot) => email(slot)), password: PASSWORD, redirectUri: REDIRECT_URI, apiScope: API_SCOPE, resource: RESOURCE };
    const env = { ...portcullisEnv, ...stores.env, BENCH_OAUTH: JSON.stringify(setup), BENCH_DATA_DIR: dataDir, BENCH_SAMPLE_SECONDS: String(config.sampleSeconds) };
    server = await startChild('portcullis', [join(import.meta.dirname, 'servers', 'portcullis-soak.ts')], env, READY, config.nodeFlags, STARTUP_TIMEOUT_MS);
    server.process.on('message', (message: { type?: string } & Omit<Sample, 'atSeconds'>) => {
      if (message.type === 'sample') samples.push({ atSeconds: (performance.now() - loadStart) / 1000, cpuMicros: message.cpuMicros, rssBytes: message.rssBytes, heapUsedBytes: message.heapUsedBytes, heapTotalBytes: message.heapTotalBytes, externalBytes: message.externalBytes, arrayBuffersBytes: message.arrayBuffersBytes, heapSpacesBytes: message.heapSpacesBytes, loopDelayMs: message.loopDelayMs });
    });
    const ready = JSON.parse(server.ready.slice('ready '.length)) as Ready;

    console.log(
      `soak: ${config.minutes} min (warm-up ${round2(config.warmupMinutes)} min) on ${config.driver === 'postgres' ? 'postgres+redis' : 'embedded sqlite'}, ` +
        `${config.concurrency} loops at ${config.rate} operations/s in all, mix ${KINDS.map((kind) => `${kind} ${MIX[kind]}`).join(', ')}; ` +
        `server sampled every ${config.sampleSeconds} s; node ${config.nodeFlags.join(' ')}` +
        (Object.keys(config.portcullisEnv).length > 0 ? `; portcullis env ${JSON.stringify(config.portcullisEnv)}` : ''),
    );
    const tally = new Tally();
    loadStart = performance.now();
    const endAt = loadStart + config.minutes * 60_000;
    const progress = setInterval(() => {
      const last = samples.at(-1);
      const done = tally.perMinute.reduce((sum, row) => sum + row.operations, 0);
      const failures = tally.perMinute.reduce((sum, row) => sum + row.failures, 0);
      process.stderr.write(`${((performance.now() - loadStart) / 60_000).toFixed(1)} min: ${done} operations, ${failures} failed, RSS ${last === undefined ? '-' : mb(last.rssBytes)} MB\n`);
    }, 60_000).unref();
    await load(config, ready, loadStart, endAt, tally);
    clearInterval(progress);
    const elapsedSeconds = (performance.now() - loadStart) / 1000;
    const summary = summarise(config, samples, tally, elapsedSeconds);
    print(config, summary);

    await server.stop();
    const audit = await verifyAudit(config, dataDir, stores.env, ready.logKey);
    console.log(`\naudit verify (${audit.seconds} s): ${audit.ok ? 'passed' : `FAILED (exit ${audit.code})`}: ${audit.output.split('\n').filter((line) => !line.startsWith('warning')).join(' ')}`);
    if (audit.entries !== null) console.log(`ledger: ${audit.entries} entries, ${round2(audit.entries / elapsedSeconds)} audit writes/s over the run`);

    const failureShare = summary.operations.failures / Math.max(1, summary.operations.total);
    const file = writeResult('soak', {
      benchmark: 'soak',
      at: new Date().toISOString(),
      machine: machine(),
      settings: { ...config, databaseUrl: config.databaseUrl !== undefined, redisUrl: config.redisUrl !== undefined, mix: MIX, maxFailureShare: MAX_FAILURE_SHARE },
      elapsedSeconds: round2(elapsedSeconds),
      ...summary,
      aim: { rssSlopeMbPer10Min: FLAT_MB_PER_10_MIN },
      audit,
      samples,
    });
    console.log(`wrote ${file}`);
    if (failureShare > MAX_FAILURE_SHARE) {
      console.error(`soak: ${summary.operations.failures} of ${summary.operations.total} operations failed (more than ${MAX_FAILURE_SHARE * 100}%)`);
      failed = true;
    }
    if (!audit.ok) {
      console.error('soak: audit verify did not pass');
      failed = true;
    }
  } finally {
    await server?.stop();
    await stores.cleanup();
    rmSync(dataDir, { recursive: true, force: true });
  }
  if (failed) process.exitCode = 1;
}

await main();
