import type { PoolClient } from 'pg';
import type { Clock, OutboxAddResult, OutboxCounts, OutboxLease, OutboxLeaseOptions, OutboxMessage, OutboxMessageInput, OutboxStore, OutboxWriter } from '../ports.ts';
import { checkDueLimit, checkLeaseOptions, checkOutboxMessage, storedError } from '../outbox-rules.ts';
import { isQueryTimeout, schemaLockKey, writeData, type Query } from './sql.ts';

interface OutboxRow {
  id: string;
  topic: string;
  payload: unknown;
  idempotency_key: string;
  attempts: number;
  created_at: string;
}

/** `tx.outbox` on PostgreSQL: inserts on the transaction's connection. */
export class PostgresOutboxWriter implements OutboxWriter {
  readonly #query: Query;
  readonly #clock: Clock;

  constructor(query: Query, clock: Clock) {
    this.#query = query;
    this.#clock = clock;
  }

  async add(message: OutboxMessageInput): Promise<OutboxAddResult> {
    const checked = checkOutboxMessage(message);
    // ON CONFLICT DO NOTHING: one key names one message. A racing transaction
    // that inserted the same key first makes this one wait for its outcome.
    const result = await writeData(() =>
      this.#query(
        'INSERT INTO outbox (topic, payload, idempotency_key, created_at) VALUES ($1, $2::jsonb, $3, $4) ON CONFLICT (idempotency_key) DO NOTHING',
        [checked.topic, checked.payloadJson, checked.idempotencyKey, this.#clock()],
      ),
    );
    return { idempotencyKey: checked.idempotencyKey, added: result.rowCount === 1 };
  }
}

/**
 * The outbox's delivery side on PostgreSQL. The lease is a session advisory
 * lock held on one pooled connection for the whole batch: while it is held,
 * no other instance's worker delivers, and if this process dies the server
 * ends the session and the lock with it (no lease to wait out).
 */
export class PostgresOutboxStore implements OutboxStore {
  readonly #query: Query;
  readonly #checkout: () => Promise<PoolClient>;
  readonly #translate: (error: unknown) => unknown;

  constructor(query: Query, checkout: () => Promise<PoolClient>, translate: (error: unknown) => unknown) {
    this.#query = query;
    this.#checkout = checkout;
    this.#translate = translate;
  }

  async withLease<T>(options: OutboxLeaseOptions, work: (lease: OutboxLease) => Promise<T>): Promise<{ acquired: true; result: T } | { acquired: false }> {
    checkLeaseOptions(options);
    const client = await this.#checkout();
    // A checked-out client whose server goes away emits 'error'; the lease
    // holds it across deliveries, so it needs a listener of its own.
    client.on('error', ignoreClientError);
    let destroy = false;
    // A statement that ran out of time leaves the connection waiting for its
    // answer (node-postgres #3399): it is destroyed, never pooled, and the
    // unlock is not sent on it (ending the session frees the lock).
    const note = (error: unknown) => {
      if (isQueryTimeout(error)) destroy = true;
    };
    try {
      let key: string;
      let locked: boolean;
      try {
        key = await schemaLockKey(client, 'outbox');
        const { rows } = await client.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1::bigint) AS locked', [key]);
        locked = rows[0]?.locked === true;
      } catch (error) {
        destroy = true;
        throw this.#translate(error);
      }
      if (!locked) return { acquired: false };
      try {
        const result = await work(this.#lease(client, note));
        return { acquired: true, result };
      } finally {
        // If the unlock fails the session may still hold the lock: destroy
        // the connection (ending the session frees it) instead of pooling it.
        if (!destroy) {
          await client.query('SELECT pg_advisory_unlock($1::bigint)', [key]).catch(() => {
            destroy = true;
          });
        }
      }
    } finally {
      client.off('error', ignoreClientError);
      client.release(destroy);
    }
  }

  async counts(): Promise<OutboxCounts> {
    const { rows } = await this.#query<{ pending: string; delivered: string }>(
      'SELECT count(*) FILTER (WHERE delivered_at IS NULL) AS pending, count(*) FILTER (WHERE delivered_at IS NOT NULL) AS delivered FROM outbox',
    );
    return { pending: Number(rows[0]?.pending ?? 0), delivered: Number(rows[0]?.delivered ?? 0) };
  }

  async pruneDelivered(before: number, limit = 1000): Promise<number> {
    const capped = checkDueLimit(limit);
    const result = await this.#query(
      'DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE delivered_at IS NOT NULL AND delivered_at < $1 ORDER BY delivered_at LIMIT $2)',
      [before, capped],
    );
    return result.rowCount ?? 0;
  }

  async redactPayloads(needle: string, redact: (payload: unknown) => unknown): Promise<number> {
    const result = await this.#query('SELECT id, payload FROM outbox WHERE strpos(lower(payload::text), lower($1)) > 0', [needle]);
    const rows = result.rows as { id: string | number; payload: unknown }[];
    // Each row on its own: a message delivered meanwhile keeps its delivery state, only its payload changes.
    let changed = 0;
    for (const row of rows) {
      const redacted = JSON.stringify(redact(row.payload));
      if (redacted === JSON.stringify(row.payload)) continue;
      await this.#query('UPDATE outbox SET payload = $1::jsonb WHERE id = $2', [redacted, row.id]);
      changed += 1;
    }
    return changed;
  }

  #lease(client: PoolClient, note: (error: unknown) => void): OutboxLease {
    const query: Query = async (sql, params) => {
      try {
        return await client.query(sql, params as unknown[] | undefined);
      } catch (error) {
        note(error);
        throw this.#translate(error);
      }
    };
    return {
      due: async (now, limit) => {
        const { rows } = await query<OutboxRow>(
          'SELECT id, topic, payload, idempotency_key, attempts, created_at FROM outbox WHERE delivered_at IS NULL AND next_attempt_at <= $1 ORDER BY next_attempt_at, id LIMIT $2',
          [now, checkDueLimit(limit)],
        );
        return rows.map(toMessage);
      },
      markDelivered: async (id, now) => {
        await query('UPDATE outbox SET attempts = attempts + 1, delivered_at = $2, last_error = NULL WHERE id = $1 AND delivered_at IS NULL', [id, now]);
      },
      markFailed: async (id, nextAttemptAt, error) => {
        await query('UPDATE outbox SET attempts = attempts + 1, next_attempt_at = $2, last_error = $3 WHERE id = $1 AND delivered_at IS NULL', [
          id,
          nextAttemptAt,
          storedError(error),
        ]);
      },
      // The session lock lasts as long as the connection: nothing to extend.
      renew: async () => true,
    };
  }
}

function toMessage(row: OutboxRow): OutboxMessage {
  return {
    id: Number(row.id),
    topic: row.topic,
    payload: row.payload,
    idempotencyKey: row.idempotency_key,
    attempts: Number(row.attempts),
    createdAt: Number(row.created_at),
  };
}

function ignoreClientError(): void {
  // Deliberately empty: the next query on the client reports the failure.
}
