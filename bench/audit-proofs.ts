/**
 * How long does a proof take on a big log? Latency (median, p99) of the
 * ledger's inclusion and consistency proofs on a log of 1,000,000 entries,
 * on SQLite and on PostgreSQL. The goal: under 1 ms median.
 *
 *   node --disable-warning=ExperimentalWarning bench/audit-proofs.ts
 *     [--entries 1000000]           log size for SQLite (and Postgres unless --postgres-entries)
 *     [--postgres-entries N]        log size for Postgres (default: --entries)
 *     [--proofs 2000] [--warmup 200] [--verify 200] [--seed 1]
 *     [--driver sqlite|postgres]    only this driver (default: sqlite, and postgres if a URL is given)
 *     [--database postgres://...]   default: PORTCULLIS_TEST_DATABASE_URL
 *
 * Population: store.auditLog.append with the ledger's appendPlan, in batches
 * of 10,000 entries of about 250 bytes (canonical JSON of realistic events,
 * generated from a seeded PRNG, so every driver gets the same log). That is
 * what the ledger's group commit writes, minus the per-event work; on
 * Postgres it is followed by VACUUM ANALYZE, as autovacuum would do for a
 * log that big.
 *
 * Proofs: a Ledger opened on the populated store serves `proofs` inclusion
 * proofs at random (index, size) with size uniform in [N/2, N] and index
 * uniform in [0, size), and `proofs` consistency proofs at random (from, to)
 * with to uniform in [N/2, N] and from uniform in [1, to], one at a time
 * (latency, not throughput), after `warmup` untimed ones. Each ledger call
 * reads the log's size (to refuse a size beyond it) and then every proof
 * node in one query; the `tree.ts only` rows time that one node query
 * (storedInclusionProof / storedConsistencyProof) alone, on pairs of their
 * own drawn alike, one call of each alternating with the ledger's.
 *
 * Correctness, untimed: every proof is checked against the bench's own leaf
 * hashes where it can be (the leaf hash of an inclusion proof), a sample
 * (`verify` of each kind) is verified with verifyInclusion/verifyConsistency
 * against storedRootHash, and the stored root of the whole log (and of one
 * random prefix) is compared with rootHash() computed here from the leaves
 * the bench generated: a wrong tree cannot pass by agreeing with itself.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import pg from 'pg';
import { KeyVault } from '../src/crypto/index.ts';
import { encodeEntry, openLedger, type AuditEntry, type AuditEventType, type Ledger } from '../src/audit/index.ts';
import { leafHash, rootHash, verifyConsistency, verifyInclusion } from '../src/audit/merkle/index.ts';
import { appendPlan, storedConsistencyProof, storedInclusionProof, storedRootHash } from '../src/audit/tree.ts';
import type { DurableStore } from '../src/store/index.ts';
import { openPostgresDurableStore } from '../src/store/postgres/durable-store.ts';
import { SqliteDatabase } from '../src/store/sqlite/database.ts';
import { openSqliteDurableStore } from '../src/store/sqlite/durable-store.ts';
import { deferUndo, prng, runUndos, wasInterrupted } from './undo.ts';
import { driverSelection, machine, median, percentile, positiveInteger, table, writeResult } from './lib.ts';

const entries = positiveInteger('entries', 1_000_000);
const settings = {
  sqliteEntries: entries,
  postgresEntries: positiveInteger('postgres-entries', entries),
  proofs: positiveInteger('proofs', 2000),
  warmup: positiveInteger('warmup', 200),
  verify: positiveInteger('verify', 200),
  seed: positiveInteger('seed', 1),
  batch: 10_000,
};
const { onlyDriver, databaseUrl } = driverSelection();
const GOAL_MS = 1;

// ---------------------------------------------------------------- cleanup

// ---------------------------------------------------------------- the log's contents

/** Integer uniform in [low, high] (inclusive); fine for bounds below 2^32. */
function between(random: () => number, low: number, high: number): number {
  return low + Math.floor((random() / 2 ** 32) * (high - low + 1));
}

const TYPES: readonly AuditEventType[] = ['token.issued', 'token.issued', 'token.issued', 'auth.login.succeeded', 'auth.login.failed', 'session.revoked', 'token.revoked'];
const BASE_TIME = Date.parse('2026-01-01T00:00:00.000Z');

