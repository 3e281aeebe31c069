/**
 * Helpers the transaction and outbox suites share: reading what the outbox
 * holds through the port itself (a lease), and a tiny recording deliverer.
 */
import { randomBytes } from 'node:crypto';
import type { DurableStore, OutboxMessage } from '../../src/store/ports.ts';
import type { OutboxDeliverer, OutboxDelivery } from '../../src/store/outbox-worker.ts';

export const unique = (label: string): string => `${label}-${randomBytes(6).toString('hex')}`;

/** Every undelivered message of `topic`, due or not, in id order (read under a lease of its own). */
export async function pendingOf(store: DurableStore, topic: string): Promise<OutboxMessage[]> {
  // The lease at the real time: a fake far-future `now` would see a live
  // worker's SQLite lease as lapsed and take it over.
  const outcome = await store.outbox.withLease({ holder: unique('inspector'), now: Date.now(), leaseMs: 60_000 }, (lease) =>
    lease.due(Number.MAX_SAFE_INTEGER, 1000),
  );
  if (!outcome.acquired) throw new Error('the outbox lease is held elsewhere while a test inspects it');
  return outcome.result.filter((message) => message.topic === topic).sort((a, b) => a.id - b.id);
}

/** A deliverer that records every call and answers with `answer` (default: delivered). */
export function recorder(answer: (message: OutboxDelivery, signal: AbortSignal) => Promise<void> = async () => {}): {
  readonly deliver: OutboxDeliverer;
  readonly calls: OutboxDelivery[];
} {
  const calls: OutboxDelivery[] = [];
  return {
    calls,
    deliver: async (message, signal) => {
      calls.push(message);
      await answer(message, signal);
    },
  };
}
