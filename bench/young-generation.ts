/**
 * What does fixing V8's young generation cost? The server ships with
 * `--min-semi-space-size=16 --max-semi-space-size=16` (package.json's start
 * script; README "Memory"), so its memory does not climb for the first half
 * hour as V8 grows the young generation (bench/soak.ts). A smaller young
 * generation means more frequent scavenges: this measures their price on the
 * two requests an authorization server answers most, side by side in one run.
 *
 *   node --disable-warning=ExperimentalWarning bench/young-generation.ts
 *     [--rounds 5] [--duration 5] [--warmup 1]
 *     [--connections 50] [--pipelining 1]
 *
 * Sides, each a child process running servers/portcullis-oauth.ts (the
 * default config on its embedded SQLite file, the same clients):
 * - shipped: the node flags `npm start` uses (test/support/process.ts
 *   SERVER_NODE_FLAGS);
 * - v8-defaults: the same without the semi-space flags, so V8 sizes the
 *   young generation itself (up to 32 MB semi-spaces on this Node).
 * Workloads (autocannon, every answer must be 200): POST /token
 * client_credentials with a resource (a signed JWT access token), and POST
 * /introspect of a client_credentials token. Each measured run follows a
 * warm-up of the same side and workload; the order of the sides flips every
 * round (ABBA). Reported per workload: medians of rounds of requests/s,
 * latency p50 / p99, server CPU per request, and the ratio shipped /
 * v8-defaults; and each side's RSS and new-space size at the end.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cpuMicros, startChild, type Child } from './children.ts';
import { basic, type ClientCredentials, formPostLoad, giveUpAfter, machine, median, percentile, portcullisChildEnvironment, postForm, round2, table, writeResult, loadRoundOptions } from './lib.ts';
import { SERVER_NODE_FLAGS } from '../test/support/process.ts';

const RESOURCE = 'https://api.bench.example/';
const API_SCOPE = 'api:read';
const READY = /^ready \{/;
const STARTUP_TIMEOUT_MS = 60_000;
const SEMI_SPACE_FLAG = /^--(min|max)-semi-space-size=/;

const settings = {
  ...loadRoundOptions(),
};

const SIDES = [
  { name: 'shipped', nodeFlags: SERVER_NODE_FLAGS },
  { name: 'v8-defaults', nodeFlags: SERVER_NODE_FLAGS.filter((flag) => !SEMI_SPACE_FLAG.test(flag)) },
] as const;
type SideName = (typeof SIDES)[number]['name'];

type Workload = 'cc' | 'introspect';
const WORKLOADS: readonly Workload[] = ['cc', 'introspect'];
const LABELS: Record<Workload, string> = { cc: 'client_credentials tokens/s', introspect: 'introspections/s' };

interface Side {
  readonly name: SideName;
  readonly child: Child;
  readonly url: string;
  readonly service: ClientCredentials;
}

interface Run {
  readonly perSecond: number;
  readonly latencyMs: { readonly p50: number; readonly p99: number };
  readonly cpuMicrosPerRequest: number | null;
}

async function ccToken(side: Side, resource: boolean): Promise<string> {
  const answer = await postForm(undefined, new URL('/token', side.url), { grant_type: 'client_credentials', scope: API_SCOPE, ...(resource && { resource: RESOURCE }) }, side.service);
  if (answer.status !== 200 || typeof answer.json['access_token'] !== 'string') throw new Error(`${side.name}: client_credentials answered ${answer.status} ${JSON.stringify(answer.json)}`);
  return answer.json['access_token'];
}

async function run(side: Side, workload: Workload, seconds: number): Promise<Run> {
  const [path, body] =
    workload === 'cc'
      ? ['/token', new URLSearchParams({ grant_type: 'client_credentials', scope: API_SCOPE, resource: RESOURCE }).toString()]
      : ['/introspect', new URLSearchParams({ token: await ccToken(side, false) }).toString()];
  const cpuBefore = cpuMicros(side.child.pid);
  const { result, latencies } = await formPostLoad({ label: `${side.name} ${path}`, url: side.url + path, body, authorization: basic(side.service), connections: settings.connections, pipelining: settings.pipelining, seconds });
  const cpuAfter = cpuMicros(side.child.pid);
  return {
    perSecond: Math.round(result.requests.total / result.duration),
    latencyMs: { p50: round2(percentile(latencies, 50)), p99: round2(percentile(latencies, 99)) },
    cpuMicrosPerRequest: cpuBefore === null || cpuAfter === null ? null : round2((cpuAfter - cpuBefore) / result.requests.total),
  };
}

/** VmRSS of a process, in MB (2^20 bytes), from /proc; null where there is none. */
function rssMb(pid: number): number | null {
  try {
    const kib = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return kib === undefined ? null : round2(Number(kib) / 1024);
  } catch {
    return null;
  }
}

/** The new space's capacity and committed size, in MB, from the side's /metrics (prom-client's heap-space gauges). */
async function newSpaceMb(side: Side): Promise<{ capacity: number; committed: number }> {
  const text = await (await fetch(new URL('/metrics', side.url))).text();
  const gauge = (name: string) => Number(new RegExp(`^portcullis_nodejs_heap_space_size_${name}_bytes\\{space="new"\\} (\\d+)$`, 'm').exec(text)?.[1]);
  return { capacity: round2((gauge('used') + gauge('available')) / 2 ** 20), committed: round2(gauge('total') / 2 ** 20) };
}

