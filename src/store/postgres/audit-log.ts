import type { PoolClient, QueryResult, QueryResultRow } from 'pg';
import type {
  AuditAppendPlan,
  AuditEntryRow,
  AuditLogStore,
  StoredCheckpoint,
  StoredCosignature,
  TreeNodeAddress,
} from '../ports.ts';
import { listLimit } from '../errors.ts';
import { MAX_ENTRY_PAGE, assertEntryRange, assertNodeAddresses, assertSubject, checkAppend, checkSubjectIndices, subjectCursor } from '../audit-log-rules.ts';

type Query = <R extends QueryResultRow>(sql: string, params?: readonly unknown[]) => Promise<QueryResult<R>>;
type Transaction = <T>(work: (client: PoolClient) => Promise<T>) => Promise<T>;

interface CheckpointRow {
  id: string;
  size: string;
  root_hash: Buffer;
  note: string;
  created_at: string;
}

interface CosignatureRow {
  checkpoint_id: string;
  witness: string;
  signature_line: string;
  cosigned_at: string;
  received_at: string;
}

/**
 * The audit log on PostgreSQL. Appends from every instance serialise on a
 * row lock of the one `audit_head` row (SELECT ... FOR UPDATE), taken before
 * the size is read and held to commit: the next appender reads the size the
 * previous one committed. Rows go in with one multi-row INSERT per table
 * (unnest of arrays), so a batch of a thousand entries is three statements.
 */
export class PostgresAuditLog implements AuditLogStore {
  readonly #query: Query;
  readonly #transaction: Transaction;

  constructor(query: Query, transaction: Transaction) {
    this.#query = query;
    this.#transaction = transaction;
  }

