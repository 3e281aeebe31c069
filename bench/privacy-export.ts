/**
 * How long does the audit part of a person's data export take? Latency of
 * Ledger.subjectHistory (every entry about one user, each with its RFC 9162
 * inclusion proof against a freshly signed checkpoint) for a user with
 * 10,000 entries among other users' entries, on SQLite and on PostgreSQL.
 * The goal (issue 15): under 2 s.
 *
 *   node --disable-warning=ExperimentalWarning bench/privacy-export.ts
 *     [--entries 10000]             the user's entries
 *     [--others 90000]              other users' entries, interleaved with the user's
 *     [--runs 5] [--seed 1]
 *     [--driver sqlite|postgres]    only this driver (default: sqlite, and postgres if a URL is given)
 *     [--database postgres://...]   default: PORTCULLIS_TEST_DATABASE_URL
 *
 * Population: store.auditLog.append with the ledger's appendPlan and each
 * entry's subject (its actor), in batches of 10,000, as the ledger's group
 * commit writes them: realistic entries (canonical JSON, about 250 bytes)
 * whose actors are the user's pseudonym (the ledger's own) at evenly spread
 * positions and random pseudonyms elsewhere. PostgreSQL gets VACUUM ANALYZE
 * afterwards, as autovacuum would.
 *
 * Each run first records one event of another user (untimed), so the log
 * has grown and subjectHistory signs a new checkpoint, as an export after
 * any activity does; then times subjectHistory. Untimed after each run:
 * the history holds exactly the user's entries, and verifySubjectHistory
 * (the offline verifier) accepts it; its time is reported too, with the
 * size of the history as JSON.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import pg from 'pg';
import { parseVerifierKey } from '../src/audit/checkpoint/index.ts';
import { KeyVault } from '../src/crypto/index.ts';
import { encodeEntry, openLedger, verifySubjectHistory, type AuditEntry, type AuditEventType, type Ledger } from '../src/audit/index.ts';
import { appendPlan } from '../src/audit/tree.ts';
import type { DurableStore } from '../src/store/index.ts';
import { openPostgresDurableStore } from '../src/store/postgres/durable-store.ts';
import { SqliteDatabase } from '../src/store/sqlite/database.ts';
import { openSqliteDurableStore } from '../src/store/sqlite/durable-store.ts';
import { deferUndo, prng, runUndos, wasInterrupted } from './undo.ts';
import { driverSelection, machine, median, positiveInteger, round2, table, writeResult } from './lib.ts';

const settings = {
  entries: positiveInteger('entries', 10_000),
  others: positiveInteger('others', 90_000),
  runs: positiveInteger('runs', 5),
  seed: positiveInteger('seed', 1),
  batch: 10_000,
};
const { onlyDriver, databaseUrl } = driverSelection();
const GOAL_MS = 2000;
const USER = 'bench-user';

const TYPES: readonly AuditEventType[] = ['token.issued', 'token.issued', 'token.refreshed', 'auth.login.succeeded', 'auth.login.failed', 'session.revoked', 'consent.granted'];
const BASE_TIME = Date.parse('2026-01-01T00:00:00.000Z');

function entryAt(random: () => number, index: number, actor: string): AuditEntry {
  const type = TYPES[random() % TYPES.length]!;
  return {
    v: 1,
    type,
    time: new Date(BASE_TIME + index * 33).toISOString(),
    outcome: type === 'auth.login.failed' ? 'failure' : 'success',
    actor,
    client: `client-${String(random() % 50).padStart(2, '0')}`,
    requestId: randomBytes(9).toString('base64url'),
    traceId: randomBytes(16).toString('hex'),
    ...(random() % 5 < 3 && { ip: `203.0.${random() % 256}.0/24` }),
    ...(type === 'token.issued' && { detail: { grant: random() % 2 === 0 ? 'authorization_code' : 'refresh_token', scope: 'openid profile' } }),
  };
}

/** Fills the log: the user's entries evenly spread among the others'. Resolves with the user's indices. */
async function populate(store: DurableStore, userActor: string): Promise<{ seconds: number; userIndices: number[] }> {
  const total = settings.entries + settings.others;
  const random = prng(settings.seed);
  const userIndices: number[] = [];
  const startedAt = performance.now();
  let taken = 0;
  for (let start = 0; start < total; start += settings.batch) {
    await nextTurn(); // node:sqlite is synchronous: let a Ctrl-C in
    if (wasInterrupted()) throw new Error('interrupted');
    const bytes: Uint8Array[] = [];
    const subjects: string[][] = [];
    for (let index = start; index < Math.min(total, start + settings.batch); index++) {
      // Entry i is the user's when it is the next of `entries` evenly spaced positions.
      const mine = taken < settings.entries && Math.floor(((taken + 0.5) * total) / settings.entries) <= index;
      const actor = mine ? userActor : randomBytes(32).toString('base64url');
      if (mine) {
        taken++;
        userIndices.push(index);
      }
      bytes.push(encodeEntry(entryAt(random, index, actor)));
      subjects.push([actor]);
    }
    const first = await store.auditLog.append(bytes, BASE_TIME, appendPlan, subjects);
    if (first !== start) throw new Error(`append placed entries at ${first}, expected ${start}`);
  }
  return { seconds: (performance.now() - startedAt) / 1000, userIndices };
}

