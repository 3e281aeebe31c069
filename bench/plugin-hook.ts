/**
 * What does it cost to put a plugin on the access-token.claims hook? The
 * latency of one call of a trivial claims plugin through the real path,
 * against the same chain with the answer given in process, and against the
 * sandbox's JSON-RPC round trip alone (issue 14, "Measured in bench/").
 *
 *   node --disable-warning=ExperimentalWarning bench/plugin-hook.ts
 *     [--calls 20000] [--warmup 2000] [--block 1000] [--concurrency 4]
 *
 * The plugin (a temporary directory, as an installed copy looks) answers
 * `{ verdict: 'modify', claims: { acme_tier: 'gold' } }` at once. Four ways
 * of getting that answer, each timed per call with performance.now():
 * - in-process: `HookChains.claims('access-token.claims', ...)` over the
 *   bundled chains.cfg, the `plugins.host` slot attached to a dispatcher
 *   that answers in this process (an async function: the chain takes the
 *   same promise path, deadline timer included). The cost of the chain.
 * - Sandbox.call: `startSandbox` on the plugin and `call('hook.access-token.claims',
 *   { context, claims })`: JSON-RPC over the child's pipes, nothing else.
 * - SupervisedPlugin.call: the same through the supervisor (opossum
 *   breaker, deadline, latency window).
 * - plugin via chain: the real path, HookChains.claims with the slot
 *   attached to a PluginHookDispatcher over the SupervisedPlugin (the wire
 *   context, the answer read as untrusted data, then the chain's checks).
 * Every answer is checked (the claim must be there).
 *
 * Sequential calls first (one in flight), then `--concurrency` loops (each
 * call's own latency); `--calls` per way, in blocks of `--block` that rotate
 * between the ways (order reversed every other block) after `--warmup`
 * untimed calls of each. Two plugin children run (the raw sandbox's and the
 * supervisor's), each idle while the other is measured. The table gives
 * p50/p99/max per call, calls/s while the way ran, and CPU per call of this
 * process and of the plugin child. The aim: p99 of the real path <= 1 ms.
 */
import { mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HookChains, PluginSlot, bundledChainSource, type HookAnswer, type PluginDispatcher } from '../src/hooks/index.ts';
import { IDENTITY_HOOKS } from '../src/identity/index.ts';
import { OAUTH_HOOKS } from '../src/oauth/index.ts';
import { PluginHookDispatcher } from '../src/plugins/host/dispatcher.ts';
import { SupervisedPlugin, type SupervisorSettings } from '../src/plugins/host/supervisor.ts';
import { parseManifest } from '../src/plugins/manifest.ts';
import { startSandbox } from '../src/plugins/sandbox/spawn.ts';
import { cpuMicros } from './children.ts';
import { giveUpAfter, machine, percentile, positiveInteger, round2, table, writeResult } from './lib.ts';

const calls = positiveInteger('calls', 20_000);
const warmup = positiveInteger('warmup', 2000);
const block = positiveInteger('block', 1000);
const concurrency = positiveInteger('concurrency', 4);
const AIM_P99_MS = 1;
giveUpAfter('plugin-hook', 15 * 60_000);

// ---------------------------------------------------------------------------
// The plugin, as an installed copy: a directory with its manifest and module.

const MANIFEST = { name: 'bench-claims', version: '1.0.0', entry: 'index.mjs', hooks: ['access-token.claims'], claimsNamespace: 'acme_', limits: { concurrency: 64 } };
const SOURCE = `export const hooks = { 'access-token.claims': () => ({ verdict: 'modify', claims: { acme_tier: 'gold' } }) };\n`;
const root = realpathSync(mkdtempSync(join(tmpdir(), 'portcullis-bench-plugin-hook-')));
process.on('exit', () => rmSync(root, { recursive: true, force: true }));
const directory = join(root, MANIFEST.name);
mkdirSync(directory);
writeFileSync(join(directory, 'portcullis-plugin.json'), JSON.stringify(MANIFEST));
writeFileSync(join(directory, MANIFEST.entry), SOURCE);
const manifest = parseManifest(MANIFEST);

// The host's defaults (src/config/schema.ts), so the supervisor behaves as in a server.
const SETTINGS: SupervisorSettings = { quarantineCrashes: 5, quarantineWindowMs: 60_000, maxMissedDeadlines: 3, breakerResetMs: 5000, restartBackoffMs: 200 };

