/**
 * The right to erasure (GDPR Art. 17) and the notice to recipients (Art. 19).
 *
 * One durable transaction deletes the person's records from every place the
 * data map marks `delete`, destroys their audit pseudonym key (entries stay
 * provable and name nobody), writes a keyed tombstone and the erasure's
 * record, and queues, in the outbox with it, the RISC account-purged event
 * and one notice per recipient (a client that received data about them).
 * Either all of that commits or none of it. After the commit: sessions end
 * (with back-channel logout and their tokens), the throttle and a pending
 * second factor are forgotten, the person's email is cut out of records
 * shared with others (signal log, stream filters, outbox payloads), the
 * tombstone reaches its file, and SQLite's WAL is checkpointed away.
 */
import { randomUUID } from 'node:crypto';
import type { DomainEvents } from '../events/index.ts';
import type { Identity } from '../identity/index.ts';
import type { AuthorizationServer } from '../oauth/index.ts';
import { subjectKey, type SIGNALS_TOPIC as SignalsTopic, type OutboxSignalPayload } from '../signals/index.ts';
import { SECURITY_EVENT_TYPES } from '../sdk/index.ts';
import type { Clock, DurableStore, RecordStore } from '../store/index.ts';
import { deletedCollections } from './data-map.ts';
import { erasureRecords, newErasureId, updateRecipient, type ErasureData, type ErasureRecord, type RecipientNotice } from './erasure-records.ts';
import { ErasureCleanups, type CleanupReport } from './erasure-cleanup.ts';
import { addressesInSignalLog } from './redaction.ts';
import { ConsumerRequests, type RequestChannel } from './requests.ts';
import type { SubjectHasher } from './subjects.ts';
import { readTombstoneFile, storedTombstones, writeTombstone, type Tombstone } from './tombstones.ts';

/** The outbox topic of one recipient's notice. */
export const ERASURE_NOTICE_TOPIC = 'privacy.erasure.notice';

export interface ErasureNoticePayload {
  readonly erasure: string;
  readonly clientId: string;
  /** The erased user's id, the `sub` the client knew them by (OIDC Core section 2): the notice names no more. */
  readonly sub: string;
  readonly channel: 'uri' | 'ssf';
  /** The account-purged event's outbox key, for SSF receipts. */
  readonly signalSource: string;
}

/** Why an erasure was refused: the person is not there, or a legal hold stops it. */
export class ErasureRefusedError extends Error {
  override readonly name = 'ErasureRefusedError';
  readonly reason: 'not_found' | 'legal_hold';

  constructor(reason: 'not_found' | 'legal_hold', message: string) {
    super(message);
    this.reason = reason;
  }
}

export interface ErasureOptions {
  readonly durable: DurableStore;
  readonly identity: Pick<Identity, 'accounts' | 'secondFactor'>;
  readonly oauth: Pick<AuthorizationServer, 'logout'>;
  readonly events: DomainEvents;
  readonly clock: Clock;
  readonly subjects: SubjectHasher;
  readonly issuer: string;
  /** The signal stream's outbox topic (signals/transmitter.ts). */
  readonly signalsTopic: typeof SignalsTopic;
  /** Destroys the user's audit pseudonym key inside the transaction; resolves with the pseudonym it made, if any. */
  readonly forgetPseudonym: (records: RecordStore, userId: string) => Promise<string | null>;
  /** After the commit: drops the audit log's index rows of that pseudonym. */
  readonly dropPseudonymIndex?: (pseudonym: string) => Promise<unknown>;
  /** Whether a legal hold stops erasure of the user (GDPR Art. 17(3)(e)). */
  readonly onHold: (userId: string) => Promise<boolean>;
  readonly graceMs: number;
  readonly recipientDeadlineMs: number;
  readonly tombstoneFile: string | undefined;
  /** Wakes the outbox worker after a commit (serve only). */
  readonly kickOutbox?: () => void;
  /** How long a finished erasure keeps the user id for its last pass (erasure-cleanup.ts). */
  readonly settleMs: number;
  /** Told when the steps after the commit fail (the job retries them). */
  readonly onCleanupFailed?: (error: unknown) => void;
}

