import { hkdfSync, randomBytes } from 'node:crypto';
import { MASTER_KEY_BYTES, MasterKeyError, ensureMasterKeyFile, loadMasterKey, type MasterKeySource } from './master-key.ts';
import { KEY_PURPOSES, SEAL_PURPOSES, keyInfo, sealKeyInfo, type KeyPurpose, type SealPurpose } from './purposes.ts';
import { openWith, sealWith } from './seal.ts';

const KNOWN_KEY_PURPOSES = new Set<string>(KEY_PURPOSES);
const KNOWN_SEAL_PURPOSES = new Set<string>(SEAL_PURPOSES);
const INSPECT = Symbol.for('nodejs.util.inspect.custom');

/** HKDF-SHA256 (RFC 5869) with an empty salt: the master key is already uniformly random (section 3.1). */
function hkdf(masterKey: Uint8Array, info: string, bytes: number): Uint8Array {
  return new Uint8Array(hkdfSync('sha256', masterKey, new Uint8Array(0), info, bytes));
}

/**
 * The only holder of the master key's bytes. Modules receive a vault and ask
 * it for what they need: a key derived for one named purpose, or a secret
 * sealed in one named slot. The master key itself never leaves: there is no
 * getter, and JSON, `util.inspect` and `Object.keys` show nothing of it
 * (STYLE.md 8: internals behind #private fields).
 */
export class KeyVault {
  readonly #masterKey: Uint8Array;
  /** Seal keys by purpose, derived on first use. */
  readonly #sealKeys = new Map<SealPurpose, Uint8Array>();

  private constructor(masterKey: Uint8Array) {
    this.#masterKey = masterKey;
  }

  /** The deployment's vault: the master key from `masterKey` (PORTCULLIS_MASTER_KEY) or the owner-only `masterKeyFile`. */
  static load(source: MasterKeySource): KeyVault {
    return new KeyVault(loadMasterKey(source));
  }

  /**
   * The same, first creating the key file (atomically, owner-only) when no
   * key is configured and none exists yet: what `serve` does on a first start.
   */
  static loadOrCreate(source: MasterKeySource): KeyVault {
    if (source.masterKey === undefined) ensureMasterKeyFile(source.masterKeyFile);
    return KeyVault.load(source);
  }

  /** A vault over given bytes (tests, tools); the bytes are copied. */
  static fromBytes(masterKey: Uint8Array): KeyVault {
    if (!(masterKey instanceof Uint8Array) || masterKey.length !== MASTER_KEY_BYTES) throw new MasterKeyError(`a master key is ${MASTER_KEY_BYTES} bytes`);
    return new KeyVault(new Uint8Array(masterKey));
  }

  /** A vault over a fresh random master key (tests, throwaway deployments). */
  static generate(): KeyVault {
    return new KeyVault(new Uint8Array(randomBytes(MASTER_KEY_BYTES)));
  }

  /**
   * The key for one purpose (purposes.ts): the same bytes on every instance
   * of a deployment and after every restart; different purposes never share
   * key material. A fresh copy each call, so a caller cannot alter another's.
   */
  derive(purpose: KeyPurpose, bytes = 32): Uint8Array {
    if (!KNOWN_KEY_PURPOSES.has(purpose)) throw new TypeError(`unknown key purpose ${String(purpose)}`);
    if (!Number.isInteger(bytes) || bytes < 16 || bytes > 64) throw new RangeError('derive: 16 to 64 bytes');
    return hkdf(this.#masterKey, keyInfo(purpose), bytes);
  }

  /** Seals `plaintext` for one slot (AES-256-GCM, seal.ts); only `open` with the same purpose and master key opens it. */
  seal(purpose: SealPurpose, plaintext: Uint8Array): string {
    return sealWith(this.#sealKey(purpose), purpose, plaintext);
  }

  /** Opens a value `seal` made for `purpose`; anything else is a SealedSecretError. */
  open(purpose: SealPurpose, sealed: string): Uint8Array {
    return openWith(this.#sealKey(purpose), purpose, sealed);
  }

  toJSON(): string {
    return 'KeyVault';
  }

  toString(): string {
    return '[object KeyVault]';
  }

  [INSPECT](): string {
    return 'KeyVault {}';
  }

  #sealKey(purpose: SealPurpose): Uint8Array {
    if (!KNOWN_SEAL_PURPOSES.has(purpose)) throw new TypeError(`unknown seal purpose ${String(purpose)}`);
    let key = this.#sealKeys.get(purpose);
    if (key === undefined) {
      key = hkdf(this.#masterKey, sealKeyInfo(purpose), 32);
      this.#sealKeys.set(purpose, key);
    }
    return key;
  }
}
