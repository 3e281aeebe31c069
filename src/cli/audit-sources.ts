/**
 * Where `portcullis audit verify` reads a log from: the local store, a
 * running server's HTTP API, or a JSONL export. Each is a VerifySource; the
 * verifier itself (src/audit/verify.ts) trusts none of them. A person's
 * privacy export is no log but one person's history with its proofs
 * (privacyExportAudit; src/audit/verify-history.ts checks it).
 */
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import canonicalize from 'canonicalize';
import type { VerifyEntry, VerifySource } from '../audit/index.ts';
import type { DurableStore } from '../store/index.ts';

const PAGE = 1000;

/** A failure to read the source (not tampering): network, file, HTTP status. */
export class AuditSourceError extends Error {
  override readonly name = 'AuditSourceError';
}

/**
 * Reads checkpoints before the size, and keeps both: on a live log that
 * keeps growing, every checkpoint then lies within the size the verifier
 * sees, so only a real rollback can leave a checkpoint beyond it.
 */
function snapshot(readCheckpoints: () => Promise<string[]>, readSize: () => Promise<number>): { checkpoints: () => Promise<string[]>; size: () => Promise<number> } {
  let taken: Promise<{ checkpoints: string[]; size: number }> | undefined;
  const take = () =>
    (taken ??= (async () => {
      const checkpoints = await readCheckpoints();
      return { checkpoints, size: await readSize() };
    })());
  return { checkpoints: async () => (await take()).checkpoints, size: async () => (await take()).size };
}

export function storeSource(store: DurableStore): VerifySource {
  const log = store.auditLog;
  const state = snapshot(async () => {
    const notes: string[] = [];
    let afterId = 0;
    for (;;) {
      const page = await log.checkpoints({ afterId, limit: PAGE });
      notes.push(...page.map((checkpoint) => checkpoint.note));
      if (page.length < PAGE) return notes;
      afterId = page.at(-1)!.id;
    }
  }, () => log.size());
  return {
    size: state.size,
    checkpoints: state.checkpoints,
    async *entries() {
      const size = await state.size();
      // Pages by index; a page that comes back short (deleted rows) is
      // followed from the last index seen, so gaps reach the verifier.
      let next = 0;
      for (;;) {
        const rows = await log.entries(next, Number.MAX_SAFE_INTEGER);
        if (rows.length === 0) break;
        yield rows.map((row) => ({ index: row.index, entry: row.entry }));
        next = rows.at(-1)!.index + 1;
        if (rows.length < PAGE && next >= size) break;
      }
    },
    async storedLeafHashes(start, end) {
      const hashes: (Uint8Array | undefined)[] = [];
      for (let from = start; from < end; from += PAGE) {
        const to = Math.min(end, from + PAGE);
        hashes.push(...(await log.nodes(Array.from({ length: to - from }, (_, i) => ({ level: 0, index: from + i })))));
      }
      return hashes;
    },
  };
}

interface EntriesPage {
  readonly size: number;
  readonly entries: readonly { readonly index: number; readonly entryBase64: string }[];
}

/**
 * Why a fetch failed, in a word: undici's own message is always "fetch
 * failed"; the reason is its cause (ECONNREFUSED, ENOTFOUND, "bad port").
 */
export function fetchFailure(error: unknown): string {
  const cause = (error as { cause?: { code?: unknown; message?: unknown } } | undefined)?.cause;
  if (typeof cause?.code === 'string') return cause.code;
  if (typeof cause?.message === 'string' && cause.message !== '') return cause.message;
  return error instanceof Error ? error.message : String(error);
}

