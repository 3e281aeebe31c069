/**
 * Tokens: the keyring (generation, rotation, JWKS) and JWT signing and
 * verification, built on the crypto core's vault and algorithm table.
 */
export { SIGNING_ALGORITHMS, type SigningAlgorithm } from '../crypto/index.ts';
export { Keyring, type KeyringEvents, type KeyringOptions } from './keyring.ts';
export { KeyringError, type KeyInfo, type KeyState, type KeyringPolicy, type SigningKey, type VerificationKey } from './keyring-types.ts';
export { keyringPolicy, type KeyringPolicySettings } from './keyring-schedule.ts';
export { JwtError, signJwt, signJwtAsync, verifyJwt, verifyJwtAsync, type VerificationKeys, type VerifiedJwt, type VerifyJwtOptions } from './jwt.ts';
export { randomId } from './random.ts';