/** The entries [start, start + count) of the bench's log: what the ledger writes for typical events. */
function generateEntries(random: () => number, start: number, count: number): Uint8Array[] {
  const bytes = (n: number) => {
    const buffer = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i += 4) buffer.writeUInt32LE(random(), Math.min(i, n - 4));
    return buffer;
  };
  const out: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const type = TYPES[random() % TYPES.length]!;
    const entry: AuditEntry = {
      v: 1,
      type,
      // About 30 events a second, a busy deployment's rate.
      time: new Date(BASE_TIME + Math.floor((start + i) * 33.3)).toISOString(),
      outcome: type === 'auth.login.failed' ? 'failure' : 'success',
      actor: bytes(32).toString('base64url'),
      client: `client-${String(random() % 50).padStart(2, '0')}`,
      requestId: bytes(9).toString('base64url'),
      traceId: bytes(16).toString('hex'),
      ...(random() % 5 < 3 && { ip: `203.0.${random() % 256}.0/24` }),
      ...(type === 'token.issued' && { detail: { grant: random() % 2 === 0 ? 'authorization_code' : 'refresh_token', scope: 'openid profile' } }),
    };
    out.push(encodeEntry(entry));
  }
  return out;
}

/** Leaf hashes of the log the bench writes, 32 bytes each; shared by the drivers (same seed, same log). */
let leaves: Buffer | undefined;
const leafAt = (index: number) => leaves!.subarray(index * 32, index * 32 + 32);

// ---------------------------------------------------------------- one driver

interface Timing {
  readonly driver: string;
  readonly entries: number;
  readonly proof: 'inclusion' | 'consistency';
  readonly via: 'ledger' | 'tree.ts only';
  readonly medianMs: number;
  readonly p99Ms: number;
  readonly meanMs: number;
  readonly averageNodes: number;
  readonly samples: number;
}

interface Population {
  readonly driver: string;
  readonly entries: number;
  readonly seconds: number;
  readonly entriesPerSecond: number;
  readonly averageEntryBytes: number;
  readonly disk: Record<string, number>;
  readonly verified: { readonly inclusion: number; readonly consistency: number; readonly leafHashesChecked: number; readonly rootsChecked: readonly number[] };
}

const timings: Timing[] = [];
const populations: Population[] = [];
const notes: string[] = [];

function progress(driver: string, done: number, total: number, startedAt: number): void {
  const seconds = (performance.now() - startedAt) / 1000;
  const line = `${driver}: ${done.toLocaleString('en-US')} / ${total.toLocaleString('en-US')} entries, ${seconds.toFixed(1)} s`;
  if (process.stdout.isTTY) process.stdout.write(`\r${line}${done === total ? '\n' : ''}`);
  else if (done === total || done % Math.max(settings.batch, Math.round(total / 10 / settings.batch) * settings.batch) === 0) console.log(line);
}

async function populate(store: DurableStore, driver: string, total: number): Promise<{ seconds: number; averageEntryBytes: number }> {
  if ((await store.auditLog.size()) !== 0) throw new Error('the log to populate is not empty');
  const random = prng(settings.seed);
  const fresh = leaves === undefined || leaves.length < total * 32;
  if (fresh) leaves = Buffer.allocUnsafe(total * 32);
  let bytes = 0;
  const startedAt = performance.now();
  for (let start = 0; start < total; start += settings.batch) {
    // node:sqlite is synchronous: without a turn of the event loop now and
    // then, a Ctrl-C would wait for the whole population to finish.
    await nextTurn();
    if (wasInterrupted()) throw new Error('interrupted');
    const batch = generateEntries(random, start, Math.min(settings.batch, total - start));
    batch.forEach((entry, i) => {
      bytes += entry.length;
      if (fresh) leaves!.set(leafHash(entry), (start + i) * 32);
    });
    const first = await store.auditLog.append(batch, BASE_TIME, appendPlan);
    if (first !== start) throw new Error(`append placed entries at ${first}, expected ${start}`);
    progress(driver, start + batch.length, total, startedAt);
  }
  return { seconds: (performance.now() - startedAt) / 1000, averageEntryBytes: Math.round(bytes / total) };
}

