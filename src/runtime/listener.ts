/**
 * A listening HTTP(S) application as a runtime service. A TLS listener can
 * take a new certificate, or new client trust, without a restart: Node's
 * tls.Server#setSecureContext swaps the context new connections get, while
 * connections already open keep theirs (certificate rotation, mTLS reload).
 *
 * The listener holds the whole context (certificate, key, client trust,
 * minimum version) and every swap passes all of it: setSecureContext
 * rebuilds from what it is given and would silently drop the rest, and an
 * mTLS context without its `ca` would trust the public root store.
 */
import type { Server as TlsServer } from 'node:tls';
import type { FastifyInstance } from 'fastify';
import { systemClock, type Clock } from '../store/index.ts';
import { checkCertificateCurrent, checkTlsMaterial, describeCertificate, readTlsMaterial, secureContextOptions, tlsServerOptions, type CertificateInfo, type ClientTrust, type TlsFiles, type TlsMaterial } from './tls.ts';
import { watchTlsFiles, type TlsFileWatch, type TlsLoadOutcome, type TlsWatchEvent } from './tls-watch.ts';

export interface ListenerTls {
  /** What the application's server was built with (tlsServerOptions of the same material and trust). */
  readonly material: TlsMaterial;
  /** The files it was read from: reloadTls reads them again, and `watch` watches them. */
  readonly files?: TlsFiles;
  /** Client certificates are required and checked against this (mTLS). */
  readonly clientTrust?: ClientTrust;
  /** Reload `files` when they change, this long after the last write; `report` hears what happened. */
  readonly watch?: { readonly debounceMs: number; readonly report: (event: TlsWatchEvent) => void };
}

export interface ListenOptions {
  readonly host: string;
  readonly port: number;
  readonly tls?: ListenerTls;
  /** What "now" is when a new certificate's validity is checked. */
  readonly clock?: Clock;
}

interface Context {
  readonly material: TlsMaterial;
  readonly trust: ClientTrust | undefined;
  readonly certificate: CertificateInfo | undefined;
}

export class Listener {
  readonly app: FastifyInstance;
  /** Where it listens: the real port when 0 was asked for. */
  readonly url: string;
  readonly #files: TlsFiles | undefined;
  readonly #clock: Clock;
  #context: Context | undefined;
  #watch: TlsFileWatch | undefined;
  #closing: Promise<void> | undefined;

  private constructor(app: FastifyInstance, url: string, options: ListenOptions) {
    this.app = app;
    this.url = url;
    this.#files = options.tls?.files;
    this.#clock = options.clock ?? systemClock;
    if (options.tls !== undefined) {
      const { material, clientTrust } = options.tls;
      this.#context = { material, trust: clientTrust, certificate: describe(material) };
    }
  }

  /** Starts listening (and watching the TLS files, if asked); the app is closed again if it cannot. */
  static async open(app: FastifyInstance, options: ListenOptions): Promise<Listener> {
    try {
      await app.listen({ host: options.host, port: options.port });
    } catch (error) {
      await app.close();
      throw error;
    }
    const address = app.server.address();
    const port = typeof address === 'object' && address !== null ? address.port : options.port;
    const host = options.host.includes(':') ? `[${options.host}]` : options.host;
    const listener = new Listener(app, `${options.tls !== undefined ? 'https' : 'http'}://${host}:${port}`, options);
    const { files, watch } = options.tls ?? {};
    if (files !== undefined && watch !== undefined) {
      listener.#watch = watchTlsFiles({ files, debounceMs: watch.debounceMs, clock: listener.#clock, report: watch.report, load: (material) => listener.#loadIfChanged(material) });
    }
    return listener;
  }

  get secure(): boolean {
    return this.#context !== undefined;
  }

  /** The certificate new connections get (undefined on plain HTTP). */
  get certificate(): CertificateInfo | undefined {
    return this.#context?.certificate;
  }

  /**
   * New connections get this certificate and key; open ones keep theirs.
   * Material that does not build a context (not PEM, key of another
   * certificate) or is not valid now is refused and the current one keeps
   * serving. The client trust stays as it is.
   */
  setSecureContext(material: TlsMaterial): CertificateInfo {
    const context = this.#current('it has no TLS context to replace');
    checkTlsMaterial(material, context.trust);
    const certificate = checkCertificateCurrent(material, this.#clock());
    this.#swap({ material, trust: context.trust, certificate });
    return certificate;
  }

  /**
   * New handshakes verify client certificates against `trust` (a new CA
   * bundle, a CRL after a revocation); the certificate stays as it is, even
   * if it has expired meanwhile: a revocation must not wait for a renewal.
   * Trust that does not load is refused and the current one stays.
   */
  setClientTrust(trust: ClientTrust): void {
    const context = this.#current('it has no TLS context to replace');
    if (context.trust === undefined) throw new TypeError('this listener does not ask for client certificates');
    checkTlsMaterial(context.material, trust);
    this.#swap({ ...context, trust });
  }

  /** Reads the certificate and key files again (or `files`) and swaps them in, as setSecureContext does. */
  reloadTls(files?: TlsFiles): CertificateInfo {
    const from = files ?? this.#files;
    if (from === undefined) throw new TypeError(this.secure ? 'this listener has no TLS files to reload' : 'this listener speaks plain HTTP: it has no TLS files to reload');
    return this.setSecureContext(readTlsMaterial(from));
  }

  /** Stops watching and accepting, lets in-flight requests finish (Fastify's close). Idempotent. */
  close(): Promise<void> {
    this.#watch?.close();
    return (this.#closing ??= this.app.close().then(() => undefined));
  }

  #loadIfChanged(material: TlsMaterial): TlsLoadOutcome {
    const current = this.#context?.material;
    // A touch, or the same pair written again: nothing to swap.
    if (current !== undefined && current.cert.equals(material.cert) && current.key.equals(material.key)) return { kind: 'unchanged' };
    return { kind: 'loaded', certificate: this.setSecureContext(material) };
  }

  #current(refusal: string): Context {
    if (this.#context === undefined) throw new TypeError(`this listener speaks plain HTTP: ${refusal}`);
    return this.#context;
  }

  /** Swaps in a context its caller has checked (by building it once: an error there left everything as it was). */
  #swap(context: Context): void {
    (this.app.server as unknown as TlsServer).setSecureContext(secureContextOptions(tlsServerOptions(context.material, context.trust)));
    this.#context = context;
  }
}

/** The serial and validity of the certificate a listener started with; undefined if it does not parse (start accepts what OpenSSL accepts). */
function describe(material: TlsMaterial): CertificateInfo | undefined {
  try {
    return describeCertificate(material);
  } catch {
    return undefined;
  }
}
