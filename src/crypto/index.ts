/**
 * The crypto core: the master key and the one `KeyVault` that holds it
 * (named key derivations, sealing), the one JWS algorithm table, and C2SP
 * signed notes. A bottom layer: it imports node:crypto and node:fs only, and
 * no module of this server.
 */
export { MASTER_KEY_BYTES, MasterKeyError, ensureMasterKeyFile, type EnsureResult, type MasterKeySource } from './master-key.ts';
export { KEY_PURPOSES, SEAL_PURPOSES, type KeyPurpose, type SealPurpose } from './purposes.ts';
export { SealedSecretError } from './seal.ts';
export { KeyVault } from './vault.ts';
export {
  JWS_ALGORITHMS,
  MIN_RSA_MODULUS_BITS,
  SIGNING_ALGORITHMS,
  algorithmsFor,
  generateSigningKey,
  isAlgorithmFor,
  jwsAlgorithm,
  keyFitsAlgorithm,
  nodeSignParameters,
  tokenHashAlgorithm,
  type AlgorithmUse,
  type HashName,
  type JwsAlgorithm,
  type JwsAlgorithmInfo,
  type NodeSignParameters,
  type ResourceTokenAlgorithm,
  type SigningAlgorithm,
} from './algorithms.ts';
export { createSealedLogKey, openSealedLogKey, type SealedLogKey } from './log-key.ts';
export * from './signed-note/index.ts';
