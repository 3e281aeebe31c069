/**
 * Erasure's reach into records that belong to someone else too: the signal
 * log (an event is every stream's), receivers' subject filters, and
 * messages waiting in (or kept by) the outbox. They are not deleted; the
 * erased person's email address is cut out of them, and nothing else
 * changes (GDPR Art. 17: the person's data, not the record, is erased).
 */
import type { DurableStore, RecordStore, StoredRecord } from '../store/index.ts';

/** What replaces a value that named the person. */
export const ERASED = '[erased]';

/**
 * Whether a string names this address: the address itself, its subject key
 * (`email:<address>`), or text with the address in it as a whole address,
 * compared case-insensitively (RFC 9493 section 3.2.2; Portcullis stores
 * addresses lower-cased). Never a string where it is part of another
 * address: erasing al@example.com must not touch sal@example.com or
 * al@example.com.au (security review of issue 15).
 */
export function namesAddress(value: string, address: string): boolean {
  const lowered = value.toLowerCase();
  const target = address.toLowerCase();
  if (lowered === target || lowered === `email:${target}`) return true;
  // Within text: only as a whole address, not a part of a longer one (no address character before it, and no
  // label of a longer domain after it: RFC 5322 atext before the @, RFC 1035 labels after).
  let from = lowered.indexOf(target);
  while (from !== -1) {
    const before = lowered[from - 1];
    const after = lowered.slice(from + target.length, from + target.length + 2);
    const joinsBefore = before !== undefined && /[a-z0-9.!#$%&'*+/=?^_`{|}~-]/.test(before);
    const joinsAfter = /^[a-z0-9-]/.test(after) || /^\.[a-z0-9]/.test(after);
    if (!joinsBefore && !joinsAfter) return true;
    from = lowered.indexOf(target, from + 1);
  }
  return false;
}

/** `value` with every string that names `address` (namesAddress) replaced by ERASED, at any depth. */
export function redactDeep(value: unknown, address: string): unknown {
  const visit = (node: unknown): unknown => {
    if (typeof node === 'string') return namesAddress(node, address) ? ERASED : node;
    if (Array.isArray(node)) return node.map(visit);
    if (node !== null && typeof node === 'object') return Object.fromEntries(Object.entries(node).map(([key, child]) => [key, visit(child)]));
    return node;
  };
  return visit(value);
}

export interface RedactionReport {
  readonly signalLog: number;
  readonly streams: number;
  readonly outbox: number;
}

const PAGE = 500;

/** Rewrites each record of `collection` whose JSON names `email`, with a compare-and-set (a lost race reads again). */
async function redactCollection(durable: DurableStore, name: string, email: string, rewrite: (data: unknown) => unknown): Promise<number> {
  const lowered = email.toLowerCase();
  let changed = 0;
  for (let after: string | undefined; ; ) {
    const page: StoredRecord[] = await durable.records.list(name, { limit: PAGE, ...(after !== undefined && { after }) });
    for (const record of page) {
      let current: StoredRecord | null = record;
      for (let attempt = 0; current !== null && attempt < 5; attempt++) {
        // The text search only picks candidates; the rewrite decides by exact values, and one that changes nothing is not written.
        if (!JSON.stringify(current.data).toLowerCase().includes(lowered)) break;
        const rewritten = rewrite(current.data);
        if (JSON.stringify(rewritten) === JSON.stringify(current.data)) break;
        if ((await durable.records.update(name, current.id, current.version, rewritten)) !== null) {
          changed += 1;
          break;
        }
        current = await durable.records.get(name, record.id);
      }
    }
    if (page.length < PAGE) break;
    after = page.at(-1)!.id;
  }
  return changed;
}

/**
 * Every email address the signal log knows the user by: the `email:`
 * subject keys of the entries that also name the user by `iss_sub`. An
 * address the person had before (an identifier-changed event names the old
 * address with the user's id as an alias) is found this way: the account
 * record only knows the current one.
 */
export async function addressesInSignalLog(records: RecordStore, userSubjectKey: string): Promise<string[]> {
  const found = new Set<string>();
  for (let after: string | undefined; ; ) {
    const page: StoredRecord[] = await records.list('signal_log', { limit: PAGE, ...(after !== undefined && { after }) });
    for (const record of page) {
      const keys = (record.data as { subjectKeys?: unknown }).subjectKeys;
      if (!Array.isArray(keys) || !keys.includes(userSubjectKey)) continue;
      for (const key of keys) if (typeof key === 'string' && key.startsWith('email:') && key.length > 'email:'.length) found.add(key.slice('email:'.length));
    }
    if (page.length < PAGE) break;
    after = page.at(-1)!.id;
  }
  return [...found];
}

/**
 * Cuts the erased person's email address out of the signal log (subjects,
 * subject keys, members), the streams' removed subjects, and the outbox's
 * payloads. Run after the erasure committed; safe to run again. With
 * `onlyAbout` (the person's subject key and id), for an earlier address of
 * theirs that another account holds now: only from the signal-log entries
 * that name the person by that key, and the messages that name their id.
 */
export async function redactSharedRecords(durable: DurableStore, email: string, options: { onlyAbout?: { subjectKey: string; userId: string } } = {}): Promise<RedactionReport> {
  const emailKey = `email:${email.toLowerCase()}`;
  const { onlyAbout } = options;
  const signalLog = await redactCollection(durable, 'signal_log', email, (data) => {
    const entry = data as { subjectKeys?: unknown };
    // An address another account holds now is cut only from the entries that name the erased person too.
    if (onlyAbout !== undefined && !(Array.isArray(entry.subjectKeys) && entry.subjectKeys.includes(onlyAbout.subjectKey))) return data;
    // The subject key is dropped (a stream filter on it matches nobody now); other strings are marked.
    const keys = Array.isArray(entry.subjectKeys) ? entry.subjectKeys.filter((key) => typeof key !== 'string' || key.toLowerCase() !== emailKey) : entry.subjectKeys;
    return redactDeep({ ...(data as object), subjectKeys: keys }, email);
  });
  if (onlyAbout !== undefined) {
    // A stream's filter cannot tell whose an address is: it is left to its holder. A message can: one that names the
    // erased person's id (a signal about them, with the address as its subject or an alias) loses the address. The id
    // is a value of its own (an `iss_sub` subject's `sub`, a notice's `sub`) or inside their subject key (an alias, as
    // an identifier-changed signal names them: its subject is the earlier address).
    const about = [JSON.stringify(onlyAbout.userId), JSON.stringify(onlyAbout.subjectKey)];
    const outbox = await durable.outbox.redactPayloads(email, (payload) => {
      const text = JSON.stringify(payload);
      return about.some((needle) => text.includes(needle)) ? redactDeep(payload, email) : payload;
    });
    return { signalLog, streams: 0, outbox };
  }
  const streams = await redactCollection(durable, 'signal_streams', email, (data) => {
    const stream = data as { removedSubjects?: unknown };
    const removed = Array.isArray(stream.removedSubjects) ? stream.removedSubjects.filter((key) => typeof key !== 'string' || !namesAddress(key, email)) : stream.removedSubjects;
    return { ...(data as object), removedSubjects: removed };
  });
  const outbox = await durable.outbox.redactPayloads(email, (payload) => redactDeep(payload, email));
  return { signalLog, streams, outbox };
}