const CONTEXT = { userId: null, clientId: 'c_bench', grantType: 'client_credentials', scopes: ['api:read'], audience: ['https://api.bench.example/'] };
const ANSWER: HookAnswer = { verdict: 'modify', claims: { acme_tier: 'gold' } };

function chainsWith(dispatcher: PluginDispatcher): HookChains {
  const slot = new PluginSlot();
  slot.attach(dispatcher);
  return HookChains.load({ handlers: [...IDENTITY_HOOKS, ...OAUTH_HOOKS, ...slot.handlers()], source: bundledChainSource() });
}

// In process: the same chain and slot, a dispatcher that answers here.
const inProcess = chainsWith({ serves: (point) => point === 'access-token.claims', run: async () => ANSWER });

// The raw sandbox.
const sandbox = startSandbox({ directory, entry: manifest.entry, limits: { memoryMb: manifest.limits.memoryMb, callTimeoutMs: manifest.limits.deadlineMs } });
const served = await sandbox.ready;
if (!served.includes('access-token.claims')) throw new Error(`the sandbox serves ${served.join(', ')}`);

// The real path: supervisor, dispatcher, slot, chains.
const failures: unknown[] = [];
const supervised = new SupervisedPlugin(
  { name: manifest.name, version: manifest.version, digest: 'bench', directory, manifest },
  { settings: SETTINGS, hostMethods: {}, onEvent: (event) => (event.kind === 'started' || event.kind === 'breaker' ? undefined : failures.push(event)) },
);
supervised.start();
await supervised.whenRunning();
const dispatcher = new PluginHookDispatcher((report) => void failures.push(report));
dispatcher.setPlugins([supervised]);
const viaPlugin = chainsWith(dispatcher);

const WIRE_PARAMS = { context: CONTEXT, claims: {} };
const isGold = (claims: unknown) => (claims as Record<string, unknown> | undefined)?.['acme_tier'] === 'gold';
const chainCall = (chains: HookChains) => async () => {
  const outcome = await chains.claims('access-token.claims', CONTEXT, {});
  if (outcome.refused || !isGold(outcome.claims)) throw new Error(`the chain answered ${JSON.stringify(outcome)}`);
};

interface Way {
  readonly name: string;
  readonly call: () => Promise<void>;
  /** The plugin child this way talks to (its CPU is counted), if any. */
  readonly pid: () => number | undefined;
}
const WAYS: readonly Way[] = [
  { name: 'in-process handler via chain', call: chainCall(inProcess), pid: () => undefined },
  {
    name: 'Sandbox.call (JSON-RPC round trip)',
    call: async () => {
      const answer = (await sandbox.call('hook.access-token.claims', WIRE_PARAMS)) as { claims?: unknown };
      if (!isGold(answer.claims)) throw new Error(`the sandbox answered ${JSON.stringify(answer)}`);
    },
    pid: () => sandbox.pid,
  },
  {
    name: 'SupervisedPlugin.call',
    call: async () => {
      const answer = (await supervised.call('hook.access-token.claims', WIRE_PARAMS)) as { claims?: unknown };
      if (!isGold(answer.claims)) throw new Error(`the supervisor answered ${JSON.stringify(answer)}`);
    },
    pid: () => supervised.status().pid ?? undefined,
  },
  { name: 'plugin via chain (the real path)', call: chainCall(viaPlugin), pid: () => supervised.status().pid ?? undefined },
];

interface Tally {
  readonly latencies: number[];
  wallMs: number;
  hostCpuMicros: number;
  pluginCpuMicros: number | null;
}

/** `count` calls of `way`, `loops` at a time; each call's latency in ms is added to the tally. */
async function runBlock(way: Way, count: number, loops: number, tally: Tally | undefined): Promise<void> {
  const pid = way.pid();
  const pluginBefore = pid === undefined ? null : cpuMicros(pid);
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: loops }, async () => {
      while (next < count) {
        next++;
        const sent = performance.now();
        await way.call();
        tally?.latencies.push(performance.now() - sent);
      }
    }),
  );
  if (tally === undefined) return;
  tally.wallMs += performance.now() - started;
  const cpu = process.cpuUsage(cpuBefore);
  tally.hostCpuMicros += cpu.user + cpu.system;
  const pluginAfter = pid === undefined ? null : cpuMicros(pid);
  if (pluginBefore !== null && pluginAfter !== null) tally.pluginCpuMicros = (tally.pluginCpuMicros ?? 0) + (pluginAfter - pluginBefore);
}

