/**
 * The audit ledger: the one place security events are recorded
 * (`record`), signed checkpoints are made, and proofs are served.
 */
import type { AuditLogStore, Clock, RecordStore, StoredCheckpoint } from '../store/index.ts';
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
import { AuditEventError, checkEvent, encodeEntry, type AuditEntry, type AuditEvent } from './events.ts';
import { GroupCommitter } from './group-commit.ts';
import { ipForAudit, type IpAddressMode } from './ip.ts';
import type { LogKey } from './log-key.ts';
import { SubjectPseudonyms } from './pseudonyms.ts';
import { appendPlan, storedConsistencyProof, storedInclusionProof, storedRootHash } from './tree.ts';

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

export class Ledger {
  readonly #log: AuditLogStore;
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
    this.#clock = options.clock;
    this.#key = options.key;
    this.#pseudonyms = new SubjectPseudonyms(options.records);
    this.#ip = ipForAudit(options.ipAddresses, options.ipHashKey);
    this.#witnesses = (options.witnesses ?? []).map((vkey) => parseCosignatureVerifierKey(vkey));
    this.#committer = new GroupCommitter({
      write: async (entries) => {
        const first = await this.#log.append(entries, this.#clock(), appendPlan);
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
    const entry = await this.#toEntry(event);
    const index = await this.#committer.add(encodeEntry(entry));
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
    const entries: Uint8Array[] = [];
    for (const event of events) entries.push(encodeEntry(await this.#toEntry(event)));
    const indices = await this.#committer.addAll(entries);
    return indices.map((index) => ({ index }));
  }

  async #toEntry(event: AuditEvent): Promise<AuditEntry> {
    const actor = event.actorUserId === undefined ? undefined : await this.#pseudonyms.pseudonym(event.actorUserId);
    const ip = this.#ip(event.ip);
    return {
      v: 1,
      type: event.type,
      time: new Date(event.time ?? this.#clock()).toISOString(),
      outcome: event.outcome,
      ...(actor !== undefined && { actor }),
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
   * secret, so their entries stay (and every proof with them) but link to no
   * one. Records that an erasure happened, naming nobody.
   */
  async forgetSubject(userId: string, context: { requestId?: string; traceId?: string } = {}): Promise<boolean> {
    const forgotten = await this.#pseudonyms.forget(userId);
    await this.record({ type: 'audit.subject.forgotten', outcome: 'success', actorService: 'privacy', ...context, detail: { hadEntries: forgotten } });
    return forgotten;
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
