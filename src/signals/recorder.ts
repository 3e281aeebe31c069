/**
 * The signal recorder: a durable subscriber of the domain events (like the
 * ledger), in two halves.
 * - The stager writes an action's security events into the outbox inside
 *   the action's own transaction (`events.stage`), so the change and its
 *   signals commit together or not at all.
 * - The recorder does the same for actions emitted after their change (an
 *   action on the hot store, which no durable transaction can include):
 *   `emit` resolves only once the events are in the outbox, so an action
 *   that answered 2xx has its signals queued even if the process dies the
 *   next instant (kill -9), and the outbox worker delivers them after a
 *   restart.
 */
import { randomUUID } from 'node:crypto';
import type { DomainEvent, EventRecorder, EventStager } from '../events/index.ts';
import type { DurableStore, OutboxWriter, RecordStore } from '../store/index.ts';
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

export interface SignalRecorder {
  readonly record: EventRecorder;
  readonly stage: EventStager;
}

export function signalRecorder(options: SignalRecorderOptions): SignalRecorder {
  /** The outbox messages of these events; subjects are looked up through `records` (a transaction's, inside one). */
  const messagesOf = async (events: readonly DomainEvent[], records?: RecordStore): Promise<OutboxSignalPayload[]> => {
    const messages: OutboxSignalPayload[] = [];
    for (const event of events) {
      if (!SIGNALLING_EVENT_TYPES.has(event.type)) continue;
      const time = event.time ?? options.clock();
      const signals = await signalsOf({ ...event, time }, options.issuer, { emailOf: (userId: string) => options.directory.emailOf(userId, records) });
      // The txn names the cause: every SET of this event carries it (RFC 8417 section 2.2).
      if (signals.length > 0) messages.push({ txn: randomUUID(), time, signals });
    }
    return messages;
  };
  const add = async (outbox: OutboxWriter, messages: readonly OutboxSignalPayload[]): Promise<void> => {
    for (const message of messages) await outbox.add({ topic: SIGNALS_TOPIC, payload: message, idempotencyKey: `signal:${message.txn}` });
  };
  return {
    stage: async (tx, events) => {
      const messages = await messagesOf(events, tx.records);
      await add(tx.outbox, messages);
      // Woken now; the worker finds the messages once the transaction commits (or at its next poll).
      if (messages.length > 0) options.kick?.();
    },
    record: async (events, { staged }) => {
      if (staged) return;
      const messages = await messagesOf(events);
      if (messages.length === 0) return;
      await options.durable.transaction((tx) => add(tx.outbox, messages));
      options.kick?.();
    },
  };
}
