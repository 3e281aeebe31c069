/**
 * HTTP/1.1 over raw TLS sockets, for tests and benchmarks that need to see
 * the handshake itself: which certificate the server presented, which ALPN
 * protocol it chose, whether a session was resumed, and exactly when a
 * connection ended. Requests are written by hand (GET, no body) and
 * responses read by Content-Length.
 */
import assert from 'node:assert/strict';
import { connect, type ConnectionOptions, type TLSSocket } from 'node:tls';

export interface ClientIdentity {
  readonly cert: string;
  readonly key: string;
}

export interface TlsTarget {
  readonly port: number;
  /** What the client trusts the server's certificate by. */
  readonly ca: string | readonly string[];
  readonly client?: ClientIdentity;
  readonly alpn?: readonly string[];
  /** A session to resume (from an earlier exchange). */
  readonly session?: Buffer;
  readonly maxVersion?: 'TLSv1.2' | 'TLSv1.3';
}

export interface TlsExchange {
  readonly status: number;
  readonly body: string;
  readonly alpn: string | false;
  /** The serial of the certificate the server presented. */
  readonly serverSerial: string;
  readonly session: Buffer | undefined;
  readonly resumed: boolean;
}

function connectOptions(target: TlsTarget): ConnectionOptions {
  return {
    host: '127.0.0.1',
    port: target.port,
    ca: typeof target.ca === 'string' ? target.ca : [...target.ca],
    ...(target.client !== undefined && { cert: target.client.cert, key: target.client.key }),
    ...(target.alpn !== undefined && { ALPNProtocols: [...target.alpn] }),
    ...(target.session !== undefined && { session: target.session }),
    ...(target.maxVersion !== undefined && { maxVersion: target.maxVersion }),
  };
}

/**
 * One GET on a new connection (`Connection: close`). Rejects when the
 * handshake fails or the server ends the connection without an answer: in
 * TLS 1.3 the client finishes its handshake before the server has checked
 * its certificate (RFC 8446 section 4.4.2), so a refused client
 * certificate shows only as an alert after "secureConnect".
 */
export function tlsGet(target: TlsTarget, path = '/healthz'): Promise<TlsExchange> {
  return new Promise((resolve, reject) => {
    const socket = connect(connectOptions(target));
    const chunks: Buffer[] = [];
    let session: Buffer | undefined;
    let serverSerial = '';
    let resumed = false;
    socket.on('session', (ticket: Buffer) => (session = ticket));
    socket.once('secureConnect', () => {
      serverSerial = socket.getPeerX509Certificate()?.serialNumber ?? '';
      resumed = socket.isSessionReused();
      socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
    });
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.once('error', reject);
    socket.once('close', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const status = /^HTTP\/1\.1 (\d{3}) /.exec(text);
      if (status === null) {
        reject(new Error('the connection ended without an HTTP response'));
        return;
      }
      resolve({ status: Number(status[1]), body: text.slice(text.indexOf('\r\n\r\n') + 4), alpn: socket.alpnProtocol ?? false, serverSerial, session, resumed });
    });
  });
}

/**
 * One keep-alive connection: requests one after the other on the same
 * socket. `endedEarly` says whether the connection ended (reset, closed by
 * the server, an error) before `close()` was called.
 */
export class KeepAliveConnection {
  readonly socket: TLSSocket;
  /** The serial of the certificate the server presented in this connection's handshake. */
  readonly serverSerial: string;
  endedEarly = false;
  #buffer = Buffer.alloc(0);
  #pending: { readonly resolve: (status: number) => void; readonly reject: (error: Error) => void } | undefined;
  #closing = false;

  private constructor(socket: TLSSocket) {
    this.socket = socket;
    this.serverSerial = socket.getPeerX509Certificate()?.serialNumber ?? '';
    socket.on('data', (chunk: Buffer) => {
      this.#buffer = Buffer.concat([this.#buffer, chunk]);
      this.#parse();
    });
    const ended = (error?: Error) => {
      if (!this.#closing) this.endedEarly = true;
      const pending = this.#pending;
      this.#pending = undefined;
      pending?.reject(error ?? new Error('the connection ended during a request'));
    };
    socket.on('error', ended);
    socket.on('close', () => ended());
  }

  static open(target: TlsTarget): Promise<KeepAliveConnection> {
    return new Promise((resolve, reject) => {
      const socket = connect(connectOptions(target));
      socket.once('error', reject);
      socket.once('secureConnect', () => {
        socket.off('error', reject);
        resolve(new KeepAliveConnection(socket));
      });
    });
  }

  /** One GET; resolves with the status once the whole response has arrived. */
  get(path = '/healthz'): Promise<number> {
    if (this.#pending !== undefined) return Promise.reject(new Error('one request at a time'));
    if (this.socket.destroyed) return Promise.reject(new Error('the connection has ended'));
    return new Promise((resolve, reject) => {
      this.#pending = { resolve, reject };
      this.socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
    });
  }

  close(): void {
    this.#closing = true;
    this.socket.destroy();
  }

  #parse(): void {
    const end = this.#buffer.indexOf('\r\n\r\n');
    if (end < 0 || this.#pending === undefined) return;
    const head = this.#buffer.subarray(0, end).toString('latin1');
    const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
    if (this.#buffer.length < end + 4 + length) return;
    this.#buffer = this.#buffer.subarray(end + 4 + length);
    const pending = this.#pending;
    this.#pending = undefined;
    pending.resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0));
  }
}

/** Errors of the client's own check of the server: a refusal must not be one of these, or it proves nothing about the server. */
const CLIENT_SIDE = /UNABLE_TO_VERIFY|SELF_SIGNED|ALTNAME|CERT_HAS_EXPIRED|CERT_NOT_YET_VALID|ERR_TLS_CERT/;

/**
 * Asserts that the server refused the exchange: it failed (an alert, a
 * reset, an end without an answer), and not because the client refused
 * the server's certificate. Returns the client's error.
 */
export async function assertRefused(exchange: Promise<unknown>, message = 'the server refused the connection'): Promise<NodeJS.ErrnoException> {
  const error = await exchange.then(
    () => undefined,
    (reason: NodeJS.ErrnoException) => reason,
  );
  assert.ok(error !== undefined, `${message}: it answered`);
  assert.doesNotMatch(`${error.code ?? ''} ${error.message}`, CLIENT_SIDE, `${message}: the client refused the server instead`);
  return error;
}
