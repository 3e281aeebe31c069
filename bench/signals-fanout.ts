/**
 * How many SETs per second does /signals/ws deliver to 1 000 subscribers,
 * and how late? Against a bare `ws` server broadcasting frames of the same
 * size to as many sockets, in the same run.
 *
 *   node bench/signals-fanout.ts [--sockets 1000] [--clients 10] [--events 200] [--rounds 3] [--warmup 20] [--rate 20]
 *
 * - **portcullis**: servers/portcullis-signals.ts (embedded SQLite) in a
 *   child process, with `--clients` receivers (approved, `ssf:stream`), each
 *   with one WebSocket stream of tokens-revoked and `--sockets / --clients`
 *   sockets on it (`signals.socketsPerClient` raised to match). An event is
 *   a real revocation inside the server (`accessTokens.revokeJti`): the
 *   denylist write, `tokens.revoked`, the signal recorder's outbox row, the
 *   outbox worker's append to the signal log, then every socket's delivery.
 * - **raw**: servers/raw-ws.ts, a bare `ws` server in a child process that
 *   broadcasts `{"type":"set","cursor","set"}` frames of the mean size of
 *   Portcullis' frames (measured in the warm-up) to every socket.
 *
 * This process holds the sockets (plain `ws` clients, no SET verification
 * and no acks, so the receiving side costs both the same: a JSON.parse per
 * frame). A round publishes `--events` events on one side and waits until
 * every socket has every frame; sides alternate (ABBA). Two kinds of round:
 * - **burst**: the events back to back. Frames/s is the capacity; latency
 *   is mostly the backlog draining (the last event waits for all before it).
 * - **paced**: one event every 1/`--rate` s (default 20/s, 20 000 frames/s
 *   to 1 000 sockets; 0 skips these rounds). Latency at a load both sides carry.
 * "Append" is the server's own process.hrtime when the event was appended to
 * the log and the deliveries woken (Portcullis) or its broadcast began (raw);
 * CLOCK_MONOTONIC, the same clock in every process of the machine. Frames/s
 * is frames received / (last receipt - first append); latency is receipt -
 * append per frame. Server CPU µs per frame from /proc.
 */
import { join } from 'node:path';
import WebSocket from 'ws';
import { cpuMicros, startChild, type Child } from './children.ts';
import { giveUpAfter, machine, median, option, percentile, positiveInteger, round2, table, writeResult } from './lib.ts';

const sockets = positiveInteger('sockets', 1000);
const clients = positiveInteger('clients', 10);
const events = positiveInteger('events', 200);
const rounds = positiveInteger('rounds', 3);
const warmupEvents = positiveInteger('warmup', 20);
/** Events per second in the paced rounds (0: none). */
const rate = Number(option('rate', '20'));
if (!(rate >= 0)) throw new Error('--rate must be a number >= 0');
if (sockets % clients !== 0) throw new Error('--sockets must be a multiple of --clients');
const perClient = sockets / clients;
giveUpAfter('signals-fanout', 15 * 60_000);

const API = 'https://api.bench.example';
const TOKENS_REVOKED = 'urn:portcullis:secevent:event-type:tokens-revoked';
const NODE_FLAGS = ['--disable-warning=ExperimentalWarning'];
const baseEnv = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('PORTCULLIS_')));

type Side = 'raw' | 'portcullis';

/** 1 000 sockets and what they received in the current round. */
class Subscribers {
  readonly #sockets: WebSocket[] = [];
  #received = 0;
  #expected = 0;
  #cursors = new Float64Array(0);
  #times = new Float64Array(0);
  #bytes = 0;
  #done: (() => void) | undefined;
  closed = 0;

