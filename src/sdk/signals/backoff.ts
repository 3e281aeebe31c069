/**
 * Waiting between attempts after an error: exponential with jitter, so a
 * fleet of receivers that lost the transmitter together does not come back
 * in step (the same reasoning as RFC 8935 section 2.3's retries).
 */

export interface BackoffOptions {
  /** The first delay. Default 1 000 ms. */
  readonly initialMs?: number;
  /** The longest delay. Default 60 000 ms. */
  readonly maxMs?: number;
  /** In [0, 1). Default Math.random. */
  readonly random?: () => number;
}

export class Backoff {
  readonly #initialMs: number;
  readonly #maxMs: number;
  readonly #random: () => number;
  #attempt = 0;

  constructor(options: BackoffOptions = {}) {
    this.#initialMs = options.initialMs ?? 1_000;
    this.#maxMs = options.maxMs ?? 60_000;
    this.#random = options.random ?? Math.random;
  }

  /** The delay before the next attempt: between half and all of initial * 2^failures, capped. */
  next(): number {
    const ceiling = Math.min(this.#maxMs, this.#initialMs * 2 ** this.#attempt);
    this.#attempt = Math.min(this.#attempt + 1, 30);
    return ceiling / 2 + (this.#random() * ceiling) / 2;
  }

  /** After a success. */
  reset(): void {
    this.#attempt = 0;
  }
}

/** Resolves after `ms`, or at once when `signal` aborts (never rejects). */
export function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
