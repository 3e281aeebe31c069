/**
 * `/signals/ws`: a stream's SETs over a WebSocket (RFC 6455), Portcullis's
 * own delivery method (`urn:portcullis:ssf:delivery:websocket`), on the
 * mTLS listener (the client certificate's SPIFFE ID authenticates) or the
 * main listener (a bearer token, as for the stream API).
 *
 * Protocol (also in the README and `portcullis/sdk/signals`):
 * - `GET /signals/ws?stream_id=ID[&after=CURSOR]`, HTTP/1.1 Upgrade;
 * - server → client: `{"type":"ready","stream_id","cursor"}` once, then
 *   `{"type":"set","cursor","set"}` per event in stream order;
 * - client → server: `{"type":"ack","cursor"}`: everything up to it is
 *   processed (the stream's cursor moves; a reconnect without `after`
 *   resumes there);
 * - pings every `signals.socketHeartbeat`; a client that misses two is cut;
 * - who may receive is checked at the upgrade and again before every send
 *   round: a client deleted, no longer approved or no longer listing the
 *   certificate's SPIFFE ID closes with 1008, like a deleted stream;
 * - limits: frames from the client up to `signals.socketMaxFrameBytes`
 *   (1009 beyond), unsent data up to `signals.socketMaxBufferedBytes`
 *   (1013: read faster, resume with `?after=`), `signals.socketsPerClient`
 *   sockets per client on an instance (429 before the upgrade);
 * - 1008 when the stream is deleted or disabled, the client deleted or no
 *   longer approved, its SPIFFE ID no longer listed, or the bearer token
 *   expired or revoked; a revoked client certificate's connection is cut
 *   by the mTLS listener (1006: no close frame).
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { TLSSocket } from 'node:tls';
import type { FastifyInstance } from 'fastify';
import proxyAddr from '@fastify/proxy-addr';
import { WebSocketServer, type WebSocket } from 'ws';
import { throttledFor, type FailureAggregator } from '../audit/index.ts';
import { isApproved, type AuthorizationServer, type OAuthClient } from '../oauth/index.ts';
import { DELIVERY_METHODS, SIGNAL_SOCKET_CLOSE } from '../sdk/index.ts';
import { spiffeIdOf } from '../sdk/mtls/index.ts';
import { SSF_STREAM_SCOPE, signalsAudience, type Signals, type StreamRecord } from '../signals/index.ts';
import { isSelfIssued } from '../pki/index.ts';

const PATH = '/signals/ws';
const AUTH_FAILURES_PER_MINUTE = 30;
/** SETs read from the log per send round. */
const BATCH = 100;
/** Without a wake-up, a socket looks at its stream this often (another instance's append whose message was lost, a status change). */
const RECHECK_MS = 1000;

export interface SignalSocketOptions {
  readonly signals: Signals;
  readonly oauth: AuthorizationServer | undefined;
  readonly failures: FailureAggregator;
  readonly issuer: string;
  /** The mTLS listener's instance: a verified client certificate authenticates. */
  readonly mtls: boolean;
  /** `trustProxy`: the client's address behind these proxies comes from X-Forwarded-For (as Fastify's request.ip). */
  readonly trustedProxies: readonly string[];
}

/** Who opened a socket: the client, and the SPIFFE ID its certificate presented (mTLS listener). */
interface Credential {
  readonly clientId: string;
  readonly spiffeId?: string;
  /** A bearer socket's access token: checked again like the client, so its expiry or revocation ends the socket. */
  readonly bearer?: string;
}

/** Per-client socket counts of this instance (shared by both listeners' servers). */
const openSockets = new Map<string, number>();

