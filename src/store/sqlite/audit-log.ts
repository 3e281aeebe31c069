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
import type { SqliteDatabase } from './database.ts';

interface CheckpointRow {
  id: number;
  size: number;
  root_hash: Uint8Array;
  note: string;
  created_at: number;
}

interface CosignatureRow {
  checkpoint_id: number;
  witness: string;
  signature_line: string;
  cosigned_at: number;
  received_at: number;
}

/** Nodes asked for in one statement; larger requests are split. */
const NODES_PER_QUERY = 200;

/**
 * The embedded audit log. node:sqlite is synchronous and this process has one
 * connection, so an append cannot interleave with another in this process;
 * `BEGIN IMMEDIATE` takes the file's write lock before the size is read, so
 * another process (an admin CLI) cannot either.
 */
export class SqliteAuditLog implements AuditLogStore {
  readonly #db: SqliteDatabase;

  constructor(database: SqliteDatabase) {
    this.#db = database;
  }

  async append(entries: readonly Uint8Array[], recordedAt: number, plan: AuditAppendPlan, subjects?: readonly (readonly string[])[]): Promise<number> {
    const subjectRows = checkAppend(entries, recordedAt, subjects);
    return this.#db.run(() => this.#db.transaction(() => {
      const size = this.#size();
      const frontier = plan.frontier(size);
      const frontierHashes = this.#nodes(frontier).map((hash, i) => {
        if (hash === undefined) throw new Error(`audit log node (${frontier[i]!.level}, ${frontier[i]!.index}) is missing`);
        return hash;
      });
      const nodes = plan.extend(size, frontierHashes, entries);
      const insertEntry = this.#db.statement('INSERT INTO audit_entries (idx, entry, recorded_at) VALUES (?, ?, ?)');
      entries.forEach((entry, i) => insertEntry.run(size + i, entry, recordedAt));
      const insertNode = this.#db.statement('INSERT INTO audit_nodes (level, idx, hash) VALUES (?, ?, ?)');
      for (const node of nodes) insertNode.run(node.level, node.index, node.hash);
      const insertSubject = this.#db.statement('INSERT INTO audit_subjects (subject, idx) VALUES (?, ?)');
      for (const row of subjectRows(size)) insertSubject.run(row.subject, row.index);
      this.#db.statement('UPDATE audit_head SET size = ? WHERE id = 1').run(size + entries.length);
      return size;
    }));
  }

  async size(): Promise<number> {
    return this.#db.run(() => this.#size(), 'read');
  }

  async entries(start: number, end: number): Promise<AuditEntryRow[]> {
    assertEntryRange(start, end);
    const rows = (await this.#db.run(() =>
      this.#db
        .statement('SELECT idx, entry, recorded_at FROM audit_entries WHERE idx >= ? AND idx < ? ORDER BY idx LIMIT ?')
        .all(start, end, MAX_ENTRY_PAGE), 'read')) as unknown as { idx: number; entry: Uint8Array; recorded_at: number }[];
    return rows.map((row) => ({ index: Number(row.idx), entry: new Uint8Array(row.entry), recordedAt: Number(row.recorded_at) }));
  }

  async nodes(addresses: readonly TreeNodeAddress[]): Promise<(Uint8Array | undefined)[]> {
    assertNodeAddresses(addresses);
    return this.#db.run(() => this.#nodes(addresses), 'read');
  }

  async addCheckpoint(checkpoint: Omit<StoredCheckpoint, 'id'>): Promise<StoredCheckpoint> {
    const result = await this.#db.run(() =>
      this.#db
        .statement('INSERT INTO audit_checkpoints (size, root_hash, note, created_at) VALUES (?, ?, ?, ?)')
        .run(checkpoint.size, checkpoint.rootHash, checkpoint.note, checkpoint.createdAt),
    );
    return { id: Number(result.lastInsertRowid), ...checkpoint };
  }

  async latestCheckpoint(): Promise<StoredCheckpoint | null> {
    const row = (await this.#db.run(() => this.#db.statement('SELECT * FROM audit_checkpoints ORDER BY id DESC LIMIT 1').get(), 'read')) as CheckpointRow | undefined;
    return row === undefined ? null : toCheckpoint(row);
  }

  async checkpointOfSize(size: number): Promise<StoredCheckpoint | null> {
    const row = (await this.#db.run(() => this.#db.statement('SELECT * FROM audit_checkpoints WHERE size = ? ORDER BY id DESC LIMIT 1').get(size), 'read')) as
      | CheckpointRow
      | undefined;
    return row === undefined ? null : toCheckpoint(row);
  }

  async checkpoints(options: { readonly afterId?: number; readonly limit?: number } = {}): Promise<StoredCheckpoint[]> {
    const limit = listLimit(options.limit); // checked before the statement touches the database
    const rows = (await this.#db.run(() =>
      this.#db.statement('SELECT * FROM audit_checkpoints WHERE id > ? ORDER BY id LIMIT ?').all(options.afterId ?? 0, limit), 'read',
    )) as unknown as CheckpointRow[];
    return rows.map(toCheckpoint);
  }

  async addCosignature(cosignature: StoredCosignature): Promise<boolean> {
    const result = await this.#db.run(() =>
      this.#db
        .statement(
          'INSERT INTO audit_cosignatures (checkpoint_id, witness, signature_line, cosigned_at, received_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING',
        )
        .run(cosignature.checkpointId, cosignature.witness, cosignature.signatureLine, cosignature.cosignedAt, cosignature.receivedAt),
    );
    return result.changes === 1;
  }

  async cosignatures(checkpointId: number): Promise<StoredCosignature[]> {
    const rows = (await this.#db.run(() =>
      this.#db.statement('SELECT * FROM audit_cosignatures WHERE checkpoint_id = ? ORDER BY witness').all(checkpointId), 'read',
    )) as unknown as CosignatureRow[];
    return rows.map((row) => ({
      checkpointId: Number(row.checkpoint_id),
      witness: row.witness,
      signatureLine: row.signature_line,
      cosignedAt: Number(row.cosigned_at),
      receivedAt: Number(row.received_at),
    }));
  }

  async subjectEntries(subject: string, options: { readonly after?: number; readonly limit?: number } = {}): Promise<AuditEntryRow[]> {
    assertSubject(subject);
    const after = subjectCursor(options.after);
    const limit = listLimit(options.limit);
    const rows = (await this.#db.run(() =>
      this.#db
        .statement('SELECT e.idx, e.entry, e.recorded_at FROM audit_subjects s JOIN audit_entries e ON e.idx = s.idx WHERE s.subject = ? AND s.idx > ? ORDER BY s.idx LIMIT ?')
        .all(subject, after, limit), 'read')) as unknown as { idx: number; entry: Uint8Array; recorded_at: number }[];
    return rows.map((row) => ({ index: Number(row.idx), entry: new Uint8Array(row.entry), recordedAt: Number(row.recorded_at) }));
  }

  async indexSubject(subject: string, indices: readonly number[]): Promise<number> {
    assertSubject(subject);
    const distinct = checkSubjectIndices(indices);
    if (distinct.length === 0) return 0;
    return this.#db.run(() => this.#db.transaction(() => {
      // Only entries that exist get a row: the index never points past the log.
      const insert = this.#db.statement('INSERT INTO audit_subjects (subject, idx) SELECT ?, idx FROM audit_entries WHERE idx = ? ON CONFLICT DO NOTHING');
      let added = 0;
      for (const index of distinct) added += Number(insert.run(subject, index).changes);
      return added;
    }));
  }

  async forgetSubject(subject: string): Promise<number> {
    assertSubject(subject);
    const result = await this.#db.run(() => this.#db.statement('DELETE FROM audit_subjects WHERE subject = ?').run(subject));
    return Number(result.changes);
  }

  #size(): number {
    const row = this.#db.statement('SELECT size FROM audit_head WHERE id = 1').get() as { size: number } | undefined;
    return row === undefined ? 0 : Number(row.size);
  }

  #nodes(addresses: readonly TreeNodeAddress[]): (Uint8Array | undefined)[] {
    const found = new Map<string, Uint8Array>();
    for (let offset = 0; offset < addresses.length; offset += NODES_PER_QUERY) {
      const chunk = addresses.slice(offset, offset + NODES_PER_QUERY);
      // A VALUES list joined to the primary key: one indexed lookup per
      // address, in one statement (cached per chunk length).
      const values = chunk.map(() => '(?, ?)').join(', ');
      const rows = this.#db
        .statement(`WITH wanted (level, idx) AS (VALUES ${values}) SELECT n.level, n.idx, n.hash FROM wanted w JOIN audit_nodes n ON n.level = w.level AND n.idx = w.idx`)
        .all(...chunk.flatMap((address) => [address.level, address.index])) as unknown as { level: number; idx: number; hash: Uint8Array }[];
      for (const row of rows) found.set(`${row.level}:${row.idx}`, new Uint8Array(row.hash));
    }
    return addresses.map((address) => found.get(`${address.level}:${address.index}`));
  }
}

function toCheckpoint(row: CheckpointRow): StoredCheckpoint {
  return { id: Number(row.id), size: Number(row.size), rootHash: new Uint8Array(row.root_hash), note: row.note, createdAt: Number(row.created_at) };
}
