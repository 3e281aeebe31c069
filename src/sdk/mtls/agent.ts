/**
 * The client side: an `https.Agent` whose new connections present the
 * current certificate and trust the current CA bundle, and a `connect`
 * function with the same behaviour for undici.
 *
 * Every connection takes the material current when it opens (a
 * `secureContext` built once per reload); connections already open keep
 * theirs, as TLS cannot change a certificate mid-connection.
 */
import { X509Certificate } from 'node:crypto';
import { Agent, type AgentOptions, type RequestOptions } from 'node:https';
import { isIP, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { checkServerIdentity, connect as tlsConnect, TLSSocket, type ConnectionOptions, type PeerCertificate } from 'node:tls';
import { allowSpiffeIds, type SpiffeIdPredicate } from './allow.ts';
import type { MtlsFiles } from './material.ts';
import { spiffeIdOf } from './peer.ts';
import { SessionCache } from './sessions.ts';
import { MaterialWatcher, type ReloadOptions } from './watch.ts';

/** The TLS options the agent sets itself: material comes from the files, and the peer is always verified. */
type OwnTlsOptions = 'cert' | 'key' | 'ca' | 'pfx' | 'passphrase' | 'secureContext' | 'rejectUnauthorized' | 'checkServerIdentity';

export interface MtlsAgentOptions extends MtlsFiles, ReloadOptions, Omit<AgentOptions, OwnTlsOptions> {
  /**
   * Besides the usual host name check (RFC 9110 section 4.3.4 / RFC 6125),
   * the server's certificate must name a SPIFFE ID this accepts (a
   * predicate, or patterns for allowSpiffeIds). Default: no SPIFFE check.
   */
  readonly allow?: SpiffeIdPredicate | readonly string[];
  /** Time allowed for TCP and TLS handshakes made through `connect` (undici). Default 10 000 ms, undici's own default. */
  readonly connectTimeoutMs?: number;
}

/** What undici passes to a `connect` function (`buildConnector.Options`). */
export interface ConnectOptions {
  readonly hostname: string;
  readonly host?: string;
  readonly protocol: string;
  readonly port: string | number;
  readonly servername?: string | null;
  readonly localAddress?: string | null;
  readonly httpSocket?: Socket;
}

/** What undici expects back (`buildConnector.Callback`). */
export type ConnectCallback = (...args: [null, TLSSocket] | [Error, null]) => void;

const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
const DEFAULT_MAX_CACHED_SESSIONS = 100;

export class MtlsAgent extends Agent {
  readonly #watcher: MaterialWatcher;
  readonly #sessions: SessionCache;
  readonly #allow: SpiffeIdPredicate | undefined;
  readonly #connectTimeoutMs: number;

  /** Reads and checks the files (throws MtlsMaterialError if they are unusable) and starts watching them. */
  constructor(options: MtlsAgentOptions) {
    const { certFile, keyFile, caFile, debounceMs, onReload, onError, allow, connectTimeoutMs, maxCachedSessions, ...agentOptions } = options;
    // Node's own session cache is off (maxCachedSessions: 0): the agent keeps its own (sessions.ts), which a rotation empties.
    super({ keepAlive: true, ...agentOptions, maxCachedSessions: 0 });
    this.#sessions = new SessionCache(maxCachedSessions ?? DEFAULT_MAX_CACHED_SESSIONS);
    this.#allow = allow === undefined ? undefined : typeof allow === 'function' ? allow : allowSpiffeIds(allow);
    this.#connectTimeoutMs = connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    this.#watcher = new MaterialWatcher({ certFile, keyFile, caFile }, { debounceMs, onReload, onError }, () => this.#sessions.clear());
  }

  /** The leaf certificate new connections present. */
  get certificate(): X509Certificate {
    return this.#watcher.current.certificate;
  }

  /**
   * For undici: `new undici.Agent({ connect: agent.connect })`. Opens a TLS
   * connection with the current material (ALPN http/1.1), calls back once
   * the handshake and the server checks passed. A bound function: pass it
   * as it is.
   */
  readonly connect = (options: ConnectOptions, callback: ConnectCallback): TLSSocket | undefined => {
    if (options.protocol !== 'https:') {
      callback(new TypeError(`the mTLS agent connects to https: origins only, not ${options.protocol}`), null);
      return undefined;
    }
    const host = options.hostname;
    const port = Number(options.port) || 443;
    // RFC 6066 section 3: no IP address as server name; the host name check then uses the address itself.
    const servername = options.servername && isIP(options.servername) === 0 ? options.servername : isIP(host) === 0 ? host : undefined;
    const key = `connect:${host}:${port}:${servername ?? ''}`;
    // localAddress reaches net.connect; @types/node leaves it out of tls.ConnectionOptions.
    const connection: ConnectionOptions & { localAddress?: string | undefined } = {
      ...this.#tlsOptions(key),
      host,
      port,
      servername,
      localAddress: options.localAddress ?? undefined,
      socket: options.httpSocket,
      ALPNProtocols: ['http/1.1'],
    };
    const socket = tlsConnect(connection);
    this.#sessions.track(key, socket);
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 60_000);
    let pending: ConnectCallback | undefined = callback;
    const settle: ConnectCallback = (...args) => {
      clearTimeout(timer);
      const once = pending;
      pending = undefined;
      once?.(...args);
    };
    const timer = setTimeout(() => {
      socket.destroy(Object.assign(new Error(`connecting to ${host}:${port} took longer than ${this.#connectTimeoutMs} ms`), { code: 'ETIMEDOUT' }));
    }, this.#connectTimeoutMs);
    timer.unref();
    socket.once('secureConnect', () => settle(null, socket));
    // Stays attached: an error after the handshake goes to undici's listeners, and must not be unhandled before they are added.
    socket.on('error', (error: Error) => settle(error, null));
    return socket;
  };

  /** node:https calls this for every new connection of the pool. */
  override createConnection(options: RequestOptions, callback?: (error: Error | null, stream: Duplex) => void): Duplex | null | undefined {
    const key = `https:${this.getName(options)}`;
    const withMaterial: RequestOptions = { ...options, ...this.#tlsOptions(key) };
    const socket = super.createConnection(withMaterial, callback);
    if (socket instanceof TLSSocket) this.#sessions.track(key, socket);
    return socket;
  }

  /** Closes the idle keep-alive connections of the node:https pool, so the next requests open new ones with the current material. */
  destroyIdle(): void {
    for (const sockets of Object.values(this.freeSockets)) for (const socket of sockets ?? []) socket.destroy();
  }

  /** Reads the files now (on SIGHUP, say) instead of waiting for the watcher; resolves when the reading is applied, unchanged or refused. */
  reload(): Promise<void> {
    return this.#watcher.reload();
  }

  /** Stops watching the files; open connections and the pool stay. Idempotent. */
  close(): void {
    this.#watcher.close();
  }

  /** https.Agent#destroy (closes every pooled connection), and stops watching. */
  override destroy(): void {
    this.close();
    super.destroy();
  }

  #tlsOptions(key: string): ConnectionOptions {
    return {
      secureContext: this.#watcher.current.context,
      session: this.#sessions.get(key),
      rejectUnauthorized: true,
      checkServerIdentity: this.#checkServer,
    };
  }

  /** After the chain check: the host name, then the SPIFFE ID when `allow` asks for one. */
  readonly #checkServer = (host: string, certificate: PeerCertificate): Error | undefined => {
    const error = checkServerIdentity(host, certificate);
    if (error !== undefined || this.#allow === undefined) return error;
    const id = spiffeIdOf(new X509Certificate(certificate.raw));
    if (this.#allow(id)) return undefined;
    return Object.assign(new Error(id === undefined ? 'the server certificate names no SPIFFE ID' : `the server's SPIFFE ID ${id} is not allowed`), {
      code: 'ERR_SPIFFE_ID_NOT_ALLOWED',
    });
  };
}

/** An MtlsAgent: see its class. Throws MtlsMaterialError when the files are unusable at start. */
export function createMtlsAgent(options: MtlsAgentOptions): MtlsAgent {
  return new MtlsAgent(options);
}
