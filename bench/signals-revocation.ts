/**
 * How long after `POST /revoke` does a resource server refuse the token?
 * Revocation to refusal through the WebSocket signal stream, against the
 * /revoke round trip itself and a bare `ws` loopback in the same run.
 *
 *   node bench/signals-revocation.ts [--count 1000] [--warmup 50] [--concurrency 1]
 *
 * Portcullis (servers/portcullis-signals.ts, embedded SQLite) runs in a child
 * process. This process is the resource server: `createVerifier` with
 * `signals: createSignalSocket(...)` on a stream (tokens-revoked, CAEP
 * session-revoked, RISC account-disabled), as a real one would run it. Per
 * revocation, `--concurrency` loops each:
 *   1. take a fresh access token of the service client (issued before the run);
 *   2. `POST /revoke` (RFC 7009, client_secret_basic); t1 = its response;
 *   3. wait for the tokens-revoked SET naming the token's jti to reach the
 *      socket client's listeners (added after the verifier's own, so the
 *      RevocationList has applied it), then `verifier.verify` must answer 401
 *      invalid_token; t2 = that answer.
 * "revoke -> refusal" is t2 - t1; the SET can arrive before the /revoke
 * response does (the append does not wait for it), then it is only the
 * verify call. "request -> refusal" is t2 - the moment the request was sent.
 *
 * Raw limits, same run: the /revoke round trip (t1 - request sent) of the
 * same requests, and one frame of the SETs' size sent over a bare `ws`
 * connection in this process and received (one-way, sequential): the
 * floor of any WebSocket delivery on this machine.
 */
import { decodeJwt } from 'jose';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import WebSocket, { WebSocketServer } from 'ws';
import { createVerifier, SECURITY_EVENT_TYPES } from '../src/sdk/index.ts';
import { createSignalSocket, type SecurityEventToken } from '../src/sdk/signals/index.ts';
import { startChild } from './children.ts';
import { giveUpAfter, machine, percentile, positiveInteger, round2, table, writeResult } from './lib.ts';

const count = positiveInteger('count', 1000);
const warmup = positiveInteger('warmup', 50);
const concurrency = positiveInteger('concurrency', 1);
giveUpAfter('signals-revocation', 10 * 60_000);

const API = 'https://api.bench.example';
const EVENTS = [SECURITY_EVENT_TYPES.tokensRevoked, SECURITY_EVENT_TYPES.sessionRevoked, SECURITY_EVENT_TYPES.accountDisabled];

interface Credentials {
  readonly id: string;
  readonly secret: string;
}
const server = await startChild(
  'portcullis',
  [join(import.meta.dirname, 'servers', 'portcullis-signals.ts')],
  { ...Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('PORTCULLIS_'))), PORTCULLIS_LOG_LEVEL: 'warn', BENCH_SIGNALS: JSON.stringify({ resource: API, receivers: 1 }) },
  /^ready /,
  ['--disable-warning=ExperimentalWarning'],
  60_000,
);
const ready = JSON.parse(server.ready.slice('ready '.length)) as { url: string; service: Credentials; receivers: Credentials[] };
const issuer = ready.url;
const basic = (client: Credentials) => `Basic ${Buffer.from(`${client.id}:${client.secret}`).toString('base64')}`;

async function accessToken(client: Credentials, scope?: string): Promise<string> {
  const response = await fetch(`${issuer}/token`, {
    method: 'POST',
    headers: { authorization: basic(client), 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'client_credentials', ...(scope !== undefined && { scope }) }).toString(),
  });
  const body = (await response.json()) as { access_token?: string };
  if (response.status !== 200 || body.access_token === undefined) throw new Error(`token request answered ${response.status}: ${JSON.stringify(body)}`);
  return body.access_token;
}

// The receiver: a stream, its socket, and the verifier it feeds.
const receiver = ready.receivers[0]!;
const receiverToken = await accessToken(receiver);
const created = await fetch(`${issuer}/signals/stream`, {
  method: 'POST',
  headers: { authorization: `Bearer ${receiverToken}`, 'content-type': 'application/json' },
  body: JSON.stringify({ delivery: { method: 'urn:portcullis:ssf:delivery:websocket' }, events_requested: EVENTS }),
});
if (created.status !== 201) throw new Error(`stream creation answered ${created.status}: ${await created.text()}`);
const streamId = ((await created.json()) as { stream_id: string }).stream_id;
let socketErrors = 0;
let connected!: () => void;
const isConnected = new Promise<void>((resolve) => (connected = resolve));
const socket = createSignalSocket({
  url: `${issuer.replace(/^http/, 'ws')}/signals/ws?stream_id=${streamId}`,
  issuer,
  audience: receiver.id,
  token: receiverToken,
  onReady: () => connected(),
  onError: (error) => {
    socketErrors++;
    console.error(`signal socket: ${error.message}`);
  },
});
const verifier = createVerifier({ issuer, audience: API, signals: socket });
const seen = new Set<string>();
const waiting = new Map<string, () => void>();
let setBytes = 0;
socket.onEvent((event: SecurityEventToken) => {
  const members = event.events[SECURITY_EVENT_TYPES.tokensRevoked] as { jti?: unknown } | undefined;
  for (const jti of Array.isArray(members?.jti) ? members.jti : []) {
    if (typeof jti !== 'string') continue;
    seen.add(jti);
    waiting.get(jti)?.();
    waiting.delete(jti);
  }
});
const arrival = (jti: string) => (seen.has(jti) ? Promise.resolve() : new Promise<void>((resolve) => waiting.set(jti, resolve)));
socket.start();
await isConnected;

