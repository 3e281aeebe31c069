/**
 * What an erasure (erasure.ts) finishes after its transaction, kept so that
 * a crash cannot lose it. The transaction writes, with everything else, a
 * clean-up record (`privacy_erasure_cleanups/<erasure id>`) naming what is
 * left to do outside it:
 *
 * - `pending`: end the sessions (with back-channel logout and their access
 *   tokens), forget the throttle and a pending second factor, cut the
 *   person's addresses out of records shared with others (signal log,
 *   stream filters, outbox payloads), drop the audit pseudonym's index
 *   rows, append the tombstone to its file, reclaim SQLite's free pages and
 *   WAL. Every step is safe to run again. Run right after the commit; if
 *   the process dies first, the privacy job runs it again.
 * - `settling`: the addresses are gone from the record; only the user id
 *   is kept, until `settleAt`. Then a last pass deletes, by that id, any
 *   record a request in flight during the erasure wrote after it
 *   (oauth/account-writes.ts says when that can happen), ends any session
 *   made since, and the record goes.
 *
 * So the addresses stay in this record only until the first pass succeeds
 * (milliseconds, or until the job's next run after a crash); the data map
 * lists the record as a place of its own.
 */
import type { Identity } from '../identity/index.ts';
import type { AuthorizationServer } from '../oauth/index.ts';
import { Type, type Static } from '@sinclair/typebox';
import { collection, keep, typeboxCodec, write, type Clock, type Collection, type DurableStore, type RecordStore } from '../store/index.ts';
import { deletedCollections } from './data-map.ts';
import { addressesInSignalLog, redactSharedRecords } from './redaction.ts';
import { appendTombstoneFile } from './tombstones.ts';

const CleanupSchema = Type.Object({
  stage: Type.Union([Type.Literal('pending'), Type.Literal('settling')]),
  userId: Type.String(),
  /** Every address the person had (the account's and earlier ones the signal log names); emptied once redacted. */
  addresses: Type.Array(Type.String()),
  /** Earlier addresses another account holds now: cut only from the entries that name this person (redaction.ts). */
  heldByOthers: Type.Optional(Type.Array(Type.String())),
  /** The person's subject key in the signal log (`iss_sub`), for heldByOthers. */
  subjectKey: Type.Optional(Type.String()),
  /** The sessions listed before the transaction; empty once settling. */
  sessionHandles: Type.Array(Type.String()),
  /** The audit pseudonym the erasure forgot, whose index rows are dropped. */
  pseudonym: Type.Union([Type.String(), Type.Null()]),
  /** Keyed hashes only (tombstones.ts). */
  tombstone: Type.Object({ user: Type.String(), email: Type.String(), erasure: Type.String(), at: Type.Number() }),
  /** When a pass last started: the job retries a pending one only after CLEANUP_RETRY_MS. */
  attemptAt: Type.Number(),
  settleAt: Type.Number(),
});
export type CleanupData = Static<typeof CleanupSchema>;

/** A pending clean-up the job may take over: older than any live pass could be (the one right after the commit). */
export const CLEANUP_RETRY_MS = 60_000;

export function erasureCleanups(records: RecordStore): Collection<CleanupData, 'stage'> {
  return collection(records, { name: 'privacy_erasure_cleanups', codec: typeboxCodec(CleanupSchema), indexes: { stage: (cleanup) => cleanup.stage } });
}

export interface CleanupOptions {
  readonly durable: DurableStore;
  readonly identity: Pick<Identity, 'accounts' | 'secondFactor'>;
  readonly oauth: Pick<AuthorizationServer, 'logout'>;
  readonly clock: Clock;
  readonly dropPseudonymIndex?: (pseudonym: string) => Promise<unknown>;
  readonly tombstoneFile: string | undefined;
  /**
   * How long the user id is kept for the last pass: longer than any
   * request that read the account before the erasure may still run
   * (http.requestTimeoutMs, and the job's own interval to reach it).
   */
  readonly settleMs: number;
  /** Told when a clean-up or a last pass the job runs fails (the next run tries it again). */
  readonly onFailed?: (error: unknown) => void;
}

