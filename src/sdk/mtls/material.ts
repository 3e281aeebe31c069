/**
 * The three PEM files of a workload (its certificate chain, its private
 * key, the CA bundle it trusts), read and checked before anything uses
 * them.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createSecureContext, type SecureContext } from 'node:tls';

/** Where the material lives; each file may be replaced at any time (see watch.ts). */
export interface MtlsFiles {
  /** PEM certificate chain, leaf first. */
  readonly certFile: string;
  /** PEM private key of the leaf. */
  readonly keyFile: string;
  /** PEM bundle of the CA certificates that peers must chain to. */
  readonly caFile: string;
}

/** The bytes of the three files as read. */
export interface MtlsBytes {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly ca: Buffer;
}

/** Bytes that passed the checks. */
export interface MtlsMaterial extends MtlsBytes {
  /** The leaf certificate (first of certFile). */
  readonly certificate: X509Certificate;
  /** A client context built from the bytes: what new outgoing connections use. */
  readonly context: SecureContext;
}

/** Refused material: unreadable or unusable files. The message names the file and the reason, never key material. */
export class MtlsMaterialError extends Error {
  readonly code: 'MTLS_FILE_UNREADABLE' | 'MTLS_MATERIAL_INVALID';

  constructor(code: MtlsMaterialError['code'], message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'MtlsMaterialError';
    this.code = code;
  }
}

/** The protocol floor of every context this SDK builds (the server options say the same). */
export const MIN_VERSION = 'TLSv1.2';

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g;

function certificates(pem: Buffer, what: string): X509Certificate[] {
  const blocks = pem.toString('latin1').match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0) throw new MtlsMaterialError('MTLS_MATERIAL_INVALID', `the ${what} holds no PEM certificate`);
  return blocks.map((block) => {
    try {
      return new X509Certificate(block);
    } catch (error) {
      throw new MtlsMaterialError('MTLS_MATERIAL_INVALID', `the ${what} holds a certificate that does not parse`, { cause: error });
    }
  });
}

/**
 * Checks the bytes: certFile and caFile hold certificates that parse, and
 * OpenSSL builds a context from all three, which it refuses when a file is
 * not PEM or the key does not belong to the leaf ("key values mismatch").
 */
export function checkMaterial(bytes: MtlsBytes): MtlsMaterial {
  const certificate = certificates(bytes.cert, 'certificate file')[0]!;
  certificates(bytes.ca, 'CA file');
  let context: SecureContext;
  try {
    context = createSecureContext({ cert: bytes.cert, key: bytes.key, ca: bytes.ca, minVersion: MIN_VERSION });
  } catch (error) {
    const reason = (error as { code?: unknown }).code;
    throw new MtlsMaterialError(
      'MTLS_MATERIAL_INVALID',
      `the certificate, key and CA files do not make a TLS context (${typeof reason === 'string' ? reason : 'invalid'}): a PEM chain, its own private key and a PEM CA bundle are needed`,
      { cause: error },
    );
  }
  return { ...bytes, certificate, context };
}

function unreadable(path: string, error: unknown): MtlsMaterialError {
  return new MtlsMaterialError('MTLS_FILE_UNREADABLE', `cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? 'unreadable'})`, { cause: error });
}

/** Reads the files now (at start, where a caller wants a synchronous failure). */
export function readMaterialSync(files: MtlsFiles): MtlsBytes {
  const read = (path: string) => {
    try {
      return readFileSync(path);
    } catch (error) {
      throw unreadable(path, error);
    }
  };
  return { cert: read(files.certFile), key: read(files.keyFile), ca: read(files.caFile) };
}

/** Reads the files without blocking (on reload). */
export async function readMaterial(files: MtlsFiles): Promise<MtlsBytes> {
  const read = (path: string) => readFile(path).catch((error: unknown) => Promise.reject(unreadable(path, error)));
  const [cert, key, ca] = await Promise.all([read(files.certFile), read(files.keyFile), read(files.caFile)]);
  return { cert, key, ca };
}

/** Whether two readings hold the same bytes. */
export function sameBytes(a: MtlsBytes, b: MtlsBytes): boolean {
  return a.cert.equals(b.cert) && a.key.equals(b.key) && a.ca.equals(b.ca);
}
