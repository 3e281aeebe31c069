/**
 * The server side: options for `https.createServer` / `tls.createServer`
 * that require a client certificate from the CA bundle, and `attach`, which
 * swaps a reloaded certificate, key or bundle into a running server with
 * `tls.Server#setSecureContext`: new handshakes use it, open connections
 * keep theirs.
 *
 * Why not an SNICallback returning the current context: a client that
 * connects by IP address sends no server name (RFC 6066 section 3), and
 * then Node never calls SNICallback.
 */
import { constants, type X509Certificate } from 'node:crypto';
import type { Server, TlsOptions, TLSSocket } from 'node:tls';
import { allowSpiffeIds, type SpiffeIdPredicate } from './allow.ts';
import { MIN_VERSION, type MtlsFiles, type MtlsMaterial } from './material.ts';
import { spiffeIdOf } from './peer.ts';
import { MaterialWatcher, type ReloadOptions } from './watch.ts';

export interface MtlsServerConfig extends MtlsFiles, ReloadOptions {
  /**
   * Connections whose client SPIFFE ID this refuses (a predicate, or
   * patterns for allowSpiffeIds) are closed right after the handshake, on
   * every attached server, before any request is read. Default: every
   * client the CA bundle verifies. For an answer the client can read (403),
   * use requireSpiffeId in the request handler instead or as well.
   */
  readonly allow?: SpiffeIdPredicate | readonly string[];
}

/** The options and the controls of createMtlsServerOptions. */
export interface MtlsServerOptions {
  /**
   * For `https.createServer(options, handler)` or `tls.createServer`:
   * the current material, requestCert and rejectUnauthorized true,
   * TLS 1.2 at least, ALPN http/1.1 only. A new object on every read. Add
   * your own options beside them; keep these.
   */
  readonly options: TlsOptions;
  /** The leaf certificate the server presents on new handshakes. */
  readonly certificate: X509Certificate;
  /**
   * Applies every reload to `server` (made with `options`) from now on, and
   * the current material at once, in case it changed since `options` was
   * read; with `allow`, closes refused connections. Returns a function
   * that stops doing so for this server.
   */
  attach(server: Server): () => void;
  /** Reads the files now (on SIGHUP, say); resolves when the reading is applied, unchanged or refused. */
  reload(): Promise<void>;
  /** Stops watching and detaches every server; servers keep their current context. Idempotent. */
  close(): void;
}

/** What setSecureContext needs: it replaces every context option, so the floor is repeated here. */
function contextOptions(material: MtlsMaterial): TlsOptions {
  // No TLS 1.2 renegotiation: `allow` checks a connection's certificate once, so it must not change within one.
  return { cert: material.cert, key: material.key, ca: material.ca, minVersion: MIN_VERSION, secureOptions: constants.SSL_OP_NO_RENEGOTIATION };
}

/** Reads and checks the files (throws MtlsMaterialError if they are unusable) and starts watching them. */
export function createMtlsServerOptions(config: MtlsServerConfig): MtlsServerOptions {
  const { certFile, keyFile, caFile, debounceMs, onReload, onError, allow } = config;
  const allowed = allow === undefined ? undefined : typeof allow === 'function' ? allow : allowSpiffeIds(allow);
  const servers = new Map<Server, () => void>();
  const watcher = new MaterialWatcher({ certFile, keyFile, caFile }, { debounceMs, onReload, onError }, (material) => {
    for (const server of servers.keys()) server.setSecureContext(contextOptions(material));
  });
  const refuse = (socket: TLSSocket) => {
    if (allowed !== undefined && !allowed(spiffeIdOf(socket))) socket.destroy();
  };
  return {
    get options(): TlsOptions {
      return {
        ...contextOptions(watcher.current),
        requestCert: true,
        rejectUnauthorized: true,
        ALPNProtocols: ['http/1.1'],
      };
    },
    get certificate() {
      return watcher.current.certificate;
    },
    attach(server) {
      if (servers.has(server)) return servers.get(server)!;
      server.setSecureContext(contextOptions(watcher.current));
      // First in line, so the HTTP layer never sees a refused connection.
      if (allowed !== undefined) server.prependListener('secureConnection', refuse);
      const detach = () => {
        servers.delete(server);
        server.off('secureConnection', refuse);
      };
      servers.set(server, detach);
      return detach;
    },
    reload: () => watcher.reload(),
    close() {
      watcher.close();
      for (const detach of [...servers.values()]) detach();
    },
  };
}