/** Pairs (a, b) with b uniform in [N/2, N] and a uniform in [aMin, b - aOffset]. */
function pairs(random: () => number, size: number, count: number, kind: Timing['proof']): [number, number][] {
  return Array.from({ length: count }, () => {
    const high = between(random, Math.ceil(size / 2), size);
    return kind === 'inclusion' ? [between(random, 0, high - 1), high] : [between(random, 1, high), high];
  });
}

async function timed<T>(call: () => Promise<T>, into: { samples: number[]; results: T[] }): Promise<void> {
  const start = process.hrtime.bigint();
  const result = await call();
  into.samples.push(Number(process.hrtime.bigint() - start) / 1e6);
  into.results.push(result);
}

/**
 * Times `ledgerCall` over `ledgerWork` and `treeCall` over `treeWork` (other
 * pairs, so neither finds the other's pages freshly cached), one call of each
 * in turn: drift of the machine lands on both alike.
 */
async function timeInterleaved<T>(
  ledgerWork: readonly [number, number][],
  ledgerCall: (a: number, b: number) => Promise<T>,
  treeWork: readonly [number, number][],
  treeCall: (a: number, b: number) => Promise<T>,
): Promise<{ ledger: { samples: number[]; results: T[] }; tree: { samples: number[]; results: T[] } }> {
  const ledger = { samples: [] as number[], results: [] as T[] };
  const tree = { samples: [] as number[], results: [] as T[] };
  for (let i = 0; i < ledgerWork.length; i++) {
    // Untimed: lets a signal in (node:sqlite never leaves the microtask queue).
    if (i % 100 === 0) await nextTurn();
    if (wasInterrupted()) throw new Error('interrupted');
    const [a, b] = ledgerWork[i]!;
    const [c, d] = treeWork[i]!;
    await timed(() => ledgerCall(a, b), ledger);
    await timed(() => treeCall(c, d), tree);
  }
  return { ledger, tree };
}

function record(driver: string, size: number, proof: Timing['proof'], via: Timing['via'], samples: number[], nodes: number[]): void {
  const round4 = (value: number) => Math.round(value * 10_000) / 10_000;
  timings.push({
    driver,
    entries: size,
    proof,
    via,
    medianMs: round4(median(samples)),
    p99Ms: round4(percentile(samples, 99)),
    meanMs: round4(samples.reduce((sum, value) => sum + value, 0) / samples.length),
    averageNodes: Math.round((nodes.reduce((sum, value) => sum + value, 0) / nodes.length) * 10) / 10,
    samples: samples.length,
  });
}

/** Proves the proofs are right (untimed): see the module comment. */
async function verify(
  store: DurableStore,
  size: number,
  inclusion: { work: readonly [number, number][]; results: readonly { leafHash: Uint8Array; proof: Uint8Array[] }[] },
  consistency: { work: readonly [number, number][]; results: readonly Uint8Array[][] },
): Promise<Population['verified']> {
  const log = store.auditLog;
  // Roots of the whole log and of one prefix, computed here from our leaves.
  const prefix = between(prng(settings.seed + 1), 1, size);
  for (const n of [size, prefix]) {
    const expected = rootHash(Array.from({ length: n }, (_, i) => leafAt(i)));
    if (!Buffer.from(await storedRootHash(log, n)).equals(expected)) throw new Error(`stored root of size ${n} differs from the root of the generated leaves`);
  }
  inclusion.results.forEach((result, i) => {
    const [index] = inclusion.work[i]!;
    if (!Buffer.from(result.leafHash).equals(leafAt(index))) throw new Error(`inclusion proof ${i}: leaf hash of entry ${index} is wrong`);
  });
  const roots = new Map<number, Uint8Array>();
  const rootOf = async (n: number) => {
    let root = roots.get(n);
    if (root === undefined) roots.set(n, (root = await storedRootHash(log, n)));
    return root;
  };
  const step = (count: number) => Math.max(1, Math.floor(count / settings.verify));
  let inclusionVerified = 0;
  for (let i = 0; i < inclusion.results.length; i += step(inclusion.results.length)) {
    const [index, n] = inclusion.work[i]!;
    const { leafHash: leaf, proof } = inclusion.results[i]!;
    if (!verifyInclusion(leaf, index, n, proof, await rootOf(n))) throw new Error(`inclusion proof of ${index} in ${n} does not verify`);
    inclusionVerified += 1;
  }
  let consistencyVerified = 0;
  for (let i = 0; i < consistency.results.length; i += step(consistency.results.length)) {
    const [from, to] = consistency.work[i]!;
    if (!verifyConsistency(from, to, await rootOf(from), await rootOf(to), consistency.results[i]!)) throw new Error(`consistency proof ${from} -> ${to} does not verify`);
    consistencyVerified += 1;
  }
  return { inclusion: inclusionVerified, consistency: consistencyVerified, leafHashesChecked: inclusion.results.length, rootsChecked: [size, prefix] };
}