  async open(targets: readonly { url: string; headers: Record<string, string> }[], awaitReady: boolean): Promise<void> {
    let next = 0;
    await Promise.all(
      Array.from({ length: 50 }, async () => {
        while (next < targets.length) {
          const target = targets[next++]!;
          const ws = new WebSocket(target.url, { headers: target.headers, perMessageDeflate: false });
          const opened = new Promise<void>((resolve, reject) => {
            ws.once('error', reject);
            ws.once('unexpected-response', (_request, response) => reject(new Error(`upgrade refused with ${response.statusCode}`)));
            if (awaitReady) ws.once('message', () => resolve());
            else ws.once('open', () => resolve());
          });
          ws.on('message', (data: Buffer) => this.#frame(data));
          ws.on('close', () => this.closed++);
          await opened;
          ws.on('error', () => undefined);
          this.#sockets.push(ws);
        }
      }),
    );
  }

  #frame(data: Buffer): void {
    const now = Number(process.hrtime.bigint());
    const frame = JSON.parse(data.toString('utf8')) as { type: string; cursor?: string };
    if (frame.type !== 'set') return;
    const index = this.#received++;
    if (index < this.#cursors.length) {
      this.#cursors[index] = Number(frame.cursor);
      this.#times[index] = now;
    }
    this.#bytes += data.length;
    if (this.#received >= this.#expected) this.#done?.();
  }

  /** Resolves once `count` SET frames arrived on all sockets together. */
  expect(count: number): Promise<void> {
    this.#received = 0;
    this.#bytes = 0;
    this.#expected = count;
    this.#cursors = new Float64Array(count);
    this.#times = new Float64Array(count);
    return new Promise((resolve) => (this.#done = resolve));
  }

  get frames(): { cursors: Float64Array; times: Float64Array; received: number; meanBytes: number } {
    return { cursors: this.#cursors, times: this.#times, received: this.#received, meanBytes: this.#bytes / Math.max(1, this.#received) };
  }

  close(): void {
    for (const ws of this.#sockets) ws.terminate();
  }
}

function ask<T>(child: Child, message: object, answer: string): Promise<T> {
  return new Promise((resolve) => {
    const listener = (reply: { type: string }) => {
      if (reply.type !== answer) return;
      child.process.off('message', listener);
      resolve(reply as T);
    };
    child.process.on('message', listener);
    child.process.send(message);
  });
}

// Portcullis, its receivers, streams and sockets.
const portcullis = await startChild(
  'portcullis',
  [join(import.meta.dirname, 'servers', 'portcullis-signals.ts')],
  { ...baseEnv, PORTCULLIS_LOG_LEVEL: 'warn', PORTCULLIS_SIGNALS_SOCKETS_PER_CLIENT: String(perClient), BENCH_SIGNALS: JSON.stringify({ resource: API, receivers: clients }) },
  /^ready /,
  NODE_FLAGS,
  60_000,
);
const ready = JSON.parse(portcullis.ready.slice('ready '.length)) as { url: string; receivers: { id: string; secret: string }[] };
const portcullisTargets: { url: string; headers: Record<string, string> }[] = [];
for (const receiver of ready.receivers) {
  const tokenResponse = await fetch(`${ready.url}/token`, {
    method: 'POST',
    headers: { authorization: `Basic ${Buffer.from(`${receiver.id}:${receiver.secret}`).toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
    body: 'grant_type=client_credentials',
  });
  const token = ((await tokenResponse.json()) as { access_token: string }).access_token;
  const created = await fetch(`${ready.url}/signals/stream`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ delivery: { method: 'urn:portcullis:ssf:delivery:websocket' }, events_requested: [TOKENS_REVOKED] }),
  });
  if (created.status !== 201) throw new Error(`stream creation answered ${created.status}: ${await created.text()}`);
  const streamId = ((await created.json()) as { stream_id: string }).stream_id;
  for (let i = 0; i < perClient; i++) portcullisTargets.push({ url: `${ready.url.replace(/^http/, 'ws')}/signals/ws?stream_id=${streamId}`, headers: { authorization: `Bearer ${token}` } });
}
const raw = await startChild('raw ws', [join(import.meta.dirname, 'servers', 'raw-ws.ts')], baseEnv, /^ws:\/\/\S+$/, NODE_FLAGS);

const subscribers: Record<Side, Subscribers> = { portcullis: new Subscribers(), raw: new Subscribers() };
await subscribers.portcullis.open(portcullisTargets, true);
await subscribers.raw.open(Array.from({ length: sockets }, () => ({ url: raw.ready, headers: {} })), false);
console.log(`${sockets} sockets per side (Portcullis: ${clients} receivers x ${perClient} sockets, one stream each), ${events} events per round, ${rounds} rounds`);

let frameBytes = 0;

type Mode = 'burst' | 'paced';

interface RoundResult {
  readonly side: Side;
  readonly mode: Mode;
  readonly framesPerSecond: number;
  readonly eventsPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  readonly cpuMicrosPerFrame: number | null;
  readonly meanBytes: number;
}

async function round(side: Side, count: number, mode: Mode = 'burst'): Promise<RoundResult> {
  const intervalMs = mode === 'paced' ? 1000 / rate : 0;
  const subs = subscribers[side];
  const expected = count * sockets;
  const arrived = subs.expect(expected);
  const child = side === 'raw' ? raw : portcullis;
  const cpuBefore = cpuMicros(child.pid);
  let appends: [number, number][];
  if (side === 'raw') {
    appends = (await ask<{ appends: [number, number][] }>(raw, { type: 'publish', count, size: Math.round(frameBytes), intervalMs }, 'published')).appends;
    await arrived;
  } else {
    await ask(portcullis, { type: 'publish', count, intervalMs }, 'published');
    await arrived;
    appends = (await ask<{ appends: [number, number][] }>(portcullis, { type: 'appends' }, 'appends')).appends;
  }
  const cpuAfter = cpuMicros(child.pid);
  const appendedAt = new Map(appends);
  const { cursors, times, received, meanBytes } = subs.frames;
  if (received !== expected) throw new Error(`${side}: ${received} frames, expected ${expected}`);
  const latencies: number[] = [];
  let last = 0;
  for (let i = 0; i < received; i++) {
    const at = appendedAt.get(cursors[i]!);
    if (at === undefined) throw new Error(`${side}: no append time for cursor ${cursors[i]}`);
    latencies.push((times[i]! - at) / 1e6);
    last = Math.max(last, times[i]!);
  }
  const first = Math.min(...appends.map(([, at]) => at));
  const seconds = (last - first) / 1e9;
  return {
    side,
    mode,
    framesPerSecond: received / seconds,
    eventsPerSecond: count / seconds,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    maxMs: percentile(latencies, 100),
    cpuMicrosPerFrame: cpuBefore === null || cpuAfter === null ? null : (cpuAfter - cpuBefore) / received,
    meanBytes,
  };
}

// Warm-up: the JIT on both sides, and the frame size the raw side copies.
const warm = await round('portcullis', warmupEvents);
frameBytes = warm.meanBytes;
await round('raw', warmupEvents);
console.log(`Portcullis SET frames: ${Math.round(frameBytes)} B on average; raw frames padded to that`);

const results: RoundResult[] = [];
const modes: Mode[] = rate > 0 ? ['burst', 'paced'] : ['burst'];
for (let r = 0; r < rounds; r++) {
  const order: Side[] = r % 2 === 0 ? ['raw', 'portcullis'] : ['portcullis', 'raw'];
  for (const [mode, side] of modes.flatMap((mode) => order.map((side) => [mode, side] as const))) {
    const result = await round(side, events, mode);
    results.push(result);
    console.log(
      `round ${r + 1}/${rounds} ${mode} ${side}: ${Math.round(result.framesPerSecond).toLocaleString('en-US')} frames/s, p50 ${result.p50Ms.toFixed(1)} ms, p99 ${result.p99Ms.toFixed(1)} ms, CPU ${result.cpuMicrosPerFrame?.toFixed(1) ?? '-'} µs/frame`,
    );
  }
}
const closedEarly = subscribers.portcullis.closed + subscribers.raw.closed;
subscribers.portcullis.close();
subscribers.raw.close();
await Promise.all([portcullis.stop(), raw.stop()]);

const summary = (mode: Mode, side: Side) => {
  const mine = results.filter((result) => result.side === side && result.mode === mode);
  const of = (key: 'framesPerSecond' | 'eventsPerSecond' | 'p50Ms' | 'p99Ms' | 'maxMs') => median(mine.map((result) => result[key]));
  const cpu = mine.map((result) => result.cpuMicrosPerFrame).filter((value): value is number => value !== null);
  return { mode, side, framesPerSecond: Math.round(of('framesPerSecond')), eventsPerSecond: round2(of('eventsPerSecond')), p50Ms: round2(of('p50Ms')), p99Ms: round2(of('p99Ms')), maxMs: round2(of('maxMs')), cpuMicrosPerFrame: cpu.length === 0 ? null : round2(median(cpu)) };
};
const rows = modes.flatMap((mode) => [summary(mode, 'raw'), summary(mode, 'portcullis')]);
const ratio = round2(rows[1]!.framesPerSecond / rows[0]!.framesPerSecond);
console.log(`\nmedians of ${rounds} rounds, ${events} events x ${sockets} sockets, frames of ${Math.round(frameBytes)} B; sockets closed early: ${closedEarly}`);
console.log(
  table(
    ['mode', 'side', 'frames/s', 'events/s', 'p50 ms', 'p99 ms', 'max ms', 'server CPU µs/frame'],
    rows.map((row) => [row.mode === 'paced' ? `paced ${rate}/s` : row.mode, row.side, row.framesPerSecond.toLocaleString('en-US'), row.eventsPerSecond.toFixed(1), row.p50Ms.toFixed(1), row.p99Ms.toFixed(1), row.maxMs.toFixed(1), row.cpuMicrosPerFrame?.toFixed(1) ?? '-']),
  ),
);
console.log(`burst: portcullis / raw frames/s ${ratio}, p99 latency x${round2(rows[1]!.p99Ms / rows[0]!.p99Ms)}`);
if (modes.includes('paced')) console.log(`paced: p99 latency portcullis ${rows[3]!.p99Ms} ms against raw ${rows[2]!.p99Ms} ms (x${round2(rows[3]!.p99Ms / rows[2]!.p99Ms)})`);
const file = writeResult('signals-fanout', {
  benchmark: 'signals-fanout',
  at: new Date().toISOString(),
  machine: machine(),
  settings: { sockets, clients, perClient, events, rounds, warmupEvents, rate },
  frameBytes: Math.round(frameBytes),
  closedEarly,
  rows,
  ratio,
  rounds: results,
});
console.log(`wrote ${file}`);
