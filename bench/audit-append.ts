/**
 * What does the audit ledger cost a writer? Append throughput (events/s) of
 * `Ledger.record` with many concurrent writers, against a plain INSERT of
 * the same rows without the ledger, on SQLite and on PostgreSQL. The goal:
 * the ledger keeps >= 50% of the plain INSERT's events per second.
 *
 *   node --disable-warning=ExperimentalWarning bench/audit-append.ts
 *     [--writers 64] [--rounds 3] [--duration 5] [--warmup 1]
 *     [--events N]                 a fixed number of events per run instead of --duration
 *     [--users 1000] [--pool 10]   actor pool; Postgres pool size (store and plain alike)
 *     [--driver sqlite|postgres]   only this driver (default: sqlite, and postgres if a URL is given)
 *     [--database postgres://...]  default: PORTCULLIS_TEST_DATABASE_URL
 *
 * ledger: W writers each loop `await ledger.record(event)`, a realistic
 *   'token.issued' event (actor from a pool of users, client, request and
 *   trace ids, IP, small detail). Per record the ledger checks the event,
 *   reads the actor's pseudonym secret (a durable-record read), HMACs it,
 *   canonicalises the entry (RFC 8785), queues it, and group-commits the
 *   queue in batches: one transaction per batch that reads the frontier,
 *   hashes leaves and nodes, and inserts entries and nodes. Every user's
 *   pseudonym secret is created before timing (that is a one-off per user).
 * plain: the same W writers each loop one autocommit single-row INSERT of
 *   the same canonical entry bytes (same fields, the actor's pseudonym
 *   taken from a map) into a plain table `bench_plain_entries` in the same
 *   database, written with the raw driver: a second node:sqlite connection
 *   with the store's pragmas (WAL, synchronous=FULL), or a pg Pool of the
 *   store's pool size. No pseudonym read, no hashing, no batching.
 *
 * Runs alternate ledger, plain, ledger, plain... (ABAB), each after an
 * untimed warm-up of both; medians over rounds. Events/s is completed records
 * over the run's wall time; latency is per record, call to resolution.
 * `appends` wraps the store's auditLog.append to count the ledger's batches.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { DatabaseSync } from 'node:sqlite';
import pg from 'pg';
import { KeyVault } from '../src/crypto/index.ts';
import { encodeEntry, openLedger, truncateIp, type AuditEntry, type AuditEvent, type Ledger } from '../src/audit/index.ts';
import type { AuditLogStore, DurableStore } from '../src/store/index.ts';
import { openPostgresDurableStore } from '../src/store/postgres/durable-store.ts';
import { SqliteDatabase } from '../src/store/sqlite/database.ts';
import { openSqliteDurableStore } from '../src/store/sqlite/durable-store.ts';
import { machine, median, option, percentile, positiveInteger, round2, table, writeResult } from './lib.ts';

const settings = {
  writers: positiveInteger('writers', 64),
  rounds: positiveInteger('rounds', 3),
  durationSeconds: positiveInteger('duration', 5),
  warmupSeconds: positiveInteger('warmup', 1),
  events: option('events') === undefined ? undefined : positiveInteger('events', 1),
  users: positiveInteger('users', 1000),
  poolSize: positiveInteger('pool', 10),
};
const onlyDriver = option('driver');
if (onlyDriver !== undefined && onlyDriver !== 'sqlite' && onlyDriver !== 'postgres') throw new Error(`--driver must be sqlite or postgres, got "${onlyDriver}"`);
const databaseUrl = option('database') ?? (process.env['PORTCULLIS_TEST_DATABASE_URL'] || undefined);
if (onlyDriver === 'postgres' && databaseUrl === undefined) throw new Error('--driver postgres needs --database or PORTCULLIS_TEST_DATABASE_URL');
const GOAL = 0.5;
const TURN_EVERY_MS = 250;

// Ctrl-C stops the writers, and the finally blocks remove the temporary
// file and schema; a second one exits at once.
let interrupted = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    console.error(`\n${signal}: stopping and cleaning up (again to exit at once)`);
  });
}
const CLIENTS = 20;
const GRANTS = ['authorization_code', 'refresh_token', 'client_credentials'] as const;

/** One database to run both sides against. */
interface Target {
  readonly driver: string;
  readonly store: DurableStore;
  /** Where the database keeps its durability settings, for the record. */
  readonly durability: Record<string, string>;
  /** One autocommit single-row INSERT into bench_plain_entries. */
  plainInsert(entry: Uint8Array, recordedAt: number): Promise<void>;
  plainRows(): Promise<number>;
}

