/**
 * What does a claims plugin cost the token endpoint? client_credentials
 * tokens per second with a trivial `access-token.claims` plugin enabled,
 * against none, on the same server in the same run (issue 14, "Measured
 * in bench/").
 *
 *   node --disable-warning=ExperimentalWarning bench/plugin-tokens.ts
 *     [--rounds 5] [--duration 4] [--warmup 1] [--connections 50] [--pipelining 1]
 *     [--env PORTCULLIS_X=y ...] [--node-flag --cpu-prof ...]
 *
 * One Portcullis child (servers/portcullis-plugins.ts: the default config,
 * embedded SQLite, a fixed free port) with the plugin `bench-claims`
 * installed from a signed package. Between runs the bench switches it over
 * IPC through the registry (setEnabled, then the host's reconcile, then
 * waits until its process runs): "on" is bench-claims enabled and running,
 * "off" is no plugin enabled. Before and after every run one token is
 * requested and decoded: its `acme_tier` claim must be "gold" when on and
 * absent when off, or the run stops.
 *
 * The load is oauth.ts's client_credentials workload: autocannon,
 * `--connections` connections, `POST /token` (Basic auth,
 * `grant_type=client_credentials&scope=api:read&resource=<api>`); every
 * answer must be a 200. Each round measures both states, each run after a
 * warm-up in the same state, the order flipping every round (ABBA). Reported:
 * median tokens/s on and off, their ratio (aim >= 0.8), the rounds' range
 * and the median of the rounds' ratios, latency, CPU per token of the server
 * and of the plugin's process, and the involuntary context switches of the
 * server's main thread per token (/proc, Linux); after each on run, the
 * plugin call's p50/p99 as its supervisor timed it (PluginHost.status()).
 */
import { readFileSync } from 'node:fs';
import { cpuMicros } from './children.ts';
import { table, formPostLoad, giveUpAfter, machine, median, envOptions, options, percentile, round2, writeResult, loadRoundOptions } from './lib.ts';
import { TOKEN_BODY, startPluginServer, type PluginServer } from './plugin-server.ts';

const AIM = 0.8;
const PLUGIN = 'bench-claims';
const STATES = ['off', 'on'] as const;
type State = (typeof STATES)[number];

const settings = {
  ...loadRoundOptions({ durationSeconds: 4 }),
  nodeFlags: ['--disable-warning=ExperimentalWarning', ...options('node-flag')],
  env: envOptions(),
};
giveUpAfter('plugin-tokens', (settings.rounds * 2 * (settings.durationSeconds + settings.warmupSeconds + 5) + 120) * 1000);

interface Run {
  readonly perSecond: number;
  readonly tokens: number;
  readonly latencyMs: { readonly p50: number; readonly p99: number };
  readonly serverCpuMicrosPerToken: number | null;
  readonly pluginCpuMicrosPerToken: number | null;
  /** The server's main thread: times the kernel took the core from it (involuntary context switches) per token; null without /proc. */
  readonly preemptionsPerToken: number | null;
  /** On runs: the supervisor's own view at the end of the run (its last 2048 calls' p50/p99, failures since enabled). */
  pluginCalls?: { readonly calls: number; readonly failures: number; readonly p50Ms: number | null; readonly p99Ms: number | null };
}

/** Switches the state and checks a token says so; the plugin's pid when on. */
async function enter(server: PluginServer, state: State): Promise<number | null> {
  const pid = await server.enable(state === 'on' ? PLUGIN : null);
  await check(server, state, 'before');
  return pid;
}

async function check(server: PluginServer, state: State, when: string): Promise<void> {
  const answer = await server.token();
  if (answer.status !== 200 || answer.claims === null) throw new Error(`${when} the ${state} run: the token request answered ${answer.status} ${JSON.stringify(answer.body)}`);
  const tier = answer.claims['acme_tier'];
  if (state === 'on' ? tier !== 'gold' : tier !== undefined) throw new Error(`${when} the ${state} run: the token's acme_tier is ${JSON.stringify(tier)}`);
}

