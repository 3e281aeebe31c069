import { processLeaseHolder } from './lease-holder.ts';
import { systemClock, type Clock, type OutboxLease, type OutboxMessage, type OutboxStore } from './ports.ts';

/** A message handed to the deliverer: the stored message and which attempt this is (1 on the first). */
export interface OutboxDelivery extends OutboxMessage {
  readonly attempt: number;
}

/**
 * Hands one message on (a webhook, a queue, a stream). Resolving means
 * "delivered"; rejecting (or not settling within the delivery timeout, when
 * `signal` aborts) means "try again later". Delivery is at least once: the
 * receiver deduplicates on `message.idempotencyKey`.
 */
export type OutboxDeliverer = (message: OutboxDelivery, signal: AbortSignal) => Promise<void>;

export interface OutboxBackoff {
  /** Delay after the first failure (ms); default 1 s. */
  readonly baseMs?: number;
  /** The delay stops doubling here (ms); default 1 h. */
  readonly maxMs?: number;
}

export interface OutboxWorkerOptions {
  readonly outbox: OutboxStore;
  readonly deliver: OutboxDeliverer;
  readonly clock?: Clock;
  /** Names this worker in the lease; default this process, its kernel and pid namespace, and a random part (lease-holder.ts). */
  readonly holder?: string;
  /** Messages per batch (one lease); default 100. */
  readonly batchSize?: number;
  /** How often an idle worker looks for due messages (ms); default 1000. `kick()` wakes it sooner. */
  readonly pollIntervalMs?: number;
  readonly backoff?: OutboxBackoff;
  /** A delivery not settled by then is abandoned and retried (ms); default 30 s. */
  readonly deliveryTimeoutMs?: number;
  /** The SQLite lease's lifetime, renewed per message (ms); default twice the delivery timeout. */
  readonly leaseMs?: number;
  /** When set, delivered messages older than this are pruned after each batch (ms). */
  readonly retainDeliveredMs?: number;
  /** Receives failures of the worker itself (the store unreachable), never delivery failures. */
  readonly onError?: (error: unknown) => void;
}

export interface OutboxRunReport {
  /** False when another worker held the lease (nothing was done). */
  readonly leased: boolean;
  readonly delivered: number;
  readonly failed: number;
}

export interface OutboxWorker {
  /** Starts polling; a second call does nothing. */
  start(): void;
  /** Runs one batch now (after any batch in flight). Rejects if the store fails. */
  runOnce(): Promise<OutboxRunReport>;
  /** Wakes a started worker now, e.g. right after a transaction added a message. */
  kick(): void;
  /**
   * Stops polling, lets the delivery in flight finish and records it, leaves
   * the rest of the batch pending, and resolves when nothing is in flight.
   */
  stop(): Promise<void>;
}

const DEFAULTS = { batchSize: 100, pollIntervalMs: 1000, baseMs: 1000, maxMs: 3_600_000, deliveryTimeoutMs: 30_000 } as const;

/**
 * The delay before attempt `failures + 1`, after `failures` failed attempts:
 * exponential (base * 2^(failures - 1)) up to a cap. No jitter: one worker
 * holds the lease, so there is no herd of retries to spread.
 */
export function outboxRetryDelay(failures: number, backoff: OutboxBackoff = {}): number {
  const base = backoff.baseMs ?? DEFAULTS.baseMs;
  const max = backoff.maxMs ?? DEFAULTS.maxMs;
  return Math.min(max, base * 2 ** Math.min(Math.max(failures - 1, 0), 52));
}

/**
 * The transactional outbox's delivery worker (the "polling publisher" half of
 * the pattern). It delivers at least once: a message is marked delivered
 * only after the deliverer resolved, so a crash in between delivers it again
 * after restart, with the same idempotency key.
 */
export function createOutboxWorker(options: OutboxWorkerOptions): OutboxWorker {
  return new Worker(options);
}

class Worker implements OutboxWorker {
  readonly #options: OutboxWorkerOptions;
  readonly #clock: Clock;
  readonly #holder: string;
  readonly #batchSize: number;
  readonly #pollIntervalMs: number;
  readonly #deliveryTimeoutMs: number;
  readonly #leaseMs: number;
  /** The batch in flight, or the last one: batches of one worker never overlap. */
  #tail: Promise<unknown> = Promise.resolve();
  #loop: Promise<void> | undefined;
  #stopping = false;
  #kicked = false;
  #wake: (() => void) | undefined;

  constructor(options: OutboxWorkerOptions) {
    this.#options = options;
    this.#clock = options.clock ?? systemClock;
    this.#holder = options.holder ?? processLeaseHolder();
    this.#batchSize = positive(options.batchSize ?? DEFAULTS.batchSize, 'batchSize');
    this.#pollIntervalMs = positive(options.pollIntervalMs ?? DEFAULTS.pollIntervalMs, 'pollIntervalMs');
    this.#deliveryTimeoutMs = positive(options.deliveryTimeoutMs ?? DEFAULTS.deliveryTimeoutMs, 'deliveryTimeoutMs');
    this.#leaseMs = positive(options.leaseMs ?? 2 * this.#deliveryTimeoutMs, 'leaseMs');
    positive(options.backoff?.baseMs ?? DEFAULTS.baseMs, 'backoff.baseMs');
    positive(options.backoff?.maxMs ?? DEFAULTS.maxMs, 'backoff.maxMs');
  }

