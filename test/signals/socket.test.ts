/**
 * `/signals/ws` with real clients: Node's `ws` and undici's WebSocket
 * (Node's global), authenticated by a bearer token on the main listener.
 * Order, acknowledgement and resume (`?after=`), and each limit: the
 * largest frame (1009), a frame that is not an acknowledgement (1002), a
 * consumer that stops reading (1013, then resumes), sockets per client (429 before the upgrade), and a refused credential.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect } from 'node:net';
import { WebSocket as WsClient } from 'ws';
import { validateClientMetadata } from '../../src/oauth/index.ts';
import { SECURITY_EVENT_TYPES } from '../../src/sdk/index.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

interface Frame {
  readonly type: string;
  readonly cursor?: string | null;
  readonly set?: string;
}

async function receiverToken(server: TestServer): Promise<string> {
  return (await receiver(server)).token;
}

async function receiver(server: TestServer): Promise<{ token: string; basic: string }> {
  const metadata = validateClientMetadata({ grant_types: ['client_credentials'], redirect_uris: [], scope: 'ssf:stream' }, { allowedScopes: ['ssf:stream'], defaultSigningAlgorithm: 'EdDSA' });
  const registered = await server.running.authorizationServer.clients.register(metadata, { actor: 'test' }, { approved: true });
  const basic = Buffer.from(`${registered.client.client_id}:${registered.clientSecret!}`).toString('base64');
  const response = await fetch(`${server.url}/token`, { method: 'POST', headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded' }, body: 'grant_type=client_credentials' });
  return { token: ((await response.json()) as { access_token: string }).access_token, basic };
}

async function socketStream(server: TestServer, token: string): Promise<string> {
  const response = await fetch(`${server.url}/signals/stream`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ delivery: { method: 'urn:portcullis:ssf:delivery:websocket' }, events_requested: [SECURITY_EVENT_TYPES.accountDisabled] }),
  });
  assert.equal(response.status, 201);
  return ((await response.json()) as { stream_id: string }).stream_id;
}

/** Collects frames from a `ws` socket; `next(n)` resolves once n more SET frames arrived. */
function frames(ws: WsClient): { all: Frame[]; sets: (count: number) => Promise<Frame[]> } {
  const all: Frame[] = [];
  let waiting: { count: number; resolve: (value: Frame[]) => void } | undefined;
  ws.on('message', (data: Buffer) => {
    all.push(JSON.parse(data.toString()) as Frame);
    const sets = all.filter((frame) => frame.type === 'set');
    if (waiting !== undefined && sets.length >= waiting.count) waiting.resolve(sets);
  });
  return {
    all,
    sets: (count) =>
      new Promise((resolve) => {
        const sets = all.filter((frame) => frame.type === 'set');
        if (sets.length >= count) resolve(sets);
        else waiting = { count, resolve };
      }),
  };
}

function eventType(set: string): string {
  const payload = JSON.parse(Buffer.from(set.split('.')[1]!, 'base64url').toString()) as { events: Record<string, unknown> };
  return Object.keys(payload.events)[0]!;
}

