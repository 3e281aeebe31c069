export { MASTER_KEY_BYTES, MasterKeyError, deriveKey, ensureMasterKeyFile, loadMasterKey } from './master-key.ts';
export { SealedSecretError, openSecret, sealSecret } from './sealed.ts';
