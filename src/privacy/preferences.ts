/**
 * The person's privacy choices: "do not sell or share my personal
 * information" (CCPA 1798.120, and Global Privacy Control as a valid
 * request to opt out, CCPA regulations section 7025) and consent per
 * purpose of processing (GDPR Art. 6(1)(a), 7).
 *
 * The current choices live on the user record (`users.privacy`), where the
 * authorization server reads them for the `privacy` scope's claims without
 * knowing this module. Every decision is also one record of the append-only
 * collection `privacy_consent_log` (GDPR Art. 7(1): the controller must be
 * able to show that the person consented, to what and when): never updated,
 * never deleted except by the person's erasure. The user record, the
 * decision's record, an opt-out's consumer request and the events' security
 * signals commit in one durable transaction; the audit entries follow the
 * commit (events.stage, then publish).
 */
import { randomBytes } from 'node:crypto';
import { Type, type Static } from '@sinclair/typebox';
import type { Config } from '../config/index.ts';
import type { DomainEvent, DomainEvents, StagedEmit } from '../events/index.ts';
import type { User, UserDirectory, UserPrivacy } from '../identity/index.ts';
import type { KeyVault } from '../crypto/index.ts';
import { collection, typeboxCodec, type Clock, type Collection, type DurableStore, type DurableTransactionRunner, type RecordStore } from '../store/index.ts';
import { ConsumerRequests } from './requests.ts';
import { subjectHasher, type SubjectHasher } from './subjects.ts';

/** The purpose id the opt-out's history uses in privacy_consent_log (`granted: true`: the opt-out is on). */
export const OPT_OUT_PURPOSE = 'sale_or_sharing_opt_out';
/** The opt-out has no configured version: its meaning is fixed by CCPA 1798.120. */
const OPT_OUT_VERSION = 1;

export type Purpose = Config['privacy']['purposes'][number];
export type OptOutSource = 'gpc' | 'account' | 'admin';
/** Where a consent decision was made: the account page, the page asked at sign-in, an administrator. */
export type ConsentSource = 'account' | 'sign-in' | 'admin';

/** Who acted and from where, for the audit entry; `actor`: an administrator's service name (absent when the person acted). */
export interface PreferenceAudit {
  readonly actor?: string;
  readonly requestId?: string;
  readonly traceId?: string;
  readonly ip?: string;
}

const ConsentRecordSchema = Type.Object({
  userId: Type.String(),
  /** A configured purpose id, or OPT_OUT_PURPOSE. */
  purpose: Type.String(),
  version: Type.Integer({ minimum: 1 }),
  granted: Type.Boolean(),
  at: Type.Number(),
  source: Type.String(),
});
type ConsentRecordData = Static<typeof ConsentRecordSchema>;
export type ConsentRecord = ConsentRecordData & { readonly id: string };

export const CONSENT_LOG = 'privacy_consent_log';

function consentLog(records: RecordStore): Collection<ConsentRecordData, 'user'> {
  return collection(records, { name: CONSENT_LOG, codec: typeboxCodec(ConsentRecordSchema), indexes: { user: (record) => record.userId } });
}

/** A choice the caller made wrongly (an unknown purpose, one that is not asked for consent): a 4xx, nothing changed. */
export class PreferenceError extends Error {
  override readonly name = 'PreferenceError';
  readonly code: 'unknown_purpose' | 'not_consent' | 'invalid_source';
  constructor(code: PreferenceError['code'], message: string) {
    super(message);
    this.code = code;
  }
}

/** The person's decision on a purpose, read as an own property only (a purpose id such as `constructor` must not find Object.prototype's). */
export function decisionOf(privacy: UserPrivacy | undefined, purposeId: string): { readonly version: number; readonly granted: boolean; readonly at: number; readonly source: string } | undefined {
  const consents = privacy?.consents;
  return consents !== undefined && Object.hasOwn(consents, purposeId) ? consents[purposeId] : undefined;
}

/** One purpose as the pages show it: its configuration and the person's decision, `current` when it was made at the purpose's version. */
export interface PurposeState {
  readonly purpose: Purpose;
  readonly decision?: { readonly version: number; readonly granted: boolean; readonly at: number };
  readonly current: boolean;
}

