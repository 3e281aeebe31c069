/**
 * createSignalSocket against an in-test server that follows the
 * `/signals/ws` protocol (src/sdk/signals/socket-protocol.ts): a ws
 * WebSocketServer on node:http (and once on node:https with a client
 * certificate required), a log of SETs whose cursors are their positions,
 * `ready` then the SETs after `?after=`, acks recorded. Each step waits on
 * an event (a connection, an ack, a listener call, `closed`), never on a
 * sleep; the heartbeat test uses a short heartbeat interval and waits for
 * the reconnection it causes.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer as createHttpServer, type IncomingMessage, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { WebSocketServer, type WebSocket } from 'ws';
import { ManualClock } from '../support/clock.ts';
import { makeTestPki, type TestPki } from '../support/mtls.ts';
import { AUDIENCE, setClaims, signingKey, signSet, startTransmitter, type Transmitter } from '../support/signals.ts';
import { SIGNAL_SOCKET_CLOSE } from '../../src/sdk/security-events.ts';
import { createMtlsAgent } from '../../src/sdk/mtls/index.ts';
import { createSignalSocket, createSsfKeySet, SetVerificationError, SignalsUnavailableError, SignalSocketError, type SignalSocket, type SignalSocketOptions } from '../../src/sdk/signals/index.ts';

const STREAM = 'stream-1';
const TOKEN = 'ws-access-token';

interface Upgrade {
  readonly url: URL;
  readonly authorization: string | undefined;
  readonly socket: WebSocket;
  readonly request: IncomingMessage;
}

/** The server side of the protocol, just enough of it. */
class StreamServer {
  readonly server: Server;
  readonly wss = new WebSocketServer({ noServer: true });
  /** The SETs, in order; a SET's cursor is its index. */
  readonly log: string[] = [];
  readonly upgrades: Upgrade[] = [];
  readonly acks: string[] = [];
  /** The next upgrade is refused with this status. */
  refuseWith: number | undefined;
  /** Send `ready` and the backlog on connection (off: a silent server). */
  speak = true;
  #waiters: { count: number; resolve: () => void; list: unknown[] }[] = [];

  constructor(server: Server) {
    this.server = server;
    server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
      if (this.refuseWith !== undefined) {
        socket.end(`HTTP/1.1 ${this.refuseWith} Refused\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
        this.refuseWith = undefined;
        this.upgrades.push({ url: new URL(request.url ?? '/', 'http://x'), authorization: request.headers.authorization, socket: undefined as never, request });
        this.#notify();
        return;
      }
      this.wss.handleUpgrade(request, socket, head, (ws) => this.#connected(ws, request));
    });
  }

  get url(): string {
    const { port } = this.server.address() as AddressInfo;
    const scheme = 'cert' in this.server ? 'wss' : 'ws';
    return `${scheme}://127.0.0.1:${port}/signals/ws?stream_id=${STREAM}`;
  }

  get last(): Upgrade {
    return this.upgrades.at(-1)!;
  }

  #connected(ws: WebSocket, request: IncomingMessage): void {
    const url = new URL(request.url ?? '/', 'http://x');
    this.upgrades.push({ url, authorization: request.headers.authorization, socket: ws, request });
    ws.on('message', (data) => {
      const frame = JSON.parse((data as Buffer).toString('utf8')) as { type: string; cursor: string };
      assert.equal(frame.type, 'ack');
      this.acks.push(frame.cursor);
      this.#notify();
    });
    if (this.speak) {
      const start = url.searchParams.has('after') ? Number(url.searchParams.get('after')) + 1 : 0;
      ws.send(JSON.stringify({ type: 'ready', stream_id: url.searchParams.get('stream_id'), cursor: start === 0 ? null : String(start - 1) }));
      for (let i = start; i < this.log.length; i++) this.#send(ws, i);
    }
    this.#notify();
  }

  #send(ws: WebSocket, index: number): void {
    ws.send(JSON.stringify({ type: 'set', cursor: String(index), set: this.log[index] }));
  }

  /** Appends a SET and sends it to the open connections. */
  publish(jws: string): string {
    this.log.push(jws);
    for (const client of this.wss.clients) this.#send(client, this.log.length - 1);
    return String(this.log.length - 1);
  }

  /** Resolves once `list` has `count` entries (acks or upgrades). */
  until(list: 'acks' | 'upgrades', count: number): Promise<void> {
    return new Promise((resolve) => {
      this.#waiters.push({ count, resolve, list: this[list] });
      this.#notify();
    });
  }

