import { randomUUID } from 'node:crypto';
import type { OutboxMessageInput } from './ports.ts';
import { MAX_LIST_LIMIT } from './errors.ts';

/** Longest topic and idempotency key, in UTF-16 code units. */
export const MAX_OUTBOX_NAME = 200;
/** Longest stored `last_error`: enough to tell what failed, too short to hold a dump. */
export const MAX_OUTBOX_ERROR = 200;
/** The one lease of the outbox's delivery worker (SQLite lease row name). */
export const OUTBOX_LEASE = 'delivery';

export interface CheckedOutboxMessage {
  readonly topic: string;
  readonly payloadJson: string;
  readonly idempotencyKey: string;
}

/**
 * Checks a message before it reaches any driver, so every driver refuses
 * the same inputs with the same TypeError, and fills in the default key.
 */
export function checkOutboxMessage(message: OutboxMessageInput): CheckedOutboxMessage {
  checkName(message.topic, 'topic');
  if (message.idempotencyKey !== undefined) checkName(message.idempotencyKey, 'idempotencyKey');
  const payloadJson = JSON.stringify(message.payload);
  if (payloadJson === undefined) throw new TypeError('outbox payload must be JSON-serialisable');
  return { topic: message.topic, payloadJson, idempotencyKey: message.idempotencyKey ?? randomUUID() };
}

function checkName(value: unknown, what: string): void {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_OUTBOX_NAME || value.includes('\0')) {
    throw new TypeError(`outbox ${what} must be a string of 1 to ${MAX_OUTBOX_NAME} characters without NUL`);
  }
}

export function checkDueLimit(limit: number): number {
  if (!Number.isSafeInteger(limit) || limit <= 0) throw new TypeError(`limit must be a positive integer, got ${String(limit)}`);
  return Math.min(limit, MAX_LIST_LIMIT);
}

export function checkLeaseOptions(options: { readonly holder: string; readonly now: number; readonly leaseMs: number }): void {
  checkName(options.holder, 'lease holder');
  if (!Number.isSafeInteger(options.now)) throw new TypeError('lease time must be an integer number of milliseconds');
  if (!Number.isSafeInteger(options.leaseMs) || options.leaseMs <= 0) throw new TypeError('leaseMs must be a positive integer');
}

/** The stored form of a delivery failure: one line, bounded. */
export function storedError(error: string): string {
  const line = error.split('\n')[0] ?? '';
  return line.length > MAX_OUTBOX_ERROR ? `${line.slice(0, MAX_OUTBOX_ERROR - 3)}...` : line;
}
