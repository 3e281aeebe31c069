/**
 * Consumer requests and their legal deadlines. Every request a person (or an
 * administrator on their behalf) makes about their data is one record:
 * access (GDPR Art. 15, CCPA 1798.110), deletion (Art. 17, 1798.105),
 * correction (Art. 16, 1798.106) and opt-out of sale or sharing (1798.120).
 *
 * CCPA regulations section 7021: a request to know, delete or correct is
 * confirmed within 10 business days and answered within 45 calendar days.
 * Self-service requests are confirmed and answered at once; one that waits
 * (an erasure in its grace period) is flagged when a deadline passes. The
 * record names the person by a keyed hash, so it outlives an erasure
 * without naming them (it is the proof the request was honoured).
 */
import { randomBytes } from 'node:crypto';
import { Type, type Static } from '@sinclair/typebox';
import { collection, keep, typeboxCodec, write, type Clock, type Collection, type RecordStore } from '../store/index.ts';

export const REQUEST_KINDS = ['access', 'deletion', 'correction', 'opt_out'] as const;
export type RequestKind = (typeof REQUEST_KINDS)[number];

/** Where the request came from. */
export type RequestChannel = 'account' | 'cli' | 'admin' | 'gpc' | 'retention';

const DAY_MS = 24 * 60 * 60_000;
/** CCPA regulations section 7021(a): confirm within 10 business days. */
export const CONFIRM_BUSINESS_DAYS = 10;
/** CCPA regulations section 7021(b): answer within 45 calendar days. */
export const ANSWER_DAYS = 45;

const RequestSchema = Type.Object({
  kind: Type.Union(REQUEST_KINDS.map((kind) => Type.Literal(kind))),
  /** Keyed hash of the user id (subjects.ts). */
  subject: Type.String(),
  channel: Type.String(),
  receivedAt: Type.Number(),
  confirmBy: Type.Number(),
  answerBy: Type.Number(),
  confirmedAt: Type.Optional(Type.Number()),
  answeredAt: Type.Optional(Type.Number()),
  /** How it was answered: `fulfilled`, `cancelled` (the person withdrew it), `refused` (a legal hold). */
  outcome: Type.Optional(Type.Union([Type.Literal('fulfilled'), Type.Literal('cancelled'), Type.Literal('refused')])),
  /** When each deadline was seen passed unanswered (flagged once). */
  overdue: Type.Optional(Type.Object({ confirm: Type.Optional(Type.Number()), answer: Type.Optional(Type.Number()) })),
  /** The erasure this deletion request became (privacy_erasures id). */
  erasure: Type.Optional(Type.String()),
});
export type ConsumerRequest = Static<typeof RequestSchema> & { readonly id: string };
type RequestData = Static<typeof RequestSchema>;

const MUTATE = { attempts: 8, exhausted: () => { throw new Error('privacy request changed concurrently too often'); } } as const;

function requests(records: RecordStore): Collection<RequestData, 'subject'> {
  return collection(records, { name: 'privacy_requests', codec: typeboxCodec(RequestSchema), indexes: { subject: (request) => request.subject } });
}

/** `from` plus `days` business days (Monday to Friday; public holidays are the operator's to add). */
export function addBusinessDays(from: number, days: number): number {
  let at = from;
  let left = days;
  while (left > 0) {
    at += DAY_MS;
    const weekday = new Date(at).getUTCDay();
    if (weekday !== 0 && weekday !== 6) left -= 1;
  }
  return at;
}

export function deadlinesOf(receivedAt: number): { confirmBy: number; answerBy: number } {
  return { confirmBy: addBusinessDays(receivedAt, CONFIRM_BUSINESS_DAYS), answerBy: receivedAt + ANSWER_DAYS * DAY_MS };
}

export class ConsumerRequests {
  readonly #records: RecordStore;
  readonly #clock: Clock;

  constructor(options: { records: RecordStore; clock: Clock }) {
    this.#records = options.records;
    this.#clock = options.clock;
  }

