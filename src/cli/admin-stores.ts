/**
 * What an admin command that changes something needs: the stores (schema
 * checked, never migrated from here), the master key, and the audit ledger
 * its changes are recorded in; all closed again however the work ends.
 */
import { openLedger, type Ledger } from '../audit/index.ts';
import type { Config } from '../config/index.ts';
import { assertSchemaCurrent, openStores, systemClock, type Stores } from '../store/index.ts';
import { loadMasterKey } from '../tokens/index.ts';

export interface AdminContext {
  readonly stores: Stores;
  readonly masterKey: Uint8Array;
  readonly ledger: Ledger;
}

export async function withAuditedStores<T>(config: Readonly<Config>, work: (context: AdminContext) => Promise<T>): Promise<T> {
  const stores = await openStores(config);
  try {
    await assertSchemaCurrent(stores.durable);
    const masterKey = loadMasterKey(config);
    const ledger = await openLedger({ log: stores.durable.auditLog, records: stores.durable.records, masterKey, issuer: config.issuer, clock: systemClock, audit: config.audit });
    try {
      return await work({ stores, masterKey, ledger });
    } finally {
      await ledger.close();
    }
  } finally {
    await stores.close();
  }
}
