/**
 * minisign-format Ed25519 signatures (https://jedisct1.github.io/minisign/),
 * made and checked with `node:crypto` alone.
 *
 * Public key file: `untrusted comment: ...` then base64(`Ed` || key id (8
 * bytes, little-endian as minisign stores it) || Ed25519 public key (32)).
 *
 * Signature file, four lines:
 *
 *     untrusted comment: <text, not covered by anything>
 *     base64(<"Ed" or "ED"> || key id || signature (64))
 *     trusted comment: <text>
 *     base64(global signature (64))
 *
 * `Ed` signs the message itself (pure Ed25519, RFC 8032); `ED` signs
 * BLAKE2b-512 of the message (minisign's prehashed mode). The global
 * signature is over signature || trusted comment, so the trusted comment
 * cannot be changed. Both are checked; the key ids must match.
 *
 * Secret keys: minisign's secret key file carries a BLAKE2b-256 checksum,
 * which `node:crypto` cannot compute (it has only BLAKE2b-512, and BLAKE2b's
 * output length is in its parameter block, so truncation would be wrong).
 * Portcullis therefore keeps the secret key as a PKCS#8 PEM (Ed25519), and
 * derives the key id from the public key: the first 8 bytes of its SHA-256.
 * Public keys and signatures are minisign's format, so `minisign -V` checks
 * what `portcullis plugin sign` makes (the message is the digest file, below).
 *
 * What a plugin signature signs: the package digest (digest.ts) as 64
 * lowercase hex characters, no newline.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';

const PURE = 'Ed';
const PREHASHED = 'ED';
const KEY_ID_BYTES = 8;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const UNTRUSTED = 'untrusted comment: ';
const TRUSTED = 'trusted comment: ';

export class SignatureError extends Error {
  override readonly name = 'SignatureError';
}

export interface PublicKey {
  /** 8 bytes, as stored in the key and signature (little-endian). */
  readonly keyId: Uint8Array;
  readonly key: KeyObject;
}

export interface SecretKey {
  readonly keyId: Uint8Array;
  readonly key: KeyObject;
  readonly publicKey: PublicKey;
}

export interface VerifiedSignature {
  readonly keyId: string;
  readonly algorithm: 'Ed' | 'ED';
  readonly trustedComment: string;
}

/** A key id as minisign prints it: the little-endian 64-bit number in upper-case hex. */
export function keyIdHex(keyId: Uint8Array): string {
  return Buffer.from(keyId).reverse().toString('hex').toUpperCase();
}

function decodeBase64(text: string, what: string, length: number): Buffer {
  if (!BASE64.test(text)) throw new SignatureError(`${what} is not base64`);
  const bytes = Buffer.from(text, 'base64');
  if (bytes.length !== length) throw new SignatureError(`${what} has ${bytes.length} bytes, not ${length}`);
  return bytes;
}

function rawPublicKey(key: KeyObject): Buffer {
  const jwk = key.export({ format: 'jwk' });
  return Buffer.from(jwk.x!, 'base64url');
}

function publicKeyObject(raw: Uint8Array): KeyObject {
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(raw).toString('base64url') }, format: 'jwk' });
}

function lines(text: string): string[] {
  const all = text.replace(/\r\n/g, '\n').split('\n');
  if (all.at(-1) === '') all.pop();
  return all;
}

/**
 * A public key: the file (`untrusted comment:` line and key line) or the key
 * line alone (as in `plugins.trustedKeys` and `minisign -P`).
 */
export function parsePublicKey(text: string): PublicKey {
  const given = lines(text.trim());
  if (given.length === 2 && !given[0]!.startsWith(UNTRUSTED)) throw new SignatureError('a public key file starts with "untrusted comment:"');
  if (given.length !== 1 && given.length !== 2) throw new SignatureError('a public key is one base64 line, or an "untrusted comment:" line and that line');
  const bytes = decodeBase64(given.at(-1)!.trim(), 'the public key', 2 + KEY_ID_BYTES + 32);
  if (bytes.subarray(0, 2).toString('latin1') !== PURE) throw new SignatureError('the public key is not an Ed25519 minisign key (no "Ed" prefix)');
  return { keyId: bytes.subarray(2, 2 + KEY_ID_BYTES), key: publicKeyObject(bytes.subarray(2 + KEY_ID_BYTES)) };
}

/** The public key line (base64), as minisign prints it. */
export function publicKeyLine(publicKey: PublicKey): string {
  return Buffer.concat([Buffer.from(PURE, 'latin1'), publicKey.keyId, rawPublicKey(publicKey.key)]).toString('base64');
}