export class PrivacyPreferences {
  readonly #transaction: DurableTransactionRunner;
  readonly #users: UserDirectory;
  readonly #events: DomainEvents;
  readonly #requests: ConsumerRequests;
  readonly #subjects: SubjectHasher;
  readonly #purposes: readonly Purpose[];
  readonly #clock: Clock;
  readonly #records: RecordStore;

  constructor(options: { records: RecordStore; transaction: DurableTransactionRunner; users: UserDirectory; events: DomainEvents; requests: ConsumerRequests; subjects: SubjectHasher; purposes: readonly Purpose[]; clock: Clock }) {
    this.#records = options.records;
    this.#transaction = options.transaction;
    this.#users = options.users;
    this.#events = options.events;
    this.#requests = options.requests;
    this.#subjects = options.subjects;
    this.#purposes = options.purposes;
    this.#clock = options.clock;
  }

  /** The configured purposes, in configuration order. */
  get purposes(): readonly Purpose[] {
    return this.#purposes;
  }

  /** Whether "do not sell or share" is on for the user. */
  optedOut(user: Pick<User, 'privacy'>): boolean {
    return user.privacy?.optOut !== undefined;
  }

  /** Every configured purpose with the person's decision. */
  purposesOf(user: Pick<User, 'privacy'>): PurposeState[] {
    return this.#purposes.map((purpose) => {
      const decision = decisionOf(user.privacy, purpose.id);
      return { purpose, ...(decision !== undefined && { decision: { version: decision.version, granted: decision.granted, at: decision.at } }), current: decision?.version === purpose.version };
    });
  }

  /**
   * The purposes to ask the person about at sign-in: those whose legal
   * basis is consent (GDPR Art. 6(1)(a)) and that have no decision of theirs
   * at the purpose's current version. A new version is a new purpose text,
   * and consent to the old text is not consent to it (GDPR Art. 7(2), EDPB
   * Guidelines 05/2020 on consent, 3.3.1).
   */
  pending(user: Pick<User, 'privacy'>): Purpose[] {
    return this.#purposes.filter((purpose) => purpose.legalBasis === 'consent' && decisionOf(user.privacy, purpose.id)?.version !== purpose.version);
  }

  /**
   * Turns "do not sell or share" on or off. On, it is also a consumer
   * request to opt out, answered at once (CCPA regulations section 7026(f):
   * comply as soon as feasibly possible); a Global Privacy Control signal can
   * only turn it on (section 7025(b)). Resolves whether it changed: a
   * second identical change (a double submit, GPC on every page) records
   * nothing.
   */
  async setOptOut(userId: string, on: boolean, source: OptOutSource, audit: PreferenceAudit = {}): Promise<boolean> {
    if (!on && source === 'gpc') throw new PreferenceError('invalid_source', 'a Global Privacy Control signal only opts out');
    const at = this.#clock();
    const staged = await this.#transaction(async (tx) => {
      const { changed } = await this.#users.on(tx.records).changePrivacy(userId, (current) => {
        if ((current.optOut !== undefined) === on) return null;
        if (on) return { ...current, optOut: { at, source } };
        const rest = { ...current };
        delete rest.optOut;
        return rest;
      });
      if (!changed) return undefined;
      await appendDecision(tx.records, { userId, purpose: OPT_OUT_PURPOSE, version: OPT_OUT_VERSION, granted: on, at, source });
      const request = on ? await this.#requests.on(tx.records).open('opt_out', this.#subjects.ofUser(userId), source, { answered: true }) : undefined;
      const event: DomainEvent = {
        type: 'privacy.opt_out.changed',
        outcome: 'success',
        actorUserId: userId,
        time: at,
        ...context(audit),
        detail: { optOut: on, source, ...(request !== undefined && { request: request.id }) },
      };
      return this.#events.stage(tx, [event]);
    });
    await staged?.publish();
    return staged !== undefined;
  }

  /**
   * Records decisions on purposes whose legal basis is consent, each at the
   * purpose's current version, in one transaction: all of them or none (an
   * unknown purpose, or one not based on consent, refuses the whole list
   * before anything is written). A decision equal to the current one (same
   * version, same answer) records nothing. Resolves with how many changed.
   */
  async decide(userId: string, decisions: readonly { readonly purpose: string; readonly granted: boolean }[], source: ConsentSource, audit: PreferenceAudit = {}): Promise<number> {
    const checked = decisions.map((decision) => ({ purpose: this.#consentPurpose(decision.purpose), granted: decision.granted }));
    if (checked.length === 0) return 0;
    const at = this.#clock();
    const outcome = await this.#transaction(async (tx) => {
      let changes: { purpose: Purpose; granted: boolean }[] = [];
      await this.#users.on(tx.records).changePrivacy(userId, (current) => {
        // Decided again on every attempt of the compare-and-set: a lost race sees the winner's choices.
        changes = [];
        const consents = { ...current.consents };
        for (const { purpose, granted } of checked) {
          const previous = decisionOf({ consents }, purpose.id);
          if (previous?.version === purpose.version && previous.granted === granted) continue;
          Object.defineProperty(consents, purpose.id, { value: { version: purpose.version, granted, at, source }, enumerable: true, writable: true, configurable: true });
          changes = [...changes.filter((change) => change.purpose.id !== purpose.id), { purpose, granted }];
        }
        return changes.length === 0 ? null : { ...current, consents };
      });
      if (changes.length === 0) return { count: 0, staged: undefined as StagedEmit | undefined };
      for (const { purpose, granted } of changes) await appendDecision(tx.records, { userId, purpose: purpose.id, version: purpose.version, granted, at, source });
      const events: DomainEvent[] = changes.map(({ purpose, granted }) => ({
        type: 'privacy.consent.changed',
        outcome: 'success',
        actorUserId: userId,
        time: at,
        ...context(audit),
        detail: { purpose: purpose.id, version: purpose.version, granted, source },
      }));
      return { count: changes.length, staged: await this.#events.stage(tx, events) };
    });
    await outcome.staged?.publish();
    return outcome.count;
  }

  /** The person's decisions, oldest first: the proof of consent (GDPR Art. 7(1)) and of each opt-out. */
  async history(userId: string): Promise<ConsentRecord[]> {
    const records = await consentLog(this.#records).findAllBy('user', userId);
    return records.map((record) => ({ id: record.id, ...record.data })).sort((a, b) => a.at - b.at || (a.id < b.id ? -1 : 1));
  }

  #consentPurpose(id: string): Purpose {
    const purpose = this.#purposes.find((candidate) => candidate.id === id);
    if (purpose === undefined) throw new PreferenceError('unknown_purpose', `there is no purpose "${id.slice(0, 40)}"`);
    // GDPR Art. 6(1): only processing based on consent is the person's to grant or withdraw; the other bases do not ask.
    if (purpose.legalBasis !== 'consent') throw new PreferenceError('not_consent', `the purpose "${purpose.id}" is not based on consent`);
    return purpose;
  }
}