  async append(entries: readonly Uint8Array[], recordedAt: number, plan: AuditAppendPlan, subjects?: readonly (readonly string[])[]): Promise<number> {
    const subjectRows = checkAppend(entries, recordedAt, subjects);
    return this.#transaction(async (client) => {
      const { rows } = await client.query<{ size: string }>('SELECT size FROM audit_head WHERE id = 1 FOR UPDATE');
      const size = Number(rows[0]?.size ?? 0);
      const frontier = plan.frontier(size);
      const frontierHashes = (await readNodes((sql, params) => client.query(sql, params as unknown[]), frontier)).map((hash, i) => {
        if (hash === undefined) throw new Error(`audit log node (${frontier[i]!.level}, ${frontier[i]!.index}) is missing`);
        return hash;
      });
      const nodes = plan.extend(size, frontierHashes, entries);
      await client.query(
        'INSERT INTO audit_entries (idx, entry, recorded_at) SELECT $1::bigint + ordinality - 1, entry, $3 FROM unnest($2::bytea[]) WITH ORDINALITY AS e (entry, ordinality)',
        [size, entries.map(toBuffer), recordedAt],
      );
      await client.query('INSERT INTO audit_nodes (level, idx, hash) SELECT * FROM unnest($1::smallint[], $2::bigint[], $3::bytea[])', [
        nodes.map((node) => node.level),
        nodes.map((node) => node.index),
        nodes.map((node) => toBuffer(node.hash)),
      ]);
      const indexRows = subjectRows(size);
      if (indexRows.length > 0) {
        await client.query('INSERT INTO audit_subjects (subject, idx) SELECT * FROM unnest($1::text[], $2::bigint[])', [
          indexRows.map((row) => row.subject),
          indexRows.map((row) => row.index),
        ]);
      }
      await client.query('UPDATE audit_head SET size = $1 WHERE id = 1', [size + entries.length]);
      return size;
    });
  }

  async size(): Promise<number> {
    const { rows } = await this.#query<{ size: string }>('SELECT size FROM audit_head WHERE id = 1');
    return Number(rows[0]?.size ?? 0);
  }

  async entries(start: number, end: number): Promise<AuditEntryRow[]> {
    assertEntryRange(start, end);
    const { rows } = await this.#query<{ idx: string; entry: Buffer; recorded_at: string }>(
      'SELECT idx, entry, recorded_at FROM audit_entries WHERE idx >= $1 AND idx < $2 ORDER BY idx LIMIT $3',
      [start, end, MAX_ENTRY_PAGE],
    );
    return rows.map((row) => ({ index: Number(row.idx), entry: new Uint8Array(row.entry), recordedAt: Number(row.recorded_at) }));
  }

  async nodes(addresses: readonly TreeNodeAddress[]): Promise<(Uint8Array | undefined)[]> {
    assertNodeAddresses(addresses);
    return readNodes(this.#query, addresses);
  }

  async addCheckpoint(checkpoint: Omit<StoredCheckpoint, 'id'>): Promise<StoredCheckpoint> {
    const { rows } = await this.#query<{ id: string }>(
      'INSERT INTO audit_checkpoints (size, root_hash, note, created_at) VALUES ($1, $2, $3, $4) RETURNING id',
      [checkpoint.size, toBuffer(checkpoint.rootHash), checkpoint.note, checkpoint.createdAt],
    );
    return { id: Number(rows[0]!.id), ...checkpoint };
  }

  async latestCheckpoint(): Promise<StoredCheckpoint | null> {
    const { rows } = await this.#query<CheckpointRow>('SELECT * FROM audit_checkpoints ORDER BY id DESC LIMIT 1');
    return rows[0] === undefined ? null : toCheckpoint(rows[0]);
  }

  async checkpointOfSize(size: number): Promise<StoredCheckpoint | null> {
    const { rows } = await this.#query<CheckpointRow>('SELECT * FROM audit_checkpoints WHERE size = $1 ORDER BY id DESC LIMIT 1', [size]);
    return rows[0] === undefined ? null : toCheckpoint(rows[0]);
  }

  async checkpoints(options: { readonly afterId?: number; readonly limit?: number } = {}): Promise<StoredCheckpoint[]> {
    const { rows } = await this.#query<CheckpointRow>('SELECT * FROM audit_checkpoints WHERE id > $1 ORDER BY id LIMIT $2', [
      options.afterId ?? 0,
      listLimit(options.limit),
    ]);
    return rows.map(toCheckpoint);
  }

  async addCosignature(cosignature: StoredCosignature): Promise<boolean> {
    const result = await this.#query(
      'INSERT INTO audit_cosignatures (checkpoint_id, witness, signature_line, cosigned_at, received_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING',
      [cosignature.checkpointId, cosignature.witness, cosignature.signatureLine, cosignature.cosignedAt, cosignature.receivedAt],
    );
    return result.rowCount === 1;
  }

  async subjectEntries(subject: string, options: { readonly after?: number; readonly limit?: number } = {}): Promise<AuditEntryRow[]> {
    assertSubject(subject);
    const after = subjectCursor(options.after);
    const { rows } = await this.#query<{ idx: string; entry: Buffer; recorded_at: string }>(
      'SELECT e.idx, e.entry, e.recorded_at FROM audit_subjects s JOIN audit_entries e ON e.idx = s.idx WHERE s.subject = $1 AND s.idx > $2 ORDER BY s.idx LIMIT $3',
      [subject, after, listLimit(options.limit)],
    );
    return rows.map((row) => ({ index: Number(row.idx), entry: new Uint8Array(row.entry), recordedAt: Number(row.recorded_at) }));
  }

  async indexSubject(subject: string, indices: readonly number[]): Promise<number> {
    assertSubject(subject);
    const distinct = checkSubjectIndices(indices);
    if (distinct.length === 0) return 0;
    // Only entries that exist get a row: the index never points past the log.
    const result = await this.#query(
      'INSERT INTO audit_subjects (subject, idx) SELECT $1, e.idx FROM audit_entries e WHERE e.idx = ANY($2::bigint[]) ON CONFLICT DO NOTHING',
      [subject, distinct],
    );
    return result.rowCount ?? 0;
  }

  async forgetSubject(subject: string): Promise<number> {
    assertSubject(subject);
    const result = await this.#query('DELETE FROM audit_subjects WHERE subject = $1', [subject]);
    return result.rowCount ?? 0;
  }

  async cosignatures(checkpointId: number): Promise<StoredCosignature[]> {
    const { rows } = await this.#query<CosignatureRow>('SELECT * FROM audit_cosignatures WHERE checkpoint_id = $1 ORDER BY witness COLLATE "C"', [checkpointId]);
    return rows.map((row) => ({
      checkpointId: Number(row.checkpoint_id),
      witness: row.witness,
      signatureLine: row.signature_line,
      cosignedAt: Number(row.cosigned_at),
      receivedAt: Number(row.received_at),
    }));
  }
}

/** One statement for any number of nodes: a join on unnested coordinates. */
async function readNodes(query: Query, addresses: readonly TreeNodeAddress[]): Promise<(Uint8Array | undefined)[]> {
  if (addresses.length === 0) return [];
  const { rows } = await query<{ level: number; idx: string; hash: Buffer }>(
    'SELECT n.level, n.idx, n.hash FROM unnest($1::smallint[], $2::bigint[]) AS w (level, idx) JOIN audit_nodes n ON n.level = w.level AND n.idx = w.idx',
    [addresses.map((address) => address.level), addresses.map((address) => address.index)],
  );
  const found = new Map(rows.map((row) => [`${row.level}:${row.idx}`, new Uint8Array(row.hash)]));
  return addresses.map((address) => found.get(`${address.level}:${address.index}`));
}

function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function toCheckpoint(row: CheckpointRow): StoredCheckpoint {
  return { id: Number(row.id), size: Number(row.size), rootHash: new Uint8Array(row.root_hash), note: row.note, createdAt: Number(row.created_at) };
}