interface Result {
  readonly driver: string;
  readonly logEntries: number;
  readonly userEntries: number;
  readonly populateSeconds: number;
  readonly runsMs: readonly number[];
  readonly medianMs: number;
  readonly verifyMedianMs: number;
  readonly historyJsonBytes: number;
}

const results: Result[] = [];

async function benchStore(store: DurableStore, driver: string, afterPopulate?: () => Promise<void>): Promise<void> {
  await store.migrate();
  const ledger: Ledger = await openLedger({
    log: store.auditLog,
    records: store.records,
    vault: KeyVault.generate(),
    issuer: 'https://id.example.com',
    clock: () => Date.now(),
    audit: { ipAddresses: 'truncate', witnesses: [], maxPendingEntries: 10_000 },
  });
  try {
    const userActor = await ledger.pseudonyms.pseudonym(USER);
    if (userActor === null) throw new Error('the bench user is forgotten in a fresh store');
    const filled = await populate(store, userActor);
    console.log(`${driver}: ${(settings.entries + settings.others).toLocaleString('en-US')} entries written in ${filled.seconds.toFixed(1)} s`);
    await afterPopulate?.();
    const logKey = parseVerifierKey(ledger.verifierKey);
    const runsMs: number[] = [];
    const verifyMs: number[] = [];
    let jsonBytes = 0;
    for (let run = 0; run < settings.runs; run++) {
      if (wasInterrupted()) throw new Error('interrupted');
      await ledger.record({ type: 'token.issued', outcome: 'success', actorUserId: `someone-else-${run}` });
      const started = performance.now();
      const history = await ledger.subjectHistory(USER);
      runsMs.push(performance.now() - started);
      // Untimed: it is the user's history, whole, and it verifies offline.
      if (history.entries.length !== filled.userIndices.length || history.entries.some((entry, i) => entry.index !== filled.userIndices[i])) {
        throw new Error(`run ${run}: the history does not hold exactly the user's ${filled.userIndices.length} entries`);
      }
      const json = JSON.stringify({ format: 'portcullis-privacy-export', audit: history });
      jsonBytes = Buffer.byteLength(json);
      const verifyStarted = performance.now();
      const report = verifySubjectHistory((JSON.parse(json) as { audit: unknown }).audit, { logKey });
      verifyMs.push(performance.now() - verifyStarted);
      if (!report.ok || report.verified !== filled.userIndices.length) throw new Error(`run ${run}: the history does not verify: ${report.problems[0]?.message ?? 'too few verified'}`);
      console.log(`${driver}: run ${run + 1}: subjectHistory ${runsMs.at(-1)!.toFixed(0)} ms (checkpoint of size ${history.size}), offline verification ${verifyMs.at(-1)!.toFixed(0)} ms`);
    }
    results.push({
      driver,
      logEntries: settings.entries + settings.others,
      userEntries: filled.userIndices.length,
      populateSeconds: round2(filled.seconds),
      runsMs: runsMs.map(round2),
      medianMs: round2(median(runsMs)),
      verifyMedianMs: round2(median(verifyMs)),
      historyJsonBytes: jsonBytes,
    });
  } finally {
    await ledger.close();
  }
}

async function benchSqlite(): Promise<void> {
  const directory = mkdtempSync(join(tmpdir(), 'portcullis-bench-'));
  deferUndo(async () => rmSync(directory, { recursive: true, force: true }));
  const store = openSqliteDurableStore(new SqliteDatabase({ path: join(directory, 'portcullis.db') }));
  try {
    await benchStore(store, 'sqlite');
  } finally {
    await store.close();
  }
}

async function benchPostgres(url: string): Promise<void> {
  const schema = `portcullis_bench_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  deferUndo(() => admin.end());
  await admin.query(`CREATE SCHEMA ${schema}`);
  deferUndo(async () => {
    await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  });
  const store = await openPostgresDurableStore({ url, schema });
  try {
    await benchStore(store, 'postgres', async () => {
      await admin.query(`VACUUM ANALYZE ${schema}.audit_entries, ${schema}.audit_nodes, ${schema}.audit_subjects`);
    });
  } finally {
    await store.close();
  }
}

const skipped: string[] = [];
try {
  if (onlyDriver !== 'postgres') await benchSqlite();
  if (onlyDriver !== 'sqlite') {
    if (databaseUrl !== undefined) await benchPostgres(databaseUrl);
    else skipped.push('postgres (set PORTCULLIS_TEST_DATABASE_URL or --database)');
  }
} finally {
  await runUndos();
}

console.log(`\nLedger.subjectHistory, milliseconds, median of ${settings.runs} runs; goal: < ${GOAL_MS} ms`);
console.log(
  table(
    ['driver', 'log entries', 'user entries', 'median ms', 'runs ms', 'verify ms', 'JSON MiB', 'goal'],
    results.map((r) => [
      r.driver,
      r.logEntries.toLocaleString('en-US'),
      r.userEntries.toLocaleString('en-US'),
      r.medianMs.toFixed(0),
      r.runsMs.map((ms) => ms.toFixed(0)).join(' / '),
      r.verifyMedianMs.toFixed(0),
      (r.historyJsonBytes / 2 ** 20).toFixed(1),
      r.medianMs < GOAL_MS ? 'met' : 'MISSED',
    ]),
  ),
);
for (const what of skipped) console.log(`skipped: ${what}`);
const file = writeResult('privacy-export', { benchmark: 'privacy-export', at: new Date().toISOString(), machine: machine(), settings: { ...settings, goalMs: GOAL_MS }, results, skipped });
console.log(`wrote ${file}`);
