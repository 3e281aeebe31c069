/**
 * How fast is a token request refused when its claims plugin has crashed?
 * The latency of the 503 against that of a successful token request with
 * no plugin, on the same server in the same run (issue 14, "Measured in
 * bench/").
 *
 *   node --disable-warning=ExperimentalWarning bench/plugin-refuse.ts
 *     [--rounds 4] [--count 500] [--warmup 100] [--crashes 5] [--default-seconds 25]
 *
 * The plugin `bench-crash` (servers/portcullis-plugins.ts, signed and
 * installed through the registry) serves `access-token.claims` with
 * `process.exit(1)`; its onFailure is deny (the default), so a token
 * request it fails is answered 503 temporarily_unavailable. Requests are
 * sequential on one keep-alive connection, `POST /token` as in
 * plugin-tokens.ts, each timed from send to the end of the answer.
 *
 * Part 1, the plugin kept down: a server with `plugins.restartBackoffMs`
 * 60000, so after its first crash the plugin stays down while measured.
 * Each round (the order of the two blocks flipping every round):
 * - ok: no plugin enabled, `--count` requests; each must be a 200;
 * - refused: bench-crash enabled and running, one request that crashes it,
 *   then `--count` requests; each must be a 503 temporarily_unavailable
 *   with Retry-After;
 * - crash detection: `--crashes` times, bench-crash enabled afresh (a new
 *   supervisor, its process running), one request that meets the live
 *   plugin and is refused when its process exits.
 * Part 2, the default settings (restartBackoffMs 200, the breaker, and
 * quarantine after 5 crashes in 1 min): a second server, bench-crash
 * enabled, requests one after another for `--default-seconds`. Reports what
 * the requests got over time, the crashes and the quarantine the server
 * reported, and the refusals' latency, crash detection included.
 * The floor of crash detection, in this process: `--raw-crashes` times, the
 * same plugin in a bare Sandbox (startSandbox, no server, no supervisor),
 * one `Sandbox.call` of its hook, timed until the call rejects
 * (RpcClosedError: the host saw the child's channel close) and until the
 * child's exit event.
 * The aim: refusal p99 <= 50 ms.
 */
import { mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RpcClosedError } from '../src/plugins/sandbox/json-rpc.ts';
import { startSandbox } from '../src/plugins/sandbox/spawn.ts';
import { giveUpAfter, machine, percentile, positiveInteger, round2, table, writeResult } from './lib.ts';
import { FORM, TOKEN_BODY, startPluginServer, type PluginServer } from './plugin-server.ts';

const AIM_P99_MS = 50;
const settings = {
  rounds: positiveInteger('rounds', 4),
  count: positiveInteger('count', 500),
  warmup: positiveInteger('warmup', 100),
  crashes: positiveInteger('crashes', 5),
  defaultSeconds: positiveInteger('default-seconds', 25),
  rawCrashes: positiveInteger('raw-crashes', 20),
};
giveUpAfter('plugin-refuse', 15 * 60_000);
const NODE_FLAGS = ['--disable-warning=ExperimentalWarning'];

interface Answer {
  readonly status: number;
  readonly ms: number;
  /** ms since the epoch when it was sent. */
  readonly sentAt: number;
  readonly body: string;
  readonly retryAfter: string | undefined;
}

function tokenRequest(server: PluginServer, agent: Agent): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const sent = performance.now();
    const req = httpRequest(
      `${server.url}/token`,
      { agent, method: 'POST', headers: { authorization: server.authorization, 'content-type': FORM, accept: 'application/json', 'content-length': String(Buffer.byteLength(TOKEN_BODY)) } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          const retryAfter = res.headers['retry-after'];
          resolve({ status: res.statusCode ?? 0, ms: performance.now() - sent, sentAt: performance.timeOrigin + sent, body: Buffer.concat(chunks).toString('utf8'), retryAfter });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(TOKEN_BODY);
  });
}