interface Run {
  readonly side: 'ledger' | 'plain';
  readonly round: number;
  readonly events: number;
  readonly seconds: number;
  readonly eventsPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Ledger only: store appends (batches) during the run. */
  readonly appends?: number;
  readonly averageBatch?: number;
}

interface DriverResult {
  readonly driver: string;
  readonly durability: Record<string, string>;
  readonly averageEntryBytes: number;
  readonly runs: readonly Run[];
  readonly ledgerEventsPerSecond: number;
  readonly plainEventsPerSecond: number;
  readonly ratio: number;
  readonly ratiosPerRound: readonly number[];
  readonly ledgerP50Ms: number;
  readonly ledgerP99Ms: number;
  readonly plainP50Ms: number;
  readonly plainP99Ms: number;
  readonly averageBatch: number;
}

const userId = (i: number) => `user-${String(i).padStart(6, '0')}`;
const pick = (n: number) => Math.floor(Math.random() * n);

/** A token endpoint's event, as the OAuth module records it. */
function tokenIssued(): AuditEvent {
  return {
    type: 'token.issued',
    outcome: 'success',
    actorUserId: userId(pick(settings.users)),
    clientId: `client-${String(pick(CLIENTS)).padStart(2, '0')}`,
    requestId: randomUUID(),
    traceId: randomBytes(16).toString('hex'),
    ip: `203.0.${pick(256)}.${pick(256)}`,
    detail: { grant: GRANTS[pick(GRANTS.length)]!, scope: 'openid profile email', expiresIn: 3600, dpop: Math.random() < 0.5 },
  };
}

/**
 * The entry the ledger would write for `event` (Ledger's own mapping, with
 * the default `truncate` IP mode), from a map of pseudonyms: the same bytes
 * a plain writer would store if it kept the same row without the ledger.
 */
function plainEntry(event: AuditEvent, pseudonyms: ReadonlyMap<string, string>, now: number): Uint8Array {
  const entry: AuditEntry = {
    v: 1,
    type: event.type,
    time: new Date(now).toISOString(),
    outcome: event.outcome,
    actor: pseudonyms.get(event.actorUserId!)!,
    client: event.clientId!,
    requestId: event.requestId!,
    traceId: event.traceId!,
    ip: truncateIp(event.ip!),
    detail: event.detail!,
  };
  return encodeEntry(entry);
}

/** The store's audit log with `append` counted (the drivers keep #private state: bind, never Object.create). */
function countingLog(log: AuditLogStore, counter: { appends: number; entries: number }): AuditLogStore {
  return {
    append: async (entries, recordedAt, plan, subjects) => {
      const first = await log.append(entries, recordedAt, plan, subjects);
      counter.appends += 1;
      counter.entries += entries.length;
      return first;
    },
    size: log.size.bind(log),
    entries: log.entries.bind(log),
    nodes: log.nodes.bind(log),
    addCheckpoint: log.addCheckpoint.bind(log),
    latestCheckpoint: log.latestCheckpoint.bind(log),
    checkpointOfSize: log.checkpointOfSize.bind(log),
    checkpoints: log.checkpoints.bind(log),
    addCosignature: log.addCosignature.bind(log),
    cosignatures: log.cosignatures.bind(log),
    subjectEntries: log.subjectEntries.bind(log),
    indexSubject: log.indexSubject.bind(log),
    forgetSubject: log.forgetSubject.bind(log),
  };
}