/** The public key file. */
export function formatPublicKey(publicKey: PublicKey): string {
  return `${UNTRUSTED}minisign public key ${keyIdHex(publicKey.keyId)}\n${publicKeyLine(publicKey)}\n`;
}

function keyIdOf(publicKey: KeyObject): Buffer {
  return createHash('sha256').update(rawPublicKey(publicKey)).digest().subarray(0, KEY_ID_BYTES);
}

/** A secret key from its PKCS#8 PEM (see the module comment). */
export function parseSecretKey(pem: string): SecretKey {
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: pem, format: 'pem' });
  } catch {
    throw new SignatureError('the secret key is not a PKCS#8 PEM private key');
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new SignatureError(`the secret key is ${key.asymmetricKeyType ?? 'not an asymmetric key'}, not Ed25519`);
  const publicKey = createPublicKey(key);
  const keyId = keyIdOf(publicKey);
  return { keyId, key, publicKey: { keyId, key: publicKey } };
}

/** A new key pair: the secret key's PKCS#8 PEM and the minisign public key file. */
export function generateSigningKey(): { secretKeyPem: string; publicKeyFile: string; keyId: string } {
  const { privateKey } = generateKeyPairSync('ed25519');
  const pem = privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
  const secret = parseSecretKey(pem);
  return { secretKeyPem: pem, publicKeyFile: formatPublicKey(secret.publicKey), keyId: keyIdHex(secret.keyId) };
}

function signedBytes(algorithm: string, message: Uint8Array): Uint8Array {
  return algorithm === PREHASHED ? createHash('blake2b512').update(message).digest() : message;
}

/** A minisign signature file over `message`. Comments are one line each. */
export function signMessage(message: Uint8Array, secret: SecretKey, options: { trustedComment: string; untrustedComment?: string; prehash?: boolean }): string {
  const untrusted = options.untrustedComment ?? `signature from portcullis secret key ${keyIdHex(secret.keyId)}`;
  if (/[\r\n]/.test(options.trustedComment) || /[\r\n]/.test(untrusted)) throw new SignatureError('a comment must be one line');
  const algorithm = options.prehash === true ? PREHASHED : PURE;
  const signature = sign(null, signedBytes(algorithm, message), secret.key);
  const global = sign(null, Buffer.concat([signature, Buffer.from(options.trustedComment, 'utf8')]), secret.key);
  const signatureLine = Buffer.concat([Buffer.from(algorithm, 'latin1'), secret.keyId, signature]).toString('base64');
  return `${UNTRUSTED}${untrusted}\n${signatureLine}\n${TRUSTED}${options.trustedComment}\n${global.toString('base64')}\n`;
}

/**
 * Checks a minisign signature file over `message` with `publicKey`:
 * format, key id, the signature, then the global signature over the
 * trusted comment. Throws a SignatureError naming the first failure.
 */
export function verifyMessage(message: Uint8Array, signatureFile: string, publicKey: PublicKey): VerifiedSignature {
  const given = lines(signatureFile);
  if (given.length !== 4) throw new SignatureError('a signature file has four lines');
  const [untrusted, signatureLine, trusted, globalLine] = given as [string, string, string, string];
  if (!untrusted.startsWith(UNTRUSTED)) throw new SignatureError('the signature file does not start with "untrusted comment:"');
  if (!trusted.startsWith(TRUSTED)) throw new SignatureError('the third line of the signature file is not a "trusted comment:"');
  const bytes = decodeBase64(signatureLine.trim(), 'the signature', 2 + KEY_ID_BYTES + 64);
  const global = decodeBase64(globalLine.trim(), 'the global signature', 64);
  const algorithm = bytes.subarray(0, 2).toString('latin1');
  if (algorithm !== PURE && algorithm !== PREHASHED) throw new SignatureError('the signature is not Ed25519 ("Ed" or "ED")');
  const keyId = bytes.subarray(2, 2 + KEY_ID_BYTES);
  if (!keyId.equals(publicKey.keyId)) throw new SignatureError(`signed by key ${keyIdHex(keyId)}, not by ${keyIdHex(publicKey.keyId)}`);
  const signature = bytes.subarray(2 + KEY_ID_BYTES);
  if (!verify(null, signedBytes(algorithm, message), publicKey.key, signature)) throw new SignatureError('the signature does not match (the package or the signature was changed, or another key signed)');
  const trustedComment = trusted.slice(TRUSTED.length);
  if (!verify(null, Buffer.concat([signature, Buffer.from(trustedComment, 'utf8')]), publicKey.key, global)) throw new SignatureError('the global signature does not match (the trusted comment was changed)');
  return { keyId: keyIdHex(keyId), algorithm, trustedComment };
}