export interface CleanupReport {
  /** Pending clean-ups the job finished (a crash or a failure stopped them after their commit). */
  readonly resumed: number;
  readonly settled: number;
  /** Records written about an erased person after their erasure, and sessions made since, deleted or ended by the last pass. */
  readonly lateRecords: number;
  /** Clean-ups or last passes that failed in this run (each is tried again by the next). */
  readonly failed: number;
}

export class ErasureCleanups {
  readonly #options: CleanupOptions;

  constructor(options: CleanupOptions) {
    this.#options = options;
  }

  /** Inside the erasure's transaction: what is left to do after it. */
  async begin(records: RecordStore, data: Omit<CleanupData, 'stage' | 'attemptAt' | 'settleAt'>): Promise<void> {
    const now = this.#options.clock();
    await erasureCleanups(records).create(data.tombstone.erasure, { ...data, stage: 'pending', attemptAt: now, settleAt: now + this.#options.settleMs });
  }

  /** The first pass, right after the commit. */
  async finish(erasureId: string, audit: { requestId?: string; ip?: string } = {}): Promise<void> {
    const cleanups = erasureCleanups(this.#options.durable.records);
    const current = await cleanups.get(erasureId);
    if (current === null || current.data.stage !== 'pending') return;
    await this.#pendingPass(current.data, audit);
    // The record keeps the id alone until the last pass.
    await this.#rewrite(erasureId, (data) => ({ ...data, stage: 'settling', addresses: [], heldByOthers: [], sessionHandles: [] }));
    // After the rewrite, so the record's own addresses leave no page behind either.
    await this.#options.durable.reclaim();
  }

  /** Rewrites a pending record; a lost race means another pass (the job's) moved it on already. */
  async #rewrite(erasureId: string, change: (data: CleanupData) => CleanupData): Promise<void> {
    await erasureCleanups(this.#options.durable.records).mutate(erasureId, (record) => (record === null || record.data.stage !== 'pending' ? keep(undefined) : write(change(record.data))), {
      attempts: 3,
      exhausted: () => undefined,
    });
  }

  /**
   * The privacy job: takes over pending clean-ups older than
   * CLEANUP_RETRY_MS, and makes the last pass of those whose settle time
   * has come. `keepLease` is asked before each (false: another instance
   * runs the job now, this run stops).
   */
  async runDue(keepLease: () => Promise<boolean>): Promise<CleanupReport> {
    const { durable, clock } = this.#options;
    const cleanups = erasureCleanups(durable.records);
    let resumed = 0;
    let settled = 0;
    let lateRecords = 0;
    let failed = 0;
    for (const record of await cleanups.findAllBy('stage', 'pending')) {
      if (record.data.attemptAt > clock() - CLEANUP_RETRY_MS) continue;
      if (!(await keepLease())) return { resumed, settled, lateRecords, failed };
      // Claimed by moving attemptAt on: a second instance's job (after a lost lease) skips it.
      if ((await cleanups.update(record.id, record.version, { ...record.data, attemptAt: clock() })) === null) continue;
      // One clean-up that fails (its next run retries it) does not stop the others, nor the rest of the job.
      try {
        await this.finish(record.id);
        resumed += 1;
      } catch (error) {
        failed += 1;
        this.#options.onFailed?.(error);
      }
    }
    for (const record of await cleanups.findAllBy('stage', 'settling')) {
      if (record.data.settleAt > clock()) continue;
      if (!(await keepLease())) return { resumed, settled, lateRecords, failed };
      try {
        const late = await this.#settle(record.id, record.version, record.data);
        // Another run settled it first: counted there.
        if (late === null) continue;
        lateRecords += late;
        settled += 1;
      } catch (error) {
        failed += 1;
        this.#options.onFailed?.(error);
      }
    }
    if (settled > 0) {
      await durable.reclaim().catch((error: unknown) => {
        failed += 1;
        this.#options.onFailed?.(error);
      });
    }
    return { resumed, settled, lateRecords, failed };
  }

  async #pendingPass(data: CleanupData, audit: { requestId?: string; ip?: string }): Promise<void> {
    const { durable, identity, dropPseudonymIndex, tombstoneFile } = this.#options;
    await this.#endSessions(data.userId, data.sessionHandles, audit);
    for (const address of data.addresses) await identity.accounts.forgetThrottle(address, data.userId);
    await identity.secondFactor.forgetPending(data.userId);
    for (const address of data.addresses) await redactSharedRecords(durable, address);
    if (data.subjectKey !== undefined) for (const address of data.heldByOthers ?? []) await redactSharedRecords(durable, address, { onlyAbout: { subjectKey: data.subjectKey, userId: data.userId } });
    // The addresses have done their work: a fault in the steps below (the tombstone file, say) keeps no address.
    if (data.addresses.length > 0 || (data.heldByOthers ?? []).length > 0) await this.#rewrite(data.tombstone.erasure, (current) => ({ ...current, addresses: [], heldByOthers: [] }));
    if (data.pseudonym !== null) await dropPseudonymIndex?.(data.pseudonym);
    // A second pass appends the same line again; reading the file (tombstones.ts) takes each user once.
    if (tombstoneFile !== undefined) await appendTombstoneFile(tombstoneFile, data.tombstone);
  }

