/**
 * The signal recorder: a durable subscriber of the domain events (like the
 * ledger). `emit` resolves only once the security events an action caused
 * are in the outbox, so an action that answered 2xx has its signals queued
 * even if the process dies the next instant (kill -9), and the outbox
 * worker delivers them after a restart.
 */
import { randomUUID } from 'node:crypto';
import type { EventRecorder } from '../events/index.ts';
import type { DurableStore } from '../store/index.ts';
import { signalsOf, SIGNALLING_EVENT_TYPES, type SubjectDirectory } from './mapping.ts';
import { SIGNALS_TOPIC, type OutboxSignalPayload } from './transmitter.ts';

export interface SignalRecorderOptions {
  readonly durable: Pick<DurableStore, 'transaction'>;
  readonly issuer: string;
  readonly directory: SubjectDirectory;
  readonly clock: () => number;
  /** Wakes the outbox worker (this process delivers sooner than its poll). */
  readonly kick?: () => void;
}

export function signalRecorder(options: SignalRecorderOptions): EventRecorder {
  return async (events) => {
    if (!events.some((event) => SIGNALLING_EVENT_TYPES.has(event.type))) return;
    const messages: OutboxSignalPayload[] = [];
    for (const event of events) {
      const time = event.time ?? options.clock();
      const signals = await signalsOf({ ...event, time }, options.issuer, options.directory);
      // The txn names the cause: every SET of this event carries it (RFC 8417 section 2.2).
      if (signals.length > 0) messages.push({ txn: randomUUID(), time, signals });
    }
    if (messages.length === 0) return;
    await options.durable.transaction(async (tx) => {
      for (const message of messages) await tx.outbox.add({ topic: SIGNALS_TOPIC, payload: message, idempotencyKey: `signal:${message.txn}` });
    });
    options.kick?.();
  };
}
