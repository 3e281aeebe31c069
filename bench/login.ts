/**
 * What does a password sign-in cost beyond its argon2id hash? Completed
 * sign-ins per second over HTTP on a real Portcullis, against raw
 * `@node-rs/argon2` verifies per second with the same parameters, the same
 * concurrency and the same node flags, in the same run. The aim: logins/s
 * >= 0.9 x verifies/s (the login path costs little beyond the hash).
 *
 *   node bench/login.ts [--rounds 5] [--duration 5] [--warmup 1]
 *     [--concurrency 4 --concurrency 8]  default: the libuv thread pool size
 *                                         (UV_THREADPOOL_SIZE, else 4), and 8
 *     [--database postgres://...]  default: PORTCULLIS_TEST_DATABASE_URL
 *     [--redis redis://...]        default: PORTCULLIS_TEST_REDIS_URL
 *     [--env PORTCULLIS_KEY=value ...]   extra config for the Portcullis children
 *     [--node-flag --cpu-prof ...]       extra node flags for every child
 *
 * Sides, each a child process with the same node flags and environment
 * (the thread pool size too; the servers also get their PORTCULLIS_* config):
 * - argon2: this script again (`--argon2-worker`), `concurrency` loops
 *   each awaiting `verify(phc, password)` of a hash made with the configured
 *   parameters (the server's defaults unless --env changes them);
 * - embedded: servers/portcullis-account.ts on its embedded SQLite file;
 * - postgres+redis (when a URL is given): the same server on a schema and a
 *   key prefix of its own, dropped at the end.
 * A sign-in is what a browser does: GET /login (pre-session cookie and the
 * form's CSRF token), then POST /login, which must answer 303 with a session
 * cookie. `concurrency` clients in this process, each with its own
 * keep-alive connection and its own account, sign in in a loop (the
 * throttle counts attempts in flight per account and IP: more than 5 clients
 * on one account would be refused with 429). Each account passes its 10
 * sessions after ten sign-ins, so from then on every sign-in also evicts its
 * oldest session, as a real user's would. Only POSTs that complete inside
 * the measured window count, and likewise verifies.
 *
 * Every round runs each concurrency on each side, after a warm-up of the
 * same side; the order of the sides flips every round (ABBA), and medians
 * over rounds discard the odd disturbed run.
 */
import { Agent } from 'node:http';
import { join } from 'node:path';
import { hash as argon2Hash, verify as argon2Verify } from '@node-rs/argon2';
import type { Algorithm } from '@node-rs/argon2';
import { cpuMicros, startChild, URL_LINE, type Child } from './children.ts';
import { table, giveUpAfter, machine, median, envOptions, option, options, portcullisChildEnvironment, positiveInteger, ownStores, percentile, round2, signIn, writeResult } from './lib.ts';

/** One account per client: the throttle counts attempts in flight per account and IP, so one account signed in by more than 5 clients at once would get 429s. */
const email = (slot: number) => `bench-login-${slot}@example.test`;
const PASSWORD = 'correct horse battery staple';
const GOAL = 0.9;
const STARTUP_TIMEOUT_MS = 60_000;
// @node-rs/argon2 declares Algorithm as an ambient const enum, which
// `isolatedModules` cannot inline (src/identity/passwords.ts does the same).
const ARGON2ID = 2 satisfies Algorithm.Argon2id;

interface Argon2Parameters {
  readonly memoryCostKiB: number;
  readonly timeCost: number;
  readonly parallelism: number;
}

/** What one measured window gave, on either side. */
interface Window {
  /** Operations completed inside the window. */
  readonly completed: number;
  /** Operations completed in all, including those in flight at the deadline. */
  readonly total: number;
  readonly seconds: number;
  /** Per completed operation in the window, ms: the POST for a sign-in, the verify call for argon2. */
  readonly latenciesMs: number[];
}

/**
 * `concurrency` loops, each starting one operation after another until the
 * deadline; the in-flight ones are awaited (so the next run starts on an
 * idle server) but count only in `total`.
 */
async function drive(concurrency: number, seconds: number, operation: (slot: number) => Promise<number>): Promise<Window> {
  const start = performance.now();
  const deadline = start + seconds * 1000;
  const latenciesMs: number[] = [];
  let completed = 0;
  let total = 0;
  let failed = false;
  // allSettled, not all: on a failure every loop stops and has finished
  // before the caller goes on (to stop the servers, say).
  const loops = await Promise.allSettled(
    Array.from({ length: concurrency }, async (_, slot) => {
      while (performance.now() < deadline && !failed) {
        const latencyMs = await operation(slot).catch((error: unknown) => {
          failed = true;
          throw error;
        });
        total += 1;
        if (performance.now() <= deadline) {
          completed += 1;
          latenciesMs.push(latencyMs);
        }
      }
    }),
  );
  const failure = loops.find((loop) => loop.status === 'rejected');
  if (failure !== undefined) throw failure.reason;
  return { completed, total, seconds, latenciesMs };
}

