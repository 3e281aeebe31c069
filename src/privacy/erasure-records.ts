/**
 * The record of one erasure (`privacy_erasures/<id>`): when it was asked
 * and carried out, and each recipient's notice (GDPR Art. 19) with its
 * deadline and state. It names the person only by a keyed hash, except
 * while a grace period runs (the account still exists then, and the job
 * needs its id to carry the erasure out).
 */
import { randomBytes } from 'node:crypto';
import { Type, type Static } from '@sinclair/typebox';
import { collection, keep, typeboxCodec, write, type Collection, type RecordStore } from '../store/index.ts';

export const RECIPIENT_STATES = ['pending', 'delivered', 'overdue', 'no_channel', 'gone'] as const;
export type RecipientState = (typeof RECIPIENT_STATES)[number];

const RecipientSchema = Type.Object({
  clientId: Type.String(),
  /** `uri`: the client's erasure_notification_uri; `ssf`: its signal streams; `none`: no way to tell it (shown to the operator). */
  channel: Type.Union([Type.Literal('uri'), Type.Literal('ssf'), Type.Literal('none')]),
  state: Type.Union(RECIPIENT_STATES.map((state) => Type.Literal(state))),
  deadline: Type.Number(),
  deliveredAt: Type.Optional(Type.Number()),
  overdueAt: Type.Optional(Type.Number()),
});
export type RecipientNotice = Static<typeof RecipientSchema>;

const ErasureSchema = Type.Object({
  /** Keyed hash of the user id. */
  subject: Type.String(),
  state: Type.Union([Type.Literal('scheduled'), Type.Literal('cancelled'), Type.Literal('executed')]),
  /** The user id, only while scheduled. */
  userId: Type.Optional(Type.String()),
  channel: Type.String(),
  requestedAt: Type.Number(),
  dueAt: Type.Number(),
  executedAt: Type.Optional(Type.Number()),
  /** The consumer request (privacy_requests) this erasure answers. */
  request: Type.String(),
  /** The txn of the account-purged security event (RFC 8417 section 2.2), for SSF recipients. */
  txn: Type.Optional(Type.String()),
  recipients: Type.Array(RecipientSchema),
});
export type ErasureData = Static<typeof ErasureSchema>;
export type ErasureRecord = ErasureData & { readonly id: string };

/** Open erasures, found by state: scheduled ones by the job, notifying ones by the overdue check. */
function phase(erasure: ErasureData): string {
  if (erasure.state === 'scheduled') return 'scheduled';
  if (erasure.state === 'executed' && erasure.recipients.some((recipient) => recipient.state === 'pending' || recipient.state === 'overdue')) return 'notifying';
  return 'closed';
}

export function erasureRecords(records: RecordStore): Collection<ErasureData, 'phase' | 'subject'> {
  return collection(records, { name: 'privacy_erasures', codec: typeboxCodec(ErasureSchema), indexes: { phase, subject: (erasure) => erasure.subject } });
}

export function newErasureId(): string {
  return `er_${randomBytes(12).toString('base64url')}`;
}

const MUTATE = { attempts: 8, exhausted: () => { throw new Error('the erasure record changed concurrently too often'); } } as const;

/** Applies `change` to one recipient's notice; resolves with the notice before and after, or null when unknown or unchanged. */
export async function updateRecipient(
  records: RecordStore,
  erasureId: string,
  clientId: string,
  change: (notice: RecipientNotice) => RecipientNotice | null,
): Promise<{ before: RecipientNotice; after: RecipientNotice } | null> {
  const { result } = await erasureRecords(records).mutate(
    erasureId,
    (current) => {
      if (current === null) return keep(null);
      const before = current.data.recipients.find((recipient) => recipient.clientId === clientId);
      if (before === undefined) return keep(null);
      const after = change(before);
      if (after === null) return keep(null);
      return write({ ...current.data, recipients: current.data.recipients.map((recipient) => (recipient.clientId === clientId ? after : recipient)) }, { before, after });
    },
    MUTATE,
  );
  return result;
}
