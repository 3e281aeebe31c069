/** Reading the stored keyring document: anything this build cannot read is refused, never guessed at. */
import { isAlgorithmFor } from '../crypto/index.ts';
import { KEYRING_DOCUMENT_FORMAT, KeyringError, type KeyringDocument, type StoredKey } from './keyring-types.ts';

function isTime(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function parseStoredKey(value: unknown): StoredKey {
  const key = (typeof value === 'object' && value !== null ? value : {}) as Record<string, unknown>;
  const { kid, alg, createdAt, activatesAt, revokedAt, sealedPrivateKey } = key;
  if (
    typeof kid !== 'string' ||
    !isAlgorithmFor('keyring', alg) ||
    !isTime(createdAt) ||
    !isTime(activatesAt) ||
    (revokedAt !== undefined && !isTime(revokedAt)) ||
    typeof sealedPrivateKey !== 'string'
  ) {
    throw new KeyringError('the stored signing keys are not in a format this build reads');
  }
  return { kid, alg, createdAt, activatesAt, ...(revokedAt !== undefined && { revokedAt }), sealedPrivateKey };
}

export function parseDocument(data: unknown): KeyringDocument {
  const document = (typeof data === 'object' && data !== null ? data : {}) as Record<string, unknown>;
  if (document['format'] !== KEYRING_DOCUMENT_FORMAT || !Array.isArray(document['keys'])) {
    throw new KeyringError('the stored signing keys are not in a format this build reads');
  }
  return { format: KEYRING_DOCUMENT_FORMAT, keys: (document['keys'] as unknown[]).map(parseStoredKey) };
}
