/**
 * TLS material of a listener: read from the configured PEM files and
 * checked (parsed, key matching the certificate) before a server uses it,
 * so a bad file is refused while the old context keeps serving.
 */
import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import { ConfigError } from '../config/index.ts';

export interface TlsFiles {
  readonly certFile: string;
  readonly keyFile: string;
}

/** A PEM certificate chain and its private key. */
export interface TlsMaterial {
  readonly cert: Buffer;
  readonly key: Buffer;
}

/** The files the config names, when it names both (then the listener speaks HTTPS). */
export function tlsFilesOf(config: { readonly tls: { readonly certFile?: string | undefined; readonly keyFile?: string | undefined } }): TlsFiles | undefined {
  const { certFile, keyFile } = config.tls;
  return certFile !== undefined && keyFile !== undefined ? { certFile, keyFile } : undefined;
}

/** Reads and checks the files; the error names no path or key material, only what is wrong. */
export function readTlsMaterial(files: TlsFiles): TlsMaterial {
  let material: TlsMaterial;
  try {
    material = { cert: readFileSync(files.certFile), key: readFileSync(files.keyFile) };
  } catch (error) {
    throw new ConfigError(`cannot read the TLS certificate or key (${(error as NodeJS.ErrnoException).code ?? 'unreadable'})`);
  }
  checkTlsMaterial(material);
  return material;
}

/**
 * Builds a context from the material once, the way the server will: OpenSSL
 * refuses a file that is not PEM, and a key that does not belong to the
 * certificate ("key values mismatch").
 */
export function checkTlsMaterial(material: TlsMaterial): void {
  try {
    createSecureContext({ cert: material.cert, key: material.key });
  } catch (error) {
    const reason = (error as { code?: unknown }).code;
    throw new ConfigError(`the TLS certificate or key is not usable (${typeof reason === 'string' ? reason : 'invalid'}): a PEM certificate chain and its own private key are needed`);
  }
}