async function benchStore(store: DurableStore, driver: string, size: number, disk: () => Promise<Record<string, number>>, afterPopulation?: () => Promise<void>): Promise<void> {
  await store.migrate();
  const filled = await populate(store, driver, size);
  if (afterPopulation !== undefined) await afterPopulation();
  const ledger: Ledger = await openLedger({
    log: store.auditLog,
    records: store.records,
    vault: KeyVault.generate(),
    issuer: 'https://id.example.com',
    clock: () => Date.now(),
    audit: { ipAddresses: 'truncate', witnesses: [], maxPendingEntries: 10_000 },
  });
  try {
    const random = prng(settings.seed + 2);
    const log = store.auditLog;
    // Warm-up: statement caches, the pool's connections, the pages near the root.
    for (const [index, n] of pairs(random, size, settings.warmup, 'inclusion')) await ledger.inclusionProof(index, n);
    for (const [from, to] of pairs(random, size, settings.warmup, 'consistency')) await ledger.consistencyProof(from, to);

    const inclusionWork = pairs(random, size, settings.proofs, 'inclusion');
    const consistencyWork = pairs(random, size, settings.proofs, 'consistency');
    const inclusion = await timeInterleaved(
      inclusionWork,
      (index, n) => ledger.inclusionProof(index, n),
      pairs(random, size, settings.proofs, 'inclusion'),
      (index, n) => storedInclusionProof(log, index, n),
    );
    const consistency = await timeInterleaved(
      consistencyWork,
      (from, to) => ledger.consistencyProof(from, to),
      pairs(random, size, settings.proofs, 'consistency'),
      (from, to) => storedConsistencyProof(log, from, to),
    );
    record(driver, size, 'inclusion', 'ledger', inclusion.ledger.samples, inclusion.ledger.results.map((result) => result.proof.length));
    record(driver, size, 'consistency', 'ledger', consistency.ledger.samples, consistency.ledger.results.map((proof) => proof.length));
    record(driver, size, 'inclusion', 'tree.ts only', inclusion.tree.samples, inclusion.tree.results.map((result) => result.proof.length));
    record(driver, size, 'consistency', 'tree.ts only', consistency.tree.samples, consistency.tree.results.map((proof) => proof.length));

    const verified = await verify(store, size, { work: inclusionWork, results: inclusion.ledger.results }, { work: consistencyWork, results: consistency.ledger.results });
    populations.push({
      driver,
      entries: size,
      seconds: Math.round(filled.seconds * 10) / 10,
      entriesPerSecond: Math.round(size / filled.seconds),
      averageEntryBytes: filled.averageEntryBytes,
      disk: await disk(),
      verified,
    });
    console.log(`${driver}: proofs timed; verified ${verified.inclusion} inclusion and ${verified.consistency} consistency proofs, ${verified.leafHashesChecked} leaf hashes, roots of ${verified.rootsChecked.join(' and ')} entries`);
  } finally {
    await ledger.close();
  }
}

async function benchSqlite(size: number): Promise<void> {
  const directory = mkdtempSync(join(tmpdir(), 'portcullis-bench-'));
  const removeDirectory = deferUndo(async () => rmSync(directory, { recursive: true, force: true }));
  try {
    const path = join(directory, 'portcullis.db');
    const database = new SqliteDatabase({ path });
    const store = openSqliteDurableStore(database);
    try {
      const fileSize = (name: string) => {
        try {
          return statSync(name).size;
        } catch {
          return 0;
        }
      };
      await benchStore(store, 'sqlite', size, async () => {
        // Move the WAL into the main file, so its size is the database's.
        database.exec('PRAGMA wal_checkpoint(TRUNCATE)');
        return { databaseFileBytes: fileSize(path), walBytes: fileSize(`${path}-wal`) };
      });
    } finally {
      await store.close();
    }
  } finally {
    await removeDirectory();
  }
}

