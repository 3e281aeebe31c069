export { MASTER_KEY_BYTES, MasterKeyError, deriveKey, ensureMasterKeyFile, loadMasterKey } from './master-key.ts';
export { SealedSecretError, openSecret, sealSecret } from './sealed.ts';
export {
  Keyring,
  KeyringError,
  SIGNING_ALGORITHMS,
  keyringPolicy,
  type KeyInfo,
  type KeyState,
  type KeyringEvents,
  type KeyringOptions,
  type KeyringPolicy,
  type KeyringPolicySettings,
  type SigningAlgorithm,
  type SigningKey,
  type VerificationKey,
} from './keyring.ts';
export { JwtError, signJwt, signJwtAsync, verifyJwt, verifyJwtAsync, type VerificationKeys, type VerifiedJwt, type VerifyJwtOptions } from './jwt.ts';
export { randomId } from './random.ts';