const isRefusal = (answer: Answer) => answer.status === 503 && answer.retryAfter !== undefined && (JSON.parse(answer.body) as { error?: string }).error === 'temporarily_unavailable';
function expect(answer: Answer, kind: 'ok' | 'refused', where: string): number {
  const good = kind === 'ok' ? answer.status === 200 && answer.body.includes('"access_token"') : isRefusal(answer);
  if (!good) throw new Error(`${where}: expected ${kind === 'ok' ? 'a 200 with a token' : 'a 503 temporarily_unavailable'}, got ${answer.status} ${answer.body.slice(0, 300)}`);
  return answer.ms;
}

async function sequence(server: PluginServer, agent: Agent, count: number, kind: 'ok' | 'refused', where: string): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < count; i++) times.push(expect(await tokenRequest(server, agent), kind, where));
  return times;
}

interface Stats {
  readonly n: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
  readonly mean: number;
}
const stats = (values: readonly number[]): Stats => ({
  n: values.length,
  p50: round2(percentile(values, 50)),
  p99: round2(percentile(values, 99)),
  max: round2(percentile(values, 100)),
  mean: round2(values.reduce((sum, value) => sum + value, 0) / values.length),
});

// ---------------------------------------------------------------------------
// Part 1: restartBackoffMs 60000, the plugin stays down.

async function keptDown(): Promise<{ ok: number[]; refused: number[]; firstCrash: number[]; detection: number[]; status: unknown }> {
  const server = await startPluginServer('portcullis (restartBackoffMs 60000)', { PORTCULLIS_PLUGINS_RESTART_BACKOFF_MS: '60000' }, NODE_FLAGS);
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const ok: number[] = [];
  const refused: number[] = [];
  const firstCrash: number[] = [];
  const detection: number[] = [];
  let status: unknown;
  try {
    const crashOnce = async (where: string) => {
      await server.enable('bench-crash');
      return expect(await tokenRequest(server, agent), 'refused', where);
    };
    // Warm-up, both kinds.
    await server.enable(null);
    await sequence(server, agent, settings.warmup, 'ok', 'warm-up');
    await crashOnce('warm-up crash');
    await sequence(server, agent, settings.warmup, 'refused', 'warm-up');
    for (let round = 1; round <= settings.rounds; round++) {
      const blocks = round % 2 === 1 ? (['ok', 'refused'] as const) : (['refused', 'ok'] as const);
      for (const block of blocks) {
        if (block === 'ok') {
          await server.enable(null);
          ok.push(...(await sequence(server, agent, settings.count, 'ok', `round ${round} ok`)));
        } else {
          firstCrash.push(await crashOnce(`round ${round} first crash`));
          refused.push(...(await sequence(server, agent, settings.count, 'refused', `round ${round} refused`)));
          status = (await server.status()).plugins.find((plugin) => plugin.name === 'bench-crash');
        }
      }
      for (let i = 0; i < settings.crashes; i++) {
        await server.enable(null);
        detection.push(await crashOnce(`round ${round} crash ${i + 1}`));
      }
      process.stderr.write(`part 1: round ${round}/${settings.rounds} done\n`);
    }
    const expected = 1 + settings.rounds * (1 + settings.crashes);
    // The events come once they are durable, a little after the last refusal.
    for (let wait = 0; wait < 40 && server.events.filter((event) => event.event === 'plugin.crashed').length < expected; wait++) await new Promise((resolve) => setTimeout(resolve, 50));
    const crashed = server.events.filter((event) => event.event === 'plugin.crashed').length;
    if (crashed !== expected) throw new Error(`part 1: the server reported ${crashed} crashes, expected ${expected}`);
  } finally {
    agent.destroy();
    await server.stop();
  }
  return { ok, refused, firstCrash, detection, status };
}

// ---------------------------------------------------------------------------
// Part 2: the default settings, the plugin restarting and crashing again.

interface Timed extends Answer {
  readonly kind: 'ok' | 'refused' | 'other';
}

