/**
 * Unauthenticated failures (a wrong admin bearer, a throttled sign-in) cost
 * an attacker nothing, and the ledger keeps every entry for ever: one entry
 * per failure would let anyone grow it without bound and bury real events
 * (security review 11). Failures are counted instead, per event type, client
 * network and time window, in the hot store so every instance adds to the
 * same count, and the ledger gets an entry only when that count reaches 1,
 * 10, 100, 1000, ... within the window: at most a handful of entries per
 * network and window, each carrying the count so far.
 *
 * While the hot store is unavailable, failures are counted in this process
 * instead (local-counters.ts), and the counts read are the hot store's plus
 * this process's: the throttles in front of credential checks keep counting
 * through an outage, so what needs no other hot-store state goes on.
 */
import { createHash } from 'node:crypto';
import type { DomainEvent, DomainEvents } from '../events/index.ts';
import { StoreUnavailableError, type Clock, type HotStore } from '../store/index.ts';
import { truncateIp } from './ip.ts';
import { LocalCounters } from './local-counters.ts';

/** The failures that are counted, not recorded one by one. */
export type AggregatedFailureType = 'admin.auth.failed' | 'metrics.auth.failed' | 'client.auth.failed' | 'registration.auth.failed' | 'ca.auth.failed' | 'signals.auth.failed' | 'auth.login.failed';
export type AggregatedFailure = DomainEvent<AggregatedFailureType>;

export interface FailureAggregatorOptions {
  /** Where the counted entries go (the ledger subscribes). */
  readonly events: Pick<DomainEvents, 'emit'>;
  readonly hot: HotStore;
  readonly clock: Clock;
  /** Length of a counting window (default one minute). */
  readonly windowMs?: number;
  /** Counters this process keeps while the hot store is away (default 10 000). */
  readonly maxLocalCounters?: number;
}

/** Counts 1, 10, 100, ...: the counts at which an entry is written. */
function isPowerOfTen(count: number): boolean {
  let value = count;
  while (value >= 10 && value % 10 === 0) value /= 10;
  return value === 1;
}

export class FailureAggregator {
  readonly #events: Pick<DomainEvents, 'emit'>;
  readonly #hot: HotStore;
  readonly #clock: Clock;
  readonly #windowMs: number;
  readonly #local: LocalCounters;

  constructor(options: FailureAggregatorOptions) {
    this.#events = options.events;
    this.#hot = options.hot;
    this.#clock = options.clock;
    this.#windowMs = options.windowMs ?? 60_000;
    this.#local = new LocalCounters(options.maxLocalCounters);
  }

  /**
   * Counts one failure and answers the window's count so far; writes the event to the ledger (with `count`,
   * `windowStart` and `windowSeconds` in its detail; the address as the
   * ledger's IP setting says) when the window's count for
   * its type and network (IPv4 /24, IPv6 /48) is 1, 10, 100, ...
   * The increment is atomic in the hot store, so exactly one instance sees
   * each of those counts (while it is away, each instance writes its own).
   */
  async record(event: AggregatedFailure): Promise<number> {
    const now = event.time ?? this.#clock();
    const windowStart = now - (now % this.#windowMs);
    const count = await this.#increment(this.#key(event.type, event.ip, windowStart));
    if (!isPowerOfTen(count)) return count;
    await this.#events.emit({
      ...event,
      time: now,
      detail: { ...event.detail, aggregated: true, count, windowStart: new Date(windowStart).toISOString(), windowSeconds: this.#windowMs / 1000 },
    });
    return count;
  }

  /**
   * Failures of this type from this address's network in the current
   * window: what a throttle in front of the check reads. Nothing resets it
   * but the end of the window (a success does not).
   */
  async count(type: AggregatedFailureType, ip: string | undefined): Promise<number> {
    const now = this.#clock();
    return this.#read(this.#key(type, ip, now - (now % this.#windowMs)));
  }

  /**
   * Counts one failure against a named target rather than a network (the
   * client_id a distributed guesser aims at), in the same windows; writes
   * nothing to the ledger (`record` does, per network). Answers the count.
   */
  async tally(type: AggregatedFailureType, target: string): Promise<number> {
    const now = this.#clock();
    return this.#increment(this.#targetKey(type, target, now - (now % this.#windowMs)));
  }

  /** Failures `tally` counted against this target in the current window; only the end of the window resets it. */
  async countFor(type: AggregatedFailureType, target: string): Promise<number> {
    const now = this.#clock();
    return this.#read(this.#targetKey(type, target, now - (now % this.#windowMs)));
  }

  /** Milliseconds until the current window ends. */
  retryAfterMs(): number {
    const now = this.#clock();
    return this.#windowMs - (now % this.#windowMs);
  }

  /** One more failure under `key`: in the hot store, or in this process while it is away. Kept two windows, so a late increment near the edge still finds its counter. */
  async #increment(key: string): Promise<number> {
    const ttlMs = this.#windowMs * 2;
    try {
      return (await this.#hot.increment(key, ttlMs)).value + this.#local.get(key, this.#clock());
    } catch (error) {
      if (!(error instanceof StoreUnavailableError)) throw error;
      return this.#local.increment(key, ttlMs, this.#clock());
    }
  }

  /** The failures under `key`: the hot store's (none while it is away) and this process's. */
  async #read(key: string): Promise<number> {
    let shared = 0;
    try {
      shared = Number((await this.#hot.get(key)) ?? 0);
    } catch (error) {
      if (!(error instanceof StoreUnavailableError)) throw error;
    }
    return shared + this.#local.get(key, this.#clock());
  }

  #key(type: AggregatedFailureType, ip: string | undefined, windowStart: number): string {
    const network = (ip !== undefined ? truncateIp(ip) : undefined) ?? 'unknown';
    return `audit:failures:${type}:${network}:${windowStart}`;
  }

  /** Hashed: a target is chosen by whoever sends the request, the key stays short and plain. */
  #targetKey(type: AggregatedFailureType, target: string, windowStart: number): string {
    return `audit:failures:${type}:target:${createHash('sha256').update(target).digest('base64url')}:${windowStart}`;
  }
}
