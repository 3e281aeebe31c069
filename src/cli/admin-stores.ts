/**
 * What an admin command that changes something needs: the stores (existing,
 * schema checked, never created or migrated from here), the key vault, and
 * the events its changes are emitted through (the audit ledger records them;
 * on scale-out the running instances hear of them through the bus); all
 * closed again however the work ends.
 */
import { auditedEvents, openLedger } from '../audit/index.ts';
import type { Config } from '../config/index.ts';
import { KeyVault } from '../crypto/index.ts';
import type { DomainEvents } from '../events/index.ts';
import { systemClock, type Stores } from '../store/index.ts';
import { openExistingStores, withAbsolutePaths } from './deployment.ts';

export interface AdminContext {
  readonly stores: Stores;
  readonly vault: KeyVault;
  readonly events: DomainEvents;
}

export async function withAuditedStores<T>(config: Readonly<Config>, work: (context: AdminContext) => Promise<T>): Promise<T> {
  // Never creates a deployment: a missing one is named by its absolute path (first-hour D7).
  const stores = await openExistingStores(config, { schemaCurrent: true });
  try {
    const vault = KeyVault.load(withAbsolutePaths(config));
    const ledger = await openLedger({ log: stores.durable.auditLog, records: stores.durable.records, vault, issuer: config.issuer, clock: systemClock, audit: config.audit });
    const events = auditedEvents(ledger, { bus: stores.bus });
    try {
      return await work({ stores, vault, events });
    } finally {
      events.close();
      await ledger.close();
    }
  } finally {
    await stores.close();
  }
}
