/**
 * What the transmitter keeps in the durable store, as typed collections:
 * - `signal_log`: every security event once, in append order (id: the
 *   sequence number, zero-padded so id order is sequence order). Streams
 *   read it from their cursor; one log serves every stream, so a burst
 *   costs one write per event, not one per stream.
 * - `signal_log_head`: the one record holding the next sequence number.
 * - `signal_log_sources`: the outbox messages already appended (their
 *   idempotency key): a redelivered message appends nothing.
 * - `signal_streams`: the receivers' streams (SSF 1.0 section 8), found by
 *   the client that owns them.
 */
import { Type, type Static } from '@sinclair/typebox';
import { collection, typeboxCodec, type Collection, type RecordStore } from '../store/index.ts';

const SubjectSchema = Type.Record(Type.String(), Type.String());

const LogEntrySchema = Type.Object({
  seq: Type.Integer({ minimum: 1 }),
  /** The cause's id: every SET of one domain event carries it as `txn` (RFC 8417 section 2.2). */
  txn: Type.String(),
  time: Type.Number(),
  type: Type.String(),
  subject: SubjectSchema,
  /** Canonical keys of the subject and its aliases, for stream subject filters. */
  subjectKeys: Type.Array(Type.String()),
  members: Type.Record(Type.String(), Type.Unknown()),
  /** Only this stream receives it (verification and stream-updated events, SSF 1.0 section 8.1.4/8.1.5). */
  stream: Type.Optional(Type.String()),
});
export type LogEntry = Static<typeof LogEntrySchema>;

const HeadSchema = Type.Object({ next: Type.Integer({ minimum: 1 }) });
const SourceSchema = Type.Object({ first: Type.Integer(), count: Type.Integer() });

const StreamSchema = Type.Object({
  clientId: Type.String(),
  /** The JWS algorithm the receiver chose for its SETs. */
  alg: Type.String(),
  aud: Type.Array(Type.String()),
  eventsRequested: Type.Array(Type.String()),
  method: Type.String(),
  /** Push: the receiver's endpoint (RFC 8935). */
  endpointUrl: Type.Optional(Type.String()),
  /** Push: the Authorization header value the receiver asked for, sealed (it is the receiver's secret). */
  sealedAuthorization: Type.Optional(Type.String()),
  description: Type.Optional(Type.String()),
  status: Type.Union([Type.Literal('enabled'), Type.Literal('paused'), Type.Literal('disabled')]),
  statusReason: Type.Optional(Type.String()),
  /** Who set the status: a receiver's pause waits for the receiver; the transmitter's (an unreachable receiver) is lifted by the next delivery that works. */
  statusBy: Type.Optional(Type.Union([Type.Literal('receiver'), Type.Literal('transmitter')])),
  /** Subject keys the receiver removed (default_subjects ALL: every other subject is in). */
  removedSubjects: Type.Array(Type.String()),
  /** Every event up to this sequence number was delivered, acknowledged or skipped. */
  cursor: Type.Integer({ minimum: 0 }),
  /** The stream receives nothing at or before this sequence number: it began (or was re-enabled from disabled) after it. */
  floor: Type.Optional(Type.Integer({ minimum: 0 })),
  /** Poll: acknowledged sequence numbers above the cursor (RFC 8936 acks come in any order). */
  acked: Type.Array(Type.Integer()),
  /** Push: when the current run of failures began, the attempts in it, when to try next and why the last failed. */
  failingSince: Type.Optional(Type.Number()),
  attempts: Type.Integer({ minimum: 0 }),
  nextAttemptAt: Type.Optional(Type.Number()),
  lastError: Type.Optional(Type.String()),
  minVerificationInterval: Type.Optional(Type.Integer()),
  lastVerificationAt: Type.Optional(Type.Number()),
  createdAt: Type.Number(),
});
export type StreamRecord = Static<typeof StreamSchema>;

export type LogCollection = Collection<LogEntry>;
export type StreamCollection = Collection<StreamRecord, 'client'>;

export const HEAD_ID = 'head';

export function logEntries(records: RecordStore): LogCollection {
  return collection(records, { name: 'signal_log', codec: typeboxCodec(LogEntrySchema) });
}

export function logHead(records: RecordStore): Collection<Static<typeof HeadSchema>> {
  return collection(records, { name: 'signal_log_head', codec: typeboxCodec(HeadSchema) });
}

export function logSources(records: RecordStore): Collection<Static<typeof SourceSchema>> {
  return collection(records, { name: 'signal_log_sources', codec: typeboxCodec(SourceSchema) });
}

export function streamRecords(records: RecordStore): StreamCollection {
  return collection(records, { name: 'signal_streams', codec: typeboxCodec(StreamSchema), indexes: { client: (stream) => stream.clientId } });
}

/** Sequence numbers as ids: fixed width, so the store's id order is numeric order. */
export function seqId(seq: number): string {
  return String(seq).padStart(16, '0');
}
