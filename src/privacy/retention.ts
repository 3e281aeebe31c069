/**
 * Retention rules (GDPR Art. 5(1)(e), storage limitation), run by the privacy
 * job after the due erasures, each skipping people on legal hold (Art. 17(3)(e)):
 *
 * - inactive accounts (privacy.retention.inactiveAccountDays N): an account
 *   nobody used for N - inactiveNoticeDays days gets one notice email; once
 *   the mail is out for inactiveNoticeDays and the account has been unused
 *   for N days, it is erased like any other erasure (channel `retention`).
 *   Signing in after the notice voids it. Without mail.smtpUrl nobody can be
 *   told, so nobody is erased by this rule;
 * - sessions (privacy.retention.sessionDays M): sessions signed in more than
 *   M days ago end (with their tokens and back-channel logout) and are dropped;
 * - IP addresses (privacy.retention.ipPseudonymiseDays K): the IP kept with a
 *   session older than K days becomes a keyed pseudonym (`ip-` and 16 hex
 *   digits of an HMAC under the vault's `stored-ip-pseudonyms` key): the same
 *   network still reads as the same on the account page, and names no address.
 *
 * Users are visited in id order, a page at a time (keyset pagination), so
 * memory stays flat however many there are; the job's lease is renewed
 * between pages and the run stops where it is if the lease was lost.
 *
 * `privacy_retention/<user id>`: when the person's notice was queued and when
 * the SMTP server took it (listed in the data map; erased with the account).
 */
import { createHmac } from 'node:crypto';
import { Type, type Static } from '@sinclair/typebox';
import type { DomainEvents } from '../events/index.ts';
import { lastActivityOf, type Identity, type User } from '../identity/index.ts';
import type { AuthorizationServer } from '../oauth/index.ts';
import { collection, keep, typeboxCodec, write, type Clock, type Collection, type DurableStore, type OutboxDelivery, type RecordStore } from '../store/index.ts';
import { ErasureRefusedError, type Erasures } from './erasure.ts';
import type { LegalHolds } from './holds.ts';
import { NOTICE_EMAIL_TOPIC, type NoticeEmailPayload } from './mail.ts';

const DAY_MS = 24 * 60 * 60_000;
const PAGE_SIZE = 500;
/** Users of a page handled at once: enough to hide store round trips, few enough not to crowd out requests. */
const CONCURRENCY = 16;
const NOTICE_KEY_PREFIX = 'inactive-notice.';

const NoticeSchema = Type.Object({
  /** When the notice was queued (ms). */
  noticedAt: Type.Number(),
  /** When the SMTP server took it (ms): the notice period runs from here. */
  sentAt: Type.Optional(Type.Number()),
});
export type InactivityNotice = Static<typeof NoticeSchema>;

function notices(records: RecordStore): Collection<InactivityNotice> {
  return collection(records, { name: 'privacy_retention', codec: typeboxCodec(NoticeSchema) });
}

export interface RetentionRules {
  readonly inactiveAccountDays: number;
  readonly inactiveNoticeDays: number;
  readonly sessionDays: number;
  readonly ipPseudonymiseDays: number;
}

export interface RetentionOptions {
  readonly durable: DurableStore;
  readonly identity: Pick<Identity, 'accounts'>;
  readonly oauth: Pick<AuthorizationServer, 'logout'>;
  readonly events: DomainEvents;
  readonly clock: Clock;
  readonly erasures: Pick<Erasures, 'request'>;
  readonly holds: Pick<LegalHolds, 'isHeld'>;
  readonly rules: RetentionRules;
  /** Whether notices can be sent (mail.smtpUrl is set). */
  readonly mail: boolean;
  /** The key of stored-IP pseudonyms (vault purpose `stored-ip-pseudonyms`). */
  readonly ipKey: Uint8Array;
  readonly issuer: string;
  readonly kickOutbox?: () => void;
  readonly pageSize?: number;
}

/** What one run did: counts only (the ledger's `privacy.retention.ran` detail). */
export interface RetentionReport {
  /** Users, sessions and notice records read. */
  readonly recordsScanned: number;
  readonly inactiveNoticed: number;
  /** Inactive users due a notice that could not be given (no mail.smtpUrl). */
  readonly inactiveUnnoticed: number;
  readonly inactiveErased: number;
  /** Notices voided by a sign-in since. */
  readonly noticesVoided: number;
  readonly sessionsDropped: number;
  readonly ipsPseudonymised: number;
  /** Users a rule would have touched, left alone for their legal hold. */
  readonly held: number;
  /** Whether notices can be sent (mail.smtpUrl); without, the inactivity rule erases nobody. */
  readonly noticeMail: boolean;
  /** False when the run stopped early because the job's lease was lost. */
  readonly complete: boolean;
}

type Counts = { -readonly [K in keyof RetentionReport as RetentionReport[K] extends number ? K : never]: number };

/** The pseudonym of a stored IP address: keyed, so nobody without the key can try the address space against it. */
export function ipPseudonym(key: Uint8Array, ip: string): string {
  return `ip-${createHmac('sha256', key).update(ip).digest('hex').slice(0, 16)}`;
}