interface Row {
  readonly way: string;
  readonly concurrency: number;
  readonly calls: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  readonly meanMs: number;
  readonly callsPerSecond: number;
  readonly hostCpuMicrosPerCall: number;
  readonly pluginCpuMicrosPerCall: number | null;
}

async function measure(loops: number): Promise<Row[]> {
  for (const way of WAYS) await runBlock(way, warmup, loops, undefined);
  const tallies = WAYS.map((): Tally => ({ latencies: [], wallMs: 0, hostCpuMicros: 0, pluginCpuMicros: null }));
  const blocks = Math.ceil(calls / block);
  for (let index = 0; index < blocks; index++) {
    const size = Math.min(block, calls - index * block);
    const order = WAYS.map((way, position) => ({ way, tally: tallies[position]! }));
    if (index % 2 === 1) order.reverse();
    for (const { way, tally } of order) await runBlock(way, size, loops, tally);
  }
  return WAYS.map((way, position) => {
    const tally = tallies[position]!;
    const n = tally.latencies.length;
    const ms = (value: number) => Math.round(value * 1000) / 1000;
    return {
      way: way.name,
      concurrency: loops,
      calls: n,
      p50Ms: ms(percentile(tally.latencies, 50)),
      p99Ms: ms(percentile(tally.latencies, 99)),
      maxMs: ms(percentile(tally.latencies, 100)),
      meanMs: ms(tally.latencies.reduce((sum, value) => sum + value, 0) / n),
      callsPerSecond: Math.round(n / (tally.wallMs / 1000)),
      hostCpuMicrosPerCall: round2(tally.hostCpuMicros / n),
      pluginCpuMicrosPerCall: tally.pluginCpuMicros === null ? null : round2(tally.pluginCpuMicros / n),
    };
  });
}

const results: Row[] = [];
try {
  console.log(`access-token.claims, trivial plugin: ${calls} calls per way (after ${warmup} warm-up), blocks of ${block} rotating between ways; sequential, then ${concurrency} at a time`);
  results.push(...(await measure(1)));
  results.push(...(await measure(concurrency)));
} finally {
  await supervised.close();
  sandbox.close();
  await sandbox.exited;
}
if (failures.length > 0) throw new Error(`the plugin failed during the run: ${JSON.stringify(failures.slice(0, 5))}`);

const f3 = (value: number) => value.toFixed(3);
for (const loops of [1, concurrency]) {
  const rows = results.filter((row) => row.concurrency === loops);
  console.log(`\n${loops === 1 ? 'sequential (1 in flight)' : `${loops} in flight`}:`);
  console.log(
    table(
      ['way', 'p50 ms', 'p99 ms', 'max ms', 'mean ms', 'calls/s', 'host CPU µs/call', 'plugin CPU µs/call'],
      rows.map((row) => [row.way, f3(row.p50Ms), f3(row.p99Ms), f3(row.maxMs), f3(row.meanMs), String(row.callsPerSecond), row.hostCpuMicrosPerCall.toFixed(1), row.pluginCpuMicrosPerCall === null ? '-' : row.pluginCpuMicrosPerCall.toFixed(1)]),
    ),
  );
  const real = rows.at(-1)!;
  const local = rows[0]!;
  const raw = rows[1]!;
  console.log(
    `process boundary (real path - in-process): p50 +${f3(real.p50Ms - local.p50Ms)} ms, p99 +${f3(real.p99Ms - local.p99Ms)} ms; ` +
      `host side beyond the raw round trip: p50 +${f3(real.p50Ms - raw.p50Ms)} ms; ` +
      `real path p99 ${f3(real.p99Ms)} ms (aim <= ${AIM_P99_MS} ms: ${real.p99Ms <= AIM_P99_MS ? 'met' : 'NOT met'})`,
  );
}
const file = writeResult('plugin-hook', { benchmark: 'plugin-hook', at: new Date().toISOString(), machine: machine(), settings: { calls, warmup, block, concurrency, manifest: MANIFEST }, results });
console.log(`wrote ${file}`);
