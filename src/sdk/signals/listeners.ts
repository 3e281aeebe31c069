/**
 * The `SignalSource` surface every client of this entry has: listeners of
 * verified SETs, added and removed at any time. `createVerifier({ signals })`
 * of `portcullis/sdk` consumes it.
 */
import type { SecurityEventToken } from '../security-events.ts';

/** Called with each verified SET once; a rejected promise (or a throw) means "not processed": the SET is not acknowledged. */
export type SecurityEventListener = (event: SecurityEventToken) => void | Promise<void>;

export interface SignalSource {
  /** Adds a listener; returns the function that removes it. */
  onEvent(listener: SecurityEventListener): () => void;
}

export class EventListeners implements SignalSource {
  /** Wrapped, so the same function added twice is two listeners and each unsubscribe removes its own. */
  readonly #listeners = new Set<{ readonly listener: SecurityEventListener }>();

  constructor(first?: SecurityEventListener) {
    if (first !== undefined) this.onEvent(first);
  }

  onEvent(listener: SecurityEventListener): () => void {
    if (typeof listener !== 'function') throw new TypeError('onEvent takes a function');
    const entry = { listener };
    this.#listeners.add(entry);
    return () => {
      this.#listeners.delete(entry);
    };
  }

  /**
   * Gives `event` to every listener and waits for all of them; rejects with
   * the first failure once all settled. A SET is acknowledged only after
   * this resolved, so listeners must be idempotent: when one fails, all of
   * them see the SET again on redelivery.
   */
  async dispatch(event: SecurityEventToken): Promise<void> {
    const results = await Promise.allSettled([...this.#listeners].map(async ({ listener }) => listener(event)));
    const failure = results.find((result) => result.status === 'rejected');
    if (failure !== undefined) throw failure.reason;
  }
}
