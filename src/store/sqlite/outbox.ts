import type { Clock, OutboxAddResult, OutboxCounts, OutboxLease, OutboxLeaseOptions, OutboxMessage, OutboxMessageInput, OutboxStore, OutboxWriter } from '../ports.ts';
import { OUTBOX_LEASE, checkDueLimit, checkLeaseOptions, checkOutboxMessage, storedError } from '../outbox-rules.ts';
import { leaseHolderGone } from '../lease-holder.ts';
import type { SqliteDatabase } from './database.ts';

interface OutboxRow {
  id: number;
  topic: string;
  payload: string;
  idempotency_key: string;
  attempts: number;
  created_at: number;
}

/** `tx.outbox` on SQLite: runs on the connection the transaction holds. */
export class SqliteOutboxWriter implements OutboxWriter {
  readonly #db: SqliteDatabase;
  readonly #clock: Clock;

  constructor(database: SqliteDatabase, clock: Clock) {
    this.#db = database;
    this.#clock = clock;
  }

  async add(message: OutboxMessageInput): Promise<OutboxAddResult> {
    const checked = checkOutboxMessage(message);
    const result = this.#db
      .statement('INSERT INTO outbox (topic, payload, idempotency_key, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (idempotency_key) DO NOTHING')
      .run(checked.topic, checked.payloadJson, checked.idempotencyKey, this.#clock());
    return { idempotencyKey: checked.idempotencyKey, added: result.changes === 1 };
  }
}

/**
 * The outbox's delivery side on SQLite. One worker may deliver at a time
 * across every process on the file ("single writer"): the lease is a row,
 * taken by one conditional upsert (atomic under SQLite's write lock) when it
 * is free, expired or already this holder's, and renewed before each message.
 * A holder that dies leaves the row behind; it lapses after `leaseMs`.
 */
export class SqliteOutboxStore implements OutboxStore {
  readonly #db: SqliteDatabase;

  constructor(database: SqliteDatabase) {
    this.#db = database;
  }

  async withLease<T>(options: OutboxLeaseOptions, work: (lease: OutboxLease) => Promise<T>): Promise<{ acquired: true; result: T } | { acquired: false }> {
    checkLeaseOptions(options);
    const { holder, leaseMs } = options;
    // A holder killed in this kernel and pid namespace (kill -9) left its row behind: taken now rather than once it lapses (lease-holder.ts).
    const current = (await this.#db.run(() => this.#db.statement('SELECT holder FROM outbox_lease WHERE name = ?').get(OUTBOX_LEASE), 'read')) as { holder: string } | undefined;
    const gone = current !== undefined && current.holder !== holder && leaseHolderGone(current.holder) ? current.holder : holder;
    const taken = await this.#db.run(
      () =>
        this.#db
          .statement(
            `INSERT INTO outbox_lease (name, holder, expires_at) VALUES (?, ?, ?)
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
             WHERE outbox_lease.expires_at <= ? OR outbox_lease.holder = excluded.holder OR outbox_lease.holder = ?`,
          )
          .run(OUTBOX_LEASE, holder, options.now + leaseMs, options.now, gone).changes === 1,
    );
    if (!taken) return { acquired: false };
    try {
      return { acquired: true, result: await work(this.#lease(holder, leaseMs)) };
    } finally {
      await this.#db.run(() => this.#db.statement('DELETE FROM outbox_lease WHERE name = ? AND holder = ?').run(OUTBOX_LEASE, holder));
    }
  }

  async counts(): Promise<OutboxCounts> {
    const row = (await this.#db.run(() =>
      this.#db
        .statement(
          'SELECT COALESCE(SUM(delivered_at IS NULL), 0) AS pending, COALESCE(SUM(delivered_at IS NOT NULL), 0) AS delivered FROM outbox',
        )
        .get(),
      'read',
    )) as { pending: number; delivered: number };
    return { pending: Number(row.pending), delivered: Number(row.delivered) };
  }

  async pruneDelivered(before: number, limit = 1000): Promise<number> {
    const capped = checkDueLimit(limit);
    const result = await this.#db.run(() =>
      this.#db
        .statement(
          'DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE delivered_at IS NOT NULL AND delivered_at < ? ORDER BY delivered_at LIMIT ?)',
        )
        .run(before, capped),
    );
    return Number(result.changes);
  }

  async redactPayloads(needle: string, redact: (payload: unknown) => unknown): Promise<number> {
    return this.#db.run(() =>
      this.#db.transaction(() => {
        const rows = this.#db.statement('SELECT id, payload FROM outbox WHERE instr(lower(payload), lower(?)) > 0').all(needle) as unknown as { id: number; payload: string }[];
        const update = this.#db.statement('UPDATE outbox SET payload = ? WHERE id = ?');
        let changed = 0;
        for (const row of rows) {
          const payload = JSON.parse(row.payload) as unknown;
          const redacted = JSON.stringify(redact(payload));
          if (redacted === JSON.stringify(payload)) continue;
          update.run(redacted, row.id);
          changed += 1;
        }
        return changed;
      }),
    );
  }

  #lease(holder: string, leaseMs: number): OutboxLease {
    const db = this.#db;
    return {
      due: async (now, limit) => {
        const capped = checkDueLimit(limit);
        const rows = (await db.run(() =>
          db
            .statement(
              'SELECT id, topic, payload, idempotency_key, attempts, created_at FROM outbox WHERE delivered_at IS NULL AND next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?',
            )
            .all(now, capped),
          'read',
        )) as unknown as OutboxRow[];
        return rows.map(toMessage);
      },
      markDelivered: async (id, now) => {
        await db.run(() =>
          db.statement('UPDATE outbox SET attempts = attempts + 1, delivered_at = ?, last_error = NULL WHERE id = ? AND delivered_at IS NULL').run(now, id),
        );
      },
      markFailed: async (id, nextAttemptAt, error) => {
        await db.run(() =>
          db
            .statement('UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ? WHERE id = ? AND delivered_at IS NULL')
            .run(nextAttemptAt, storedError(error), id),
        );
      },
      renew: async (now) =>
        (await db.run(() => db.statement('UPDATE outbox_lease SET expires_at = ? WHERE name = ? AND holder = ?').run(now + leaseMs, OUTBOX_LEASE, holder)))
          .changes === 1,
    };
  }
}

function toMessage(row: OutboxRow): OutboxMessage {
  return {
    id: Number(row.id),
    topic: row.topic,
    payload: JSON.parse(row.payload) as unknown,
    idempotencyKey: row.idempotency_key,
    attempts: Number(row.attempts),
    createdAt: Number(row.created_at),
  };
}
