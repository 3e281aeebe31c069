import { randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readFileSync, statSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

/**
 * The master key: 256 random bits from which every key-encryption and
 * pseudonym key is derived (HKDF, RFC 5869). It lives in a file readable
 * only by its owner, or in PORTCULLIS_MASTER_KEY; every instance of one
 * deployment needs the same one. Only `KeyVault` holds its bytes; this file
 * finds and checks them.
 */
export const MASTER_KEY_BYTES = 32;

export class MasterKeyError extends Error {
  override readonly name = 'MasterKeyError';
}

export interface EnsureResult {
  readonly created: boolean;
  readonly path: string;
}

/**
 * Creates the master key file if it does not exist. `wx` makes creation
 * atomic: of two instances starting together, one writes and the other
 * finds the file and reads the same key.
 */
export function ensureMasterKeyFile(path: string): EnsureResult {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  let fd: number;
  try {
    fd = openSync(path, 'wx', 0o600);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return { created: false, path };
    throw new MasterKeyError(`cannot create the master key file ${path} (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  try {
    writeSync(fd, `${randomBytes(MASTER_KEY_BYTES).toString('base64url')}\n`);
  } finally {
    closeSync(fd);
  }
  return { created: true, path };
}

/** Where the master key comes from: the `masterKey` and `masterKeyFile` settings (config/schema.ts). */
export interface MasterKeySource {
  readonly masterKey?: string | undefined;
  readonly masterKeyFile: string;
}

/** Reads the key from the configured value, else from the file (which must be owner-only). */
export function loadMasterKey(options: MasterKeySource): Uint8Array {
  if (options.masterKey !== undefined) return decodeKey(options.masterKey, 'PORTCULLIS_MASTER_KEY');
  let text: string;
  try {
    const mode = statSync(options.masterKeyFile).mode & 0o777;
    if ((mode & 0o077) !== 0) {
      throw new MasterKeyError(`master key file ${options.masterKeyFile} is readable by other users (mode ${mode.toString(8)}); run chmod 600 on it`);
    }
    text = readFileSync(options.masterKeyFile, 'utf8');
  } catch (error) {
    if (error instanceof MasterKeyError) throw error;
    throw new MasterKeyError(`cannot read the master key file ${options.masterKeyFile} (${(error as NodeJS.ErrnoException).code ?? 'error'}); run \`portcullis init\``);
  }
  return decodeKey(text.trim(), `master key file ${options.masterKeyFile}`);
}

function decodeKey(encoded: string, source: string): Uint8Array {
  const key = Buffer.from(encoded, 'base64url');
  if (key.length !== MASTER_KEY_BYTES || key.toString('base64url') !== encoded) {
    throw new MasterKeyError(`${source}: not a base64url-encoded ${MASTER_KEY_BYTES}-byte key`);
  }
  return new Uint8Array(key);
}
