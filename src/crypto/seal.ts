import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

/**
 * Secrets at rest (private keys), sealed with AES-256-GCM (NIST SP 800-38D)
 * under a key derived from the master key for one purpose. The purpose is
 * also the additional authenticated data, so a sealed value copied into
 * another slot does not open there. Format: `v1.<iv>.<ciphertext>.<tag>`,
 * base64url parts; a 96-bit random IV (SP 800-38D section 8.2.2) and a
 * 128-bit tag. Stored values depend on this format: change it only with a
 * new version prefix that old values keep opening beside.
 */
const VERSION = 'v1';
const IV_BYTES = 12;
const TAG_BYTES = 16;

export class SealedSecretError extends Error {
  override readonly name = 'SealedSecretError';
}

/** Seals `plaintext` under `key` (the purpose's derived AES-256 key). */
export function sealWith(key: Uint8Array, purpose: string, plaintext: Uint8Array): string {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(Buffer.from(purpose, 'utf8'));
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return [VERSION, iv, ciphertext, cipher.getAuthTag()].map((part) => (typeof part === 'string' ? part : part.toString('base64url'))).join('.');
}

/** Opens a sealed value; a wrong master key, purpose or any altered byte is a SealedSecretError. */
export function openWith(key: Uint8Array, purpose: string, sealed: string): Uint8Array {
  const [version, iv, ciphertext, tag, extra] = typeof sealed === 'string' ? sealed.split('.') : [];
  if (version !== VERSION || iv === undefined || ciphertext === undefined || tag === undefined || extra !== undefined) {
    throw new SealedSecretError(`not a sealed ${purpose} value`);
  }
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'), { authTagLength: TAG_BYTES });
    decipher.setAAD(Buffer.from(purpose, 'utf8'));
    decipher.setAuthTag(Buffer.from(tag, 'base64url'));
    return new Uint8Array(Buffer.concat([decipher.update(Buffer.from(ciphertext, 'base64url')), decipher.final()]));
  } catch {
    throw new SealedSecretError(`cannot open the sealed ${purpose} value: wrong master key, or the value was altered`);
  }
}
