/**
 * The transmitter: the signal log, the streams, the SET signer and the
 * wake-ups that tie them together. Deliveries (poll.ts, push.ts, the
 * server's WebSocket route) read the log from a stream's cursor through it.
 *
 * How an event travels (issue 13, "Durability"):
 * 1. a feature emits a domain event; the signal recorder (recorder.ts)
 *    writes its security events to the outbox before `emit` resolves;
 * 2. the outbox worker hands the message to `appendFromOutbox`, which
 *    appends the events to the log once (by the message's idempotency key);
 * 3. `signals.appended` wakes every instance's deliveries, which send from
 *    each stream's cursor and move it on acknowledgement.
 */
import { randomUUID } from 'node:crypto';
import type { DomainEvents } from '../events/index.ts';
import type { OutboxDelivery, StoredRecord } from '../store/index.ts';
import type { SignalEvent } from './mapping.ts';
import type { SignalLog } from './log.ts';
import type { LogEntry, StreamCollection, StreamRecord } from './records.ts';
import { select, type Selection } from './selection.ts';
import type { SetSigner } from './sets.ts';
import type { SignalSettings } from './settings.ts';
import type { StreamManager } from './streams.ts';

/** The outbox topic of security events. */
export const SIGNALS_TOPIC = 'signals.event';

/** Log entries read per page while a stream catches up. */
const PAGE = 500;

export interface OutboxSignalPayload {
  readonly txn: string;
  readonly time: number;
  readonly signals: readonly SignalEvent[];
}

export interface TransmitterOptions {
  readonly log: SignalLog;
  readonly streams: StreamCollection;
  readonly manager: StreamManager;
  readonly signer: SetSigner;
  readonly settings: SignalSettings;
  readonly events: Pick<DomainEvents, 'emit'>;
  readonly clock: () => number;
}

interface Waiter {
  readonly after: number;
  readonly wake: () => void;
}

export class Transmitter {
  readonly log: SignalLog;
  readonly streams: StreamCollection;
  readonly manager: StreamManager;
  readonly signer: SetSigner;
  readonly settings: SignalSettings;
  readonly #events: Pick<DomainEvents, 'emit'>;
  readonly #clock: () => number;
  readonly #waiters = new Set<Waiter>();
  readonly #appendListeners = new Set<(seq: number) => void>();
  /** Reads in flight, shared by the deliveries that ask for the same thing at once (many sockets woken by one append). */
  readonly #pages = new Map<string, Promise<LogEntry[]>>();
  readonly #records = new Map<string, Promise<StoredRecord<StreamRecord> | null>>();
  #known = 0;

  constructor(options: TransmitterOptions) {
    this.log = options.log;
    this.streams = options.streams;
    this.manager = options.manager;
    this.signer = options.signer;
    this.settings = options.settings;
    this.#events = options.events;
    this.#clock = options.clock;
  }

  /** The outbox deliverer of {@link SIGNALS_TOPIC}: appends once, then wakes every instance. */
  async appendFromOutbox(message: OutboxDelivery): Promise<void> {
    const payload = checkPayload(message.payload);
    const last = await this.log.append(message.idempotencyKey, payload.txn, payload.time, payload.signals);
    if (last !== null) await this.#appended(last);
  }