export interface ErasureContext {
  readonly channel: RequestChannel;
  /** `admin`, `cli`, `system`; absent when the person asked. */
  readonly actorService?: string;
  readonly requestId?: string;
  readonly traceId?: string;
  readonly ip?: string;
}

export type ErasureOutcome =
  | { readonly kind: 'scheduled'; readonly erasure: ErasureRecord }
  /** `cleanup` pending: the steps after the transaction failed; the privacy job finishes them (erasure-cleanup.ts). */
  | { readonly kind: 'erased'; readonly erasure: ErasureRecord; readonly cleanup: 'done' | 'pending' };

export class Erasures {
  readonly #options: ErasureOptions;
  readonly #requests: ConsumerRequests;
  readonly #cleanups: ErasureCleanups;

  constructor(options: ErasureOptions) {
    this.#options = options;
    this.#requests = new ConsumerRequests({ records: options.durable.records, clock: options.clock });
    this.#cleanups = new ErasureCleanups({
      durable: options.durable,
      identity: options.identity,
      oauth: options.oauth,
      clock: options.clock,
      ...(options.dropPseudonymIndex !== undefined && { dropPseudonymIndex: options.dropPseudonymIndex }),
      tombstoneFile: options.tombstoneFile,
      settleMs: options.settleMs,
      ...(options.onCleanupFailed !== undefined && { onFailed: options.onCleanupFailed }),
    });
  }

  /** The privacy job's part: clean-ups a crash or a failure left pending, and last passes that are due. */
  runCleanups(keepLease: () => Promise<boolean>): Promise<CleanupReport> {
    return this.#cleanups.runDue(keepLease);
  }

  /**
   * A person (or an administrator for them) asks for erasure. With a grace
   * period (privacy.erasureGraceDays) and `grace` true, it is scheduled:
   * the account stays usable and the person may cancel until it is due.
   * Otherwise it is carried out now.
   */
  async request(userId: string, context: ErasureContext, options: { grace: boolean }): Promise<ErasureOutcome> {
    const { durable, identity, clock, subjects, events, graceMs } = this.#options;
    const user = await identity.accounts.users.byId(userId);
    if (user === null) throw new ErasureRefusedError('not_found', 'no such user');
    const existing = await this.scheduledFor(userId);
    if (!options.grace || graceMs === 0) {
      try {
        // An erasure now carries out (and so closes) one that was waiting for its grace period.
        return await this.#execute(userId, context, existing?.id);
      } catch (error) {
        if (error instanceof ErasureRefusedError && error.reason === 'legal_hold') await this.#refused(userId, context);
        throw error;
      }
    }
    if (existing !== null) return { kind: 'scheduled', erasure: existing };
    // A held account is refused at the asking, not only when the grace period ends.
    if (await this.#options.onHold(userId)) {
      await this.#refused(userId, context);
      throw new ErasureRefusedError('legal_hold', 'a legal hold stops the erasure of this account');
    }
    const now = clock();
    const subject = subjects.ofUser(userId);
    const id = newErasureId();
    const { erasure, staged } = await durable.transaction(async (tx) => {
      const request = await this.#requests.on(tx.records).open('deletion', subject, context.channel, { erasure: id });
      const data: ErasureData = { subject, state: 'scheduled', userId, channel: context.channel, requestedAt: now, dueAt: now + graceMs, request: request.id, recipients: [] };
      await erasureRecords(tx.records).create(id, data);
      const staged = await events.stage(tx, [{ type: 'privacy.erasure.requested', outcome: 'success', actorUserId: userId, ...audit(context), detail: { erasure: id, dueAt: new Date(data.dueAt).toISOString() } }]);
      return { erasure: { id, ...data }, staged };
    });
    await staged.publish();
    return { kind: 'scheduled', erasure };
  }

  /**
   * A request a legal hold refused is still a request, answered: its record
   * says `refused` (CCPA regulations section 7101 keeps how each request was
   * answered), and the ledger has the refusal.
   */
  async #refused(userId: string, context: ErasureContext): Promise<void> {
    const { durable, subjects, events } = this.#options;
    const staged = await durable.transaction(async (tx) => {
      const requests = this.#requests.on(tx.records);
      const request = await requests.open('deletion', subjects.ofUser(userId), context.channel);
      await requests.answer(request.id, 'refused');
      return events.stage(tx, [{ type: 'privacy.erasure', outcome: 'denied', actorUserId: userId, ...audit(context), detail: { request: request.id, reason: 'legal_hold' } }]);
    });
    await staged.publish();
  }

  /** The person's scheduled erasure, if one waits. */
  async scheduledFor(userId: string): Promise<ErasureRecord | null> {
    const subject = this.#options.subjects.ofUser(userId);
    const found = (await erasureRecords(this.#options.durable.records).findAllBy('subject', subject)).find((record) => record.data.state === 'scheduled');
    return found === undefined ? null : { id: found.id, ...found.data };
  }

  /** Cancels the person's scheduled erasure. Resolves false when none was scheduled. */
  async cancel(userId: string, context: ErasureContext): Promise<boolean> {
    const scheduled = await this.scheduledFor(userId);
    if (scheduled === null) return false;
    const { durable, events } = this.#options;
    const staged = await durable.transaction(async (tx) => {
      const records = erasureRecords(tx.records);
      const current = await records.get(scheduled.id);
      if (current === null || current.data.state !== 'scheduled') return undefined;
      const cancelled: ErasureData = { ...current.data, state: 'cancelled' };
      // The account stays: the record no longer needs to name it.
      delete cancelled.userId;
      if ((await records.update(scheduled.id, current.version, cancelled)) === null) return undefined;
      await this.#requests.on(tx.records).answer(current.data.request, 'cancelled');
      return events.stage(tx, [{ type: 'privacy.erasure.cancelled', outcome: 'success', actorUserId: userId, ...audit(context), detail: { erasure: scheduled.id } }]);
    });
    await staged?.publish();
    return staged !== undefined;
  }

  /**
   * Carries out every scheduled erasure that is due (the privacy job).
   * `keepLease` is asked before each (false: the job's lease went to another
   * instance, which goes on from here). Resolves with how many were carried out.
   */
  async executeDue(keepLease: () => Promise<boolean> = async () => true): Promise<number> {
    const now = this.#options.clock();
    let done = 0;
    for (const record of await erasureRecords(this.#options.durable.records).findAllBy('phase', 'scheduled')) {
      if (record.data.state !== 'scheduled' || record.data.dueAt > now || record.data.userId === undefined) continue;
      if (!(await keepLease())) break;
      try {
        await this.#execute(record.data.userId, { channel: 'retention', actorService: 'system' }, record.id);
        done += 1;
      } catch (error) {
        if (!(error instanceof ErasureRefusedError)) throw error;
        // Held: it waits, still scheduled, for the hold to be released. Gone (deleted another way): the
        // request is answered and the record no longer names the account.
        if (error.reason === 'not_found') await this.#closeOrphan(record.id);
      }
    }
    return done;
  }

  /** A scheduled erasure whose account is already gone: executed as far as it can be, its request answered, the id dropped. */
  async #closeOrphan(id: string): Promise<void> {
    const { durable, clock } = this.#options;
    await durable.transaction(async (tx) => {
      const records = erasureRecords(tx.records);
      const current = await records.get(id);
      if (current === null || current.data.state !== 'scheduled') return;
      const closed: ErasureData = { ...current.data, state: 'executed', executedAt: clock() };
      delete closed.userId;
      if ((await records.update(id, current.version, closed)) === null) return;
      await this.#requests.on(tx.records).answer(current.data.request, 'fulfilled');
    });
  }

  async #execute(userId: string, context: ErasureContext, scheduledId: string | undefined): Promise<ErasureOutcome> {
    const { durable, identity, clock, subjects, events, issuer } = this.#options;
    if (await this.#options.onHold(userId)) throw new ErasureRefusedError('legal_hold', 'a legal hold stops the erasure of this account');
    const user = await identity.accounts.users.byId(userId);
    if (user === null) throw new ErasureRefusedError('not_found', 'no such user');
    const now = clock();
    const subject = subjects.ofUser(userId);
    const erasureId = scheduledId ?? newErasureId();
    const txn = randomUUID();
    const signalSource = `signal:${txn}`;
    const sessions = await identity.accounts.sessions.list(userId);
    const known = await this.#addressesOf(userId, user.email);

    const committed = await durable.transaction(async (tx) => {
      // The account's record is read locked for update, then deleted, and only the transaction that deleted it goes
      // on: a concurrent erasure of the same person waits for the lock, then finds no record, and commits nothing.
      // The lock also orders this erasure against an email change (its address is the one read here, not the one
      // read before the transaction) and against an authorization's guarded write (oauth/account-writes.ts).
      const locked = await tx.records.get<{ email?: unknown }>('users', userId, { lock: 'update' });
      if (locked === null || !(await tx.records.delete('users', userId))) return null;
      const email = typeof locked.data.email === 'string' ? locked.data.email : user.email;
      const tombstone: Tombstone = { user: subject, email: subjects.ofEmail(email), erasure: erasureId, at: now };
      // An email change that committed since the addresses were read: its address is the person's too.
      const addresses = known.addresses.includes(email.toLowerCase()) ? known.addresses : [...known.addresses, email.toLowerCase()];
      // The hold is read again here: one placed since the check above stops the erasure (the transaction rolls back).
      if ((await tx.records.get('privacy_holds', userId)) !== null) throw new ErasureRefusedError('legal_hold', 'a legal hold stops the erasure of this account');
      const recipients = await this.#recipients(tx.records, userId, now);
      for (const { container, locate } of deletedCollections()) {
        if (locate === 'id') await tx.records.delete(container, userId);
        else if (locate === 'email') {
          // The address read here, and the one read before (an email change in between): each only while it is still this person's.
          for (const address of new Set([email, user.email])) {
            const claim = await tx.records.get<{ userId?: unknown }>(container, address);
            if (claim !== null && (claim.data.userId === undefined || claim.data.userId === userId)) await tx.records.delete(container, address, claim.version);
          }
        }
        else for (const record of await allBy(tx.records, container, userId)) await tx.records.delete(container, record.id);
      }
      const pseudonym = await this.#options.forgetPseudonym(tx.records, userId);
      await writeTombstone(tx.records, tombstone);
      await this.#cleanups.begin(tx.records, { userId, ...known, addresses, sessionHandles: sessions.map((session) => session.handle), pseudonym, tombstone });
      const requests = this.#requests.on(tx.records);
      let requestId: string;
      const records = erasureRecords(tx.records);
      const scheduled = scheduledId === undefined ? null : await records.get(scheduledId);
      if (scheduled !== null && scheduled.data.state === 'scheduled') {
        requestId = scheduled.data.request;
        await requests.answer(requestId, 'fulfilled');
      } else {
        requestId = (await requests.open('deletion', subject, context.channel, { answered: true, erasure: tombstone.erasure })).id;
      }
      const data: ErasureData = {
        subject,
        state: 'executed',
        channel: scheduled?.data.channel ?? context.channel,
        requestedAt: scheduled?.data.requestedAt ?? now,
        dueAt: scheduled?.data.dueAt ?? now,
        executedAt: now,
        request: requestId,
        txn,
        recipients,
      };
      if (scheduled !== null) {
        if ((await records.update(scheduled.id, scheduled.version, data)) === null) throw new Error('the scheduled erasure changed while it was carried out');
      } else {
        await records.create(tombstone.erasure, data);
      }
      // RISC 1.0 section 2.4 account-purged to every stream, by the subject the clients know (iss_sub, no email left).
      const purged: OutboxSignalPayload = { txn, time: now, signals: [{ type: SECURITY_EVENT_TYPES.accountPurged, subject: { format: 'iss_sub', iss: issuer, sub: userId }, members: { event_timestamp: Math.floor(now / 1000) } }] };
      await tx.outbox.add({ topic: this.#options.signalsTopic, payload: purged, idempotencyKey: signalSource });
      for (const recipient of recipients) {
        if (recipient.channel === 'none') continue;
        const payload: ErasureNoticePayload = { erasure: tombstone.erasure, clientId: recipient.clientId, sub: userId, channel: recipient.channel, signalSource };
        await tx.outbox.add({ topic: ERASURE_NOTICE_TOPIC, payload, idempotencyKey: `privacy-erasure:${tombstone.erasure}:${recipient.clientId}` });
      }
      const staged = await events.stage(tx, [
        // user.deleted tells every instance's caches; its signal is the one queued above (signals/mapping.ts).
        { type: 'user.deleted', outcome: 'success', actorUserId: userId, ...audit(context), detail: { erasure: tombstone.erasure, sessionsEnded: sessions.length } },
        { type: 'privacy.erasure', outcome: 'success', ...audit(context), detail: { erasure: tombstone.erasure, request: requestId, recipients: recipients.length, unreachable: recipients.filter((recipient) => recipient.channel === 'none').length } },
      ]);
      return { staged, tombstone, erasure: { id: tombstone.erasure, ...data } };
    });
    if (committed === null) throw new ErasureRefusedError('not_found', 'no such user');
    await committed.staged.publish();
    this.#options.kickOutbox?.();
    // The clean-up record committed with the erasure: a failure here (the hot store down, a crash) leaves it for the privacy job.
    try {
      await this.#cleanups.finish(erasureId, { ...(context.requestId !== undefined && { requestId: context.requestId }), ...(context.ip !== undefined && { ip: context.ip }) });
      return { kind: 'erased', erasure: committed.erasure, cleanup: 'done' };
    } catch (error) {
      this.#options.onCleanupFailed?.(error);
      return { kind: 'erased', erasure: committed.erasure, cleanup: 'pending' };
    }
  }

  /**
   * Every address the person had, to cut out of shared records: the
   * account's, and earlier ones the signal log names with their id (an
   * identifier-changed event), which the account no longer knows. Read
   * before the transaction (the log can be long; history does not change
   * under it). An earlier address that another account holds now names
   * that person too: it is cut only from the entries that name this one
   * (`heldByOthers`), never from the other person's.
   */
  async #addressesOf(userId: string, email: string): Promise<{ addresses: string[]; heldByOthers: string[]; subjectKey: string }> {
    const { durable, identity, issuer } = this.#options;
    const key = subjectKey({ format: 'iss_sub', iss: issuer, sub: userId });
    const addresses = [email.toLowerCase()];
    const heldByOthers: string[] = [];
    for (const address of await addressesInSignalLog(durable.records, key)) {
      if (addresses.includes(address)) continue;
      const holder = await identity.accounts.users.byEmail(address);
      if (holder === null || holder.id === userId) addresses.push(address);
      else heldByOthers.push(address);
    }
    return { addresses, heldByOthers, subjectKey: key };
  }

  /**
   * Every client that received data about the user, and how each can be
   * told; read inside the erasure's transaction (`records`: its own), so a
   * client that received data up to the moment the records are deleted is
   * among them. The places are the data map's: `data_recipients`, and
   * `consents` and `refresh-families` (from before recipients were kept).
   */
  async #recipients(records: RecordStore, userId: string, now: number): Promise<RecipientNotice[]> {
    const { recipientDeadlineMs } = this.#options;
    const clientIds = new Set<string>();
    const clientOf = (data: unknown): unknown => (data as { clientId?: unknown; grant?: { clientId?: unknown } }).clientId ?? (data as { grant?: { clientId?: unknown } }).grant?.clientId;
    for (const container of ['data_recipients', 'consents', 'refresh-families']) {
      for (const record of await allBy(records, container, userId)) {
        const clientId = clientOf((record as { data?: unknown }).data);
        if (typeof clientId === 'string') clientIds.add(clientId);
      }
    }
    const notices: RecipientNotice[] = [];
    for (const clientId of [...clientIds].sort()) {
      const client = await records.get<{ erasure_notification_uri?: unknown }>(CLIENTS_COLLECTION, clientId);
      const hasStream = (await records.findBy('signal_streams', 'client', clientId, { limit: 1 })).length > 0;
      const channel = typeof client?.data.erasure_notification_uri === 'string' ? 'uri' : hasStream ? 'ssf' : 'none';
      notices.push({ clientId, channel, state: channel === 'none' ? 'no_channel' : 'pending', deadline: now + recipientDeadlineMs });
    }
    return notices;
  }

  /**
   * After a restore: erases again every account a tombstone names (by its
   * user id's or its email's keyed hash), from the database's tombstones
   * and the tombstone file's, and puts back into the database the
   * tombstones the restored copy had lost. Each is a full erasure, so the
   * recipients the backup brought back are told again.
   */
  async reapply(context: ErasureContext): Promise<{ erased: number; tombstones: number; restored: number; malformed: number }> {
    const { durable, identity, subjects, events, tombstoneFile } = this.#options;
    const stored = await storedTombstones(durable.records);
    const fromFile = tombstoneFile === undefined ? { tombstones: [], malformed: 0 } : await readTombstoneFile(tombstoneFile);
    const byUser = new Map<string, Tombstone>();
    for (const tombstone of [...stored, ...fromFile.tombstones]) byUser.set(tombstone.user, tombstone);
    let restored = 0;
    const storedUsers = new Set(stored.map((tombstone) => tombstone.user));
    for (const tombstone of fromFile.tombstones) {
      if (storedUsers.has(tombstone.user)) continue;
      await writeTombstone(durable.records, tombstone);
      storedUsers.add(tombstone.user);
      restored += 1;
    }
    let erased = 0;
    for (let after: string | undefined; ; ) {
      const page = await identity.accounts.users.list({ limit: 500, ...(after !== undefined && { after }) });
      for (const user of page) {
        // By the account's id only: an address erased once may since belong to a new account, which is not the erased one.
        if (!byUser.has(subjects.ofUser(user.id))) continue;
        try {
          await this.#execute(user.id, context, undefined);
          erased += 1;
        } catch (error) {
          if (!(error instanceof ErasureRefusedError)) throw error;
        }
      }
      if (page.length < 500) break;
      after = page.at(-1)!.id;
    }
    await events.emit({ type: 'privacy.reapplied', outcome: 'success', ...audit(context), detail: { erased, tombstones: byUser.size, restored, malformed: fromFile.malformed } });
    return { erased, tombstones: byUser.size, restored, malformed: fromFile.malformed };
  }

  /** One erasure's record. */
  async get(id: string): Promise<ErasureRecord | null> {
    const record = await erasureRecords(this.#options.durable.records).get(id);
    return record === null ? null : { id: record.id, ...record.data };
  }

  /** Every erasure, in id order (keyset pagination). */
  async list(options: { after?: string; limit?: number } = {}): Promise<ErasureRecord[]> {
    return (await erasureRecords(this.#options.durable.records).list(options)).map((record) => ({ id: record.id, ...record.data }));
  }

  /**
   * Marks the notices past their deadline overdue (each once) and announces
   * them (privacy.recipient.overdue); their delivery goes on being retried.
   */
  async flagOverdue(): Promise<number> {
    const { durable, clock, events } = this.#options;
    const now = clock();
    let flagged = 0;
    for (const record of await erasureRecords(durable.records).findAllBy('phase', 'notifying')) {
      for (const recipient of record.data.recipients) {
        if (recipient.state !== 'pending' || recipient.deadline > now) continue;
        const changed = await updateRecipient(durable.records, record.id, recipient.clientId, (notice) => (notice.state === 'pending' ? { ...notice, state: 'overdue', overdueAt: now } : null));
        if (changed === null) continue;
        flagged += 1;
        await events.emit({ type: 'privacy.recipient.overdue', outcome: 'failure', clientId: recipient.clientId, actorService: 'system', detail: { erasure: record.id, channel: recipient.channel, deadline: new Date(recipient.deadline).toISOString() } });
      }
    }
    return flagged;
  }
}

function audit(context: ErasureContext): { actorService?: string; requestId?: string; traceId?: string; ip?: string } {
  return {
    ...(context.actorService !== undefined && { actorService: context.actorService }),
    ...(context.requestId !== undefined && { requestId: context.requestId }),
    ...(context.traceId !== undefined && { traceId: context.traceId }),
    ...(context.ip !== undefined && { ip: context.ip }),
  };
}

/** The OAuth clients' collection (oauth/clients.ts), where a recipient's erasure_notification_uri is kept. */
const CLIENTS_COLLECTION = 'oauth_clients';

async function allBy(records: RecordStore, container: string, userId: string): Promise<{ id: string; data: unknown }[]> {
  const all: { id: string; data: unknown }[] = [];
  for (let after: string | undefined; ; ) {
    const page = await records.findBy(container, 'user', userId, { limit: 500, ...(after !== undefined && { after }) });
    all.push(...page);
    if (page.length < 500) return all;
    after = page.at(-1)!.id;
  }
}
