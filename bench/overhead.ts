/**
 * What does the Portcullis stack cost per request? Throughput and latency of
 * GET /healthz on a full Portcullis (embedded SQLite, log level warn, every
 * hook and header it adds) against a bare Fastify app sending the same body.
 * The goal: Portcullis keeps >= 80% of the bare app's requests per second.
 *
 *   node bench/overhead.ts [--rounds 5] [--duration 5] [--warmup 1]
 *     [--connections 50] [--pipelining 1]
 *     [--env PORTCULLIS_KEY=value ...]   extra config for the Portcullis child
 *     [--node-flag --cpu-prof ...]       extra node flags for BOTH children
 *     [--server path/to/variant.ts]      profiling: run this instead of servers/portcullis.ts
 *
 * Each server runs in its own child process with the same node flags, so
 * neither shares an event loop or heap with autocannon (which runs here).
 * Runs alternate bare/portcullis, and the order flips every round (ABBA), so
 * slow drift of this shared machine lands on both sides evenly; medians over
 * rounds discard the odd disturbed run.
 */
import { join } from 'node:path';
import autocannon from 'autocannon';
import { cpuMicros, startChild, URL_LINE } from './children.ts';
import { table, type LoadRun, machine, median, envOptions, option, options, round2, summariseLoad, writeResult, loadRoundOptions } from './lib.ts';

const settings = {
  ...loadRoundOptions(),
  // Profiling aid: another script in place of servers/portcullis.ts (a
  // variant with one layer removed, say); the bare side never changes.
  server: option('server', join(import.meta.dirname, 'servers', 'portcullis.ts')),
  // node:sqlite still prints an ExperimentalWarning on Node 24; silence it in
  // both children alike so the flags stay identical.
  nodeFlags: ['--disable-warning=ExperimentalWarning', ...options('node-flag')],
  portcullisEnv: envOptions(),
};
const PATH = '/healthz';
const GOAL = 0.8;

interface Server {
  readonly name: string;
  readonly url: string;
  readonly pid: number;
  stop(): Promise<void>;
}

// Whatever ends this process, its servers go with it (./children.ts).
process.once('SIGINT', () => process.exit(130));
// Bounded in time: every run, its warm-up and some slack for startups.
const budgetMs = (settings.rounds * 2 * (settings.durationSeconds + settings.warmupSeconds + 5) + 90) * 1000;
setTimeout(() => {
  console.error(`overhead: gave up after ${budgetMs / 1000} s`);
  process.exit(1);
}, budgetMs).unref();

/** Starts a server script and resolves once it printed its URL. */
async function startServer(name: string, script: string, env: NodeJS.ProcessEnv): Promise<Server> {
  const child = await startChild(name, [script], env, URL_LINE, settings.nodeFlags);
  return { name, url: child.ready, pid: child.pid, stop: () => child.stop() };
}

/** The two must send the same body and type, or the comparison is unfair. */
async function checkSameResponse(bare: Server, portcullis: Server): Promise<void> {
  const [a, b] = await Promise.all([fetch(bare.url + PATH), fetch(portcullis.url + PATH)]);
  const [bodyA, bodyB] = await Promise.all([a.text(), b.text()]);
  if (a.status !== 200 || b.status !== 200 || bodyA !== bodyB || a.headers.get('content-type') !== b.headers.get('content-type')) {
    throw new Error(`responses differ: bare ${a.status} ${bodyA} / portcullis ${b.status} ${bodyB}`);
  }
}

type Run = LoadRun;

async function load(server: Server, durationSeconds: number): Promise<Run> {
  // autocannon's own latency histogram keeps whole milliseconds, too coarse
  // for sub-millisecond loopback answers: record the exact (hrtime) times.
  const latencies: number[] = [];
  const cpuBefore = cpuMicros(server.pid);
  const run = autocannon({
    url: server.url + PATH,
    connections: settings.connections,
    pipelining: settings.pipelining,
    duration: durationSeconds,
  });
  run.on('response', (_client, _status, _bytes, responseTimeMs) => latencies.push(responseTimeMs));
  const result = await run;
  const cpuAfter = cpuMicros(server.pid);
  if (result.errors + result.timeouts + result.non2xx > 0) {
    throw new Error(`${server.name}: ${result.errors} errors, ${result.timeouts} timeouts, ${result.non2xx} non-2xx responses`);
  }
  return summariseLoad(result, latencies, cpuBefore, cpuAfter);
}