/** Appends one decision; a record is never rewritten (a fresh random id: `create` refuses an existing one). */
async function appendDecision(records: RecordStore, data: ConsentRecordData): Promise<void> {
  const id = await consentLog(records).createWithFreshId(() => `pc_${randomBytes(12).toString('base64url')}`, data, 3);
  if (id === null) throw new Error('no free id for a consent record');
}

function context(audit: PreferenceAudit): Pick<DomainEvent, 'actorService' | 'requestId' | 'traceId' | 'ip'> {
  return {
    ...(audit.actor !== undefined && { actorService: audit.actor }),
    ...(audit.requestId !== undefined && { requestId: audit.requestId }),
    ...(audit.traceId !== undefined && { traceId: audit.traceId }),
    ...(audit.ip !== undefined && { ip: audit.ip }),
  };
}

/** The preferences of a running instance, over its durable store. */
export function createPrivacyPreferences(options: { purposes: readonly Purpose[]; durable: Pick<DurableStore, 'records' | 'transaction'>; users: UserDirectory; events: DomainEvents; vault: Pick<KeyVault, 'derive'>; clock: Clock }): PrivacyPreferences {
  const { durable, clock } = options;
  return new PrivacyPreferences({
    records: durable.records,
    transaction: (fn) => durable.transaction(fn),
    users: options.users,
    events: options.events,
    requests: new ConsumerRequests({ records: durable.records, clock }),
    subjects: subjectHasher(options.vault),
    purposes: options.purposes,
    clock,
  });
}