interface Side {
  readonly name: string;
  readonly child: Child;
  run(concurrency: number, seconds: number): Promise<Window>;
  cleanup?: () => Promise<void>;
}

interface Run {
  readonly perSecond: number;
  readonly completed: number;
  readonly latencyMs: { readonly p50: number; readonly p99: number };
  /** The side's process CPU time (user + system) per operation completed; null where /proc is missing. */
  readonly cpuMicrosPerOperation: number | null;
  /** This process's CPU per sign-in (the HTTP clients); argon2 runs in its child and has none. */
  readonly clientCpuMicrosPerOperation: number | null;
}

function settings() {
  const threadPool = Number(process.env['UV_THREADPOOL_SIZE']) || 4;
  const concurrencies = options('concurrency').map(Number);
  if (concurrencies.some((value) => !Number.isSafeInteger(value) || value <= 0)) throw new Error('--concurrency must be a positive integer');
  return {
    rounds: positiveInteger('rounds', 5),
    durationSeconds: positiveInteger('duration', 5),
    warmupSeconds: positiveInteger('warmup', 1),
    concurrencies: concurrencies.length > 0 ? concurrencies : [...new Set([threadPool, 8])],
    threadPool,
    databaseUrl: option('database') ?? (process.env['PORTCULLIS_TEST_DATABASE_URL'] || undefined),
    redisUrl: option('redis') ?? (process.env['PORTCULLIS_TEST_REDIS_URL'] || undefined),
    // node:sqlite prints an ExperimentalWarning on Node 24; silence it in
    // every child alike so the flags stay identical.
    nodeFlags: ['--disable-warning=ExperimentalWarning', ...options('node-flag')],
    portcullisEnv: envOptions(),
  };
}

async function main(): Promise<void> {
  const config = settings();
  const sideNames = ['argon2', 'embedded', ...(config.databaseUrl !== undefined || config.redisUrl !== undefined ? [[config.databaseUrl && 'postgres', config.redisUrl && 'redis'].filter(Boolean).join('+')] : [])];
  // Whatever ends this process, its children go with it (./children.ts).
  process.once('SIGINT', () => process.exit(130));
  const budgetMs = (config.rounds * config.concurrencies.length * sideNames.length * (config.durationSeconds + config.warmupSeconds + 2) + 120) * 1000;
  giveUpAfter('login', budgetMs);
  // Every child gets the same environment (the thread pool size, notably).
  const { baseEnv, portcullisEnv, argon2: parameters } = portcullisChildEnvironment(config.portcullisEnv);

  const sides: Side[] = [];
  try {
    const worker = await startChild('argon2', [import.meta.filename, '--argon2-worker', '--parameters', JSON.stringify(parameters)], baseEnv, /^ready /, config.nodeFlags, STARTUP_TIMEOUT_MS);
    sides.push({ name: 'argon2', child: worker, run: (concurrency, seconds) => runWorker(worker, concurrency, seconds) });
    const accounts = Math.max(...config.concurrencies);
    sides.push(await startServerSide('embedded', accounts, portcullisEnv, config.nodeFlags));
    if (sideNames.length > 2) sides.push(await startServerSide(sideNames[2]!, accounts, portcullisEnv, config.nodeFlags, config.databaseUrl, config.redisUrl));

    console.log(
      `sign-ins (GET + POST /login) vs argon2id verify (m=${parameters.memoryCostKiB} KiB, t=${parameters.timeCost}, p=${parameters.parallelism}; ${worker.ready.slice(6)}): ` +
        `${config.rounds} rounds of ${config.durationSeconds} s per side and concurrency (after ${config.warmupSeconds} s warm-up), ` +
        `concurrency ${config.concurrencies.join(', ')}, libuv thread pool ${config.threadPool}, sides ${sides.map((s) => s.name).join(', ')}` +
        (Object.keys(config.portcullisEnv).length > 0 ? `, portcullis env ${JSON.stringify(config.portcullisEnv)}` : ''),
    );

    const rounds: { round: number; concurrency: number; order: string[]; runs: Record<string, Run> }[] = [];
    for (let round = 1; round <= config.rounds; round++) {
      const order = round % 2 === 1 ? sides : [...sides].reverse();
      for (const concurrency of config.concurrencies) {
        const runs: Record<string, Run> = {};
        for (const side of order) {
          await side.run(concurrency, config.warmupSeconds);
          runs[side.name] = await measure(side, concurrency, config.durationSeconds);
        }
        rounds.push({ round, concurrency, order: order.map((s) => s.name), runs });
      }
      process.stderr.write(`round ${round}/${config.rounds} done\n`);
    }

    const summaries = config.concurrencies.map((concurrency) => summarise(concurrency, rounds.filter((r) => r.concurrency === concurrency), sides.map((s) => s.name)));
    for (const summary of summaries) print(summary);
    const file = writeResult('login', {
      benchmark: 'login',
      at: new Date().toISOString(),
      machine: machine(),
      settings: { ...config, databaseUrl: config.databaseUrl !== undefined, redisUrl: config.redisUrl !== undefined, parameters },
      rounds,
      summaries,
      goal: GOAL,
    });
    console.log(`wrote ${file}`);
  } finally {
    await Promise.all(sides.map((side) => side.child.stop()));
    for (const side of sides) await side.cleanup?.();
  }
}

