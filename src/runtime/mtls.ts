/**
 * The mTLS listener (`tls.mtlsPort`): a second TLS listener of the same
 * application that requires a client certificate chained to the built-in
 * CA's trust (RFC 8705 section 2: the routes read the verified certificate
 * from the socket for certificate-bound tokens and client authentication).
 *
 * Its own certificate comes from `tls.mtlsCertFile`/`tls.mtlsKeyFile`,
 * watched like the main listener's, or else from the CA, renewed at two
 * thirds of its lifetime. Client trust follows the CA: a revocation, a
 * rotated CA or a registered client changes the context of new handshakes
 * at once, without a restart; certificate and trust are always swapped as
 * one context (Listener).
 */
import { isIP } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { FastifyInstance } from 'fastify';
import { ConfigError, type Config } from '../config/index.ts';
import type { Logger } from '../observability/index.ts';
import type { Clock } from '../store/index.ts';
import { scheduleRenewal, type CertificateRenewal } from './certificate-renewal.ts';
import { Listener } from './listener.ts';
import type { ListenerAuthority } from './listener-authority.ts';
import { checkCertificateCurrent, checkTlsMaterial, readTlsMaterial, tlsServerOptions, type CertificateInfo, type ClientTrust, type TlsFiles, type TlsMaterial, type TlsServerOptions } from './tls.ts';
import { logTlsWatchEvent } from './tls-watch.ts';

export interface MtlsListenerOptions {
  readonly host: string;
  readonly port: number;
  /** The listener's own certificate files; without them the authority issues its certificate. */
  readonly files: TlsFiles | undefined;
  /** Client trust, and the listener's certificate when there are no files. */
  readonly authority: ListenerAuthority | undefined;
  /** The names an issued certificate carries (serverNames of the config). */
  readonly names: { readonly dnsNames: readonly string[]; readonly ipAddresses: readonly string[] };
  readonly debounceMs: number;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Builds the application (the same routes as the main listener) on these TLS options. */
  readonly build: (https: TlsServerOptions) => Promise<FastifyInstance>;
  /** Backoff of a failed renewal (default 1 s doubling to 5 min). */
  readonly renewalRetry?: { readonly firstMs: number; readonly maxMs: number };
}

export class MtlsListener {
  readonly listener: Listener;
  readonly #files: TlsFiles | undefined;
  readonly #stops: readonly (() => void)[];

  private constructor(listener: Listener, files: TlsFiles | undefined, stops: readonly (() => void)[]) {
    this.listener = listener;
    this.#files = files;
    this.#stops = stops;
  }

  static async open(options: MtlsListenerOptions): Promise<MtlsListener> {
    const { authority, files, logger, clock } = options;
    if (authority === undefined) throw missingAuthority(files);
    let listener: Listener | undefined;
    let missed = false;
    const open = new Set<TLSSocket>();
    const applyTrust = () => {
      if (listener === undefined) {
        missed = true;
        return;
      }
      // Connections whose certificate is refused now (revoked since they opened) end with the change.
      if (authority.refuses !== undefined) for (const socket of open) if (refusedPeer(authority, socket)) socket.destroy();
      try {
        const trust = clientTrustOf(authority);
        listener.setClientTrust(trust);
        logger.info({ listener: 'mtls', trustedCertificates: trust.ca.length, crls: trust.crl.length }, 'mTLS client trust updated');
      } catch (error) {
        logger.error({ listener: 'mtls', reason: error instanceof Error ? error.message : 'unknown' }, 'mTLS client trust update refused; new handshakes still use the previous trust');
      }
    };
    // Subscribed before the trust is first read: a change while the listener starts is applied once it listens.
    const unsubscribe = authority.onClientTrustChange(applyTrust);
    let renewal: CertificateRenewal | undefined;
    try {
      const trust = clientTrustOf(authority);
      const material = files !== undefined ? readTlsMaterial(files) : await issue(authority, options);
      checkTlsMaterial(material, trust);
      const app = await options.build(tlsServerOptions(material, trust));
      listener = await Listener.open(app, {
        host: options.host,
        port: options.port,
        clock,
        tls: {
          material,
          clientTrust: trust,
          ...(files !== undefined && { files, watch: { debounceMs: options.debounceMs, report: (event) => logTlsWatchEvent(logger, 'mtls', event) } }),
        },
      });
      if (authority.refuses !== undefined) {
        // Before the HTTP server's own handler: a refused connection is closed before a byte of it is read.
        listener.app.server.prependListener('secureConnection', (socket: TLSSocket) => {
          if (refusedPeer(authority, socket)) {
            logger.info({ listener: 'mtls', serialNumber: socket.getPeerX509Certificate()?.serialNumber }, 'mTLS connection refused: client certificate revoked or no longer registered');
            socket.destroy();
            return;
          }
          open.add(socket);
          socket.once('close', () => open.delete(socket));
        });
      }
      if (missed) applyTrust();
      if (files === undefined) {
        const installed = listener;
        renewal = scheduleRenewal(installed.certificate!, {
          issue: () => authority.issueServerCertificate(options.names),
          install: (renewed) => installed.setSecureContext(renewed),
          clock,
          ...(options.renewalRetry !== undefined && { retry: options.renewalRetry }),
          report: (event) => {
            if (event.kind === 'renewed') logger.info({ listener: 'mtls', serialNumber: event.certificate.serialNumber, notAfter: event.certificate.notAfter.toISOString(), nextRenewal: event.nextAt.toISOString() }, 'mTLS certificate renewed');
            else logger.warn({ listener: 'mtls', reason: event.reason, attempt: event.attempt, retryInMs: event.retryInMs }, 'mTLS certificate renewal failed; still serving the previous certificate');
          },
        });
      }
    } catch (error) {
      unsubscribe();
      await listener?.close();
      throw error;
    }
    const certificate = listener.certificate;
    logger.info({ url: listener.url, certificate: files !== undefined ? 'files' : 'ca', serialNumber: certificate?.serialNumber, notAfter: certificate?.notAfter.toISOString() }, 'mTLS listening');
    return new MtlsListener(listener, files, [unsubscribe, () => renewal?.close()]);
  }