async function defaults(): Promise<{ answers: Timed[]; events: { event: string; at: number; detail: Record<string, unknown> }[]; started: number; status: unknown }> {
  const server = await startPluginServer('portcullis (default plugin settings)', {}, NODE_FLAGS);
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const answers: Timed[] = [];
  let status: unknown;
  let started: number;
  try {
    await server.enable(null);
    await sequence(server, agent, settings.warmup, 'ok', 'warm-up');
    await server.enable('bench-crash');
    started = performance.timeOrigin + performance.now();
    const deadline = performance.now() + settings.defaultSeconds * 1000;
    while (performance.now() < deadline) {
      const answer = await tokenRequest(server, agent);
      answers.push({ ...answer, kind: isRefusal(answer) ? 'refused' : answer.status === 200 ? 'ok' : 'other', body: '' });
    }
    status = (await server.status()).plugins.find((plugin) => plugin.name === 'bench-crash') ?? 'not running (disabled)';
  } finally {
    agent.destroy();
    await server.stop();
  }
  return { answers, events: server.events.filter((event) => event.at >= started), started, status };
}

// ---------------------------------------------------------------------------
// The floor: a bare sandbox whose hook exits, no server around it.

async function rawCrashes(): Promise<{ rejected: number[]; exited: number[] }> {
  const root = realpathSync(mkdtempSync(join(tmpdir(), 'portcullis-bench-refuse-')));
  const rejected: number[] = [];
  const exited: number[] = [];
  try {
    writeFileSync(join(root, 'index.mjs'), `export const hooks = { 'access-token.claims': () => process.exit(1) };\n`);
    for (let i = 0; i < settings.rawCrashes; i++) {
      const sandbox = startSandbox({ directory: root, entry: 'index.mjs', limits: { memoryMb: 64, callTimeoutMs: 1000 } });
      await sandbox.ready;
      const sent = performance.now();
      const call = sandbox.call('hook.access-token.claims', { context: {}, claims: {} }).then(
        () => Number.NaN,
        (error: unknown) => (error instanceof RpcClosedError ? performance.now() - sent : Number.NaN),
      );
      const exit = sandbox.exited.then(() => performance.now() - sent);
      const [whenRejected, whenExited] = await Promise.all([call, exit]);
      if (Number.isNaN(whenRejected)) throw new Error('the crashing call did not end with RpcClosedError');
      rejected.push(whenRejected);
      exited.push(whenExited);
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
  return { rejected, exited };
}

// ---------------------------------------------------------------------------

console.log(
  `token requests refused because the access-token.claims plugin crashed (process.exit(1), onFailure deny), against successful ones with no plugin; one at a time on a keep-alive connection\n` +
    `part 1 (restartBackoffMs 60000): ${settings.rounds} rounds of ${settings.count} ok + ${settings.count} refused (after ${settings.warmup} warm-up of each), ${settings.crashes} crash detections per round; ` +
    `part 2 (default settings): ${settings.defaultSeconds} s of requests; then ${settings.rawCrashes} crashes of a bare sandbox`,
);
const part1 = await keptDown();
const part2 = await defaults();
const raw = await rawCrashes();

const rows = {
  ok: stats(part1.ok),
  refused: stats(part1.refused),
  detection: stats([...part1.firstCrash, ...part1.detection]),
};
const f = (value: number) => value.toFixed(2);
const statsRow = (what: string, s: Stats) => [what, String(s.n), f(s.p50), f(s.p99), f(s.max), f(s.mean)];
console.log('\npart 1, restartBackoffMs 60000 (the plugin stays down after its crash):');
console.log(
  table(
    ['ms', 'n', 'p50', 'p99', 'max', 'mean'],
    [
      statsRow('200, no plugin', rows.ok),
      statsRow('503, plugin down (refused at once)', rows.refused),
      statsRow('503, the request that crashes it (detection)', rows.detection),
      statsRow('floor: bare Sandbox.call -> RpcClosedError', stats(raw.rejected)),
      statsRow('floor: bare Sandbox.call -> child exit event', stats(raw.exited)),
    ],
  ),
);
console.log(
  `refused / ok: p50 x${(rows.refused.p50 / rows.ok.p50).toFixed(2)}, p99 x${(rows.refused.p99 / rows.ok.p99).toFixed(2)}; ` +
    `refusal p99 ${f(rows.refused.p99)} ms, crash detection p99 ${f(rows.detection.p99)} ms (aim <= ${AIM_P99_MS} ms: ${Math.max(rows.refused.p99, rows.detection.p99) <= AIM_P99_MS ? 'met' : 'NOT met'})`,
);
console.log(`the plugin after the last refused block: ${JSON.stringify(part1.status)}`);

const refused2 = part2.answers.filter((answer) => answer.kind === 'refused');
const ok2 = part2.answers.filter((answer) => answer.kind === 'ok');
const other2 = part2.answers.filter((answer) => answer.kind === 'other');
const at = (epochMs: number) => ((epochMs - part2.started) / 1000).toFixed(2);
const p999 = (values: number[]) => round2(percentile(values, 99.9));
const refusedStats = stats(refused2.map((answer) => answer.ms));
const okStats = ok2.length > 0 ? stats(ok2.map((answer) => answer.ms)) : null;
console.log(`\npart 2, default settings (restartBackoffMs 200, breaker reset 5 s, quarantine after 5 crashes in 1 min), ${settings.defaultSeconds} s:`);
console.log(
  table(
    ['ms', 'n', 'p50', 'p99', 'p99.9', 'max', 'mean'],
    [
      ['503 refused', String(refused2.length), f(refusedStats.p50), f(refusedStats.p99), f(p999(refused2.map((answer) => answer.ms))), f(refusedStats.max), f(refusedStats.mean)],
      ...(okStats === null ? [] : [['200 (after the quarantine disabled it)', String(okStats.n), f(okStats.p50), f(okStats.p99), f(p999(ok2.map((answer) => answer.ms))), f(okStats.max), f(okStats.mean)]]),
    ],
  ),
);
if (other2.length > 0) console.log(`other answers: ${other2.length} (${[...new Set(other2.map((answer) => answer.status))].join(', ')})`);
console.log(`server events (s after enabling): ${part2.events.map((event) => `${event.event}${event.event === 'plugin.crashed' ? ` (${String(event.detail['reason'])}, restart in ${String(event.detail['restartInMs'])} ms)` : ''} at ${at(event.at)}`).join('; ') || 'none'}`);
if (ok2.length > 0) console.log(`first 200 at ${at(ok2[0]!.sentAt)} s; its acme claims: none (the crash plugin adds none)`);
const slowest = [...refused2].sort((a, b) => b.ms - a.ms).slice(0, 8);
console.log(`slowest refusals (s after enabling: ms): ${slowest.map((answer) => `${at(answer.sentAt)}: ${f(answer.ms)}`).join(', ')}`);
console.log(`the plugin at the end: ${JSON.stringify(part2.status)}`);

const file = writeResult('plugin-refuse', {
  benchmark: 'plugin-refuse',
  at: new Date().toISOString(),
  machine: machine(),
  settings,
  raw: { rejected: stats(raw.rejected), exited: stats(raw.exited), rejectedMs: raw.rejected.map(round2) },
  part1: { ...rows, firstCrashMs: part1.firstCrash.map(round2), detectionMs: part1.detection.map(round2), pluginStatus: part1.status },
  part2: {
    refused: { ...refusedStats, p999: p999(refused2.map((answer) => answer.ms)) },
    ok: okStats,
    other: other2.length,
    events: part2.events.map((event) => ({ ...event, atSeconds: Number(at(event.at)) })),
    slowest: slowest.map((answer) => ({ atSeconds: Number(at(answer.sentAt)), ms: round2(answer.ms) })),
    perSecond: Array.from({ length: settings.defaultSeconds }, (_, second) => {
      const inSecond = part2.answers.filter((answer) => Math.floor((answer.sentAt - part2.started) / 1000) === second);
      return { second, refused: inSecond.filter((answer) => answer.kind === 'refused').length, ok: inSecond.filter((answer) => answer.kind === 'ok').length, maxMs: inSecond.length === 0 ? null : round2(Math.max(...inSecond.map((answer) => answer.ms))) };
    }),
    pluginStatus: part2.status,
  },
});
console.log(`wrote ${file}`);
