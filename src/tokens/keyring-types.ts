/**
 * The keyring's public types and its stored form (collection `signing-keys`,
 * id `keyring`): shared by the schedule, the key material and the ring.
 */
import type { KeyObject } from 'node:crypto';
import type { SigningAlgorithm } from '../crypto/index.ts';

export interface SigningKey {
  readonly kid: string;
  readonly alg: SigningAlgorithm;
  readonly privateKey: KeyObject;
}

export interface VerificationKey {
  readonly kid: string;
  readonly alg: SigningAlgorithm;
  readonly publicKey: KeyObject;
}

export interface KeyringPolicy {
  /** A key signs for this long. */
  readonly rotationIntervalMs: number;
  /** `Cache-Control: max-age` of /jwks: a new key is published at least this long before it signs. */
  readonly jwksMaxAgeSeconds: number;
  /** The longest-lived token a key signs: a retired key stays published this long after it stopped signing. */
  readonly maxTokenLifetimeSeconds: number;
  /** How often `start()` re-reads the store (and runs the rotation schedule). */
  readonly refreshMs: number;
}

export type KeyState = 'next' | 'current' | 'retired' | 'revoked';

export interface KeyInfo {
  readonly kid: string;
  readonly alg: SigningAlgorithm;
  readonly state: KeyState;
  readonly createdAt: number;
  /** When it starts (or started) signing. */
  readonly activatesAt: number;
  /** When it stops (or stopped) signing: its successor's `activatesAt`, once a successor exists. */
  readonly retiredAt?: number;
  /**
   * When it leaves the JWKS (`retiredAt` + the longest token lifetime), after
   * which `maintain()` drops it. For a revoked key (already unpublished), when
   * it is dropped from the stored keyring.
   */
  readonly removeAt?: number;
  /** When it was revoked (state `revoked` only). */
  readonly revokedAt?: number;
}

/** A refusal the operator can act on (unknown kid, already revoked, unreadable keyring); safe to print. */
export class KeyringError extends Error {
  override readonly name = 'KeyringError';
}

/** One key as stored: the private key only sealed (AES-256-GCM under a master-key-derived key), never in clear. */
export interface StoredKey {
  readonly kid: string;
  readonly alg: SigningAlgorithm;
  readonly createdAt: number;
  readonly activatesAt: number;
  readonly revokedAt?: number;
  /** PKCS #8 DER of the private key, sealed. */
  readonly sealedPrivateKey: string;
}

export interface KeyringDocument {
  readonly format: typeof KEYRING_DOCUMENT_FORMAT;
  readonly keys: readonly StoredKey[];
}

export const KEYRING_COLLECTION = 'signing-keys';
export const KEYRING_DOCUMENT_ID = 'keyring';
export const KEYRING_DOCUMENT_FORMAT = 1;