// Tokens, issued before the run (the bench times revocations, not issuance).
const tokens: string[] = [];
await Promise.all(
  Array.from({ length: 8 }, async () => {
    while (tokens.length < count + warmup) tokens.push(await accessToken(ready.service, 'api:read'));
  }),
);
tokens.length = count + warmup;
console.log(`${count} revocations (+${warmup} warm-up), ${concurrency} at a time, server ${issuer}`);

interface Sample {
  readonly roundTrip: number;
  readonly refusal: number;
  readonly total: number;
}
const check = (token: string) => verifier.verify({ method: 'GET', url: `${API}/things`, headers: { authorization: `Bearer ${token}` } });

async function revokeOne(token: string): Promise<Sample> {
  const { jti } = decodeJwt(token) as { jti: string };
  const arrived = arrival(jti);
  const sent = performance.now();
  const response = await fetch(`${issuer}/revoke`, {
    method: 'POST',
    headers: { authorization: basic(ready.service), 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token, token_type_hint: 'access_token' }).toString(),
  });
  await response.arrayBuffer();
  const answered = performance.now();
  if (response.status !== 200) throw new Error(`/revoke answered ${response.status}`);
  await arrived;
  const result = await check(token);
  const refused = performance.now();
  if (result.ok || result.status !== 401 || result.error !== 'invalid_token') throw new Error(`the revoked token was not refused: ${JSON.stringify(result)}`);
  return { roundTrip: answered - sent, refusal: refused - answered, total: refused - sent };
}

async function run(batch: readonly string[]): Promise<Sample[]> {
  const samples: Sample[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < batch.length) samples.push(await revokeOne(batch[next++]!));
    }),
  );
  return samples;
}

// Every token verifies before it is revoked (and the verifier has the JWKS).
for (const token of tokens.slice(0, 3)) {
  const result = await check(token);
  if (!result.ok) throw new Error(`a fresh token was refused: ${result.description}`);
}
await run(tokens.slice(0, warmup));
const started = performance.now();
const samples = await run(tokens.slice(warmup));
const wall = (performance.now() - started) / 1000;

// The raw limit: one SET-sized frame over a bare ws connection on loopback, one-way.
setBytes = await oneSetSize();
const empty = JSON.stringify({ type: 'set', cursor: '1000', set: '' });
const frame = JSON.stringify({ type: 'set', cursor: '1000', set: 'x'.repeat(Math.max(1, setBytes - empty.length)) });
const loopback = await wsLoopback(frame, count);

await socket.stop();
verifier.close();
await server.stop();

const ms = (values: number[], p: number) => round2(percentile(values, p));
const of = (key: keyof Sample) => samples.map((sample) => sample[key]);
const rows = [
  { what: 'bare ws frame, one way (loopback)', values: loopback },
  { what: '/revoke round trip', values: of('roundTrip') },
  { what: 'revoke response -> refusal', values: of('refusal') },
  { what: 'revoke request -> refusal', values: of('total') },
].map((row) => ({ what: row.what, p50: ms(row.values, 50), p99: ms(row.values, 99), max: ms(row.values, 100) }));
console.log(`\n${count} revocations in ${wall.toFixed(1)} s (${Math.round(count / wall)}/s), ${concurrency} at a time; SETs of ${setBytes} B; socket errors ${socketErrors}`);
console.log(table(['ms', 'p50', 'p99', 'max'], rows.map((row) => [row.what, row.p50.toFixed(2), row.p99.toFixed(2), row.max.toFixed(2)])));
const refusal = rows[2]!;
const roundTrip = rows[1]!;
console.log(`refusal p99 ${refusal.p99} ms (aim < 250 ms: ${refusal.p99 < 250 ? 'met' : 'not met'}); refusal / round trip: p50 x${round2(refusal.p50 / roundTrip.p50)}, p99 x${round2(refusal.p99 / roundTrip.p99)}`);
const file = writeResult('signals-revocation', {
  benchmark: 'signals-revocation',
  at: new Date().toISOString(),
  machine: machine(),
  settings: { count, warmup, concurrency },
  setBytes,
  socketErrors,
  revocationsPerSecond: round2(count / wall),
  rows,
});
console.log(`wrote ${file}`);

/** The size of a real tokens-revoked SET frame of this stream (read back from the log with ?after=). */
async function oneSetSize(): Promise<number> {
  const ws = new WebSocket(`${issuer.replace(/^http/, 'ws')}/signals/ws?stream_id=${streamId}&after=0`, { headers: { authorization: `Bearer ${receiverToken}` } });
  try {
    for (;;) {
      const [data] = (await once(ws, 'message')) as [Buffer];
      if ((JSON.parse(data.toString()) as { type: string }).type === 'set') return data.length;
    }
  } finally {
    ws.terminate();
  }
}

/** Milliseconds from `send` on a bare ws server to `message` on its client, `n` frames one after another. */
async function wsLoopback(payload: string, n: number): Promise<number[]> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
  await once(wss, 'listening');
  const client = new WebSocket(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}`, { perMessageDeflate: false });
  const [peer] = (await once(wss, 'connection')) as [WebSocket];
  if (client.readyState !== WebSocket.OPEN) await once(client, 'open');
  const times: number[] = [];
  for (let i = 0; i < n + warmup; i++) {
    const received = once(client, 'message');
    const sent = performance.now();
    peer.send(payload);
    await received;
    if (i >= warmup) times.push(performance.now() - sent);
  }
  client.terminate();
  await new Promise((resolve) => wss.close(resolve));
  return times;
}