export function attachSignalSocket(app: FastifyInstance, options: SignalSocketOptions): void {
  const { transmitter } = options.signals;
  const settings = transmitter.settings;
  const server = new WebSocketServer({ noServer: true, maxPayload: settings.socketMaxFrameBytes, perMessageDeflate: false });
  const audience = signalsAudience(options.issuer);
  const trust = options.trustedProxies.length > 0 ? proxyAddr.compile([...options.trustedProxies]) : undefined;

  app.server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    void upgrade(request, socket, head).catch((error: unknown) => {
      app.log.error({ err: error }, 'signal socket upgrade failed');
      refuse(socket, 500, 'Internal Server Error');
    });
  });
  app.addHook('onClose', async () => {
    for (const client of server.clients) client.close(SIGNAL_SOCKET_CLOSE.goingAway, 'server stopping');
    server.close();
  });

  async function upgrade(request: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const url = new URL(request.url ?? '/', 'http://localhost');
    if (url.pathname !== PATH) return refuse(socket, 404, 'Not Found');
    // The throttle counts per client address, behind a trusted proxy too (as Fastify's request.ip), never per proxy.
    const ip = trust === undefined ? request.socket.remoteAddress : proxyAddr(request, trust);
    if ((await throttledFor(options.failures, 'signals.auth.failed', ip, AUTH_FAILURES_PER_MINUTE)) !== undefined) return refuse(socket, 429, 'Too Many Requests');
    const streamId = url.searchParams.get('stream_id') ?? '';
    const afterText = url.searchParams.get('after');
    const after = afterText === null ? undefined : /^(0|[1-9][0-9]{0,15})$/.test(afterText) ? Number(afterText) : Number.NaN;
    if (streamId === '' || streamId.length > 64 || Number.isNaN(after)) return refuse(socket, 400, 'Bad Request');
    const record = await transmitter.streams.get(streamId);
    const credential = await authenticate(request, record?.data);
    if (credential === undefined || record === null || record.data.clientId !== credential.clientId) {
      await options.failures.record({ type: 'signals.auth.failed', outcome: 'denied', ...(ip !== undefined && { ip }), detail: { presented: 'a signal socket credential' } });
      return refuse(socket, 401, 'Unauthorized', 'Bearer realm="portcullis-signals"');
    }
    const { clientId } = credential;
    if (record.data.method !== DELIVERY_METHODS.websocket) return refuse(socket, 409, 'Conflict');
    if ((openSockets.get(clientId) ?? 0) >= settings.socketsPerClient) return refuse(socket, 429, 'Too Many Requests');
    // Where a socket may start: not before the stream began (or was re-enabled), not past what exists.
    const floor = record.data.floor ?? record.data.cursor;
    const start = Math.min(Math.max(after ?? record.data.cursor, floor), await transmitter.log.head());
    server.handleUpgrade(request, socket, head, (ws) => {
      // Counted once the socket exists (a refused handshake never calls back), checked again after the awaits above.
      const open = openSockets.get(clientId) ?? 0;
      if (open >= settings.socketsPerClient) {
        ws.close(SIGNAL_SOCKET_CLOSE.tryAgainLater, 'too many sockets for this client');
        return;
      }
      openSockets.set(clientId, open + 1);
      ws.once('close', () => {
        const left = (openSockets.get(clientId) ?? 1) - 1;
        if (left <= 0) openSockets.delete(clientId);
        else openSockets.set(clientId, left);
      });
      serve(ws, streamId, start, () => mayStillReceive(credential));
    });
  }

  /** Checked again before every send round: a client deleted, no longer approved, or no longer listing the certificate's SPIFFE ID, or a bearer token expired or revoked, loses its open sockets too. */
  async function mayStillReceive(credential: Credential): Promise<boolean> {
    if (options.oauth === undefined) return false;
    if (credential.bearer !== undefined && (await options.oauth.accessTokens.check(credential.bearer)) === null) return false;
    const client = await options.oauth.clients.get(credential.clientId);
    return client !== null && isApproved(client) && (credential.spiffeId === undefined || mayPresent(client, credential.spiffeId));
  }

  /** The client a request authenticates as, for this stream: its certificate's SPIFFE ID (mTLS listener) or a bearer token. */
  async function authenticate(request: IncomingMessage, stream: StreamRecord | undefined): Promise<Credential | undefined> {
    if (options.oauth === undefined || stream === undefined) return undefined;
    const socket = request.socket;
    if (options.mtls && socket instanceof TLSSocket && socket.authorized) {
      const certificate = socket.getPeerX509Certificate();
      const spiffeId = certificate === undefined || isSelfIssued(certificate) ? undefined : spiffeIdOf(certificate);
      if (spiffeId === undefined) return undefined;
      const client = await options.oauth.clients.get(stream.clientId);
      return client !== null && isApproved(client) && mayPresent(client, spiffeId) ? { clientId: client.client_id, spiffeId } : undefined;
    }
    const bearer = /^Bearer ([\x21-\x7e]+)$/.exec(request.headers.authorization ?? '')?.[1];
    if (bearer === undefined) return undefined;
    const claims = await options.oauth.accessTokens.check(bearer);
    // A certificate-bound token needs its certificate: only the mTLS listener's sockets have one, and they use it directly.
    if (claims === null || claims['cnf'] !== undefined) return undefined;
    const audiences = typeof claims.aud === 'string' ? [claims.aud] : claims.aud;
    // A client acting for itself only: a user-delegated token names the user (see signals-routes.ts).
    if (claims.sub !== claims.client_id || !audiences.includes(audience) || !claims.scope.split(' ').includes(SSF_STREAM_SCOPE)) return undefined;
    const client = await options.oauth.clients.get(claims.client_id);
    return client !== null && isApproved(client) ? { clientId: client.client_id, bearer } : undefined;
  }

  function serve(ws: WebSocket, streamId: string, start: number, mayReceive: () => Promise<boolean>): void {
    let cursor = start;
    let closed = false;
    let sending = false;
    let again = false;
    let alive = true;
    const close = (code: number, reason: string): void => {
      if (closed) return;
      closed = true;
      ws.close(code, reason);
    };
    const heartbeat = setInterval(() => {
      if (!alive) {
        ws.terminate();
        return;
      }
      alive = false;
      ws.ping();
    }, settings.socketHeartbeatMs);
    const recheck = setInterval(() => send(), RECHECK_MS);
    const unlisten = transmitter.onAppended(() => send());
    ws.on('pong', () => (alive = true));
    ws.on('close', () => {
      closed = true;
      clearInterval(heartbeat);
      clearInterval(recheck);
      unlisten();
    });
    ws.on('error', () => ws.terminate());
    ws.on('message', (data, isBinary) => {
      alive = true;
      const ack = isBinary ? undefined : parseAck((Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer)).toString('utf8'));
      if (ack === undefined || ack > cursor) return close(SIGNAL_SOCKET_CLOSE.protocolError, 'expected {"type":"ack","cursor":"<a cursor this socket sent>"}');
      void transmitter.advance(streamId, ack).catch(() => close(SIGNAL_SOCKET_CLOSE.tryAgainLater, 'could not record the acknowledgement'));
    });
    ws.send(JSON.stringify({ type: 'ready', stream_id: streamId, cursor: start === 0 ? null : String(start) }));
    send();

    function send(): void {
      if (closed) return;
      if (sending) {
        again = true;
        return;
      }
      sending = true;
      void round()
        .catch(() => close(SIGNAL_SOCKET_CLOSE.tryAgainLater, 'the stream could not be read'))
        .finally(() => {
          sending = false;
          if (again && !closed) {
            again = false;
            send();
          }
        });
    }

    async function round(): Promise<void> {
      for (;;) {
        const record = await transmitter.stream(streamId);
        if (record === null || record.data.status === 'disabled' || record.data.method !== DELIVERY_METHODS.websocket) return close(SIGNAL_SOCKET_CLOSE.policyViolation, 'the stream was deleted, disabled or changed');
        const selection = record.data.status === 'paused' ? undefined : await transmitter.owed(streamId, record.data, BATCH, { cursor, acked: [] });
        // After the read: what was just read is sent only if the client may still receive it (deleted, unapproved, SPIFFE ID no longer listed).
        if (!(await mayReceive())) return close(SIGNAL_SOCKET_CLOSE.policyViolation, 'the client may no longer receive this stream');
        if (selection === undefined) return;
        for (const entry of selection.entries) {
          if (closed) return;
          const { set } = await transmitter.signer.sign({ id: streamId, alg: record.data.alg, aud: record.data.aud }, entry);
          ws.send(JSON.stringify({ type: 'set', cursor: String(entry.seq), set }));
          cursor = entry.seq;
          // A consumer that does not read keeps growing this buffer: cut it before it costs the server (issue 13 limits).
          if (ws.bufferedAmount > settings.socketMaxBufferedBytes) {
            app.log.warn({ streamId, bufferedBytes: ws.bufferedAmount }, 'signal socket too slow: closed with 1013');
            return close(SIGNAL_SOCKET_CLOSE.tryAgainLater, 'too slow: resume with ?after=');
          }
        }
        if (selection.entries.length === 0) cursor = Math.max(cursor, selection.cursor);
        if (!selection.more) return;
      }
    }
  }
}

/** May this client connect with this SPIFFE ID: its CA names (`cert_sans`) or its RFC 8705 `tls_client_auth_san_uri`. */
function mayPresent(client: OAuthClient, spiffeId: string): boolean {
  return client.tls_client_auth_san_uri === spiffeId || (client.cert_sans ?? []).includes(spiffeId);
}

function parseAck(text: string): number | undefined {
  try {
    const value = JSON.parse(text) as { type?: unknown; cursor?: unknown };
    return value.type === 'ack' && typeof value.cursor === 'string' && /^[1-9][0-9]{0,15}$/.test(value.cursor) ? Number(value.cursor) : undefined;
  } catch {
    return undefined;
  }
}

/** Answers an upgrade that is refused: a plain HTTP response, then the socket is closed (RFC 6455 section 4.2.2). */
function refuse(socket: Duplex, status: number, text: string, challenge?: string): void {
  if (socket.writable) socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\nCache-Control: no-store\r\n${challenge !== undefined ? `WWW-Authenticate: ${challenge}\r\n` : ''}\r\n`);
  socket.destroy();
}
