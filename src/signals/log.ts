/**
 * The signal log: security events in one global order. The outbox's
 * deliverer appends each message's events once (its idempotency key is
 * remembered in the same transaction), so an outbox redelivery after a
 * crash appends nothing and every stream sees each event exactly once in
 * the log, in the order appended.
 */
import type { DurableStore, StoredRecord } from '../store/index.ts';
import type { SubjectIdentifier } from '../sdk/index.ts';
import { subjectKey, type SignalEvent } from './mapping.ts';
import { HEAD_ID, logEntries, logHead, logSources, seqId, type LogEntry } from './records.ts';

/** Lost races on the head before an append gives up (another appender holds the outbox lease only briefly). */
const APPEND_ATTEMPTS = 8;

export class SignalLog {
  readonly #durable: DurableStore;
  readonly #entries;
  readonly #clock: () => number;

  constructor(durable: DurableStore, clock: () => number) {
    this.#durable = durable;
    this.#entries = logEntries(durable.records);
    this.#clock = clock;
  }

  /**
   * Appends the events of one source (an outbox message) unless that source
   * was appended before. Resolves with the last sequence number written,
   * or null when nothing was (a repeat, or no events).
   */
  async append(source: string, txn: string, time: number, signals: readonly SignalEvent[], stream?: string): Promise<number | null> {
    if (signals.length === 0) return null;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#durable.transaction(async (tx) => {
          const head = logHead(tx.records);
          const current = await head.get(HEAD_ID);
          const first = current?.data.next ?? 1;
          if (!(await logSources(tx.records).create(source, { first, count: signals.length }))) return null;
          const moved = current === null ? await head.create(HEAD_ID, { next: first + signals.length }) : (await head.update(HEAD_ID, current.version, { next: first + signals.length })) !== null;
          if (!moved) throw new HeadRaceError();
          const entries = logEntries(tx.records);
          for (const [offset, signal] of signals.entries()) {
            const seq = first + offset;
            const entry: LogEntry = {
              seq,
              txn,
              time,
              type: signal.type,
              subject: { ...signal.subject },
              subjectKeys: [subjectKey(signal.subject), ...(signal.aliases ?? [])],
              members: { ...signal.members },
              ...(stream !== undefined && { stream }),
            };
            if (!(await entries.create(seqId(seq), entry))) throw new HeadRaceError();
          }
          return first + signals.length - 1;
        });
      } catch (error) {
        if (!(error instanceof HeadRaceError) || attempt >= APPEND_ATTEMPTS) throw error;
      }
    }
  }

  /** The highest sequence number appended (0: none). */
  async head(): Promise<number> {
    const head = await logHead(this.#durable.records).get(HEAD_ID);
    return (head?.data.next ?? 1) - 1;
  }

  /** Up to `limit` entries after `seq`, in order. */
  async after(seq: number, limit: number): Promise<LogEntry[]> {
    const page = await this.#entries.list({ after: seqId(seq), limit });
    return page.map((record: StoredRecord<LogEntry>) => record.data);
  }

  /** Drops entries older than `before` (ms); streams that had not read them skip them. Resolves with how many. */
  async prune(before: number, batch = 500): Promise<number> {
    let removed = 0;
    for (;;) {
      const page = await this.#entries.list({ limit: batch });
      const old = page.filter((record) => record.data.time < before);
      for (const record of old) if (await this.#entries.delete(record.id)) removed++;
      if (old.length < page.length || page.length < batch) return removed;
    }
  }

  /**
   * Forgets which outbox messages were appended before `before` (ms): a
   * message redelivered after that long would append again, so this runs
   * with the log's retention (far beyond the outbox's longest retry).
   */
  async pruneSources(before: number, batch = 500): Promise<number> {
    const sources = logSources(this.#durable.records);
    let removed = 0;
    let after: string | undefined;
    for (;;) {
      const page = await sources.list({ limit: batch, ...(after !== undefined && { after }) });
      for (const record of page) if (record.createdAt < before && (await sources.delete(record.id, record.version))) removed++;
      if (page.length < batch) return removed;
      after = page.at(-1)!.id;
    }
  }

  now(): number {
    return this.#clock();
  }
}

/** Another append took the sequence numbers this one read: read the head again. */
class HeadRaceError extends Error {
  override readonly name = 'HeadRaceError';
}

/** The subject of a log entry, as the SET's `sub_id`. */
export function subjectOf(entry: LogEntry): SubjectIdentifier {
  return entry.subject as unknown as SubjectIdentifier;
}
