/**
 * The client of Portcullis's WebSocket delivery (socket-protocol.ts): one
 * long-lived connection per stream, SETs pushed in order, acknowledged by
 * cursor, resumed after the last acknowledged cursor when the connection is
 * lost.
 *
 * Per `set` frame, one at a time and in order:
 *
 * - verified, jti new -> the listeners; once they resolved, `ack` with its
 *   cursor (which acknowledges everything before it too);
 * - verified, jti seen -> `ack` without the listeners (a replay after a lost ack);
 * - refused by verification -> reported to `onError` and acknowledged: an
 *   ack is cumulative, so holding it back would stall the stream behind a
 *   SET that will never verify (the same choice as RFC 8936 `setErrs`);
 * - a listener fails, or the keys cannot be had now (not fetched, or a
 *   `kid` the cached key set lacks during its refetch cool-down:
 *   SignalsUnavailableError) -> no ack; the client closes the connection
 *   and comes back with `?after=` the last acknowledged cursor, so the SET
 *   is delivered again. It reconnects no sooner than the error's
 *   `retryAfterMs` (the rest of the cool-down), so the replayed SET meets a
 *   key set that may be fetched again rather than a loop of reconnections.
 *   (Waiting on the open connection instead would hold every later SET
 *   behind it unacknowledged; a reconnect costs one upgrade.)
 *
 * What a close means (SIGNAL_SOCKET_CLOSE):
 *
 * - 1001 going away, 1013 try again later, a lost connection, a dead
 *   server (no ping or frame for `heartbeatTimeoutMs`) and other codes ->
 *   reconnect with backoff and `?after=`;
 * - 1008 policy violation (credential revoked, stream gone), 1009 (the
 *   client sent too much), 1002 (the client broke the protocol), and an
 *   upgrade refused with 400, 401, 403 or 404 -> no reconnect: the same
 *   request would fail again. `onError` gets a SignalSocketError with
 *   `fatal` true and `closed` resolves with it.
 */
import type { Agent } from 'node:https';
import WebSocket from 'ws';
import { SIGNAL_SOCKET_CLOSE } from '../security-events.ts';
import { Backoff, pause, type BackoffOptions } from './backoff.ts';
import { JtiDeduplicator, type JtiCacheOptions } from './dedup.ts';
import { SetVerificationError, SignalsUnavailableError } from './errors.ts';
import type { HttpOptions } from './fetch.ts';
import { createSsfKeySet, type SetKeySource } from './keys.ts';
import { EventListeners, type SecurityEventListener, type SignalSource } from './listeners.ts';
import { ackFrame, parseServerFrame, SocketProtocolError, streamUrl, type ServerFrame } from './socket-protocol.ts';
import { bearer, type TokenProvider } from './token.ts';
import { checkSecureUrl } from './url.ts';
import { verifySecurityEventToken } from './verify.ts';

/** PEM material for a client certificate (a fixed copy: use an agent from createMtlsAgent to follow file rotation). */
export interface SocketTlsMaterial {
  readonly cert: string | Buffer;
  readonly key: string | Buffer;
  /** The CA bundle the server's certificate must chain to. */
  readonly ca: string | Buffer;
}