  get url(): string {
    return this.listener.url;
  }

  /** Whether its certificate comes from files (SIGHUP and the watch reload them) rather than from the CA. */
  get fromFiles(): boolean {
    return this.#files !== undefined;
  }

  /** SIGHUP: reads the certificate files again (only when it has files). */
  reloadTls(): CertificateInfo {
    if (this.#files === undefined) throw new TypeError('the mTLS listener certificate comes from the built-in CA, which renews it');
    return this.listener.reloadTls();
  }

  /** Stops following the CA, then closes the listener as Listener#close does. */
  close(): Promise<void> {
    for (const stop of this.#stops) stop();
    return this.listener.close();
  }
}

/**
 * The names the listener's own certificate carries: the issuer's host
 * (what clients connect to) and the listen host when it is one address.
 */
export function serverNames(config: Pick<Readonly<Config>, 'issuer' | 'host'>): { dnsNames: string[]; ipAddresses: string[] } {
  const dnsNames = new Set<string>();
  const ipAddresses = new Set<string>();
  for (const raw of [new URL(config.issuer).hostname, config.host]) {
    const host = raw.replace(/^\[(.*)\]$/, '$1').toLowerCase();
    if (isIP(host) === 0) dnsNames.add(host);
    // Not the wildcard: it names no interface a client could check.
    else if (!/^(0\.0\.0\.0|::|0:0:0:0:0:0:0:0)$/.test(host)) ipAddresses.add(host);
  }
  return { dnsNames: [...dnsNames], ipAddresses: [...ipAddresses] };
}

function refusedPeer(authority: ListenerAuthority, socket: TLSSocket): boolean {
  const certificate = socket.getPeerX509Certificate();
  return certificate !== undefined && authority.refuses!(certificate);
}

/** A copy: what the listener serves does not move when the authority's own arrays do. */
function clientTrustOf(authority: ListenerAuthority): ClientTrust {
  const { ca, crl } = authority.clientTrust();
  return { ca: [...ca], crl: [...crl] };
}

async function issue(authority: ListenerAuthority, options: MtlsListenerOptions): Promise<TlsMaterial> {
  const issued = await authority.issueServerCertificate(options.names);
  const material = { cert: Buffer.from(issued.cert), key: Buffer.from(issued.key) };
  checkCertificateCurrent(material, options.clock());
  return material;
}

function missingAuthority(files: TlsFiles | undefined): ConfigError {
  const certificate = files === undefined ? ', nor its own certificate (tls.mtlsCertFile and tls.mtlsKeyFile are not set either)' : '';
  return new ConfigError(`tls.mtlsPort is set, but no certificate authority is available: nothing supplies the client certificates the mTLS listener trusts${certificate}`);
}