async function main(): Promise<void> {
  // A clean environment: no PORTCULLIS_* of the caller's (a database URL, a
  // config file) may change what "default Portcullis" means here.
  const baseEnv = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('PORTCULLIS_')));
  const portcullisEnv = { ...baseEnv, PORTCULLIS_LOG_LEVEL: 'warn', ...settings.portcullisEnv };
  const servers: Server[] = [];
  try {
    const bare = await startServer('bare', join(import.meta.dirname, 'servers', 'bare.ts'), baseEnv);
    servers.push(bare);
    const portcullis = await startServer('portcullis', settings.server, portcullisEnv);
    servers.push(portcullis);
    await checkSameResponse(bare, portcullis);
    console.log(
      `GET ${PATH}: ${settings.rounds} rounds of ${settings.durationSeconds} s per server (after ${settings.warmupSeconds} s warm-up), ` +
        `${settings.connections} connections, pipelining ${settings.pipelining}` +
        (Object.keys(settings.portcullisEnv).length > 0 ? `, portcullis env ${JSON.stringify(settings.portcullisEnv)}` : '') +
        (settings.server.endsWith(join('servers', 'portcullis.ts')) ? '' : `, portcullis side: ${settings.server}`),
    );

    const rounds: { round: number; order: string[]; bare: Run; portcullis: Run; ratio: number }[] = [];
    for (let round = 1; round <= settings.rounds; round++) {
      const order = round % 2 === 1 ? [bare, portcullis] : [portcullis, bare];
      const runs = new Map<string, Run>();
      for (const server of order) {
        await load(server, settings.warmupSeconds);
        runs.set(server.name, await load(server, settings.durationSeconds));
      }
      const entry = { round, order: order.map((s) => s.name), bare: runs.get('bare')!, portcullis: runs.get('portcullis')! };
      rounds.push({ ...entry, ratio: round2(entry.portcullis.requestsPerSecond / entry.bare.requestsPerSecond) });
      process.stderr.write(`round ${round}/${settings.rounds} done\n`);
    }

    const summary = (name: 'bare' | 'portcullis') => {
      const cpu = rounds.map((r) => r[name].cpuMicrosPerRequest);
      return {
        requestsPerSecond: median(rounds.map((r) => r[name].requestsPerSecond)),
        latencyMs: { p50: round2(median(rounds.map((r) => r[name].latencyMs.p50))), p99: round2(median(rounds.map((r) => r[name].latencyMs.p99))) },
        cpuMicrosPerRequest: cpu.includes(null) ? null : round2(median(cpu as number[])),
      };
    };
    const medians = { bare: summary('bare'), portcullis: summary('portcullis') };
    const ratio = round2(medians.portcullis.requestsPerSecond / medians.bare.requestsPerSecond);

    const cells = (run: { requestsPerSecond: number; latencyMs: { p50: number; p99: number }; cpuMicrosPerRequest: number | null }) => [
      run.requestsPerSecond,
      `${run.latencyMs.p50} / ${run.latencyMs.p99}`,
      run.cpuMicrosPerRequest === null ? '-' : run.cpuMicrosPerRequest.toFixed(1),
    ];
    console.log(
      table(
        ['round', 'first', 'bare req/s', 'p50/p99 ms', 'CPU µs/req', 'portcullis req/s', 'p50/p99 ms', 'CPU µs/req', 'ratio'],
        [
          ...rounds.map((r) => [String(r.round), r.order[0]!, ...cells(r.bare), ...cells(r.portcullis), r.ratio.toFixed(2)]),
          ['median', '', ...cells(medians.bare), ...cells(medians.portcullis), ratio.toFixed(2)],
        ],
      ),
    );
    console.log(`ratio portcullis/bare (of medians) = ${ratio.toFixed(2)}; goal >= ${GOAL}: ${ratio >= GOAL ? 'met' : 'NOT met'}`);
    if (medians.bare.cpuMicrosPerRequest !== null && medians.portcullis.cpuMicrosPerRequest !== null) {
      const [bare, portcullis] = [medians.bare.cpuMicrosPerRequest, medians.portcullis.cpuMicrosPerRequest];
      console.log(
        `server CPU per request (medians): bare ${bare.toFixed(1)} µs, portcullis ${portcullis.toFixed(1)} µs: ` +
          `${portcullis >= bare ? '+' : ''}${(portcullis - bare).toFixed(1)} µs (x${(portcullis / bare).toFixed(2)})`,
      );
    }
    const file = writeResult('overhead', { benchmark: 'overhead', at: new Date().toISOString(), machine: machine(), settings, rounds, medians, ratio, goal: GOAL });
    console.log(`wrote ${file}`);
  } finally {
    await Promise.all(servers.map((server) => server.stop()));
  }
}


await main();