export interface SignalSocketOptions extends HttpOptions {
  /** `wss://host:port/signals/ws?stream_id=...` (ws:// only to a loopback address). */
  readonly url: string;
  readonly issuer: string;
  readonly audience: string;
  /** Default: discovered from `issuer` (createSsfKeySet). */
  readonly keys?: SetKeySource;
  /** A client certificate: PEM material, or an agent from `portcullis/sdk/mtls` createMtlsAgent (reloads its files). */
  readonly mtls?: SocketTlsMaterial | Agent;
  /** Sent as `Authorization: Bearer` on each upgrade request; a function is asked each time. */
  readonly token?: TokenProvider;
  /** Resume after this cursor on the first connection (a cursor kept from an earlier run). */
  readonly after?: string;
  readonly onEvent?: SecurityEventListener;
  /** No ping or frame from the server for this long: the connection is dead, reconnect. Default 45 000 ms. */
  readonly heartbeatTimeoutMs?: number;
  /** Default 10 000 ms. */
  readonly handshakeTimeoutMs?: number;
  /** The largest frame accepted from the server. Default 1 MiB. */
  readonly maxPayloadBytes?: number;
  readonly backoff?: BackoffOptions;
  readonly dedup?: JtiCacheOptions;
  /** Every failure: refused SETs, failed listeners, lost connections, and the fatal one (`fatal` true). */
  readonly onError?: (error: Error) => void;
  /** Each closed connection, and whether the client will connect again. */
  readonly onClose?: (close: SignalSocketClose) => void;
  /** Each `ready` frame: the connection is up and the server will send from `cursor` on. */
  readonly onReady?: (ready: { readonly streamId: string; readonly cursor: string | null }) => void;
}

export interface SignalSocketClose {
  readonly code: number;
  readonly reason: string;
  readonly reconnect: boolean;
}

export type SignalSocketErrorCode = 'policy_violation' | 'message_too_big' | 'protocol_error' | 'upgrade_refused' | 'heartbeat_timeout' | 'connection_lost';

export class SignalSocketError extends Error {
  readonly code: SignalSocketErrorCode;
  /** No reconnect follows. */
  readonly fatal: boolean;
  /** The close code, or the HTTP status of a refused upgrade. */
  readonly status: number | undefined;

  constructor(code: SignalSocketErrorCode, message: string, fatal: boolean, status?: number, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SignalSocketError';
    this.code = code;
    this.fatal = fatal;
    this.status = status;
  }
}

export interface SignalSocket extends SignalSource {
  /** Connects; a no-op when started. */
  start(): void;
  /** Closes (1000) and does not reconnect; resolves once closed. */
  stop(): Promise<void>;
  /** The cursor of the last SET processed and acknowledged: keep it to resume with `after` in a later run. */
  readonly cursor: string | undefined;
  /** Resolves when the client has stopped for good: with the fatal error, or undefined after stop(). */
  readonly closed: Promise<SignalSocketError | undefined>;
}

const UPGRADE_FATAL = new Set([400, 401, 403, 404]);
/** RFC 6455 section 7.4.1: the code a client closes with when it goes away for its own reasons (a failed listener, a bad frame). */
const CLIENT_GOING_AWAY = 1000;

/** One connection attempt and what happened to it. */
interface Connection {
  readonly ws: WebSocket;
  /** Frames are processed one after another. */
  chain: Promise<void>;
  /** Set when this client decided to close it: later frames are dropped, and the close is not the server's verdict. */
  closing: boolean;
  upgradeStatus: number | undefined;
  heartbeat: NodeJS.Timeout | undefined;
}

class Socket implements SignalSocket {
  readonly #options: SignalSocketOptions;
  readonly #url: URL;
  readonly #keys: SetKeySource;
  readonly #listeners: EventListeners;
  readonly #seen: JtiDeduplicator;
  readonly #backoff: Backoff;
  readonly #stopping = new AbortController();
  #cursor: string | undefined;
  #started = false;
  #connection: Connection | undefined;
  /** Milliseconds the next reconnection waits at least: the key set's remaining cool-down. */
  #holdMs = 0;
  #settle!: (result: SignalSocketError | undefined) => void;
  readonly closed: Promise<SignalSocketError | undefined>;