/**
 * W writers, each writing one event at a time until the deadline (or until
 * `count` events were started in all). The first failure stops every writer
 * and is thrown once all have stopped.
 */
async function drive(write: (event: AuditEvent) => Promise<unknown>, limit: { seconds: number } | { count: number }): Promise<{ events: number; seconds: number; latenciesMs: number[] }> {
  const latenciesMs: number[] = [];
  let started = 0;
  let failure: Error | undefined;
  const start = performance.now();
  const deadline = 'seconds' in limit ? start + limit.seconds * 1000 : Number.POSITIVE_INFINITY;
  const count = 'count' in limit ? limit.count : Number.POSITIVE_INFINITY;
  // node:sqlite never leaves the microtask queue, so timers and signals
  // would wait for the run's end. Every TURN_EVERY_MS all writers pause at
  // their next event until one turn of the event loop has passed (a signal
  // gets in): on SQLite the writers move in lock step with the batches, so
  // the pause costs one empty turn, tens of microseconds, on both sides alike.
  let pause: Promise<void> | undefined;
  let nextPauseAt = start + TURN_EVERY_MS;
  const writer = async () => {
    for (;;) {
      if (performance.now() >= nextPauseAt) {
        nextPauseAt = performance.now() + TURN_EVERY_MS;
        pause = nextTurn().then(() => {
          pause = undefined;
        });
      }
      if (pause !== undefined) await pause;
      if (interrupted) failure ??= new Error('interrupted');
      if (failure !== undefined || started >= count || performance.now() >= deadline) return;
      started += 1;
      const event = tokenIssued();
      const t0 = performance.now();
      try {
        await write(event);
      } catch (error) {
        failure ??= error instanceof Error ? error : new Error(String(error));
        return;
      }
      latenciesMs.push(performance.now() - t0);
    }
  };
  await Promise.all(Array.from({ length: settings.writers }, writer));
  if (failure !== undefined) throw failure;
  return { events: latenciesMs.length, seconds: (performance.now() - start) / 1000, latenciesMs };
}

const round3 = (value: number) => Math.round(value * 1000) / 1000;

