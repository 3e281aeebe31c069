/**
 * The audit ledger (RFC 9162 Merkle log, C2SP signed checkpoints). Modules
 * emit domain events (src/events); the ledger subscribes through the audit
 * projection (projection.ts) and is the only writer of entries.
 */
import type { KeyVault } from '../crypto/index.ts';
import type { AuditLogStore, Clock, RecordStore } from '../store/index.ts';
import type { IpAddressMode } from './ip.ts';
import { Ledger } from './ledger.ts';
import { defaultOrigin, loadOrCreateLogKey } from './log-key.ts';

export { Ledger, AuditRequestError, type CosignatureResult, type RecordedEntry, type SubjectHistory, type SubjectHistoryEntry } from './ledger.ts';
export { forgetIn } from './pseudonyms.ts';
export { AUDIT_EVENT_TYPES, AuditEventError, decodeEntry, encodeEntry, subjectsOf, type AuditEntry, type AuditEvent, type AuditEventType, type AuditOutcome, type AuditDetail } from './events.ts';
export { AuditBackpressureError } from './group-commit.ts';
export { FailureAggregator, type AggregatedFailure, type AggregatedFailureType, type FailureAggregatorOptions } from './failure-aggregator.ts';
export { auditEventsOf, auditedEvents, ledgerRecorder } from './projection.ts';
export { throttledFor } from './failure-throttle.ts';
export { truncateIp, type IpAddressMode } from './ip.ts';
export { defaultOrigin, storedLogVerifierKey } from './log-key.ts';
export { MissingTreeNodeError } from './tree.ts';
export { PROBLEMS_PER_KIND, isCanonicalJson, verifyLog, type VerifyEntry, type VerifyOptions, type VerifyProblem, type VerifyProblemKind, type VerifyReport, type VerifySource } from './verify.ts';
export { verifySubjectHistory, type HistoryProblem, type HistoryProblemKind, type HistoryReport, type HistoryVerifyOptions } from './verify-history.ts';
export * as checkpointFormat from './checkpoint/index.ts';

export interface OpenLedgerOptions {
  readonly log: AuditLogStore;
  readonly records: RecordStore;
  readonly vault: KeyVault;
  readonly issuer: string;
  readonly clock: Clock;
  readonly audit: {
    readonly origin?: string | undefined;
    readonly ipAddresses: IpAddressMode;
    readonly witnesses: readonly string[];
    readonly maxPendingEntries: number;
  };
}

/** Opens the ledger: loads (or makes, once per deployment) the log key. */
export async function openLedger(options: OpenLedgerOptions): Promise<Ledger> {
  const key = await loadOrCreateLogKey(options.records, options.vault, options.audit.origin ?? defaultOrigin(options.issuer));
  return new Ledger({
    log: options.log,
    records: options.records,
    key,
    clock: options.clock,
    ipAddresses: options.audit.ipAddresses,
    ipHashKey: options.vault.derive('audit-ip-pseudonyms'),
    witnesses: options.audit.witnesses,
    maxPendingEntries: options.audit.maxPendingEntries,
  });
}
