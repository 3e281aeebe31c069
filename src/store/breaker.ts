/**
 * One circuit breaker per store (issue 16). While a store answers, calls go
 * through unchanged. When it stops answering (calls fail with
 * StoreUnavailableError, each after the driver's own timeout and retries),
 * the breaker opens: from then on a call fails at once with
 * StoreUnavailableError carrying a Retry-After, so a request gets an honest
 * 503 in microseconds instead of waiting on a dead store, and no requests
 * pile up behind it. After `resetMs` the breaker half-opens: one call (the
 * breaker's own ping, sent at once, or the first request) goes through; its
 * success closes the breaker, its failure opens it again.
 *
 * Only unavailability counts: a compare-and-set lost, a schema refusal or a
 * caller's mistake passes through the breaker untouched and never opens it.
 * The transitions are reported (`down` once when it opens, `up` once when it
 * closes), for one log line each way and the `portcullis_store_up` gauge.
 */
import CircuitBreaker from 'opossum';
import { StoreUnavailableError } from './errors.ts';

/** Which store a breaker guards. */
export type StoreRole = 'durable' | 'hot';

export interface StoreBreakerSettings {
  /** How long the breaker stays open before it lets one call through to see whether the store is back. */
  readonly resetMs: number;
  /** Calls within the rolling window (10 s) before failures can open the breaker. */
  readonly volumeThreshold: number;
  /** The share of failed calls within the window that opens it. */
  readonly errorThresholdPercentage: number;
  /**
   * Failures in a row that open it at once. Under steady traffic the window
   * is full of the successes from before the store died, and the share
   * alone would take the whole window (10 s) to cross, with every request
   * meanwhile waiting on the driver's retries (bench/store-outage.ts).
   */
  readonly consecutiveFailures: number;
}

export const DEFAULT_BREAKER_SETTINGS: StoreBreakerSettings = { resetMs: 1000, volumeThreshold: 3, errorThresholdPercentage: 50, consecutiveFailures: 3 };

/** Told when a store goes down (the breaker opens) and when it is back (the breaker closes). */
export interface StoreStateListener {
  down(role: StoreRole, driver: string, reason: string): void;
  up(role: StoreRole, driver: string): void;
}

type Call = () => Promise<unknown>;

export class StoreBreaker {
  readonly role: StoreRole;
  readonly driver: string;
  readonly #breaker: CircuitBreaker<[Call], unknown>;
  readonly #settings: StoreBreakerSettings;
  #lastFailure = '';
  #openedAt = 0;

  /** `probe`: a cheap call (a ping) sent as soon as the breaker half-opens, so the store's return is seen without traffic. */
  constructor(role: StoreRole, driver: string, probe: () => Promise<void>, listener: StoreStateListener, settings: StoreBreakerSettings = DEFAULT_BREAKER_SETTINGS) {
    this.role = role;
    this.driver = driver;
    this.#settings = settings;
    this.#breaker = new CircuitBreaker((call: Call) => call(), {
      // Each driver bounds its own calls (store.timeoutMs): one deadline per call, not two.
      timeout: false,
      resetTimeout: settings.resetMs,
      errorThresholdPercentage: settings.errorThresholdPercentage,
      volumeThreshold: settings.volumeThreshold,
      rollingCountTimeout: 10_000,
      rollingCountBuckets: 10,
      // Only "the store did not answer" is a failure; anything else is the caller's business.
      errorFilter: (error: unknown) => !(error instanceof StoreUnavailableError),
    });
    let streak = 0;
    this.#breaker.on('failure', (error: unknown) => {
      if (error instanceof StoreUnavailableError) this.#lastFailure = error.message;
      streak += 1;
      if (streak >= settings.consecutiveFailures && this.#breaker.closed) this.#breaker.open();
    });
    // A filtered error (not unavailability) is reported as a success: the store answered.
    this.#breaker.on('success', () => {
      streak = 0;
    });
    // Told on the transitions only: a failed half-open ping opens the breaker again, but the store was down already.
    let down = false;
    this.#breaker.on('open', () => {
      this.#openedAt = performance.now();
      if (down) return;
      down = true;
      listener.down(role, driver, this.#lastFailure || 'calls failed');
    });
    this.#breaker.on('close', () => {
      if (!down) return;
      down = false;
      listener.up(role, driver);
    });
    this.#breaker.on('halfOpen', () => {
      // The probe takes the one trial call; a request arriving meanwhile is answered 503 at once.
      this.#breaker.fire(probe).catch(() => undefined);
    });
  }

  /** Whether the store is taken to be answering (the breaker is closed: neither open nor trying one call half-open). */
  get up(): boolean {
    return this.#breaker.closed;
  }

  /** Runs `call` through the breaker; fails at once with StoreUnavailableError while it is open. */
  async run<R>(call: () => Promise<R>): Promise<R> {
    try {
      return (await this.#breaker.fire(call)) as R;
    } catch (error) {
      if ((error as { code?: unknown }).code === 'EOPENBREAKER') {
        throw new StoreUnavailableError(this.driver, `the ${this.role} store (${this.driver}) is unavailable`, { retryAfterSeconds: this.retryAfterSeconds() });
      }
      throw error;
    }
  }

  /** Whole seconds until the breaker lets a call through again (at least 1). */
  retryAfterSeconds(): number {
    const left = this.#settings.resetMs - (performance.now() - this.#openedAt);
    return Math.max(1, Math.ceil(left / 1000));
  }

  shutdown(): void {
    this.#breaker.shutdown();
  }
}
