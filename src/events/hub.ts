/**
 * The events port: features emit, subscribers are told.
 *
 * Two kinds of subscriber, with different promises:
 * - recorders (the audit ledger) are awaited: `emit` resolves only once
 *   every recorder has made the events durable, and rejects when one fails,
 *   so an action whose entry was not written fails instead of losing it.
 *   The events of one `emitAll` reach a recorder as one batch, in order
 *   (one transaction, as `Ledger.recordAll` was).
 * - reactors (caches) are told of an event in this process as it is
 *   emitted, and in every other process the MessageBus reaches when its
 *   type crosses instances (catalog.ts). Their errors never fail the action:
 *   they go to `onError`, and the caches' fallback poll covers them.
 *
 * Each process applies an event once: the bus echoes a message back to the
 * process that published it, which already told its own reactors, so it
 * drops messages of its own origin; and a message id seen before (a
 * redelivery, as an outbox-backed publisher may make) is dropped too.
 */
import { randomUUID } from 'node:crypto';
import type { DurableTransaction, MessageBus } from '../store/index.ts';
import { crossesInstances, isDomainEventType, type DomainEvent, type DomainEventType } from './catalog.ts';

/** What features hold: the publisher. */
export interface DomainEvents {
  /** Resolves once every recorder has made the event durable; rejects (and the action with it) when one could not. */
  emit(event: DomainEvent): Promise<void>;
  /** Several events of one action, recorded as one batch in this order. */
  emitAll(events: readonly DomainEvent[]): Promise<void>;
  /**
   * For an action whose change is one durable transaction: called inside
   * it, writes what must commit with the change (the stagers': the security
   * signals' outbox messages), and returns the rest of the emit, to call
   * after the commit (the ledger, the reactors). The change and its signals
   * then commit together or not at all.
   */
  stage(tx: DurableTransaction, events: readonly DomainEvent[]): Promise<StagedEmit>;
}

/** The rest of a staged emit, after the commit. */
export interface StagedEmit {
  /**
   * Records and delivers the events. `final`: the same events, in the same
   * order, with what was known only after the commit (a count in a detail);
   * default the staged ones.
   */
  publish(final?: readonly DomainEvent[]): Promise<void>;
}

/** Writes, inside the cause's transaction, what must commit with it. */
export type EventStager = (tx: DurableTransaction, events: readonly DomainEvent[]) => Promise<void>;

/**
 * A durable subscriber; resolves once the events are durable. `staged`:
 * the events' stagers already wrote them with their cause (a recorder that
 * is also a stager skips them).
 */
export type EventRecorder = (events: readonly DomainEvent[], options: { readonly staged: boolean }) => Promise<void>;

export type EventReactor<T extends DomainEventType> = (event: DomainEvent<T>) => void | Promise<void>;

/** What subscribers hold. */
export interface EventSubscriptions {
  on<T extends DomainEventType>(types: T | readonly T[], reactor: EventReactor<T>): () => void;
  /** Told when cross-instance delivery was interrupted: events may have been missed, so drop whatever was cached. */
  onInterrupted(handler: () => void): () => void;
  /**
   * Whether every instance's events reach this process now (a connected
   * deployment-wide bus). While true, a cache may keep what it read until an
   * event says otherwise (polling only as a fallback); while false it polls
   * as it always did.
   */
  readonly deploymentWide: boolean;
}

/** Message format on the bus. */
interface Envelope {
  readonly v: 1;
  /** Idempotency key: a message id is applied once per process. */
  readonly id: string;
  /** The process that published it. */
  readonly origin: string;
  readonly events: readonly DomainEvent[];
}

/** Message ids remembered for deduplication; the oldest are forgotten first. */
const SEEN_IDS = 10_000;

export interface EventHubOptions {
  /** The transport to other instances; without one, events stay in this process. */
  readonly bus?: MessageBus;
  /** Told of what must not fail an action: a reactor's error, a message that could not be sent or read. */
  readonly onError?: (error: unknown) => void;
}

export class EventHub implements DomainEvents, EventSubscriptions {
  readonly #bus: MessageBus | undefined;
  readonly #onError: (error: unknown) => void;
  readonly #origin = randomUUID();
  readonly #recorders: EventRecorder[] = [];
  readonly #stagers: EventStager[] = [];
  readonly #reactors = new Map<DomainEventType, Set<EventReactor<DomainEventType>>>();
  readonly #interruptedHandlers = new Set<() => void>();
  readonly #seen = new Set<string>();
  readonly #unsubscribe: (() => void) | undefined;

  constructor(options: EventHubOptions = {}) {
    this.#bus = options.bus;
    this.#onError = options.onError ?? (() => undefined);
    this.#unsubscribe = this.#bus?.subscribe({
      message: (text) => void this.#receive(text),
      interrupted: () => {
        for (const handler of [...this.#interruptedHandlers]) this.#safely(handler);
      },
    });
  }

  get deploymentWide(): boolean {
    return this.#bus !== undefined && this.#bus.reach === 'deployment' && this.#bus.connected;
  }