async function runWorker(worker: Child, concurrency: number, seconds: number): Promise<Window> {
  const answer = new Promise<Window>((resolve, reject) => {
    const onMessage = (message: { type: string; window?: Window; message?: string }) => {
      worker.process.off('message', onMessage);
      if (message.type === 'window') resolve(message.window!);
      else reject(new Error(`argon2 worker: ${message.message}`));
    };
    worker.process.on('message', onMessage);
  });
  worker.process.send({ type: 'run', concurrency, seconds });
  return answer;
}

/** A Portcullis child with the bench account; on Postgres and Redis when their URLs are given, in a schema and key prefix of its own. */
async function startServerSide(name: string, accounts: number, env: NodeJS.ProcessEnv, nodeFlags: readonly string[], databaseUrl?: string, redisUrl?: string): Promise<Side> {
  const emails = Array.from({ length: accounts }, (_, slot) => email(slot));
  const stores = await ownStores(databaseUrl, redisUrl);
  const serverEnv: NodeJS.ProcessEnv = { ...env, BENCH_ACCOUNT_EMAILS: emails.join(','), BENCH_ACCOUNT_PASSWORD: PASSWORD, ...stores.env };
  try {
    const server = await startChild(name, [join(import.meta.dirname, 'servers', 'portcullis-account.ts')], serverEnv, URL_LINE, nodeFlags, STARTUP_TIMEOUT_MS);
    const base = server.ready;
    return {
      name,
      child: server,
      async run(concurrency, seconds) {
        // One keep-alive connection per client, new for each run: the
        // server closes idle ones while the other sides run.
        const agents = Array.from({ length: concurrency }, () => new Agent({ keepAlive: true, maxSockets: 1 }));
        try {
          return await drive(concurrency, seconds, async (slot) => (await signIn(agents[slot]!, base, email(slot), PASSWORD)).postMs);
        } finally {
          for (const agent of agents) agent.destroy();
        }
      },
      cleanup: stores.cleanup,
    };
  } catch (error) {
    await stores.cleanup();
    throw error;
  }
}


async function measure(side: Side, concurrency: number, seconds: number): Promise<Run> {
  const cpuBefore = cpuMicros(side.child.pid);
  const clientBefore = process.cpuUsage();
  const window = await side.run(concurrency, seconds);
  const client = process.cpuUsage(clientBefore);
  const cpuAfter = cpuMicros(side.child.pid);
  return {
    perSecond: round2(window.completed / window.seconds),
    completed: window.completed,
    latencyMs: { p50: round2(percentile(window.latenciesMs, 50)), p99: round2(percentile(window.latenciesMs, 99)) },
    // Every operation the side did in the run, in flight at the deadline too.
    cpuMicrosPerOperation: cpuBefore === null || cpuAfter === null ? null : Math.round((cpuAfter - cpuBefore) / window.total),
    clientCpuMicrosPerOperation: side.name === 'argon2' ? null : Math.round((client.user + client.system) / window.total),
  };
}

interface SideSummary {
  readonly perSecond: number;
  readonly latencyMs: { readonly p50: number; readonly p99: number };
  readonly cpuMicrosPerOperation: number | null;
  readonly clientCpuMicrosPerOperation: number | null;
  /** Login sides: median logins/s ÷ median verifies/s, and the per-round ratios. */
  readonly ratio?: number;
  readonly roundRatios?: number[];
  /** Login sides: argon2 CPU per verify ÷ server CPU per sign-in (the same question, asked of CPU time). */
  readonly cpuRatio?: number | null;
}

interface Summary {
  readonly concurrency: number;
  readonly rounds: { round: number; order: string[]; runs: Record<string, Run> }[];
  readonly medians: Record<string, SideSummary>;
}

function medianOrNull(values: readonly (number | null)[]): number | null {
  return values.includes(null) ? null : Math.round(median(values as number[]));
}

