/**
 * The audit ledger: the one place security events are recorded
 * (`record`), signed checkpoints are made, and proofs are served.
 */
import type { AuditEntryRow, AuditLogStore, Clock, RecordStore, StoredCheckpoint } from '../store/index.ts';
import {
  NoteError,
  parseCheckpoint,
  parseCosignatureVerifierKey,
  parseNote,
  formatSignatureLine,
  signCheckpoint,
  verifyCosignature,
  formatKeyId,
  type CosignatureVerifier,
} from './checkpoint/index.ts';
import { AuditEventError, checkEvent, decodeEntry, encodeEntry, subjectsOf, type AuditEntry, type AuditEvent } from './events.ts';
import { GroupCommitter, type PendingEntry } from './group-commit.ts';
import { ipForAudit, type IpAddressMode } from './ip.ts';
import type { LogKey } from './log-key.ts';
import { SubjectPseudonyms, forgetIn } from './pseudonyms.ts';
import { appendPlan, storedConsistencyProof, storedInclusionProof, storedInclusionProofs, storedRootHash } from './tree.ts';

export interface LedgerOptions {
  readonly log: AuditLogStore;
  readonly records: RecordStore;
  readonly key: LogKey;
  readonly clock: Clock;
  readonly ipAddresses: IpAddressMode;
  /** Key of `hash` mode IP pseudonyms (derived from the master key). */
  readonly ipHashKey: Uint8Array;
  /** Witness verifier keys whose cosignatures are accepted. */
  readonly witnesses?: readonly string[];
  readonly maxPendingEntries?: number;
  readonly maxBatch?: number;
}

export interface RecordedEntry {
  readonly index: number;
}

/** A request the ledger refuses because of what the caller asked (400 material). */
export class AuditRequestError extends Error {
  override readonly name = 'AuditRequestError';
}

export interface CosignatureResult {
  readonly checkpoint: StoredCheckpoint;
  readonly stored: readonly string[];
  readonly duplicates: readonly string[];
}

/** One entry of a subject's history: the entry, its exact bytes, and its inclusion proof. */
export interface SubjectHistoryEntry {
  readonly index: number;
  /** The entry decoded (what `entryBase64` holds, as JSON). */
  readonly entry: AuditEntry;
  /** The entry's bytes as stored (RFC 8785 canonical JSON): its leaf hash is SHA-256(0x00 || these bytes). */
  readonly entryBase64: string;
  /** RFC 9162 2.1.3.1 inclusion proof of `index` in the tree of `size` entries, base64, deepest sibling first. */
  readonly proof: readonly string[];
}

/**
 * Every entry about one person, each with its inclusion proof against one
 * signed checkpoint: what the person needs to check their own history
 * offline (verify-history.ts, `portcullis audit verify --file`).
 */
export interface SubjectHistory {
  /** The signed checkpoint note (C2SP tlog-checkpoint) every proof is against, with any witness cosignatures. */
  readonly checkpoint: string;
  /** The checkpoint's tree size. */
  readonly size: number;
  /** The log's signed-note verifier key (the verifier should pin its own copy). */
  readonly logKey: string;
  /** The log's origin, the checkpoint's first line. */
  readonly origin: string;
  readonly entries: readonly SubjectHistoryEntry[];
}

/** Subject index rows read per query (the store's page cap). */
const SUBJECT_PAGE = 1000;

export class Ledger {
  readonly #log: AuditLogStore;
  readonly #records: RecordStore;
  readonly #clock: Clock;
  readonly #key: LogKey;
  readonly #pseudonyms: SubjectPseudonyms;
  readonly #ip: (address: string | undefined) => string | undefined;
  readonly #committer: GroupCommitter;
  readonly #witnesses: readonly CosignatureVerifier[];
  #timer: NodeJS.Timeout | undefined;
  /** The largest size this instance has seen: the log never shrinks, so a proof within it needs no size query. */
  #knownSize = 0;

