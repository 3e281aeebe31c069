/**
 * The agent's three files in its output directory: `cert.pem` (leaf and
 * intermediate), `key.pem` (0600) and `bundle.pem` (the CA certificates to
 * trust). Each is replaced atomically: written to a temporary file in the
 * same directory, flushed to disk, renamed over the old one, and the
 * directory flushed; a reader sees the old file or the new one, never half.
 */
import { X509Certificate, createPrivateKey, randomBytes, type KeyObject } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fromPem } from '../../pki/index.ts';

export const CERT_FILE = 'cert.pem';
export const KEY_FILE = 'key.pem';
export const BUNDLE_FILE = 'bundle.pem';

/** A certificate chain and its key, as the agent holds them. */
export interface Material {
  readonly chainPem: string;
  readonly keyPem: string;
  readonly leaf: X509Certificate;
  /** The certificate that signed the leaf (the intermediate), second in the chain. */
  readonly issuer: X509Certificate | undefined;
  readonly key: KeyObject;
}

/** Parses a chain (leaf first) and its key; throws a TypeError saying what is wrong. */
export function material(chainPem: string, keyPem: string): Material {
  const blocks = fromPem(chainPem, 'CERTIFICATE');
  if (blocks.length === 0) throw new TypeError('it holds no PEM certificate');
  const leaf = new X509Certificate(blocks[0]!);
  const issuer = blocks[1] === undefined ? undefined : new X509Certificate(blocks[1]);
  let key: KeyObject;
  try {
    key = createPrivateKey(keyPem);
  } catch {
    throw new TypeError('the key is not a PEM private key');
  }
  if (!leaf.checkPrivateKey(key)) throw new TypeError('the key is not the certificate key');
  return { chainPem, keyPem, leaf, issuer, key };
}

/** What DIR holds now: the material, nothing (no files yet), or why the files cannot be used. */
export function readMaterial(dir: string): { readonly kind: 'none' } | { readonly kind: 'unusable'; readonly reason: string } | { readonly kind: 'found'; readonly material: Material } {
  let chainPem: string;
  let keyPem: string;
  try {
    chainPem = readFileSync(join(dir, CERT_FILE), 'utf8');
    keyPem = readFileSync(join(dir, KEY_FILE), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'none' };
    return { kind: 'unusable', reason: (error as Error).message };
  }
  try {
    return { kind: 'found', material: material(chainPem, keyPem) };
  } catch (error) {
    return { kind: 'unusable', reason: (error as Error).message };
  }
}

/** Replaces `path` with `data` atomically (same directory, fsync, rename, fsync of the directory). */
export function writeFileAtomic(path: string, data: string | Uint8Array, mode: number): void {
  const dir = dirname(path);
  const temporary = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const fd = openSync(temporary, 'wx', mode);
  try {
    try {
      writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temporary, path);
  } catch (error) {
    rmSync(temporary, { force: true });
    throw error;
  }
  const directory = openSync(dir, 'r');
  try {
    fsyncSync(directory);
  } finally {
    closeSync(directory);
  }
}

/**
 * Writes the bundle first (so the new CA is trusted before a certificate
 * from it appears), then the key, then the certificate.
 */
export function writeMaterial(dir: string, files: { readonly chainPem: string; readonly keyPem: string; readonly bundlePem: string }): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeFileAtomic(join(dir, BUNDLE_FILE), files.bundlePem, 0o644);
  writeFileAtomic(join(dir, KEY_FILE), files.keyPem, 0o600);
  writeFileAtomic(join(dir, CERT_FILE), files.chainPem, 0o644);
}
