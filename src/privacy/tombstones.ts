/**
 * Erasure tombstones: what lets the server recognise, after a backup is
 * restored, a person it had erased, without keeping who they were. A
 * tombstone is two keyed hashes (subjects.ts: the user id's and the
 * normalised email's, under a key derived from the master key) and the
 * erasure's id. Kept twice: as records (`privacy_tombstones`, written in the
 * erasure's transaction) and as lines of an append-only file outside the
 * database (`privacy.tombstoneFile`), because a restored database has lost
 * the tombstones written after its backup. `portcullis privacy reapply`
 * reads both.
 */
import { appendFile, open, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { mkdir } from 'node:fs/promises';
import { Type, type Static } from '@sinclair/typebox';
import { collection, typeboxCodec, type Collection, type RecordStore } from '../store/index.ts';

const TombstoneSchema = Type.Object({
  /** Keyed hash of the user id. */
  user: Type.String(),
  /** Keyed hash of the normalised email address. */
  email: Type.String(),
  erasure: Type.String(),
  at: Type.Number(),
});
export type Tombstone = Static<typeof TombstoneSchema>;

function tombstones(records: RecordStore): Collection<Tombstone> {
  return collection(records, { name: 'privacy_tombstones', codec: typeboxCodec(TombstoneSchema) });
}

/** Records the tombstone in the durable store (inside the erasure's transaction: pass `tx.records`). Id: the user hash. */
export async function writeTombstone(records: RecordStore, tombstone: Tombstone): Promise<void> {
  await tombstones(records).create(tombstone.user, tombstone);
}

/** Appends the tombstone to the file, and waits until it is on disk (fsync). */
export async function appendTombstoneFile(path: string, tombstone: Tombstone): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  await appendFile(path, `${JSON.stringify({ v: 1, ...tombstone })}\n`, { mode: 0o600 });
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Every tombstone the file holds (none when it does not exist); a malformed line is skipped and counted. */
export async function readTombstoneFile(path: string): Promise<{ tombstones: Tombstone[]; malformed: number }> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { tombstones: [], malformed: 0 };
    throw error;
  }
  const found: Tombstone[] = [];
  let malformed = 0;
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    try {
      const parsed = JSON.parse(line) as Partial<Tombstone> & { v?: unknown };
      if (parsed.v !== 1 || typeof parsed.user !== 'string' || typeof parsed.email !== 'string' || typeof parsed.erasure !== 'string' || typeof parsed.at !== 'number') throw new Error('malformed');
      found.push({ user: parsed.user, email: parsed.email, erasure: parsed.erasure, at: parsed.at });
    } catch {
      malformed += 1;
    }
  }
  return { tombstones: found, malformed };
}

/** Every tombstone of the durable store. */
export async function storedTombstones(records: RecordStore): Promise<Tombstone[]> {
  const all: Tombstone[] = [];
  for (let after: string | undefined; ; ) {
    const page = await tombstones(records).list({ limit: 1000, ...(after !== undefined && { after }) });
    all.push(...page.map((record) => record.data));
    if (page.length < 1000) break;
    after = page.at(-1)!.id;
  }
  return all;
}