  constructor(options: SignalSocketOptions) {
    this.#options = options;
    this.#url = checkSecureUrl(options.url, 'WebSocket URL', 'wss:');
    if (!this.#url.searchParams.get('stream_id')) throw new TypeError('the WebSocket URL needs its stream_id query parameter');
    this.#keys = options.keys ?? createSsfKeySet({ issuer: options.issuer, fetch: options.fetch, dispatcher: options.dispatcher, timeoutMs: options.timeoutMs });
    this.#listeners = new EventListeners(options.onEvent);
    this.#seen = new JtiDeduplicator(options.dedup);
    this.#backoff = new Backoff(options.backoff);
    this.#cursor = options.after;
    this.closed = new Promise((resolve) => (this.#settle = resolve));
  }

  get cursor(): string | undefined {
    return this.#cursor;
  }

  onEvent(listener: SecurityEventListener): () => void {
    return this.#listeners.onEvent(listener);
  }

  start(): void {
    if (this.#started) return;
    this.#started = true;
    void this.#connect();
  }

  async stop(): Promise<void> {
    if (!this.#stopping.signal.aborted) {
      this.#stopping.abort();
      const connection = this.#connection;
      if (connection === undefined || connection.ws.readyState === WebSocket.CLOSED) this.#settle(undefined);
      else {
        connection.closing = true;
        connection.ws.close(1000, 'receiver stopping');
      }
    }
    await this.closed;
  }

  async #connect(): Promise<void> {
    if (this.#stopping.signal.aborted) return this.#settle(undefined);
    let headers: Record<string, string>;
    try {
      headers = await bearer(this.#options.token);
    } catch (error) {
      this.#report(error);
      return this.#retry();
    }
    const url = streamUrl(this.#url, this.#cursor);
    const tls = this.#options.mtls;
    const ws = new WebSocket(url, {
      headers,
      handshakeTimeout: this.#options.handshakeTimeoutMs ?? 10_000,
      maxPayload: this.#options.maxPayloadBytes ?? 1024 * 1024,
      perMessageDeflate: false,
      followRedirects: false,
      // The server upgrades over HTTP/1.1 only (RFC 6455 section 4.1; RFC 8441 would be needed for HTTP/2).
      ...(url.protocol === 'wss:' ? { ALPNProtocols: ['http/1.1'] } : {}),
      ...(tls === undefined ? {} : 'cert' in tls && !('createConnection' in tls) ? { cert: tls.cert, key: tls.key, ca: tls.ca } : { agent: tls as Agent }),
    });
    const connection: Connection = { ws, chain: Promise.resolve(), closing: false, upgradeStatus: undefined, heartbeat: undefined };
    this.#connection = connection;
    const alive = () => this.#arm(connection);
    ws.on('upgrade', alive);
    ws.on('ping', alive);
    ws.on('pong', alive);
    ws.on('unexpected-response', (_request, response) => {
      connection.upgradeStatus = response.statusCode;
      response.resume();
      ws.terminate();
    });
    ws.on('message', (data, isBinary) => {
      alive();
      if (connection.closing) return;
      let frame: ServerFrame | undefined;
      try {
        if (isBinary) throw new SocketProtocolError('a binary frame');
        frame = parseServerFrame(Buffer.isBuffer(data) ? data.toString('utf8') : Buffer.concat(data as Buffer[]).toString('utf8'));
      } catch (error) {
        this.#report(error);
        this.#abandon(connection, 'protocol error');
        return;
      }
      if (frame?.type === 'ready') this.#ready(connection, frame);
      else if (frame?.type === 'set') {
        const set = frame;
        connection.chain = connection.chain.then(() => this.#process(connection, set));
      }
    });
    ws.on('error', (error) => {
      if (connection.upgradeStatus === undefined) this.#report(error);
    });
    ws.on('close', (code, reason) => this.#closed(connection, code, reason.toString('utf8')));
  }

  #ready(connection: Connection, frame: Extract<ServerFrame, { type: 'ready' }>): void {
    if (frame.stream_id !== this.#url.searchParams.get('stream_id')) {
      this.#report(new SocketProtocolError(`the server is sending stream ${frame.stream_id}, not the one asked for`));
      this.#abandon(connection, 'wrong stream');
      return;
    }
    this.#backoff.reset();
    this.#options.onReady?.({ streamId: frame.stream_id, cursor: frame.cursor });
  }

  async #process(connection: Connection, frame: Extract<ServerFrame, { type: 'set' }>): Promise<void> {
    if (connection.closing) return;
    try {
      const event = await verifySecurityEventToken(frame.set, { issuer: this.#options.issuer, audience: this.#options.audience, keys: this.#keys });
      await this.#seen.once(event.jti, () => this.#listeners.dispatch(event));
    } catch (error) {
      this.#report(error);
      if (!(error instanceof SetVerificationError)) {
        if (error instanceof SignalsUnavailableError && error.retryAfterMs !== undefined) this.#holdMs = Math.max(this.#holdMs, error.retryAfterMs);
        this.#abandon(connection, 'not processed; resuming');
        return;
      }
    }
    if (connection.closing) return;
    this.#cursor = frame.cursor;
    connection.ws.send(ackFrame(frame.cursor));
  }

  /** This client closes the connection and will reconnect with ?after= (the SETs after the last ack come again). */
  #abandon(connection: Connection, reason: string): void {
    if (connection.closing) return;
    connection.closing = true;
    connection.ws.close(CLIENT_GOING_AWAY, reason);
  }

  #arm(connection: Connection): void {
    clearTimeout(connection.heartbeat);
    const limit = this.#options.heartbeatTimeoutMs ?? 45_000;
    connection.heartbeat = setTimeout(() => {
      this.#report(new SignalSocketError('heartbeat_timeout', `no ping or frame from the server for ${limit} ms`, false));
      connection.closing = true;
      connection.ws.terminate();
    }, limit);
    connection.heartbeat.unref();
  }

  #closed(connection: Connection, code: number, reason: string): void {
    clearTimeout(connection.heartbeat);
    if (this.#connection !== connection) return;
    this.#connection = undefined;
    // The SETs already received finish (and are acknowledged where possible) before anything else: the cursor only moves forward.
    const drained = connection.chain;
    if (this.#stopping.signal.aborted) {
      this.#options.onClose?.({ code, reason, reconnect: false });
      void drained.then(() => this.#settle(undefined));
      return;
    }
    const fatal = connection.closing ? undefined : this.#verdict(connection, code, reason);
    this.#options.onClose?.({ code, reason, reconnect: fatal === undefined });
    if (fatal !== undefined) {
      this.#stopping.abort();
      this.#report(fatal);
      void drained.then(() => this.#settle(fatal));
      return;
    }
    if (connection.upgradeStatus !== undefined) this.#report(new SignalSocketError('upgrade_refused', `the server refused the upgrade with ${connection.upgradeStatus}`, false, connection.upgradeStatus));
    void drained.then(() => this.#retry());
  }

  /** A close the server chose (or a refused upgrade): a SignalSocketError when reconnecting cannot help. */
  #verdict(connection: Connection, code: number, reason: string): SignalSocketError | undefined {
    const status = connection.upgradeStatus;
    if (status !== undefined) {
      return UPGRADE_FATAL.has(status) ? new SignalSocketError('upgrade_refused', `the server refused the upgrade with ${status}`, true, status) : undefined;
    }
    const why = reason === '' ? '' : `: ${reason}`;
    if (code === SIGNAL_SOCKET_CLOSE.policyViolation) return new SignalSocketError('policy_violation', `the server closed the stream (1008 policy violation${why})`, true, code);
    if (code === SIGNAL_SOCKET_CLOSE.messageTooBig) return new SignalSocketError('message_too_big', `the server refused a frame of this client as too big (1009${why})`, true, code);
    if (code === SIGNAL_SOCKET_CLOSE.protocolError) return new SignalSocketError('protocol_error', `the server says this client broke the protocol (1002${why})`, true, code);
    return undefined;
  }

  async #retry(): Promise<void> {
    const delay = Math.max(this.#backoff.next(), this.#holdMs);
    this.#holdMs = 0;
    await pause(delay, this.#stopping.signal);
    await this.#connect();
  }

  #report(error: unknown): void {
    this.#options.onError?.(error instanceof Error ? error : new Error(String(error)));
  }
}

export function createSignalSocket(options: SignalSocketOptions): SignalSocket {
  return new Socket(options);
}