  /** Adds a durable subscriber (the ledger). Returns the function that removes it. */
  record(recorder: EventRecorder): () => void {
    this.#recorders.push(recorder);
    return () => {
      const index = this.#recorders.indexOf(recorder);
      if (index >= 0) this.#recorders.splice(index, 1);
    };
  }

  /** Adds a stager (the signal recorder's transactional half). Returns the function that removes it. */
  stager(stager: EventStager): () => void {
    this.#stagers.push(stager);
    return () => {
      const index = this.#stagers.indexOf(stager);
      if (index >= 0) this.#stagers.splice(index, 1);
    };
  }

  on<T extends DomainEventType>(types: T | readonly T[], reactor: EventReactor<T>): () => void {
    const list: readonly T[] = typeof types === 'string' ? [types] : types;
    for (const type of list) {
      let set = this.#reactors.get(type);
      if (set === undefined) this.#reactors.set(type, (set = new Set()));
      set.add(reactor as EventReactor<DomainEventType>);
    }
    return () => {
      for (const type of list) this.#reactors.get(type)?.delete(reactor as EventReactor<DomainEventType>);
    };
  }

  onInterrupted(handler: () => void): () => void {
    this.#interruptedHandlers.add(handler);
    return () => this.#interruptedHandlers.delete(handler);
  }

  emit(event: DomainEvent): Promise<void> {
    return this.emitAll([event]);
  }

  emitAll(events: readonly DomainEvent[]): Promise<void> {
    return this.#publish(events, false);
  }

  async stage(tx: DurableTransaction, events: readonly DomainEvent[]): Promise<StagedEmit> {
    checkTypes(events);
    for (const stager of this.#stagers) await stager(tx, events);
    return {
      publish: (final = events) => {
        if (final.length !== events.length || final.some((event, index) => event.type !== events[index]!.type)) {
          return Promise.reject(new TypeError('a staged emit is published with the events it staged, in the same order'));
        }
        return this.#publish(final, true);
      },
    };
  }

  async #publish(events: readonly DomainEvent[], staged: boolean): Promise<void> {
    checkTypes(events);
    if (events.length === 0) return;
    // Recorded and delivered at once: a revocation reaches the other
    // instances even when the ledger fails, and the action still fails.
    const [recorded] = await Promise.allSettled([Promise.all(this.#recorders.map((recorder) => recorder(events, { staged }))), this.#deliver(events)]);
    if (recorded.status === 'rejected') throw recorded.reason;
  }

  /** Stops listening to the bus (the bus itself is the stores'). */
  close(): void {
    this.#unsubscribe?.();
  }

  async #deliver(events: readonly DomainEvent[]): Promise<void> {
    for (const event of events) await this.#react(event);
    const crossing = events.filter(crossesInstances).map(forTheBus);
    if (crossing.length === 0 || this.#bus === undefined) return;
    const envelope: Envelope = { v: 1, id: randomUUID(), origin: this.#origin, events: crossing };
    try {
      await this.#bus.publish(JSON.stringify(envelope));
    } catch (error) {
      // The other instances' caches fall back to polling; the action stands.
      this.#onError(error);
    }
  }

  async #receive(text: string): Promise<void> {
    let envelope: Envelope;
    try {
      envelope = parseEnvelope(text);
    } catch (error) {
      this.#onError(error);
      return;
    }
    if (envelope.origin === this.#origin || this.#seen.has(envelope.id)) return;
    this.#seen.add(envelope.id);
    if (this.#seen.size > SEEN_IDS) this.#seen.delete(this.#seen.values().next().value!);
    for (const event of envelope.events) await this.#react(event);
  }

  async #react(event: DomainEvent): Promise<void> {
    const reactors = this.#reactors.get(event.type);
    if (reactors === undefined) return;
    for (const reactor of [...reactors]) {
      try {
        await reactor(event);
      } catch (error) {
        this.#onError(error);
      }
    }
  }

  #safely(handler: () => void): void {
    try {
      handler();
    } catch (error) {
      this.#onError(error);
    }
  }
}

function checkTypes(events: readonly DomainEvent[]): void {
  for (const event of events) {
    if (!isDomainEventType(event.type)) throw new TypeError(`unknown domain event type "${String(event.type).slice(0, 64)}"`);
  }
}

/** Another instance needs the ids an event is about, not its audit detail or the caller's address. */
function forTheBus(event: DomainEvent): DomainEvent {
  const copy: Record<string, unknown> = { ...event };
  delete copy['ip'];
  delete copy['detail'];
  delete copy['previousEmail'];
  return copy as unknown as DomainEvent;
}

/** A message from the bus, checked: only cross-instance event types, with their string ids. */
function parseEnvelope(text: string): Envelope {
  const value = JSON.parse(text) as Partial<Envelope>;
  if (value === null || typeof value !== 'object' || value.v !== 1 || typeof value.id !== 'string' || typeof value.origin !== 'string' || !Array.isArray(value.events)) {
    throw new TypeError('an event message on the bus is not in a format this build reads');
  }
  for (const event of value.events as unknown[]) {
    if (event === null || typeof event !== 'object' || !isDomainEventType((event as { type?: unknown }).type) || !crossesInstances(event as DomainEvent)) {
      throw new TypeError('an event message on the bus names an event that does not cross instances');
    }
  }
  return value as Envelope;
}