async function benchPostgres(url: string, size: number): Promise<void> {
  const schema = `portcullis_bench_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  const closeAdmin = deferUndo(() => admin.end());
  try {
    await admin.query(`CREATE SCHEMA ${schema}`);
    const dropSchema = deferUndo(async () => {
      await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    });
    try {
      const store = await openPostgresDurableStore({ url, schema });
      try {
        const relationSize = async (name: string) => Number((await admin.query<{ bytes: string }>(`SELECT pg_total_relation_size('${schema}.${name}') AS bytes`)).rows[0]!.bytes);
        await benchStore(
          store,
          'postgres',
          size,
          async () => {
            const entriesBytes = await relationSize('audit_entries');
            const nodesBytes = await relationSize('audit_nodes');
            return { auditEntriesBytes: entriesBytes, auditNodesBytes: nodesBytes, totalBytes: entriesBytes + nodesBytes };
          },
          async () => {
            const started = performance.now();
            await admin.query(`VACUUM ANALYZE ${schema}.audit_entries, ${schema}.audit_nodes`);
            notes.push(`postgres: VACUUM ANALYZE after population took ${((performance.now() - started) / 1000).toFixed(1)} s (not in the population time)`);
          },
        );
      } finally {
        await store.close();
      }
    } finally {
      await dropSchema();
    }
  } finally {
    await closeAdmin();
  }
}

// ---------------------------------------------------------------- main

const skipped: string[] = [];
console.log(`proofs: ${settings.proofs} of each kind per driver, sequential, after ${settings.warmup} warm-up; appends of ${settings.batch.toLocaleString('en-US')} entries`);
try {
  if (onlyDriver !== 'postgres') await benchSqlite(settings.sqliteEntries);
  if (onlyDriver !== 'sqlite') {
    if (databaseUrl !== undefined) await benchPostgres(databaseUrl, settings.postgresEntries);
    else skipped.push('postgres (set PORTCULLIS_TEST_DATABASE_URL or --database)');
  }
} finally {
  await runUndos();
}

console.log(`\nproof latency, milliseconds; goal: median < ${GOAL_MS} ms (ledger rows)`);
console.log(
  table(
    ['driver', 'entries', 'proof', 'via', 'median ms', 'p99 ms', 'mean ms', 'nodes', 'goal'],
    timings.map((t) => [t.driver, t.entries.toLocaleString('en-US'), t.proof, t.via, t.medianMs.toFixed(3), t.p99Ms.toFixed(3), t.meanMs.toFixed(3), t.averageNodes.toFixed(1), t.via === 'ledger' ? (t.medianMs < GOAL_MS ? 'met' : 'MISSED') : '']),
  ),
);
const mib = (bytes: number | undefined) => (bytes === undefined ? '' : (bytes / 2 ** 20).toFixed(1));
console.log('\npopulation (store.auditLog.append, 10,000 entries per append)');
console.log(
  table(
    ['driver', 'entries', 'seconds', 'entries/s', 'entry B', 'on disk MiB', 'entries MiB', 'nodes MiB'],
    populations.map((p) => [
      p.driver,
      p.entries.toLocaleString('en-US'),
      p.seconds.toFixed(1),
      p.entriesPerSecond.toLocaleString('en-US'),
      p.averageEntryBytes,
      mib(p.disk['databaseFileBytes'] ?? p.disk['totalBytes']),
      mib(p.disk['auditEntriesBytes']),
      mib(p.disk['auditNodesBytes']),
    ]),
  ),
);
for (const note of notes) console.log(note);
for (const what of skipped) console.log(`skipped: ${what}`);
const file = writeResult('audit-proofs', { benchmark: 'audit-proofs', at: new Date().toISOString(), machine: machine(), settings: { ...settings, goalMs: GOAL_MS }, timings, populations, notes, skipped });
console.log(`wrote ${file}`);