describe('signal WebSocket', () => {
  let server: TestServer;
  let token: string;
  let wsUrl: string;

  before(async () => {
    server = await startTestServer({ fixedPort: true, overrides: { signals: { maxStreamsPerClient: 20, socketsPerClient: 2, socketMaxFrameBytes: 256, socketMaxBufferedBytes: 1024 } } });
    token = await receiverToken(server);
    wsUrl = server.url.replace(/^http/, 'ws');
  });
  after(async () => {
    await server.close();
  });

  async function disable(count: number): Promise<void> {
    for (let i = 0; i < count; i++) {
      const user = await server.running.identity.accounts.createUser(`ws-${Date.now()}-${i}-${Math.random()}@example.com`, null, { actor: 'test' });
      await server.running.identity.accounts.setDisabled(user.id, true, { actor: 'admin' });
    }
  }

  it('sends SETs in order, and resumes after the acknowledged cursor (ws)', async () => {
    const streamId = await socketStream(server, token);
    const ws = new WsClient(`${wsUrl}/signals/ws?stream_id=${streamId}`, { headers: { authorization: `Bearer ${token}` } });
    const received = frames(ws);
    await once(ws, 'open');
    await disable(3);
    const sets = await received.sets(3);
    assert.equal(received.all[0]!.type, 'ready');
    assert.deepEqual(sets.map((frame) => eventType(frame.set!)), [SECURITY_EVENT_TYPES.accountDisabled, SECURITY_EVENT_TYPES.accountDisabled, SECURITY_EVENT_TYPES.accountDisabled]);
    const cursors = sets.map((frame) => Number(frame.cursor));
    assert.deepEqual([...cursors].sort((a, b) => a - b), cursors, 'in order');
    // Acknowledge the first only, then reconnect without `after`: the stream resumes after the acknowledged one.
    ws.send(JSON.stringify({ type: 'ack', cursor: sets[0]!.cursor }));
    await waitFor(async () => (await server.running.signals.transmitter.streams.get(streamId))!.data.cursor >= cursors[0]!);
    ws.close();
    await once(ws, 'close');
    const again = new WsClient(`${wsUrl}/signals/ws?stream_id=${streamId}`, { headers: { authorization: `Bearer ${token}` } });
    const resumed = frames(again);
    const two = await resumed.sets(2);
    assert.deepEqual(two.map((frame) => frame.set), [sets[1]!.set, sets[2]!.set], 'the same SETs (same jti) after the acknowledged one');
    again.close();
    // `?after=` names the resume point explicitly.
    const last = new WsClient(`${wsUrl}/signals/ws?stream_id=${streamId}&after=${cursors[1]}`, { headers: { authorization: `Bearer ${token}` } });
    const tail = frames(last);
    assert.deepEqual((await tail.sets(1)).map((frame) => frame.cursor), [String(cursors[2])]);
    last.close();
  });

  it('works with undici’s WebSocket (Node’s global) too', async () => {
    const streamId = await socketStream(server, token);
    // Browsers' API has no headers; undici's takes them (its own extension).
    const ws = new WebSocket(`${wsUrl}/signals/ws?stream_id=${streamId}`, { headers: { authorization: `Bearer ${token}` } });
    const messages: Frame[] = [];
    const gotSet = new Promise<void>((resolve) =>
      ws.addEventListener('message', (event: MessageEvent) => {
        messages.push(JSON.parse(String(event.data)) as Frame);
        if (messages.some((frame) => frame.type === 'set')) resolve();
      }),
    );
    await new Promise((resolve) => ws.addEventListener('open', resolve));
    await disable(1);
    await gotSet;
    assert.equal(messages[0]!.type, 'ready');
    assert.equal(eventType(messages.find((frame) => frame.type === 'set')!.set!), SECURITY_EVENT_TYPES.accountDisabled);
    ws.close();
  });

  it('refuses an upgrade without a valid token, or for another client’s stream', async () => {
    const streamId = await socketStream(server, token);
    for (const headers of [{}, { authorization: 'Bearer not-a-token' }, { authorization: `Bearer ${await receiverToken(server)}` }]) {
      const ws = new WsClient(`${wsUrl}/signals/ws?stream_id=${streamId}`, { headers });
      ws.on('error', () => undefined);
      const [, response] = (await once(ws, 'unexpected-response')) as [unknown, { statusCode: number }];
      assert.equal(response.statusCode, 401);
      ws.terminate();
    }
  });

  it('closes with 1009 a client frame larger than the limit', async () => {
    const streamId = await socketStream(server, token);
    const ws = new WsClient(`${wsUrl}/signals/ws?stream_id=${streamId}`, { headers: { authorization: `Bearer ${token}` } });
    await once(ws, 'open');
    ws.send(JSON.stringify({ type: 'ack', cursor: '1', padding: 'x'.repeat(1000) }));
    const [code] = (await once(ws, 'close')) as [number];
    assert.equal(code, 1009);
  });

  it('closes with 1002 a frame that is not an acknowledgement of a sent cursor', async () => {
    const streamId = await socketStream(server, token);
    const ws = new WsClient(`${wsUrl}/signals/ws?stream_id=${streamId}`, { headers: { authorization: `Bearer ${token}` } });
    await once(ws, 'open');
    ws.send(JSON.stringify({ type: 'ack', cursor: '999999999' }));
    const [code] = (await once(ws, 'close')) as [number];
    assert.equal(code, 1002);
  });

  it('allows at most socketsPerClient sockets per client (429 before the upgrade)', async () => {
    const streamId = await socketStream(server, token);
    const open = [0, 1].map(() => new WsClient(`${wsUrl}/signals/ws?stream_id=${streamId}`, { headers: { authorization: `Bearer ${token}` } }));
    await Promise.all(open.map((ws) => once(ws, 'open')));
    const third = new WsClient(`${wsUrl}/signals/ws?stream_id=${streamId}`, { headers: { authorization: `Bearer ${token}` } });
    third.on('error', () => undefined);
    const [, response] = (await once(third, 'unexpected-response')) as [unknown, { statusCode: number }];
    assert.equal(response.statusCode, 429);
    third.terminate();
    for (const ws of open) ws.close();
    await Promise.all(open.map((ws) => once(ws, 'close')));
  });
  it('cuts a consumer that stops reading with 1013; it resumes with ?after= and misses nothing', async () => {
    const streamId = await socketStream(server, token);
    const ws = new WsClient(`${wsUrl}/signals/ws?stream_id=${streamId}`, { headers: { authorization: `Bearer ${token}` } });
    const received = frames(ws);
    await once(ws, 'open');
    const closed = once(ws, 'close');
    const cut = server.logs.next(/signal socket too slow/);
    // Stop reading: the kernel buffers fill, then the server's own send buffer passes its limit.
    ws.pause();
    const count = 6000;
    const transmitter = server.running.signals.transmitter;
    const signals = Array.from({ length: count }, (_, i) => ({ type: SECURITY_EVENT_TYPES.verification, subject: { format: 'opaque' as const, id: streamId }, members: { state: `${i}-${'x'.repeat(400)}` } }));
    await transmitter.log.append(`bulk-${streamId}`, 'bulk', Date.now(), signals, streamId);
    transmitter.appended(await transmitter.log.head());
    await cut;
    // Reading again, the client gets what was sent before the cut, then the close frame.
    ws.resume();
    const [code] = (await closed) as [number];
    assert.equal(code, 1013);
    const got = received.all.filter((frame) => frame.type === 'set');
    assert.ok(got.length < count, 'cut before everything was sent');
    const again = new WsClient(`${wsUrl}/signals/ws?stream_id=${streamId}&after=${got.at(-1)?.cursor ?? '0'}`, { headers: { authorization: `Bearer ${token}` } });
    const rest = frames(again);
    const remaining = await rest.sets(count - got.length);
    const states = [...got, ...remaining].map((frame) => {
      const payload = JSON.parse(Buffer.from(frame.set!.split('.')[1]!, 'base64url').toString()) as { events: Record<string, { state: string }> };
      return Number(payload.events[SECURITY_EVENT_TYPES.verification]!.state.split('-')[0]);
    });
    assert.deepEqual(states, Array.from({ length: count }, (_, i) => i), 'every event once, in order, across the cut');
    again.close();
  });
  it('disconnects a client that stops answering pings (heartbeats)', async () => {
    const beating = await startTestServer({ fixedPort: true, overrides: { signals: { socketHeartbeat: '1s' } } });
    try {
      const bearer = await receiverToken(beating);
      const streamId = await socketStream(beating, bearer);
      const url = `${beating.url.replace(/^http/, 'ws')}/signals/ws?stream_id=${streamId}`;
      const healthy = new WsClient(url, { headers: { authorization: `Bearer ${bearer}` } });
      const silent = new WsClient(url, { headers: { authorization: `Bearer ${bearer}` }, autoPong: false });
      let pings = 0;
      silent.on('ping', () => pings++);
      await Promise.all([once(healthy, 'open'), once(silent, 'open')]);
      const [code] = (await once(silent, 'close')) as [number];
      assert.equal(code, 1006, 'terminated without a close frame');
      assert.ok(pings >= 1, 'it was pinged first');
      assert.equal(healthy.readyState, WsClient.OPEN, 'a client that answers stays connected');
      healthy.close();
    } finally {
      await beating.close();
    }
  });
  it('closes a bearer socket with 1008 once its access token is revoked', async () => {
    const { token: bearer, basic } = await receiver(server);
    const streamId = await socketStream(server, bearer);
    const ws = new WsClient(`${wsUrl}/signals/ws?stream_id=${streamId}`, { headers: { authorization: `Bearer ${bearer}` } });
    await once(ws, 'open');
    const closed = once(ws, 'close');
    const revoked = await fetch(`${server.url}/revoke`, { method: 'POST', headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ token: bearer }).toString() });
    assert.equal(revoked.status, 200);
    const [code] = (await closed) as [number];
    assert.equal(code, 1008);
  });
  it('security review: ?after= cannot reach before the stream began, nor past the log’s head', async () => {
    await disable(1); // an event from before the stream existed
    const streamId = await socketStream(server, token);
    const head = await server.running.signals.transmitter.log.head();
    const early = new WsClient(`${wsUrl}/signals/ws?stream_id=${streamId}&after=0`, { headers: { authorization: `Bearer ${token}` } });
    const fromZero = frames(early);
    const late = new WsClient(`${wsUrl}/signals/ws?stream_id=${streamId}&after=999999999`, { headers: { authorization: `Bearer ${token}` } });
    const fromFuture = frames(late);
    await Promise.all([once(early, 'open'), once(late, 'open')]);
    await disable(1);
    const [first] = await fromZero.sets(1);
    assert.ok(Number(first!.cursor) > head, 'nothing from before the stream began');
    const [next] = await fromFuture.sets(1);
    assert.equal(next!.cursor, first!.cursor, 'a resume point past the head starts at the head: the next event still comes');
    assert.equal(fromFuture.all[0]!.cursor, String(head));
    early.close();
    late.close();
  });

  it('security review: refused handshakes do not use up a client’s sockets', async () => {
    const streamId = await socketStream(server, token);
    const { port } = new URL(server.url);
    for (let i = 0; i < 3; i++) {
      const status = await new Promise<string>((resolve, reject) => {
        const socket = connect(Number(port), '127.0.0.1');
        let text = '';
        socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
        socket.on('error', reject);
        socket.on('close', () => resolve(text.split('\r\n')[0] ?? ''));
        socket.end(`GET /signals/ws?stream_id=${streamId} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: not-a-key\r\nAuthorization: Bearer ${token}\r\n\r\n`);
      });
      assert.match(status, /^HTTP\/1\.1 400/);
    }
    const open = [0, 1].map(() => new WsClient(`${wsUrl}/signals/ws?stream_id=${streamId}`, { headers: { authorization: `Bearer ${token}` } }));
    await Promise.all(open.map((ws) => once(ws, 'open')));
    for (const ws of open) ws.close();
    await Promise.all(open.map((ws) => once(ws, 'close')));
  });
});

async function waitFor(condition: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await condition()) return;
    await new Promise((resolve) => setImmediate(resolve));
  }
  throw new Error('condition not reached');
}