async function benchTarget(target: Target): Promise<DriverResult> {
  const counter = { appends: 0, entries: 0 };
  const ledger: Ledger = await openLedger({
    log: countingLog(target.store.auditLog, counter),
    records: target.store.records,
    vault: KeyVault.generate(),
    issuer: 'https://id.example.com',
    clock: () => Date.now(),
    audit: { ipAddresses: 'truncate', witnesses: [], maxPendingEntries: 10_000 },
  });
  const runs: Run[] = [];
  try {
    // Every user's pseudonym secret, made now: in a running server each user
    // pays that once, not per event. The map serves the plain side.
    const pseudonyms = new Map<string, string>();
    for (let i = 0; i < settings.users; i++) {
      const pseudonym = await ledger.pseudonyms.pseudonym(userId(i));
      if (pseudonym === null) throw new Error(`${userId(i)} is forgotten in a fresh store`);
      pseudonyms.set(userId(i), pseudonym);
    }

    const sides = {
      ledger: (event: AuditEvent) => ledger.record(event),
      plain: (event: AuditEvent) => {
        const now = Date.now();
        return target.plainInsert(plainEntry(event, pseudonyms, now), now);
      },
    };
    const limit = settings.events === undefined ? { seconds: settings.durationSeconds } : { count: settings.events };
    for (const side of ['ledger', 'plain'] as const) await drive(sides[side], { seconds: settings.warmupSeconds });
    const logStart = await target.store.auditLog.size();
    const plainStart = await target.plainRows();
    let ledgerRecorded = 0;
    let plainInserted = 0;

    for (let round = 1; round <= settings.rounds; round++) {
      for (const side of ['ledger', 'plain'] as const) {
        const before = { ...counter };
        const { events, seconds, latenciesMs } = await drive(sides[side], limit);
        if (side === 'ledger') ledgerRecorded += events;
        else plainInserted += events;
        const appends = counter.appends - before.appends;
        const run: Run = {
          side,
          round,
          events,
          seconds: round3(seconds),
          eventsPerSecond: Math.round(events / seconds),
          p50Ms: round3(percentile(latenciesMs, 50)),
          p99Ms: round3(percentile(latenciesMs, 99)),
          ...(side === 'ledger' && { appends, averageBatch: round2((counter.entries - before.entries) / appends) }),
        };
        runs.push(run);
        console.log(
          `${target.driver} round ${round} ${side.padEnd(6)} ${run.eventsPerSecond.toLocaleString('en-US').padStart(8)} events/s  p50 ${run.p50Ms.toFixed(2)} ms  p99 ${run.p99Ms.toFixed(2)} ms` +
            (side === 'ledger' ? `  ${appends} appends, ${run.averageBatch} entries each` : ''),
        );
      }
    }
    await ledger.flush();

    // Every record that resolved is in the log, once, and nothing else is.
    const logGrowth = (await target.store.auditLog.size()) - logStart;
    if (logGrowth !== ledgerRecorded) throw new Error(`the log grew by ${logGrowth} entries but ${ledgerRecorded} records resolved`);
    const plainGrowth = (await target.plainRows()) - plainStart;
    if (plainGrowth !== plainInserted) throw new Error(`the plain table grew by ${plainGrowth} rows but ${plainInserted} inserts resolved`);
    const sample = await target.store.auditLog.entries(logStart, logStart + 1000);
    const averageEntryBytes = Math.round(sample.reduce((sum, row) => sum + row.entry.length, 0) / sample.length);

    const of = (side: Run['side']) => runs.filter((run) => run.side === side);
    const ledgerEventsPerSecond = median(of('ledger').map((run) => run.eventsPerSecond));
    const plainEventsPerSecond = median(of('plain').map((run) => run.eventsPerSecond));
    return {
      driver: target.driver,
      durability: target.durability,
      averageEntryBytes,
      runs,
      ledgerEventsPerSecond,
      plainEventsPerSecond,
      ratio: round3(ledgerEventsPerSecond / plainEventsPerSecond),
      ratiosPerRound: of('ledger').map((run, i) => round3(run.eventsPerSecond / of('plain')[i]!.eventsPerSecond)),
      ledgerP50Ms: round3(median(of('ledger').map((run) => run.p50Ms))),
      ledgerP99Ms: round3(median(of('ledger').map((run) => run.p99Ms))),
      plainP50Ms: round3(median(of('plain').map((run) => run.p50Ms))),
      plainP99Ms: round3(median(of('plain').map((run) => run.p99Ms))),
      averageBatch: round2(median(of('ledger').map((run) => run.averageBatch!))),
    };
  } finally {
    await ledger.close();
  }
}