/** The involuntary context switches of a process's main thread (Linux /proc), or null. */
function preemptions(pid: number): number | null {
  try {
    const match = /^nonvoluntary_ctxt_switches:\s*(\d+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match === null ? null : Number(match[1]);
  } catch {
    return null;
  }
}

async function load(server: PluginServer, seconds: number, pluginPid: number | null): Promise<Run> {
  const serverBefore = cpuMicros(server.child.pid);
  const preemptedBefore = preemptions(server.child.pid);
  const pluginBefore = pluginPid === null ? null : cpuMicros(pluginPid);
  const { result, latencies } = await formPostLoad({ label: '/token', url: `${server.url}/token`, body: TOKEN_BODY, authorization: server.authorization, connections: settings.connections, pipelining: settings.pipelining, seconds });
  const serverAfter = cpuMicros(server.child.pid);
  const preemptedAfter = preemptions(server.child.pid);
  const pluginAfter = pluginPid === null ? null : cpuMicros(pluginPid);
  const total = result.requests.total;
  return {
    perSecond: Math.round(total / result.duration),
    tokens: total,
    latencyMs: { p50: round2(percentile(latencies, 50)), p99: round2(percentile(latencies, 99)) },
    serverCpuMicrosPerToken: serverBefore === null || serverAfter === null ? null : round2((serverAfter - serverBefore) / total),
    pluginCpuMicrosPerToken: pluginBefore === null || pluginAfter === null ? null : round2((pluginAfter - pluginBefore) / total),
    preemptionsPerToken: preemptedBefore === null || preemptedAfter === null ? null : Math.round(((preemptedAfter - preemptedBefore) / total) * 1000) / 1000,
  };
}

interface Round {
  readonly round: number;
  readonly order: State[];
  readonly runs: Record<State, Run>;
}

const server = await startPluginServer('portcullis', settings.env, settings.nodeFlags);
const rounds: Round[] = [];
try {
  console.log(
    `client_credentials tokens/s with the trivial access-token.claims plugin on and off, one server; ${settings.rounds} rounds of ${settings.durationSeconds} s per state ` +
      `(after ${settings.warmupSeconds} s warm-up), ABBA; autocannon ${settings.connections} connections, pipelining ${settings.pipelining}` +
      (Object.keys(settings.env).length > 0 ? `; portcullis env ${JSON.stringify(settings.env)}` : ''),
  );
  for (let round = 1; round <= settings.rounds; round++) {
    const order: State[] = round % 2 === 1 ? ['off', 'on'] : ['on', 'off'];
    const runs = {} as Record<State, Run>;
    for (const state of order) {
      const pid = await enter(server, state);
      await load(server, settings.warmupSeconds, pid);
      runs[state] = await load(server, settings.durationSeconds, pid);
      if (state === 'on') {
        const status = (await server.status()).plugins.find((plugin) => plugin.name === PLUGIN);
        if (status === undefined || status.state !== 'running' || status.failures > 0 || status.restarts > 0) throw new Error(`the plugin after the run: ${JSON.stringify(status)}`);
        runs[state].pluginCalls = { calls: status.calls, failures: status.failures, p50Ms: status.p50Ms, p99Ms: status.p99Ms };
      }
      await check(server, state, 'after');
    }
    rounds.push({ round, order, runs });
    process.stderr.write(`round ${round}/${settings.rounds} done\n`);
  }
  const crashes = server.events.filter((event) => event.event === 'plugin.crashed' || event.event === 'plugin.quarantined');
  if (crashes.length > 0) throw new Error(`the plugin crashed during the run: ${JSON.stringify(crashes)}`);
} finally {
  await server.stop();
}

const medianOf = (state: State, pick: (run: Run) => number | null) => {
  const values = rounds.map((r) => pick(r.runs[state]));
  return values.includes(null) ? null : round2(median(values as number[]));
};
const summary = Object.fromEntries(
  STATES.map((state) => [
    state,
    {
      perSecond: medianOf(state, (run) => run.perSecond)!,
      latencyMs: { p50: medianOf(state, (run) => run.latencyMs.p50)!, p99: medianOf(state, (run) => run.latencyMs.p99)! },
      serverCpuMicrosPerToken: medianOf(state, (run) => run.serverCpuMicrosPerToken),
      pluginCpuMicrosPerToken: medianOf(state, (run) => run.pluginCpuMicrosPerToken),
      preemptionsPerToken: medianOf(state, (run) => run.preemptionsPerToken),
    },
  ]),
) as Record<State, { perSecond: number; latencyMs: { p50: number; p99: number }; serverCpuMicrosPerToken: number | null; pluginCpuMicrosPerToken: number | null; preemptionsPerToken: number | null }>;
const ratio = round2(summary.on.perSecond / summary.off.perSecond);
const roundRatios = rounds.map((r) => round2(r.runs.on.perSecond / r.runs.off.perSecond));

const cpu = (value: number | null) => (value === null ? '-' : value.toFixed(1));
const cells = (run: { perSecond: number; latencyMs: { p50: number; p99: number }; serverCpuMicrosPerToken: number | null; pluginCpuMicrosPerToken: number | null }, withPlugin: boolean) => [
  String(Math.round(run.perSecond)),
  `${run.latencyMs.p50.toFixed(1)} / ${run.latencyMs.p99.toFixed(1)}`,
  cpu(run.serverCpuMicrosPerToken),
  ...(withPlugin ? [cpu(run.pluginCpuMicrosPerToken)] : []),
];
console.log(
  `\n${table(
    ['round', 'first', 'off tokens/s', 'p50/p99 ms', 'server CPU µs/token', 'on tokens/s', 'p50/p99 ms', 'server CPU µs/token', 'plugin CPU µs/token', 'on/off'],
    [
      ...rounds.map((r) => [String(r.round), r.order[0]!, ...cells(r.runs.off, false), ...cells(r.runs.on, true), (r.runs.on.perSecond / r.runs.off.perSecond).toFixed(2)]),
      ['median', '', ...cells(summary.off, false), ...cells(summary.on, true), ratio.toFixed(2)],
    ],
  )}`,
);
console.log(
  `on / off (of medians) = ${ratio.toFixed(2)} (rounds ${Math.min(...roundRatios).toFixed(2)} to ${Math.max(...roundRatios).toFixed(2)}, median of the rounds' ratios ${median(roundRatios).toFixed(2)}); ` +
    `aim >= ${AIM}: ${ratio >= AIM ? 'met' : 'NOT met'}`,
);
if (summary.on.serverCpuMicrosPerToken !== null && summary.off.serverCpuMicrosPerToken !== null) {
  const extra = summary.on.serverCpuMicrosPerToken - summary.off.serverCpuMicrosPerToken;
  console.log(`CPU per token: server +${extra.toFixed(1)} µs with the plugin on, plus ${cpu(summary.on.pluginCpuMicrosPerToken)} µs in the plugin's process`);
}
console.log(`server main thread preempted (involuntary context switches) per token: off ${summary.off.preemptionsPerToken ?? '-'}, on ${summary.on.preemptionsPerToken ?? '-'}`);
const supervisorP50 = median(rounds.map((r) => r.runs.on.pluginCalls?.p50Ms ?? Number.NaN));
const supervisorP99 = median(rounds.map((r) => r.runs.on.pluginCalls?.p99Ms ?? Number.NaN));
console.log(`the plugin call under this load, as its supervisor timed it (last 2048 calls of each on run, median of runs): p50 ${supervisorP50.toFixed(3)} ms, p99 ${supervisorP99.toFixed(3)} ms; no failures, no restarts`);
const file = writeResult('plugin-tokens', { benchmark: 'plugin-tokens', at: new Date().toISOString(), machine: machine(), settings, rounds, summary, ratio, roundRatios, medianRoundRatio: median(roundRatios), supervisorCallMs: { p50: supervisorP50, p99: supervisorP99 } });
console.log(`wrote ${file}`);