async function main(): Promise<void> {
  process.once('SIGINT', () => process.exit(130));
  giveUpAfter('young-generation', (settings.rounds * WORKLOADS.length * 2 * (settings.durationSeconds + settings.warmupSeconds + 3) + 180) * 1000);
  const { portcullisEnv, argon2 } = portcullisChildEnvironment({});
  const setup = { emails: [], password: 'correct horse battery staple', redirectUri: 'http://127.0.0.1:9/callback', resource: RESOURCE, apiScope: API_SCOPE, consent: 'remembered', argon2 };
  const sides: Side[] = [];
  try {
    for (const { name, nodeFlags } of SIDES) {
      const child = await startChild(name, [join(import.meta.dirname, 'servers', 'portcullis-oauth.ts')], { ...portcullisEnv, BENCH_OAUTH: JSON.stringify(setup) }, READY, nodeFlags, STARTUP_TIMEOUT_MS);
      const ready = JSON.parse(child.ready.slice('ready '.length)) as { url: string; service: ClientCredentials };
      sides.push({ name, child, url: ready.url, service: ready.service });
    }
    console.log(
      `young generation: ${SIDES.map((side) => `${side.name} (node ${side.nodeFlags.join(' ')})`).join(' against ')}; ` +
        `${settings.rounds} rounds of ${settings.durationSeconds} s per side and workload (after ${settings.warmupSeconds} s warm-up), ABBA; ` +
        `autocannon ${settings.connections} connections, pipelining ${settings.pipelining}`,
    );

    const rounds: { round: number; order: SideName[]; runs: Record<Workload, Record<SideName, Run>> }[] = [];
    for (let round = 1; round <= settings.rounds; round++) {
      const order = round % 2 === 1 ? sides : [...sides].reverse();
      const runs = {} as Record<Workload, Record<SideName, Run>>;
      for (const workload of WORKLOADS) {
        const bySide = {} as Record<SideName, Run>;
        for (const side of order) {
          await run(side, workload, settings.warmupSeconds);
          bySide[side.name] = await run(side, workload, settings.durationSeconds);
        }
        runs[workload] = bySide;
      }
      rounds.push({ round, order: order.map((side) => side.name), runs });
      process.stderr.write(`round ${round}/${settings.rounds} done\n`);
    }

    const summaries = WORKLOADS.map((workload) => {
      const medians = Object.fromEntries(
        sides.map((side) => {
          const runs = rounds.map((r) => r.runs[workload][side.name]);
          const cpu = runs.map((r) => r.cpuMicrosPerRequest);
          return [
            side.name,
            {
              perSecond: median(runs.map((r) => r.perSecond)),
              latencyMs: { p50: round2(median(runs.map((r) => r.latencyMs.p50))), p99: round2(median(runs.map((r) => r.latencyMs.p99))) },
              cpuMicrosPerRequest: cpu.includes(null) ? null : round2(median(cpu as number[])),
            },
          ];
        }),
      ) as Record<SideName, Run>;
      const ratios = rounds.map((r) => r.runs[workload]['shipped'].perSecond / r.runs[workload]['v8-defaults'].perSecond);
      return { workload, medians, ratio: round2(medians['shipped'].perSecond / medians['v8-defaults'].perSecond), ratioRange: [round2(Math.min(...ratios)), round2(Math.max(...ratios))] };
    });
    const memory = Object.fromEntries(await Promise.all(sides.map(async (side) => [side.name, { rssMb: rssMb(side.child.pid), newSpaceMb: await newSpaceMb(side) }] as const)));

    const cells = (r: Run) => [r.perSecond, `${r.latencyMs.p50} / ${r.latencyMs.p99}`, r.cpuMicrosPerRequest === null ? '-' : r.cpuMicrosPerRequest.toFixed(1)];
    console.log(
      table(
        ['workload', 'shipped /s', 'p50/p99 ms', 'CPU µs/req', 'v8-defaults /s', 'p50/p99 ms', 'CPU µs/req', 'shipped / v8-defaults (rounds)'],
        summaries.map((s) => [LABELS[s.workload], ...cells(s.medians['shipped']), ...cells(s.medians['v8-defaults']), `${s.ratio.toFixed(2)} (${s.ratioRange[0]!.toFixed(2)} to ${s.ratioRange[1]!.toFixed(2)})`]),
      ),
    );
    for (const side of sides) {
      const m = memory[side.name]!;
      console.log(`${side.name} at the end: RSS ${m.rssMb ?? '-'} MB, new space capacity ${m.newSpaceMb.capacity} MB, committed ${m.newSpaceMb.committed} MB`);
    }
    const file = writeResult('young-generation', { benchmark: 'young-generation', at: new Date().toISOString(), machine: machine(), settings: { ...settings, sides: SIDES }, rounds, summaries, memory });
    console.log(`wrote ${file}`);
  } finally {
    await Promise.all(sides.map((side) => side.child.stop()));
  }
}

await main();