const PSEUDONYM = /^ip-[0-9a-f]{16}$/;

export function isIpPseudonym(value: string): boolean {
  return PSEUDONYM.test(value);
}

/** The outbox key of a notice: names the user and the notice, and is a dot-atom (its Message-ID, mail.ts). */
function noticeKey(userId: string, noticedAt: number): string {
  return `${NOTICE_KEY_PREFIX}${userId}.${noticedAt}`;
}

function parseNoticeKey(key: string): { userId: string; noticedAt: number } | null {
  const match = /^inactive-notice\.([A-Za-z0-9_-]+)\.(\d+)$/.exec(key);
  return match === null ? null : { userId: match[1]!, noticedAt: Number(match[2]) };
}

export class Retention {
  readonly #options: RetentionOptions;

  constructor(options: RetentionOptions) {
    this.#options = options;
  }

  /** Whether any rule is on. */
  get active(): boolean {
    const { rules } = this.#options;
    return rules.inactiveAccountDays > 0 || rules.sessionDays > 0 || rules.ipPseudonymiseDays > 0;
  }

  /**
   * One pass of every rule. `keepLease` is asked between pages whether the
   * job still holds its lease (and renews it); when it no longer does, the
   * run stops and reports itself incomplete.
   */
  async run(keepLease: () => Promise<boolean> = async () => true): Promise<RetentionReport> {
    const counts: Counts = { recordsScanned: 0, inactiveNoticed: 0, inactiveUnnoticed: 0, inactiveErased: 0, noticesVoided: 0, sessionsDropped: 0, ipsPseudonymised: 0, held: 0 };
    let complete = true;
    if (this.active) {
      const now = this.#options.clock();
      complete = (await this.#voidNotices(counts, keepLease)) && (await this.#visitUsers(now, counts, keepLease));
    }
    return { ...counts, noticeMail: this.#options.mail, complete };
  }

  /** The outbox deliverer's callback: the SMTP server took a notice, so its notice period starts now. */
  async noticeSent(message: OutboxDelivery): Promise<void> {
    const parsed = parseNoticeKey(message.idempotencyKey);
    if (parsed === null) return;
    const now = this.#options.clock();
    await notices(this.#options.durable.records).mutate(
      parsed.userId,
      // Only the notice this message was: a newer one (after a sign-in) has its own message.
      (current) => (current === null || current.data.noticedAt !== parsed.noticedAt || current.data.sentAt !== undefined ? keep(undefined) : write({ ...current.data, sentAt: now })),
      { attempts: 3, exhausted: () => undefined },
    );
  }

  /**
   * Drops notices a sign-in voided (the account is in use again), so the
   * record of a notice lasts no longer than the notice does. Notice records
   * are few: one per inactive account noticed.
   */
  async #voidNotices(counts: Counts, keepLease: () => Promise<boolean>): Promise<boolean> {
    const { durable, identity } = this.#options;
    const collection = notices(durable.records);
    for (let after: string | undefined; ; ) {
      const page = await collection.list({ limit: this.#pageSize, ...(after !== undefined && { after }) });
      counts.recordsScanned += page.length;
      for (const record of page) {
        const user = await identity.accounts.users.byId(record.id);
        if (user !== null && lastActivityOf(user) <= record.data.noticedAt) continue;
        if (await collection.delete(record.id, record.version)) counts.noticesVoided += user === null ? 0 : 1;
      }
      if (page.length < this.#pageSize) return true;
      after = page.at(-1)!.id;
      if (!(await keepLease())) return false;
    }
  }

  async #visitUsers(now: number, counts: Counts, keepLease: () => Promise<boolean>): Promise<boolean> {
    const users = this.#options.identity.accounts.users;
    for (let after: string | undefined; ; ) {
      const page = await users.list({ limit: this.#pageSize, ...(after !== undefined && { after }) });
      counts.recordsScanned += page.length;
      let next = 0;
      const worker = async () => {
        while (next < page.length) await this.#visit(page[next++]!, now, counts);
      };
      await Promise.all(Array.from({ length: Math.min(CONCURRENCY, page.length) }, worker));
      if (page.length < this.#pageSize) return true;
      after = page.at(-1)!.id;
      if (!(await keepLease())) return false;
    }
  }

  get #pageSize(): number {
    return this.#options.pageSize ?? PAGE_SIZE;
  }

  /** Every rule for one user; the hold is looked up only when a rule has something to do. */
  async #visit(user: User, now: number, counts: Counts): Promise<void> {
    let held: boolean | undefined;
    const isHeld = async (): Promise<boolean> => {
      if (held === undefined) {
        held = await this.#options.holds.isHeld(user.id);
        if (held) counts.held += 1;
      }
      return held;
    };
    if (await this.#inactive(user, now, counts, isHeld)) return;
    await this.#sessions(user, now, counts, isHeld);
  }

  /** The inactivity rule; resolves true when the account was erased (nothing else left to do). */
  async #inactive(user: User, now: number, counts: Counts, isHeld: () => Promise<boolean>): Promise<boolean> {
    const { rules, durable, erasures } = this.#options;
    if (rules.inactiveAccountDays === 0) return false;
    const activity = lastActivityOf(user);
    const idle = now - activity;
    if (idle < (rules.inactiveAccountDays - rules.inactiveNoticeDays) * DAY_MS) return false;
    if (await isHeld()) return false;
    const record = await notices(durable.records).get(user.id);
    counts.recordsScanned += record === null ? 0 : 1;
    // A sign-in after the notice voids it (#voidNotices dropped it unless it happened during this run).
    if (record === null || record.data.noticedAt < activity) {
      if (!this.#options.mail) counts.inactiveUnnoticed += 1;
      else if (await this.#notify(user, activity, now)) counts.inactiveNoticed += 1;
      return false;
    }
    const sentAt = record.data.sentAt;
    // The notice period runs from when the mail went out: a notice still in the outbox has given no notice yet.
    if (sentAt === undefined || now - sentAt < rules.inactiveNoticeDays * DAY_MS || idle < rules.inactiveAccountDays * DAY_MS) return false;
    try {
      await erasures.request(user.id, { channel: 'retention', actorService: 'system' }, { grace: false });
      counts.inactiveErased += 1;
      return true;
    } catch (error) {
      if (!(error instanceof ErasureRefusedError)) throw error;
      // A hold placed since it was looked up; or an account erased meanwhile.
      if (error.reason === 'legal_hold') counts.held += 1;
      return error.reason === 'not_found';
    }
  }

  /** Queues the notice email with the record of it, in one transaction. Resolves false when the account changed meanwhile. */
  async #notify(user: User, activity: number, now: number): Promise<boolean> {
    const { durable, identity, rules, issuer } = this.#options;
    const queued = await durable.transaction(async (tx) => {
      const current = await identity.accounts.users.on(tx.records).byId(user.id);
      if (current === null || lastActivityOf(current) !== activity) return false;
      const collection = notices(tx.records);
      const existing = await collection.get(user.id);
      const value: InactivityNotice = { noticedAt: now };
      const stored = existing === null ? await collection.create(user.id, value) : (await collection.update(user.id, existing.version, value)) !== null;
      if (!stored) return false;
      const payload: NoticeEmailPayload = noticeEmail(current.email, issuer, activity, now + rules.inactiveNoticeDays * DAY_MS);
      await tx.outbox.add({ topic: NOTICE_EMAIL_TOPIC, payload, idempotencyKey: noticeKey(user.id, now) });
      return true;
    });
    if (queued) this.#options.kickOutbox?.();
    return queued;
  }

  /** The session rules: end and drop old sessions, pseudonymise the IPs of the others past their age. */
  async #sessions(user: User, now: number, counts: Counts, isHeld: () => Promise<boolean>): Promise<void> {
    const { rules, identity, oauth, events } = this.#options;
    if (rules.sessionDays === 0 && rules.ipPseudonymiseDays === 0) return;
    const manager = identity.accounts.sessions;
    const sessions = await manager.list(user.id);
    counts.recordsScanned += sessions.length;
    const drop = sessions.filter((session) => rules.sessionDays > 0 && now - session.createdAt > rules.sessionDays * DAY_MS);
    const pseudonymise = sessions.filter((session) => !drop.includes(session) && rules.ipPseudonymiseDays > 0 && now - session.createdAt > rules.ipPseudonymiseDays * DAY_MS && !isIpPseudonym(session.ip));
    if ((drop.length === 0 && pseudonymise.length === 0) || (await isHeld())) return;
    for (const session of drop) {
      if (!(await manager.revoke(user.id, session.handle))) continue;
      // Its tokens end with it, and the applications it signed in to are told (OIDC Back-Channel Logout).
      await oauth.logout.sessionEnded({ userId: user.id, sessionHandle: session.handle }, {});
      await events.emit({ type: 'session.revoked', outcome: 'success', actorUserId: user.id, actorService: 'system', detail: { reason: 'retention', session: session.handle.slice(0, 12) } });
      counts.sessionsDropped += 1;
    }
    for (const session of pseudonymise) {
      if (await manager.rewriteIp(session.handle, (ip) => (isIpPseudonym(ip) ? null : ipPseudonym(this.#options.ipKey, ip)))) counts.ipsPseudonymised += 1;
    }
  }
}

/** The notice: what will happen, when, why, and how to keep the account. */
function noticeEmail(to: string, issuer: string, lastActivity: number, erasableFrom: number): NoticeEmailPayload {
  const host = new URL(issuer).host;
  const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);
  return {
    to,
    subject: `Your account at ${host} will be deleted for inactivity`,
    text: [
      `Nobody has signed in to the account ${to} at ${host} since ${day(lastActivity)}.`,
      '',
      `Accounts unused for this long are deleted with their data. Unless you sign in, your account will be deleted on or after ${day(erasableFrom)}.`,
      '',
      `To keep it, sign in at ${issuer.replace(/\/+$/, '')}/login before then.`,
      '',
      'If you do not want the account any more, you need not do anything.',
    ].join('\n'),
  };
}