  /** The same requests over a transaction's records. */
  on(records: RecordStore): ConsumerRequests {
    return new ConsumerRequests({ records, clock: this.#clock });
  }

  /**
   * Records a request. `answered`: it was fulfilled there and then
   * (self-service), so it is confirmed and answered at its receipt.
   */
  async open(kind: RequestKind, subject: string, channel: RequestChannel, options: { answered?: boolean; erasure?: string } = {}): Promise<ConsumerRequest> {
    const now = this.#clock();
    const id = `pr_${randomBytes(12).toString('base64url')}`;
    const data: RequestData = {
      kind,
      subject,
      channel,
      receivedAt: now,
      ...deadlinesOf(now),
      // A request the system acknowledges on receipt (a page or a command that answers) is confirmed then.
      confirmedAt: now,
      ...(options.answered === true && { answeredAt: now, outcome: 'fulfilled' as const }),
      ...(options.erasure !== undefined && { erasure: options.erasure }),
    };
    await requests(this.#records).create(id, data);
    return { id, ...data };
  }

  /** Marks a request answered (fulfilled, cancelled or refused). Resolves false when it was already answered or is unknown. */
  async answer(id: string, outcome: 'fulfilled' | 'cancelled' | 'refused'): Promise<boolean> {
    const now = this.#clock();
    const { result } = await requests(this.#records).mutate(
      id,
      (current) => (current === null || current.data.answeredAt !== undefined ? keep(false) : write({ ...current.data, answeredAt: now, outcome }, true)),
      MUTATE,
    );
    return result;
  }

  async get(id: string): Promise<ConsumerRequest | null> {
    const record = await requests(this.#records).get(id);
    return record === null ? null : { id: record.id, ...record.data };
  }

  /** The person's requests, oldest first. */
  async ofSubject(subject: string): Promise<ConsumerRequest[]> {
    return (await requests(this.#records).findAllBy('subject', subject)).map((record) => ({ id: record.id, ...record.data })).sort((a, b) => a.receivedAt - b.receivedAt);
  }

  /** Every request, in id order (keyset pagination). */
  async list(options: { after?: string; limit?: number } = {}): Promise<ConsumerRequest[]> {
    return (await requests(this.#records).list(options)).map((record) => ({ id: record.id, ...record.data }));
  }

  /**
   * Flags the open requests whose deadline passed (each deadline once) and
   * resolves with what was newly flagged, for the caller to announce.
   */
  async flagOverdue(): Promise<{ request: ConsumerRequest; deadline: 'confirm' | 'answer' }[]> {
    const now = this.#clock();
    const flagged: { request: ConsumerRequest; deadline: 'confirm' | 'answer' }[] = [];
    for (let after: string | undefined; ; ) {
      const page = await requests(this.#records).list({ limit: 500, ...(after !== undefined && { after }) });
      for (const record of page) {
        const data = record.data;
        if (data.answeredAt !== undefined) continue;
        const confirmLate = data.confirmedAt === undefined && now > data.confirmBy && data.overdue?.confirm === undefined;
        const answerLate = now > data.answerBy && data.overdue?.answer === undefined;
        if (!confirmLate && !answerLate) continue;
        const { record: updated, written } = await requests(this.#records).mutate(
          record.id,
          (current) => {
            if (current === null || current.data.answeredAt !== undefined) return keep(undefined);
            const overdue = { ...current.data.overdue, ...(confirmLate && { confirm: now }), ...(answerLate && { answer: now }) };
            return write({ ...current.data, overdue });
          },
          MUTATE,
        );
        if (!written || updated === null) continue;
        const request = { id: record.id, ...updated.data };
        if (confirmLate) flagged.push({ request, deadline: 'confirm' });
        if (answerLate) flagged.push({ request, deadline: 'answer' });
      }
      if (page.length < 500) break;
      after = page.at(-1)!.id;
    }
    return flagged;
  }
}
