/**
 * Key material of the audit log's checkpoint key (C2SP signed-note, Ed25519):
 * made once per deployment, its signer key sealed in the vault's
 * `audit-log-key` slot. Where the sealed key is stored is the audit
 * module's business; this file only makes and opens it.
 */
import { generateSignerKey, parseSignerKey, type Ed25519NoteSigner } from './signed-note/index.ts';
import type { KeyVault } from './vault.ts';

export interface SealedLogKey {
  /** The public verifier key (vkey), as verifiers are configured with it. */
  readonly verifierKey: string;
  /** The signer key (skey) text, sealed (AES-256-GCM under the master key). */
  readonly sealedSignerKey: string;
}

/** A new log key named `name` (the log's origin), its secret half sealed. */
export function createSealedLogKey(vault: KeyVault, name: string): SealedLogKey {
  const generated = generateSignerKey(name);
  return { verifierKey: generated.verifierKey, sealedSignerKey: vault.seal('audit-log-key', new TextEncoder().encode(generated.signerKey)) };
}

/** Opens a sealed log key into a signer; a wrong master key or an altered value is a SealedSecretError. */
export function openSealedLogKey(vault: KeyVault, sealedSignerKey: string): Ed25519NoteSigner {
  const text = vault.open('audit-log-key', sealedSignerKey);
  try {
    return parseSignerKey(new TextDecoder().decode(text));
  } finally {
    text.fill(0);
  }
}
