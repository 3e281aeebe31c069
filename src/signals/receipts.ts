/**
 * Whether a client's streams have received the security events of one
 * outbox message (by its idempotency key): the privacy workflow's proof
 * that a recipient was told of an erasure over SSF (GDPR Art. 19). A stream
 * has received an entry once its cursor passed it (push: the receiver
 * answered 202, RFC 8935 section 2; poll: acknowledged, RFC 8936 section
 * 2.4; or it began after it) or it is acknowledged above the cursor.
 */
import type { RecordStore } from '../store/index.ts';
import { logEntries, logSources, seqId, streamRecords } from './records.ts';
import { receives } from './selection.ts';

export type StreamReceipt =
  /** The message's events are not in the log yet (the outbox has not delivered it). */
  | 'not_appended'
  /** Some stream of the client that receives the events has not got them yet. */
  | 'pending'
  | 'delivered'
  /** No enabled stream of the client receives these events. */
  | 'no_stream';

export async function streamReceipt(records: RecordStore, clientId: string, sourceKey: string): Promise<StreamReceipt> {
  const source = await logSources(records).get(sourceKey);
  if (source === null) return 'not_appended';
  const streams = (await streamRecords(records).findAllBy('client', clientId)).filter((stream) => stream.data.status !== 'disabled');
  let receiving = 0;
  for (let seq = source.data.first; seq < source.data.first + source.data.count; seq++) {
    const entry = await logEntries(records).get(seqId(seq));
    if (entry === null) continue;
    for (const stream of streams) {
      if (!receives(stream.id, stream.data, entry.data)) continue;
      receiving += 1;
      const received = seq <= stream.data.cursor || seq <= (stream.data.floor ?? 0) || stream.data.acked.includes(seq);
      if (!received) return 'pending';
    }
  }
  return receiving === 0 ? 'no_stream' : 'delivered';
}