  /** Sessions listed before the commit, and any a racing sign-in made since: each ends with its tokens and back-channel logout. */
  async #endSessions(userId: string, listed: readonly string[], audit: { requestId?: string; ip?: string }): Promise<number> {
    const { identity, oauth } = this.#options;
    const handles = new Set([...listed, ...(await identity.accounts.sessions.list(userId)).map((session) => session.handle)]);
    for (const handle of handles) {
      // Tokens and logout first: once the session is revoked it no longer names its clients.
      await oauth.logout.sessionEnded({ userId, sessionHandle: handle }, audit);
      await identity.accounts.sessions.revoke(userId, handle);
    }
    return handles.size;
  }

  /**
   * The last pass: sessions of the erased id end, then its late records and
   * the clean-up record go in one transaction. The record goes last, so a
   * failure or a crash before it leaves the record for the next run.
   * Resolves with how many late records and sessions there were, or null
   * when another run settled the record first.
   */
  async #settle(id: string, version: number, data: CleanupData): Promise<number | null> {
    const { userId } = data;
    const sessions = await this.#endSessions(userId, [], {});
    // A signal about the person still in the outbox at the erasure (an email change, say) reached the log since:
    // any address the log now names with their id is cut out as the first pass would have.
    if (data.subjectKey !== undefined) {
      for (const address of await addressesInSignalLog(this.#options.durable.records, data.subjectKey)) {
        const holder = await this.#options.identity.accounts.users.byEmail(address);
        await redactSharedRecords(this.#options.durable, address, holder === null || holder.id === userId ? {} : { onlyAbout: { subjectKey: data.subjectKey, userId } });
      }
    }
    const late = await this.#options.durable.transaction(async (tx) => {
      let found = 0;
      for (const { container, locate } of deletedCollections()) {
        // The account's own record and email claim cannot come back under this id; the places found by user can.
        if (locate !== 'index') continue;
        for (let after: string | undefined; ; ) {
          const page = await tx.records.findBy(container, 'user', userId, { limit: 500, ...(after !== undefined && { after }) });
          for (const record of page) if (await tx.records.delete(container, record.id)) found += 1;
          if (page.length < 500) break;
          after = page.at(-1)!.id;
        }
      }
      if (!(await erasureCleanups(tx.records).delete(id, version))) throw new CleanupMovedOn();
      return found;
    }).catch((error: unknown) => {
      if (error instanceof CleanupMovedOn) return null;
      throw error;
    });
    return late === null ? null : late + sessions;
  }
}

/** Another run settled the record first: this one's transaction rolls back. */
class CleanupMovedOn extends Error {}