  #notify(): void {
    this.#waiters = this.#waiters.filter((waiter) => {
      if (waiter.list.length < waiter.count) return true;
      waiter.resolve();
      return false;
    });
  }

  close(): Promise<void> {
    for (const client of this.wss.clients) client.terminate();
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

async function streamServer(server: Server = createHttpServer()): Promise<StreamServer> {
  const stream = new StreamServer(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return stream;
}

let transmitter: Transmitter;
before(async () => {
  transmitter = await startTransmitter([await signingKey('EdDSA')]);
});
after(() => transmitter.close());

function socket(stream: StreamServer, options: Partial<SignalSocketOptions> = {}): SignalSocket {
  return createSignalSocket({
    url: stream.url,
    issuer: transmitter.issuer,
    audience: AUDIENCE,
    token: TOKEN,
    backoff: { initialMs: 1, maxMs: 1 },
    ...options,
  });
}

describe('signals: WebSocket client', () => {
  it('connects with stream_id and the bearer token, passes the SETs in order to the listener, and acks each cursor after it resolved', async () => {
    const stream = await streamServer();
    const got: string[] = [];
    const client = socket(stream, { onEvent: (event) => void got.push(event.jti) });
    try {
      const jtis = [randomJti(), randomJti()];
      for (const jti of jtis) stream.publish(await transmitter.sign({ jti }));
      client.start();
      await stream.until('acks', 2);
      assert.deepEqual(got, jtis);
      assert.deepEqual(stream.acks, ['0', '1']);
      assert.equal(client.cursor, '1');
      assert.equal(stream.last.authorization, `Bearer ${TOKEN}`);
      assert.equal(stream.last.url.searchParams.get('stream_id'), STREAM);
      assert.equal(stream.last.url.searchParams.has('after'), false);
      // Live: a SET published on the open connection.
      stream.publish(await transmitter.sign());
      await stream.until('acks', 3);
      assert.equal(got.length, 3);
    } finally {
      await client.stop();
      await stream.close();
    }
  });

  it('after a 1013 (and a 1001) close, reconnects with after= the last acked cursor and gets only what follows', async () => {
    const stream = await streamServer();
    const got: string[] = [];
    const closes: number[] = [];
    const client = socket(stream, { onEvent: (event) => void got.push(event.jti), onClose: (close) => void closes.push(close.code) });
    try {
      stream.publish(await transmitter.sign());
      stream.publish(await transmitter.sign());
      client.start();
      await stream.until('acks', 2);
      stream.last.socket.close(SIGNAL_SOCKET_CLOSE.tryAgainLater, 'slow reader');
      await stream.until('upgrades', 2);
      assert.equal(stream.last.url.searchParams.get('after'), '1');
      assert.equal(stream.last.url.searchParams.get('stream_id'), STREAM);
      stream.publish(await transmitter.sign());
      await stream.until('acks', 3);
      stream.last.socket.close(SIGNAL_SOCKET_CLOSE.goingAway, 'restarting');
      await stream.until('upgrades', 3);
      assert.equal(stream.last.url.searchParams.get('after'), '2');
      assert.deepEqual(stream.acks, ['0', '1', '2']);
      assert.equal(new Set(got).size, 3);
      assert.deepEqual(closes, [1013, 1001]);
    } finally {
      await client.stop();
      await stream.close();
    }
  });

  it('does not reconnect after 1008: closed resolves with a fatal policy_violation, and onError hears of it', async () => {
    const stream = await streamServer();
    const errors: Error[] = [];
    const client = socket(stream, { onError: (error) => errors.push(error) });
    try {
      client.start();
      await stream.until('upgrades', 1);
      stream.last.socket.close(SIGNAL_SOCKET_CLOSE.policyViolation, 'credential revoked');
      const fatal = await client.closed;
      assert.ok(fatal instanceof SignalSocketError);
      assert.equal(fatal.code, 'policy_violation');
      assert.equal(fatal.fatal, true);
      assert.match(fatal.message, /credential revoked/);
      assert.ok(errors.includes(fatal));
      // closed resolves only when no reconnect is scheduled: the server keeps its one connection (and stop() is a no-op).
      await client.stop();
      assert.equal(stream.upgrades.length, 1);
    } finally {
      await stream.close();
    }
  });

  it('1009 is fatal too, and so is an upgrade refused with 401; a 503 upgrade is retried', async () => {
    const stream = await streamServer();
    try {
      const tooBig = socket(stream);
      tooBig.start();
      await stream.until('upgrades', 1);
      stream.last.socket.close(SIGNAL_SOCKET_CLOSE.messageTooBig);
      assert.equal((await tooBig.closed)?.code, 'message_too_big');

      stream.refuseWith = 401;
      const refused = socket(stream);
      refused.start();
      const error = await refused.closed;
      assert.equal(error?.code, 'upgrade_refused');
      assert.equal(error.status, 401);
      assert.equal(stream.upgrades.length, 2);

      stream.refuseWith = 503;
      const retried = socket(stream);
      retried.start();
      await stream.until('upgrades', 4);
      assert.equal(stream.last.socket.readyState, 1);
      await retried.stop();
      assert.equal(await retried.closed, undefined);
    } finally {
      await stream.close();
    }
  });

  it('a listener that throws leaves its SET unacked; the client reconnects after the last acked cursor and the SET comes again', async () => {
    const stream = await streamServer();
    let fail = true;
    const calls: string[] = [];
    const errors: Error[] = [];
    const client = socket(stream, {
      onError: (error) => errors.push(error),
      onEvent: (event) => {
        calls.push(event.jti);
        if (calls.length === 2 && fail) {
          fail = false;
          throw new Error('cache unavailable');
        }
      },
    });
    try {
      const first = randomJti();
      const second = randomJti();
      stream.publish(await transmitter.sign({ jti: first }));
      stream.publish(await transmitter.sign({ jti: second }));
      client.start();
      await stream.until('upgrades', 2);
      assert.equal(stream.last.url.searchParams.get('after'), '0');
      await stream.until('acks', 2);
      assert.deepEqual(stream.acks, ['0', '1']);
      assert.deepEqual(calls, [first, second, second]);
      assert.equal(errors[0]!.message, 'cache unavailable');
    } finally {
      await client.stop();
      await stream.close();
    }
  });

  it('security: a SET under a kid the cached keys lack, during the refetch cool-down, is not acked; the client reconnects after the last acked cursor, no sooner than the cool-down allows, and processes it then', async () => {
    const stream = await streamServer();
    const clock = new ManualClock();
    const got: string[] = [];
    const errors: Error[] = [];
    const client = socket(stream, {
      keys: createSsfKeySet({ issuer: transmitter.issuer, now: clock.now, cooldownMs: 100 }),
      onEvent: (event) => void got.push(event.jti),
      onError: (error) => errors.push(error),
    });
    const rotated = await signingKey('EdDSA');
    try {
      const first = randomJti();
      const second = randomJti();
      stream.publish(await transmitter.sign({ jti: first }));
      client.start();
      await stream.until('acks', 1);
      // The transmitter rotates after the client fetched its keys; the next SET names the new kid.
      transmitter.keys = [...transmitter.keys, rotated];
      const jws = await signSet(setClaims(transmitter.issuer, { jti: second }), rotated);
      const published = Date.now();
      stream.publish(jws);
      await stream.until('upgrades', 2);
      assert.ok(Date.now() - published >= 90, 'the reconnection waits out the rest of the cool-down (100 ms), not the 1 ms backoff');
      assert.deepEqual(stream.acks, ['0'], 'the SET under the unknown kid is not acked');
      assert.equal(stream.last.url.searchParams.get('after'), '0');
      assert.ok(errors.some((error) => error instanceof SignalsUnavailableError));
      assert.ok(!errors.some((error) => error instanceof SetVerificationError), 'never refused');
      // The cool-down (on the key set's clock) ends: the replayed SET is verified after one more reconnection.
      clock.advance(100);
      await stream.until('acks', 2);
      assert.deepEqual(stream.acks, ['0', '1']);
      assert.deepEqual(got, [first, second]);
    } finally {
      transmitter.keys = transmitter.keys.filter((key) => key !== rotated);
      await client.stop();
      await stream.close();
    }
  });

  it('a forged SET never reaches the listener (reported, and acked so the stream moves on); a replayed jti is acked without the listener', async () => {
    const stream = await streamServer();
    const got: string[] = [];
    const errors: Error[] = [];
    const client = socket(stream, { onEvent: (event) => void got.push(event.jti), onError: (error) => errors.push(error) });
    try {
      const impostor = await signingKey('EdDSA', transmitter.keys[0]!.kid);
      stream.publish(await signSet(setClaims(transmitter.issuer), impostor));
      const replayed = await transmitter.sign();
      stream.publish(replayed);
      stream.publish(replayed);
      client.start();
      await stream.until('acks', 3);
      assert.equal(got.length, 1);
      assert.ok(errors[0] instanceof SetVerificationError);
      assert.equal(errors[0].code, 'invalid_key');
    } finally {
      await client.stop();
      await stream.close();
    }
  });

  it('a server that sends nothing (no ping, no frame) for heartbeatTimeoutMs is given up and reconnected to', async () => {
    const stream = await streamServer();
    stream.speak = false;
    const errors: Error[] = [];
    const client = socket(stream, { heartbeatTimeoutMs: 100, onError: (error) => errors.push(error) });
    try {
      client.start();
      await stream.until('upgrades', 2);
      assert.ok(errors.some((error) => error instanceof SignalSocketError && error.code === 'heartbeat_timeout'));
    } finally {
      await client.stop();
      await stream.close();
    }
  });

  it('resumes from `after` given at start, and refuses a URL without stream_id or a plain ws:// URL to a remote host', async () => {
    assert.throws(() => createSignalSocket({ url: 'ws://127.0.0.1:1/signals/ws', issuer: transmitter.issuer, audience: AUDIENCE }), /stream_id/);
    assert.throws(() => createSignalSocket({ url: 'ws://signals.example.com/signals/ws?stream_id=s', issuer: transmitter.issuer, audience: AUDIENCE }), /wss/);
    const stream = await streamServer();
    const client = socket(stream, { after: '41' });
    try {
      client.start();
      await stream.until('upgrades', 1);
      assert.equal(stream.last.url.searchParams.get('after'), '41');
      assert.equal(client.cursor, '41');
    } finally {
      await client.stop();
      await stream.close();
    }
  });
});

describe('signals: WebSocket client over TLS with a client certificate', () => {
  let pki: TestPki;
  before(() => {
    pki = makeTestPki();
  });
  after(() => pki.remove());

  for (const variant of ['PEM material', 'an agent from createMtlsAgent'] as const) {
    it(`wss:// with ${variant}: the server verifies the client certificate, ALPN is http/1.1`, async () => {
      const stream = await streamServer(createHttpsServer({ cert: pki.server.cert, key: pki.server.key, ca: pki.ca.cert, requestCert: true, rejectUnauthorized: true, ALPNProtocols: ['http/1.1'] }));
      const agent = variant === 'PEM material' ? undefined : createMtlsAgent({ certFile: pki.alpha.certFile, keyFile: pki.alpha.keyFile, caFile: pki.ca.certFile });
      const got: string[] = [];
      const client = socket(stream, {
        token: undefined,
        mtls: agent ?? { cert: pki.alpha.cert, key: pki.alpha.key, ca: pki.ca.cert },
        onEvent: (event) => void got.push(event.jti),
      });
      try {
        stream.publish(await transmitter.sign());
        client.start();
        await stream.until('acks', 1);
        const tls = stream.last.request.socket as TLSSocket;
        assert.equal(tls.authorized, true);
        assert.equal(tls.getPeerCertificate().subject.CN, 'alpha');
        assert.equal(tls.alpnProtocol, 'http/1.1');
        assert.equal(got.length, 1);
      } finally {
        await client.stop();
        agent?.destroy();
        await stream.close();
      }
    });
  }

  it('wss:// to a server whose certificate the given CA does not sign: no connection, retried (not a silent success)', async () => {
    const stream = await streamServer(createHttpsServer({ cert: pki.server.cert, key: pki.server.key }));
    const errors: Error[] = [];
    let notify!: () => void;
    const twice = new Promise<void>((resolve) => (notify = resolve));
    const client = socket(stream, {
      mtls: { cert: pki.alpha.cert, key: pki.alpha.key, ca: pki.foreignAlpha.cert },
      onError: (error) => {
        errors.push(error);
        if (errors.length === 2) notify();
      },
    });
    try {
      client.start();
      await twice;
      assert.equal(stream.upgrades.length, 0);
      assert.match(String((errors[0] as NodeJS.ErrnoException).code), /CERT|SIGNATURE|ISSUER|SELF_SIGNED|VERIFY/);
    } finally {
      await client.stop();
      await stream.close();
    }
  });
});

function randomJti(): string {
  return crypto.randomUUID();
}
