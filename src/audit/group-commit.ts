/**
 * Group commit: entries recorded while a write is in flight wait and go
 * together in the next one. One transaction (one fsync) then makes a whole
 * batch durable, so throughput grows with concurrency instead of being capped
 * by the disk's sync rate, and nobody is told "recorded" before the commit.
 */
/** One entry to write: its bytes and the subjects (audit pseudonyms) it is indexed under. */
export interface PendingEntry {
  readonly bytes: Uint8Array;
  readonly subjects: readonly string[];
}

export interface GroupCommitOptions {
  /** Writes a batch; resolves with the index of its first entry once durable. */
  readonly write: (entries: readonly PendingEntry[]) => Promise<number>;
  /** Most entries per write. */
  readonly maxBatch: number;
  /** Most entries waiting (in flight excluded) before `add` refuses. */
  readonly maxPending: number;
}

/** The queue is full: the store is not keeping up. Maps to 503 with Retry-After. */
export class AuditBackpressureError extends Error {
  override readonly name = 'AuditBackpressureError';
  readonly retryAfterSeconds = 1;
  constructor() {
    super('the audit log is not keeping up; try again shortly');
  }
}

interface Waiting {
  readonly entry: PendingEntry;
  resolve(index: number): void;
  reject(error: unknown): void;
}

export class GroupCommitter {
  readonly #options: GroupCommitOptions;
  #waiting: Waiting[] = [];
  #running: Promise<void> | undefined;

  constructor(options: GroupCommitOptions) {
    this.#options = options;
  }

  /** Queues one entry; resolves with its index once it is durable. */
  add(entry: PendingEntry): Promise<number> {
    return this.addAll([entry]).then((indices) => indices[0]!);
  }

  /**
   * Queues entries that belong together: all or none (backpressure refuses
   * the whole group), and all in the same batch unless the group is larger
   * than `maxBatch`. Resolves with their indices, in order, once durable.
   */
  addAll(entries: readonly PendingEntry[]): Promise<number[]> {
    if (this.#waiting.length + entries.length > this.#options.maxPending) return Promise.reject(new AuditBackpressureError());
    const written = entries.map(
      (entry) =>
        new Promise<number>((resolve, reject) => {
          this.#waiting.push({ entry, resolve, reject });
        }),
    );
    // Start after the event loop's current I/O phase, not at once: every
    // request whose bytes arrived in the same turn records before the write
    // starts, so concurrent requests share one transaction (one fsync)
    // instead of each paying its own. A lone request waits one loop turn.
    if (this.#running === undefined && entries.length > 0) {
      this.#running = new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.#drain());
    }
    return Promise.all(written);
  }

  /** Resolves when everything queued so far is written (or failed). */
  async flush(): Promise<void> {
    while (this.#running !== undefined) await this.#running;
  }

  get pending(): number {
    return this.#waiting.length;
  }

  async #drain(): Promise<void> {
    try {
      while (this.#waiting.length > 0) {
        const batch = this.#waiting.splice(0, this.#options.maxBatch);
        try {
          const first = await this.#options.write(batch.map((waiting) => waiting.entry));
          batch.forEach((waiting, offset) => waiting.resolve(first + offset));
        } catch (error) {
          // The batch's transaction rolled back as a whole: none of it is in
          // the log, and each caller learns so.
          for (const waiting of batch) waiting.reject(error);
        }
      }
    } finally {
      this.#running = undefined;
    }
  }
}
