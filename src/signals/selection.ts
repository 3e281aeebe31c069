/**
 * Which log entries a stream receives, and how far its cursor may move:
 * pure functions over a stream and a page of the log.
 */
import { SECURITY_EVENT_TYPES } from '../sdk/index.ts';
import type { LogEntry, StreamRecord } from './records.ts';
import { delivered } from './streams.ts';

/** Whether this stream receives this entry: its own management events always; others by event type and subject. */
export function receives(streamId: string, stream: Pick<StreamRecord, 'eventsRequested' | 'removedSubjects'>, entry: LogEntry): boolean {
  return filterOf(streamId, stream)(entry);
}

/** The stream's filter, with its lists as sets: a page of entries is matched in time linear in the page, whatever the receiver removed. */
function filterOf(streamId: string, stream: Pick<StreamRecord, 'eventsRequested' | 'removedSubjects'>): (entry: LogEntry) => boolean {
  const types = new Set(delivered(stream.eventsRequested));
  const removed = new Set(stream.removedSubjects);
  return (entry) => {
    if (entry.stream !== undefined) return entry.stream === streamId;
    if (entry.type === SECURITY_EVENT_TYPES.verification || entry.type === SECURITY_EVENT_TYPES.streamUpdated) return false;
    if (!types.has(entry.type)) return false;
    return !entry.subjectKeys.some((key) => removed.has(key));
  };
}

export interface Selection {
  /** Entries to hand out, in order (neither acknowledged nor filtered out). */
  readonly entries: LogEntry[];
  /**
   * The cursor after this page: past every entry the stream does not
   * receive or has acknowledged, up to the first it still owes.
   */
  readonly cursor: number;
  /** Acknowledgements still above the new cursor. */
  readonly acked: number[];
}

/** Selects from `page` (entries after `stream.cursor`, in order) at most `limit` entries to send. */
export function select(streamId: string, stream: Pick<StreamRecord, 'eventsRequested' | 'removedSubjects' | 'cursor' | 'acked'>, page: readonly LogEntry[], limit: number): Selection {
  const acked = new Set(stream.acked);
  const wanted = filterOf(streamId, stream);
  const entries: LogEntry[] = [];
  let cursor = stream.cursor;
  let contiguous = true;
  for (const entry of page) {
    if (entry.seq <= stream.cursor) continue;
    const owed = !acked.has(entry.seq) && wanted(entry);
    if (!owed) {
      if (contiguous) cursor = entry.seq;
      continue;
    }
    contiguous = false;
    if (entries.length < limit) entries.push(entry);
  }
  // A page that ended while everything was skipped moves the cursor to its end.
  return { entries, cursor, acked: [...acked].filter((seq) => seq > cursor).sort((a, b) => a - b) };
}