function summarise(concurrency: number, rounds: Summary['rounds'], names: readonly string[]): Summary {
  const medians: Record<string, SideSummary> = {};
  for (const name of names) {
    const runs = rounds.map((r) => r.runs[name]!);
    medians[name] = {
      perSecond: round2(median(runs.map((r) => r.perSecond))),
      latencyMs: { p50: round2(median(runs.map((r) => r.latencyMs.p50))), p99: round2(median(runs.map((r) => r.latencyMs.p99))) },
      cpuMicrosPerOperation: medianOrNull(runs.map((r) => r.cpuMicrosPerOperation)),
      clientCpuMicrosPerOperation: medianOrNull(runs.map((r) => r.clientCpuMicrosPerOperation)),
    };
  }
  const raw = medians['argon2']!;
  for (const name of names.filter((n) => n !== 'argon2')) {
    const side = medians[name]!;
    medians[name] = {
      ...side,
      ratio: round2(side.perSecond / raw.perSecond),
      roundRatios: rounds.map((r) => round2(r.runs[name]!.perSecond / r.runs['argon2']!.perSecond)),
      cpuRatio: side.cpuMicrosPerOperation === null || raw.cpuMicrosPerOperation === null ? null : round2(raw.cpuMicrosPerOperation / side.cpuMicrosPerOperation),
    };
  }
  return { concurrency, rounds, medians };
}

function print(summary: Summary): void {
  const names = Object.keys(summary.medians);
  const cells = (run: { perSecond: number; latencyMs: { p50: number; p99: number }; cpuMicrosPerOperation: number | null }) => [
    run.perSecond.toFixed(1),
    `${run.latencyMs.p50.toFixed(1)} / ${run.latencyMs.p99.toFixed(1)}`,
    run.cpuMicrosPerOperation === null ? '-' : String(run.cpuMicrosPerOperation),
  ];
  const header = ['round', 'first'];
  for (const name of names) {
    header.push(name === 'argon2' ? 'argon2 verifies/s' : `${name} logins/s`, 'p50/p99 ms', 'CPU µs/op');
    if (name !== 'argon2') header.push('ratio');
  }
  const row = (label: string, first: string, runs: Record<string, Run | SideSummary>, ratio: (name: string) => number) => [
    label,
    first,
    ...names.flatMap((name) => [...cells(runs[name]!), ...(name === 'argon2' ? [] : [ratio(name).toFixed(2)])]),
  ];
  console.log(`\nconcurrency ${summary.concurrency}:`);
  console.log(
    table(header, [
      ...summary.rounds.map((r) => row(String(r.round), r.order[0]!, r.runs, (name) => r.runs[name]!.perSecond / r.runs['argon2']!.perSecond)),
      row('median', '', summary.medians, (name) => summary.medians[name]!.ratio!),
    ]),
  );
  const raw = summary.medians['argon2']!;
  for (const name of names.filter((n) => n !== 'argon2')) {
    const side = summary.medians[name]!;
    const spread = `${Math.min(...side.roundRatios!).toFixed(2)} to ${Math.max(...side.roundRatios!).toFixed(2)}`;
    console.log(
      `${name}: logins/s ÷ argon2 verifies/s (of medians) = ${side.ratio!.toFixed(2)} (rounds ${spread}); aim >= ${GOAL}: ${side.ratio! >= GOAL ? 'met' : 'NOT met'}` +
        (side.cpuMicrosPerOperation !== null && raw.cpuMicrosPerOperation !== null
          ? `; CPU per op: argon2 ${raw.cpuMicrosPerOperation} µs ÷ server ${side.cpuMicrosPerOperation} µs = ${side.cpuRatio!.toFixed(2)}`
          : '') +
        (side.clientCpuMicrosPerOperation !== null ? `; HTTP clients ${side.clientCpuMicrosPerOperation} µs per sign-in` : ''),
    );
  }
}


/** The raw side's child process: verify in `concurrency` loops on request. */
async function argon2Worker(): Promise<void> {
  const parameters = JSON.parse(option('parameters', '{}')) as Argon2Parameters;
  const phc = await argon2Hash(PASSWORD, { algorithm: ARGON2ID, memoryCost: parameters.memoryCostKiB, timeCost: parameters.timeCost, parallelism: parameters.parallelism, outputLen: 32 });
  process.on('message', (message: { type?: string; concurrency?: number; seconds?: number }) => {
    if (message.type !== 'run') return;
    drive(message.concurrency!, message.seconds!, async () => {
      const start = performance.now();
      if (!(await argon2Verify(phc, PASSWORD))) throw new Error('verify answered false for the right password');
      return performance.now() - start;
    }).then(
      (window) => process.send?.({ type: 'window', window }),
      (error: unknown) => process.send?.({ type: 'error', message: String(error) }),
    );
  });
  process.once('disconnect', () => process.exit(0));
  process.stdout.write(`ready ${phc.slice(0, phc.lastIndexOf('$'))}\n`);
}

if (process.argv.includes('--argon2-worker')) await argon2Worker();
else await main();