/** A running server: public checkpoints, entries with the admin token. */
export function urlSource(baseUrl: string, adminToken: string | undefined): VerifySource & { key(): Promise<string> } {
  const base = baseUrl.replace(/\/+$/, '');
  const fetchOk = async (path: string, authenticated = false): Promise<Response> => {
    let response: Response;
    try {
      response = await fetch(`${base}${path}`, authenticated && adminToken !== undefined ? { headers: { authorization: `Bearer ${adminToken}` } } : {});
    } catch (error) {
      throw new AuditSourceError(`cannot reach ${base}: ${fetchFailure(error)}`);
    }
    if (!response.ok) {
      const hint = response.status === 401 ? ' (pass the admin token with --token or $PORTCULLIS_ADMIN_TOKEN)' : '';
      throw new AuditSourceError(`${base}${path.split('?')[0]} answered ${response.status}${hint}`);
    }
    return response;
  };
  const state = snapshot(
    async () => {
      const notes: string[] = [];
      let after = 0;
      for (;;) {
        const page = (await (await fetchOk(`/audit/checkpoints?after=${after}&limit=${PAGE}`)).json()) as { checkpoints: { id: number; note: string }[]; next: number | null };
        notes.push(...page.checkpoints.map((checkpoint) => checkpoint.note));
        if (page.next === null) return notes;
        after = page.next;
      }
    },
    async () => ((await (await fetchOk('/audit/entries?start=0&end=0', true)).json()) as EntriesPage).size,
  );
  const source = {
    async key() {
      return (await (await fetchOk('/audit/key')).text()).trim();
    },
    size: state.size,
    checkpoints: state.checkpoints,
    async *entries() {
      const total = await source.size();
      for (let start = 0; start < total; start += PAGE) {
        const page = (await (await fetchOk(`/audit/entries?start=${start}&end=${Math.min(total, start + PAGE)}`, true)).json()) as EntriesPage;
        yield page.entries.map((row): VerifyEntry => ({ index: row.index, entry: new Uint8Array(Buffer.from(row.entryBase64, 'base64')) }));
      }
    },
  };
  return source;
}

/** One line of `portcullis audit export --format jsonl`. */
export type ExportLine = { readonly index: number; readonly entry: unknown } | { readonly checkpoint: string };

/** A JSONL export: entry lines, and checkpoint lines when exported `--with-checkpoints`. */
export function fileSource(path: string): VerifySource {
  const lines = async function* (): AsyncGenerator<{ line: ExportLine; number: number }> {
    const input = createReadStream(path, { encoding: 'utf8' });
    const reader = createInterface({ input, crlfDelay: Infinity });
    let number = 0;
    try {
      for await (const text of reader) {
        number += 1;
        if (text.trim() === '') continue;
        let line: ExportLine;
        try {
          line = JSON.parse(text) as ExportLine;
        } catch {
          throw new AuditSourceError(`${path}:${number}: not a JSON line`);
        }
        yield { line, number };
      }
    } catch (error) {
      if (error instanceof AuditSourceError) throw error;
      throw new AuditSourceError(`cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
    }
  };
  let counted: number | undefined;
  return {
    async size() {
      if (counted === undefined) {
        counted = 0;
        for await (const { line } of lines()) if ('index' in line) counted += 1;
      }
      return counted;
    },
    async *entries() {
      const encoder = new TextEncoder();
      let batch: VerifyEntry[] = [];
      for await (const { line, number } of lines()) {
        if (!('index' in line)) continue;
        // Entries are stored canonical (RFC 8785), so re-canonicalising the
        // exported object gives back the exact bytes that were hashed.
        const text = canonicalize(line.entry);
        if (typeof line.index !== 'number' || text === undefined) throw new AuditSourceError(`${path}:${number}: not an entry line`);
        batch.push({ index: line.index, entry: encoder.encode(text) });
        if (batch.length === PAGE) {
          yield batch;
          batch = [];
        }
      }
      if (batch.length > 0) yield batch;
    },
    async checkpoints() {
      const notes: string[] = [];
      for await (const { line } of lines()) if ('checkpoint' in line && typeof line.checkpoint === 'string') notes.push(line.checkpoint);
      return notes;
    },
  };
}

/** The `format` of a person's data export (one JSON document, not JSONL). */
export const PRIVACY_EXPORT_FORMAT = 'portcullis-privacy-export';

/**
 * The `audit` member of the privacy export in `path` (Ledger.subjectHistory's
 * shape), or undefined when the file is not one: a JSONL export, whose
 * first line is a whole entry or checkpoint line, is left to fileSource
 * unread. A privacy export may be compact or pretty-printed.
 */
export async function privacyExportAudit(path: string): Promise<{ readonly audit: unknown } | undefined> {
  const first = await firstLine(path);
  if (isJsonlLine(first)) return undefined;
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new AuditSourceError(`cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch {
    return undefined; // not one JSON document: the JSONL reader says what is wrong
  }
  if (!isObject(document) || document['format'] !== PRIVACY_EXPORT_FORMAT) return undefined;
  return { audit: document['audit'] };
}

async function firstLine(path: string): Promise<string> {
  const input = createReadStream(path, { encoding: 'utf8' });
  const reader = createInterface({ input, crlfDelay: Infinity });
  try {
    for await (const line of reader) return line;
    return '';
  } catch (error) {
    throw new AuditSourceError(`cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
  } finally {
    reader.close();
    input.destroy();
  }
}

function isJsonlLine(text: string): boolean {
  try {
    const line: unknown = JSON.parse(text);
    return isObject(line) && ('index' in line || 'checkpoint' in line);
  } catch {
    return false;
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