  /** A stream's own event (verification, stream-updated): appended now, for that stream only. */
  async appendForStream(streamId: string, signal: SignalEvent): Promise<void> {
    const last = await this.log.append(randomUUID(), randomUUID(), this.#clock(), [signal], streamId);
    if (last !== null) await this.#appended(last);
  }

  /** Told by the `signals.appended` event (from this instance or another). */
  appended(seq: number): void {
    if (seq <= this.#known) return;
    this.#known = seq;
    for (const waiter of [...this.#waiters]) if (waiter.after < seq) waiter.wake();
    for (const listener of [...this.#appendListeners]) listener(seq);
  }

  /** Listens for appends (the push worker, sockets). Returns the function that stops it. */
  onAppended(listener: (seq: number) => void): () => void {
    this.#appendListeners.add(listener);
    return () => this.#appendListeners.delete(listener);
  }

  /** Resolves when an entry after `after` is appended, after `timeoutMs`, or when `signal` aborts. */
  waitForAppend(after: number, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    if (this.#known > after) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        this.#waiters.delete(waiter);
        resolve();
      };
      const waiter: Waiter = { after, wake: done };
      const timer = setTimeout(done, timeoutMs);
      signal?.addEventListener('abort', done, { once: true });
      this.#waiters.add(waiter);
    });
  }

  /**
   * What a stream is owed after `cursor` (its own, or a socket's `after`):
   * up to `limit` entries, reading pages until it finds some or reaches the
   * head, and the cursor it may move to.
   */
  async owed(streamId: string, stream: StreamRecord, limit: number, from: { cursor: number; acked: readonly number[] } = stream): Promise<Selection & { more: boolean }> {
    let state = { ...stream, cursor: from.cursor, acked: [...from.acked] };
    for (let pages = 0; pages < 20; pages++) {
      const page = await this.#page(state.cursor);
      const selection = select(streamId, state, page, limit);
      const full = page.length === PAGE;
      // Stop when there is something to send, nothing more to read, or no progress (the page starts with an owed entry that `limit` 0 does not take).
      if (selection.entries.length > 0 || !full || selection.cursor === state.cursor) {
        // With limit 0 nothing is taken: something is owed when the cursor stopped before an entry of the page.
        const owedBeyond = limit === 0 ? page.some((entry) => entry.seq > selection.cursor) : selection.entries.length >= limit;
        return { ...selection, more: owedBeyond || full };
      }
      state = { ...state, cursor: selection.cursor, acked: selection.acked };
    }
    return { entries: [], cursor: state.cursor, acked: state.acked, more: true };
  }

  /**
   * A stream's record, one read shared by the callers that ask while it is
   * in flight (the sockets of a stream, woken together by an append): what
   * a read started at that moment would say, so no staler.
   */
  stream(streamId: string): Promise<StoredRecord<StreamRecord> | null> {
    let read = this.#records.get(streamId);
    if (read === undefined) {
      read = this.streams.get(streamId).finally(() => this.#records.delete(streamId));
      this.#records.set(streamId, read);
    }
    return read;
  }

  /**
   * A page of the log after `cursor`, shared like {@link stream}. Keyed by
   * the head this instance knows too: a delivery woken by append N never
   * joins a read that began before N was known (and may have missed it).
   */
  #page(cursor: number): Promise<LogEntry[]> {
    const key = `${cursor}:${this.#known}`;
    let read = this.#pages.get(key);
    if (read === undefined) {
      read = this.log.after(cursor, PAGE).finally(() => this.#pages.delete(key));
      this.#pages.set(key, read);
    }
    return read;
  }

  /** Moves a stream's cursor forward (never back) and records acknowledgements above it. */
  async advance(streamId: string, cursor: number, acked: readonly number[] = []): Promise<StreamRecord | null> {
    const outcome = await this.streams.mutate(
      streamId,
      (current) => {
        if (current === null) return { kind: 'keep', result: undefined } as const;
        const merged = [...new Set([...current.data.acked, ...acked])].filter((seq) => seq > Math.max(cursor, current.data.cursor));
        const next = Math.max(cursor, current.data.cursor);
        if (next === current.data.cursor && merged.length === current.data.acked.length) return { kind: 'keep', result: undefined } as const;
        return { kind: 'write', value: { ...current.data, cursor: next, acked: merged.sort((a, b) => a - b).slice(-10_000) }, result: undefined } as const;
      },
      { attempts: 8, exhausted: () => undefined },
    );
    return outcome.record?.data ?? null;
  }

  async #appended(seq: number): Promise<void> {
    this.appended(seq);
    // Other instances' deliveries: a wake-up, not the events (they read the log).
    await this.#events.emit({ type: 'signals.appended', seq });
  }

  /** The log's head as this instance knows it (appends it was told of). */
  get known(): number {
    return this.#known;
  }

  async refreshHead(): Promise<void> {
    this.appended(await this.log.head());
  }

  now(): number {
    return this.#clock();
  }
}

function checkPayload(payload: unknown): OutboxSignalPayload {
  const value = payload as Partial<OutboxSignalPayload> | null;
  if (value === null || typeof value !== 'object' || typeof value.txn !== 'string' || typeof value.time !== 'number' || !Array.isArray(value.signals)) {
    throw new TypeError('a signals outbox message is not in a format this build reads');
  }
  return value as OutboxSignalPayload;
}

export type { LogEntry };
