/**
 * What an admin command that changes something needs: the stores (existing,
 * schema checked, never created or migrated from here), the key vault, and the audit ledger
 * its changes are recorded in; all closed again however the work ends.
 */
import { openLedger, type Ledger } from '../audit/index.ts';
import type { Config } from '../config/index.ts';
import { KeyVault } from '../crypto/index.ts';
import { systemClock, type Stores } from '../store/index.ts';
import { openExistingStores, withAbsolutePaths } from './deployment.ts';

export interface AdminContext {
  readonly stores: Stores;
  readonly vault: KeyVault;
  readonly ledger: Ledger;
}

export async function withAuditedStores<T>(config: Readonly<Config>, work: (context: AdminContext) => Promise<T>): Promise<T> {
  // Never creates a deployment: a missing one is named by its absolute path (first-hour D7).
  const stores = await openExistingStores(config, { schemaCurrent: true });
  try {
    const vault = KeyVault.load(withAbsolutePaths(config));
    const ledger = await openLedger({ log: stores.durable.auditLog, records: stores.durable.records, vault, issuer: config.issuer, clock: systemClock, audit: config.audit });
    try {
      return await work({ stores, vault, ledger });
    } finally {
      await ledger.close();
    }
  } finally {
    await stores.close();
  }
}