/** A temporary SQLite file holding the store and the plain table. */
async function benchSqlite(): Promise<DriverResult> {
  const directory = mkdtempSync(join(tmpdir(), 'portcullis-bench-'));
  try {
    const path = join(directory, 'portcullis.db');
    const store = openSqliteDurableStore(new SqliteDatabase({ path }));
    try {
      await store.migrate();
      // The plain side's own connection, set up as SqliteDatabase sets up its own.
      const raw = new DatabaseSync(path);
      try {
        raw.exec('PRAGMA busy_timeout = 5000');
        raw.exec('PRAGMA journal_mode = WAL');
        raw.exec('PRAGMA synchronous = FULL');
        raw.exec('CREATE TABLE bench_plain_entries (idx INTEGER PRIMARY KEY AUTOINCREMENT, entry BLOB NOT NULL, recorded_at INTEGER NOT NULL)');
        const insert = raw.prepare('INSERT INTO bench_plain_entries (entry, recorded_at) VALUES (?, ?)');
        const count = raw.prepare('SELECT count(*) AS n FROM bench_plain_entries');
        return await benchTarget({
          driver: 'sqlite',
          store,
          durability: { journal_mode: 'WAL', synchronous: 'FULL' },
          plainInsert: async (entry, recordedAt) => {
            insert.run(entry, recordedAt);
          },
          plainRows: async () => Number((count.get() as { n: number }).n),
        });
      } finally {
        raw.close();
      }
    } finally {
      await store.close();
    }
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
}

/** In a schema of its own, created here and dropped afterwards. */
async function benchPostgres(url: string): Promise<DriverResult> {
  const schema = `portcullis_bench_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  try {
    await admin.query(`CREATE SCHEMA ${schema}`);
    try {
      const store = await openPostgresDurableStore({ url, schema, poolSize: settings.poolSize });
      try {
        await store.migrate();
        const pool = new pg.Pool({ connectionString: url, max: settings.poolSize, options: `-c search_path=${schema}` });
        pool.on('error', () => undefined);
        try {
          await pool.query('CREATE TABLE bench_plain_entries (idx bigserial PRIMARY KEY, entry bytea NOT NULL, recorded_at bigint NOT NULL)');
          const durability: Record<string, string> = {};
          for (const name of ['synchronous_commit', 'fsync', 'wal_sync_method', 'commit_delay']) {
            const { rows } = await pool.query<Record<string, string>>(`SHOW ${name}`);
            durability[name] = rows[0]![name]!;
          }
          return await benchTarget({
            driver: 'postgres',
            store,
            durability,
            plainInsert: async (entry, recordedAt) => {
              await pool.query('INSERT INTO bench_plain_entries (entry, recorded_at) VALUES ($1, $2)', [Buffer.from(entry.buffer, entry.byteOffset, entry.byteLength), recordedAt]);
            },
            plainRows: async () => Number((await pool.query<{ n: string }>('SELECT count(*) AS n FROM bench_plain_entries')).rows[0]!.n),
          });
        } finally {
          await pool.end();
        }
      } finally {
        await store.close();
      }
    } finally {
      await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    }
  } finally {
    await admin.end();
  }
}

const results: DriverResult[] = [];
const skipped: string[] = [];
const per = settings.events === undefined ? `${settings.durationSeconds} s` : `${settings.events} events`;
console.log(`${settings.writers} concurrent writers, ${settings.rounds} rounds of ${per} per side (ledger, plain alternating), ${settings.users} users`);
if (onlyDriver !== 'postgres') results.push(await benchSqlite());
if (onlyDriver !== 'sqlite') {
  if (databaseUrl !== undefined) results.push(await benchPostgres(databaseUrl));
  else skipped.push('postgres (set PORTCULLIS_TEST_DATABASE_URL or --database)');
}

const thousands = (value: number) => Math.round(value).toLocaleString('en-US');
console.log(`\nmedians over ${settings.rounds} rounds; goal: ledger/plain >= ${GOAL}`);
console.log(
  table(
    ['driver', 'ledger ev/s', 'plain ev/s', 'ledger/plain', 'per round', 'goal', 'ledger p50 ms', 'ledger p99 ms', 'plain p50 ms', 'plain p99 ms', 'avg batch', 'entry B'],
    results.map((r) => [
      r.driver,
      thousands(r.ledgerEventsPerSecond),
      thousands(r.plainEventsPerSecond),
      r.ratio.toFixed(2),
      r.ratiosPerRound.map((ratio) => ratio.toFixed(2)).join(' / '),
      r.ratio >= GOAL ? 'met' : 'MISSED',
      r.ledgerP50Ms.toFixed(2),
      r.ledgerP99Ms.toFixed(2),
      r.plainP50Ms.toFixed(2),
      r.plainP99Ms.toFixed(2),
      r.averageBatch.toFixed(1),
      r.averageEntryBytes,
    ]),
  ),
);
for (const r of results) console.log(`${r.driver} durability: ${Object.entries(r.durability).map(([name, value]) => `${name}=${value}`).join(', ')}`);
for (const what of skipped) console.log(`skipped: ${what}`);
const file = writeResult('audit-append', { benchmark: 'audit-append', at: new Date().toISOString(), machine: machine(), settings: { ...settings, goal: GOAL }, results, skipped });
console.log(`wrote ${file}`);
