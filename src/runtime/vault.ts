/**
 * The one seam between the runtime and the master key: services receive
 * the crypto core's KeyVault (src/crypto), never key bytes.
 */
import { KeyVault, ensureMasterKeyFile, type MasterKeySource } from '../crypto/index.ts';

/** What services derive and seal with. */
export type Vault = KeyVault;

/** Where the master key of a new deployment comes from, for `init` to say. */
export type VaultProvision = { readonly source: 'environment' } | { readonly source: 'file'; readonly path: string; readonly created: boolean };

/**
 * Makes the master key file when there is none (owner-only, created
 * atomically); a key given in the environment needs nothing. Only `init`
 * and `serve` may create it.
 */
export function provisionVault(config: MasterKeySource): VaultProvision {
  if (config.masterKey !== undefined) return { source: 'environment' };
  const { created, path } = ensureMasterKeyFile(config.masterKeyFile);
  return { source: 'file', path, created };
}

/** Loads the key; `create` first makes a missing key file (serve). */
export function openVault(config: MasterKeySource, options: { readonly create: boolean }): Vault {
  return options.create ? KeyVault.loadOrCreate(config) : KeyVault.load(config);
}
