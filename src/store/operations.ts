/**
 * The store operations a wrapper (instrumented.ts: latency; guarded.ts: the
 * breaker) stands in front of, one list per port, and the wrapping itself.
 */
import type { AuditLogStore, HotStore, OutboxStore, RecordStore } from './ports.ts';

export const HOT_OPERATIONS = [
  'get',
  'set',
  'delete',
  'setIfAbsent',
  'consume',
  'getVersioned',
  'compareAndSet',
  'increment',
  'boundedSetAdd',
  'boundedSetRemove',
  'boundedSetMembers',
  'ping',
] as const satisfies readonly (keyof HotStore)[];

export const AUDIT_LOG_OPERATIONS = [
  'append',
  'size',
  'entries',
  'nodes',
  'addCheckpoint',
  'latestCheckpoint',
  'checkpointOfSize',
  'checkpoints',
  'addCosignature',
  'cosignatures',
  'subjectEntries',
  'indexSubject',
  'forgetSubject',
] as const satisfies readonly (keyof AuditLogStore)[];

export const RECORD_OPERATIONS = ['get', 'create', 'update', 'delete', 'list', 'findBy'] as const satisfies readonly (keyof RecordStore)[];

export const OUTBOX_OPERATIONS = ['withLease', 'counts', 'pruneDelivered', 'redactPayloads'] as const satisfies readonly (keyof OutboxStore)[];

/** A copy of `target` with each listed async method replaced by `wrap(name, method)`. */
export function wrapMethods<T extends object>(target: T, operations: readonly (keyof T & string)[], wrap: (operation: string, method: (...args: unknown[]) => Promise<unknown>) => (...args: unknown[]) => Promise<unknown>): T {
  const wrapped: Record<string, unknown> = {};
  for (const operation of operations) {
    const method = (...args: unknown[]) => (target[operation] as (...a: unknown[]) => Promise<unknown>).apply(target, args);
    wrapped[operation] = wrap(operation, method);
  }
  return wrapped as T;
}