  constructor(options: LedgerOptions) {
    this.#log = options.log;
    this.#records = options.records;
    this.#clock = options.clock;
    this.#key = options.key;
    this.#pseudonyms = new SubjectPseudonyms(options.records);
    this.#ip = ipForAudit(options.ipAddresses, options.ipHashKey);
    this.#witnesses = (options.witnesses ?? []).map((vkey) => parseCosignatureVerifierKey(vkey));
    this.#committer = new GroupCommitter({
      write: async (entries) => {
        // The subject index rows go in the entries' own transaction.
        const first = await this.#log.append(
          entries.map((entry) => entry.bytes),
          this.#clock(),
          appendPlan,
          entries.map((entry) => entry.subjects),
        );
        this.#knownSize = Math.max(this.#knownSize, first + entries.length);
        return first;
      },
      maxBatch: options.maxBatch ?? 1000,
      maxPending: options.maxPendingEntries ?? 10_000,
    });
  }

  get origin(): string {
    return this.#key.origin;
  }

  /** The log's public key (C2SP signed-note verifier key). */
  get verifierKey(): string {
    return this.#key.verifierKey;
  }

  get pseudonyms(): SubjectPseudonyms {
    return this.#pseudonyms;
  }

  /**
   * Records one event. Resolves once its entry is durable, with its index.
   * Throws AuditEventError (a caller's bug) before anything is written, and
   * AuditBackpressureError when the log cannot keep up.
   */
  async record(event: AuditEvent): Promise<RecordedEntry> {
    checkEvent(event);
    const index = await this.#committer.add(await this.#toPending(event));
    return { index };
  }

  /**
   * Records several events of one action (a sign-in and the sessions it
   * evicted, say) in one batch: one transaction, so one fsync, instead of
   * one per event. All are checked before any is queued; resolves with
   * their indices, in order, once all are durable.
   */
  async recordAll(events: readonly AuditEvent[]): Promise<RecordedEntry[]> {
    for (const event of events) checkEvent(event);
    const entries: PendingEntry[] = [];
    for (const event of events) entries.push(await this.#toPending(event));
    const indices = await this.#committer.addAll(entries);
    return indices.map((index) => ({ index }));
  }

  /** The entry's bytes and the subjects it is indexed under: its actor, and detail.subject (user.created). */
  async #toPending(event: AuditEvent): Promise<PendingEntry> {
    const entry = await this.#toEntry(event);
    return { bytes: encodeEntry(entry), subjects: subjectsOf(entry) };
  }

  async #toEntry(event: AuditEvent): Promise<AuditEntry> {
    // A forgotten user has no pseudonym (null): the entry names no actor.
    const actor = event.actorUserId === undefined ? null : await this.#pseudonyms.pseudonym(event.actorUserId);
    const ip = this.#ip(event.ip);
    return {
      v: 1,
      type: event.type,
      time: new Date(event.time ?? this.#clock()).toISOString(),
      outcome: event.outcome,
      ...(actor !== null && { actor }),
      ...(event.actorService !== undefined && { service: event.actorService }),
      ...(event.clientId !== undefined && { client: event.clientId }),
      ...(event.requestId !== undefined && { requestId: event.requestId }),
      ...(event.traceId !== undefined && { traceId: event.traceId }),
      ...(ip !== undefined && { ip }),
      ...(event.detail !== undefined && Object.keys(event.detail).length > 0 && { detail: event.detail }),
    };
  }

  /**
   * GDPR erasure of a person from the log (Art. 17): destroys their pseudonym
   * secret, leaving a marker so that nothing recorded about them later gets
   * a new one (pseudonyms.ts, forgetIn), and drops their subject index rows.
   * Their entries stay (and every proof with them) but link to no one.
   * Records that an erasure happened, naming nobody. Resolves with whether
   * they had a secret. (Inside a larger erasure transaction: `forgetIn` with
   * `tx.records`, then `dropSubjectIndex` with the pseudonym it returns.)
   */
  async forgetSubject(userId: string, context: { requestId?: string; traceId?: string } = {}): Promise<boolean> {
    const pseudonym = await forgetIn(this.#records, userId, this.#clock());
    if (pseudonym !== null) await this.dropSubjectIndex(pseudonym);
    await this.record({ type: 'audit.subject.forgotten', outcome: 'success', actorService: 'privacy', ...context, detail: { hadEntries: pseudonym !== null } });
    return pseudonym !== null;
  }

  /**
   * Deletes the subject index rows of a pseudonym that was just forgotten
   * (the value `forgetIn` returned). Entries already queued with that
   * pseudonym are written first, so their rows go too. An event whose
   * pseudonym was read before the forget committed and that reaches the
   * queue only after this flush (a race of microseconds) keeps its row;
   * the row names nobody once the secret is gone, and a history can no
   * longer be asked for under that pseudonym.
   */
  async dropSubjectIndex(pseudonym: string): Promise<number> {
    await this.flush();
    return this.#log.forgetSubject(pseudonym);
  }

  /**
   * Everything the log says about one person, provably: every entry that
   * names them (as actor, or as the subject of user.created), each with its
   * RFC 9162 2.1.3 inclusion proof against the latest signed checkpoint,
   * which is signed now if the log grew since (so what was recorded before
   * this call is covered). A person without a pseudonym (never recorded, or
   * forgotten) has no entries.
   *
   * Read through the subject index (migration 6), so it costs one indexed
   * query per 1000 entries and one node query per few thousand proof nodes,
   * whatever the log's size. Entries recorded before migration 6 are not in
   * the index: `indexSubject(userId)` adds a person's (one scan of the
   * log), until then they are missing here. The proofs show each entry is
   * in the signed log; they cannot show that no entry about the person was
   * left out (the index is not signed).
   */
  async subjectHistory(userId: string): Promise<SubjectHistory> {
    await this.flush();
    const checkpoint = (await this.checkpointIfGrown()) ?? (await this.latestCheckpoint());
    const size = checkpoint.size;
    const pseudonym = await this.#pseudonyms.existingPseudonym(userId);
    const rows = pseudonym === null ? [] : await this.#subjectRows(pseudonym, size);
    const proofs = await storedInclusionProofs(this.#log, rows.map((row) => row.index), size);
    const base64 = (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
    return {
      checkpoint: await this.cosignedNote(checkpoint),
      size,
      logKey: this.#key.verifierKey,
      origin: this.#key.origin,
      entries: rows.map((row, i) => ({ index: row.index, entry: decodeEntry(row.entry), entryBase64: base64(row.entry), proof: proofs[i]!.map(base64) })),
    };
  }

  /** The index's entries of `pseudonym` below `size`, in index order. */
  async #subjectRows(pseudonym: string, size: number): Promise<AuditEntryRow[]> {
    const rows: AuditEntryRow[] = [];
    let after: number | undefined;
    for (;;) {
      const page = await this.#log.subjectEntries(pseudonym, { ...(after !== undefined && { after }), limit: SUBJECT_PAGE });
      for (const row of page) {
        if (row.index >= size) return rows; // recorded after the checkpoint: not provable against it
        rows.push(row);
      }
      if (page.length < SUBJECT_PAGE) return rows;
      after = page.at(-1)!.index;
    }
  }

  /**
   * The upgrade path of the subject index: entries recorded before
   * migration 6 have no index rows. This scans the whole log once for the
   * user's pseudonym and adds the rows that are missing (idempotent: rows
   * that exist stay). Resolves with how many it added; nothing for a user
   * without a pseudonym. Nothing calls it yet: run it per user after the
   * upgrade (a deployment-wide backfill would rather scan once for every
   * user's pseudonym).
   */
  async indexSubject(userId: string): Promise<number> {
    const pseudonym = await this.#pseudonyms.existingPseudonym(userId);
    if (pseudonym === null) return 0;
    const needle = Buffer.from(pseudonym);
    const size = await this.#log.size();
    let added = 0;
    let found: number[] = [];
    for (let start = 0; start < size; ) {
      const rows = await this.#log.entries(start, size);
      if (rows.length === 0) break;
      for (const row of rows) {
        // A byte search first: decoding every entry of the log costs more.
        const bytes = Buffer.from(row.entry.buffer, row.entry.byteOffset, row.entry.byteLength);
        if (bytes.includes(needle) && subjectsOf(decodeEntry(row.entry)).includes(pseudonym)) found.push(row.index);
      }
      if (found.length >= SUBJECT_PAGE) {
        added += await this.#log.indexSubject(pseudonym, found);
        found = [];
      }
      start = rows.at(-1)!.index + 1;
    }
    if (found.length > 0) added += await this.#log.indexSubject(pseudonym, found);
    return added;
  }

  /** Waits until every entry recorded so far is durable. */
  flush(): Promise<void> {
    return this.#committer.flush();
  }

  async size(): Promise<number> {
    const size = await this.#log.size();
    this.#knownSize = Math.max(this.#knownSize, size);
    return size;
  }

  /** Signs and keeps a checkpoint of the log as it is now. */
  async signCheckpoint(): Promise<StoredCheckpoint> {
    const size = await this.#log.size();
    // Complete subtrees of a prefix never change, so the root of `size` is
    // stable even while later appends land.
    const rootHash = await storedRootHash(this.#log, size);
    const now = this.#clock();
    const note = signCheckpoint({ origin: this.#key.origin, size, rootHash, time: Math.floor(now / 1000) }, this.#key.signer);
    return this.#log.addCheckpoint({ size, rootHash, note, createdAt: now });
  }

  /** A new checkpoint if the log grew since the latest one (or has none). */
  async checkpointIfGrown(): Promise<StoredCheckpoint | null> {
    const [latest, size] = await Promise.all([this.#log.latestCheckpoint(), this.#log.size()]);
    if (latest !== null && latest.size >= size) return null;
    return this.signCheckpoint();
  }

  /** The latest checkpoint, signing the first one if there is none yet. */
  async latestCheckpoint(): Promise<StoredCheckpoint> {
    return (await this.#log.latestCheckpoint()) ?? this.signCheckpoint();
  }

  async checkpointOfSize(size: number): Promise<StoredCheckpoint | null> {
    return this.#log.checkpointOfSize(size);
  }

  async checkpoints(options: { afterId?: number; limit?: number } = {}): Promise<StoredCheckpoint[]> {
    return this.#log.checkpoints(options);
  }

  /** The checkpoint's note with every stored witness cosignature appended (C2SP tlog-cosignature). */
  async cosignedNote(checkpoint: StoredCheckpoint): Promise<string> {
    const cosignatures = await this.#log.cosignatures(checkpoint.id);
    return checkpoint.note + cosignatures.map((cosignature) => `${cosignature.signatureLine}\n`).join('');
  }

  /**
   * Stores the cosignatures of configured witnesses found in `note`, a
   * checkpoint this log signed with witness signature lines added. Every
   * witness line is verified; one that fails refuses the whole request.
   */
  async addCosignatures(note: string): Promise<CosignatureResult> {
    let parsed;
    try {
      parsed = parseNote(note);
      parseCheckpoint(parsed.text);
    } catch (error) {
      if (error instanceof NoteError) throw new AuditRequestError(`not a checkpoint note: ${error.message}`);
      throw error;
    }
    const { size } = parseCheckpoint(parsed.text);
    const checkpoint = await this.#log.checkpointOfSize(size);
    if (checkpoint === null || !checkpoint.note.startsWith(`${parsed.text}\n`)) {
      throw new AuditRequestError('this log has no such checkpoint (the body must be one the log signed, byte for byte)');
    }
    const stored: string[] = [];
    const duplicates: string[] = [];
    let matched = 0;
    for (const signature of parsed.signatures) {
      const witness = this.#witnesses.find((candidate) => candidate.name === signature.name && candidate.keyId === signature.keyId);
      if (witness === undefined) continue;
      matched += 1;
      const line = formatSignatureLine(signature).replace(/\n$/, '');
      let cosignedAt: number;
      try {
        cosignedAt = verifyCosignature(parsed.text, line, witness);
      } catch (error) {
        if (error instanceof NoteError) throw new AuditRequestError(`the cosignature of ${witness.name} does not verify: ${error.message}`);
        throw error;
      }
      const name = `${witness.name}+${formatKeyId(witness.keyId)}`;
      const added = await this.#log.addCosignature({ checkpointId: checkpoint.id, witness: name, signatureLine: line, cosignedAt, receivedAt: this.#clock() });
      (added ? stored : duplicates).push(name);
    }
    if (matched === 0) throw new AuditRequestError('the note carries no cosignature from a witness this server trusts');
    return { checkpoint, stored, duplicates };
  }

  /** Inclusion proof of entry `index` in the tree of `size` entries (size <= the log's size). */
  async inclusionProof(index: number, size: number): Promise<{ leafHash: Uint8Array; proof: Uint8Array[] }> {
    await this.#assertWithinLog(size);
    if (!(index < size)) throw new AuditRequestError(`index must be less than size (${size})`);
    return storedInclusionProof(this.#log, index, size);
  }

  /** Consistency proof between the trees of `from` and `to` entries. */
  async consistencyProof(from: number, to: number): Promise<Uint8Array[]> {
    await this.#assertWithinLog(to);
    if (from > to) throw new AuditRequestError('from must not be greater than to');
    return storedConsistencyProof(this.#log, from, to);
  }

  /** Stored entries [start, end), at most 1000. */
  async entries(start: number, end: number) {
    return this.#log.entries(start, end);
  }

  async #assertWithinLog(size: number): Promise<void> {
    if (size <= this.#knownSize) return;
    const current = await this.size();
    if (size > current) throw new AuditRequestError(`the log holds ${current} entries; size ${size} is beyond it`);
  }

  /** Signs a checkpoint every `intervalMs` when the log has grown. */
  startCheckpointing(intervalMs: number, onError: (error: unknown) => void): void {
    if (intervalMs <= 0 || this.#timer !== undefined) return;
    this.#timer = setInterval(() => {
      this.checkpointIfGrown().catch(onError);
    }, intervalMs);
    this.#timer.unref();
  }

  /** Stops the schedule and waits for pending entries to be written. */
  async close(): Promise<void> {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.flush();
  }
}

export { AuditEventError };