  start(): void {
    if (this.#loop !== undefined || this.#stopping) return;
    this.#loop = this.#poll();
  }

  runOnce(): Promise<OutboxRunReport> {
    if (this.#stopping) return Promise.reject(new Error('the outbox worker is stopped'));
    return this.#enqueue().then(({ report }) => report);
  }

  kick(): void {
    this.#kicked = true;
    this.#wake?.();
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    this.#wake?.();
    await this.#loop;
    await this.#tail.catch(() => {});
  }

  #enqueue(): Promise<{ report: OutboxRunReport; more: boolean }> {
    const run = this.#tail.then(() => this.#batch());
    this.#tail = run.catch(() => {});
    return run;
  }

  async #poll(): Promise<void> {
    while (!this.#stopping) {
      let more = false;
      try {
        more = (await this.#enqueue()).more;
      } catch (error) {
        this.#options.onError?.(error);
      }
      if (this.#stopping) break;
      if (!more && !this.#kicked) await this.#idle();
      this.#kicked = false;
    }
  }

  /** Resolves after the poll interval, or at once on kick() or stop(). */
  #idle(): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.#wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, this.#pollIntervalMs);
      this.#wake = done;
    });
  }

  async #batch(): Promise<{ report: OutboxRunReport; more: boolean }> {
    const now = this.#clock();
    const outcome = await this.#options.outbox.withLease({ holder: this.#holder, now, leaseMs: this.#leaseMs }, (lease) => this.#deliverDue(lease, now));
    if (!outcome.acquired) return { report: { leased: false, delivered: 0, failed: 0 }, more: false };
    const retain = this.#options.retainDeliveredMs;
    if (retain !== undefined) await this.#options.outbox.pruneDelivered(this.#clock() - retain);
    return outcome.result;
  }

  /**
   * One lane per topic, the lanes side by side: within a topic messages go
   * one after the other in the order they came due (the signal log appends
   * in commit order), and a receiver that is slow or hangs on one topic
   * (a client's back-channel logout endpoint) holds up only its own topic,
   * never the security events or erasure notices beside it.
   */
  async #deliverDue(lease: OutboxLease, now: number): Promise<{ report: OutboxRunReport; more: boolean }> {
    const due = await lease.due(now, this.#batchSize);
    const lanes = new Map<string, OutboxMessage[]>();
    for (const message of due) lanes.set(message.topic, [...(lanes.get(message.topic) ?? []), message]);
    const tally = { delivered: 0, failed: 0, handled: 0, leaseLost: false };
    await Promise.all([...lanes.values()].map((lane) => this.#deliverLane(lease, lane, tally)));
    return { report: { leased: true, delivered: tally.delivered, failed: tally.failed }, more: tally.handled === this.#batchSize };
  }

  async #deliverLane(lease: OutboxLease, lane: readonly OutboxMessage[], tally: { delivered: number; failed: number; handled: number; leaseLost: boolean }): Promise<void> {
    for (const message of lane) {
      if ((this.#stopping && tally.handled > 0) || tally.leaseLost) return;
      // A lapsed SQLite lease may have passed to another worker: stop here
      // rather than deliver beside it.
      if (!(await lease.renew(this.#clock()))) {
        tally.leaseLost = true;
        return;
      }
      tally.handled++;
      const failure = await this.#deliverOne(message);
      if (failure === undefined) {
        await lease.markDelivered(message.id, this.#clock());
        tally.delivered++;
      } else {
        const failures = message.attempts + 1;
        await lease.markFailed(message.id, this.#clock() + outboxRetryDelay(failures, this.#options.backoff), failure);
        tally.failed++;
      }
    }
  }

  /** Resolves undefined when delivered, or a one-line reason. */
  async #deliverOne(message: OutboxMessage): Promise<string | undefined> {
    const controller = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const error = new Error(`delivery did not settle within ${this.#deliveryTimeoutMs} ms`);
        controller.abort(error);
        reject(error);
      }, this.#deliveryTimeoutMs);
    });
    try {
      await Promise.race([this.#options.deliver({ ...message, attempt: message.attempts + 1 }, controller.signal), timeout]);
      return undefined;
    } catch (error) {
      return describe(error);
    } finally {
      clearTimeout(timer);
    }
  }
}

/** What is stored about a failure: the error's name and first line, never a stack. */
function describe(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message.split('\n')[0] ?? ''}`;
  return typeof error === 'string' ? error : 'delivery failed';
}

function positive(value: number, name: string): number {
  if (!Number.isSafeInteger(value) || value <= 0) throw new TypeError(`${name} must be a positive integer, got ${String(value)}`);
  return value;
}
