/**
 * A listening HTTP(S) application as a runtime service. A TLS listener can
 * take a new certificate without a restart: Node's
 * tls.Server#setSecureContext swaps the context new connections get, while
 * connections already open keep theirs (certificate rotation, mTLS reload).
 */
import type { Server as TlsServer } from 'node:tls';
import type { FastifyInstance } from 'fastify';
import { checkTlsMaterial, readTlsMaterial, type TlsFiles, type TlsMaterial } from './tls.ts';

export interface ListenOptions {
  readonly host: string;
  readonly port: number;
  /** The files the TLS material was read from (reload reads them again). */
  readonly tls?: TlsFiles;
}

export class Listener {
  readonly app: FastifyInstance;
  /** Where it listens: the real port when 0 was asked for. */
  readonly url: string;
  readonly #tlsFiles: TlsFiles | undefined;
  #closing: Promise<void> | undefined;

  private constructor(app: FastifyInstance, url: string, tlsFiles: TlsFiles | undefined) {
    this.app = app;
    this.url = url;
    this.#tlsFiles = tlsFiles;
  }

  /** Starts listening; the app is closed again if it cannot. */
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
    return new Listener(app, `${options.tls !== undefined ? 'https' : 'http'}://${host}:${port}`, options.tls);
  }

  get secure(): boolean {
    return this.#tlsFiles !== undefined;
  }

  /**
   * New connections get this certificate and key; open ones keep theirs.
   * Material that does not build a context (not PEM, key of another
   * certificate) is refused and the current one keeps serving.
   */
  setSecureContext(material: TlsMaterial): void {
    if (this.#tlsFiles === undefined) throw new TypeError('this listener speaks plain HTTP: it has no TLS context to replace');
    checkTlsMaterial(material);
    (this.app.server as unknown as TlsServer).setSecureContext({ cert: material.cert, key: material.key });
  }

  /** Reads the certificate and key files again (or `files`) and swaps them in, as setSecureContext does. */
  reloadTls(files?: TlsFiles): void {
    const from = files ?? this.#tlsFiles;
    if (from === undefined) throw new TypeError('this listener speaks plain HTTP: it has no TLS files to reload');
    this.setSecureContext(readTlsMaterial(from));
  }

  /** Stops accepting, lets in-flight requests finish (Fastify's close). Idempotent. */
  close(): Promise<void> {
    return (this.#closing ??= this.app.close().then(() => undefined));
  }
}
