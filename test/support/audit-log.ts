/**
 * A real audit log on disk, as a deployment would hold it, for the CLI
 * suites: a data directory with a JSON config file, a migrated durable store
 * (SQLite file, or PostgreSQL on a private schema), a ledger with its own
 * log key that recorded a fixed sequence of varied events and signed
 * checkpoints at chosen sizes. Plus a raw SQL connection of its own on the
 * same database, as an intruder with `sqlite3` or `psql` would have, and the
 * `portcullis` command run in-process with its output captured.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import pg from 'pg';
import { openLedger, type AuditEvent } from '../../src/audit/index.ts';
import { KeyVault } from '../../src/crypto/index.ts';
import { main } from '../../src/cli/main.ts';
import { loadConfig } from '../../src/config/index.ts';
import { openStores, sqlitePath } from '../../src/store/index.ts';
import { createTestSchema, testDatabaseUrl } from './services.ts';

export type AuditDriver = 'sqlite' | 'postgres';

/** The durable drivers this run tests: sqlite always, postgres when PORTCULLIS_TEST_DATABASE_URL is set. */
export const auditDrivers: readonly AuditDriver[] = ['sqlite', ...(testDatabaseUrl !== undefined ? (['postgres'] as const) : [])];

/** Entry times start here and step one second per entry. */
export const LOG_START = Date.UTC(2026, 2, 1, 9, 0, 0);

const TYPES = ['auth.login.succeeded', 'auth.login.failed', 'token.issued', 'token.revoked', 'client.registered', 'user.updated', 'session.revoked', 'privacy.export'] as const;
const OUTCOMES = ['success', 'failure', 'denied'] as const;

/**
 * Event `i` of the log: deterministic, and varied in type, outcome, actor,
 * client, IP (v4 and v6) and detail. Entry 17 is a `success` (the tamper
 * suite flips it), and every entry differs from its neighbours.
 */
export function auditEvent(i: number): AuditEvent {
  const type = TYPES[i % TYPES.length]!;
  const outcome = i === 17 ? 'success' : OUTCOMES[i % 3 === 2 ? 1 : i % 7 === 6 ? 2 : 0];
  return {
    type,
    outcome,
    time: LOG_START + i * 1000,
    ...(i % 4 !== 3 && { actorUserId: `user-${i % 5}` }),
    ...(i % 4 === 3 && { actorService: 'admin' }),
    ...(i % 2 === 0 && { clientId: `client-${i % 3}` }),
    requestId: `req-${i}`,
    ...(i % 5 !== 4 && { ip: i % 2 === 0 ? `198.51.100.${i}` : `2001:db8:${i.toString(16)}::1` }),
    ...(i % 3 === 0 && { detail: { attempt: i, method: i % 2 === 0 ? 'password' : 'passkey', mfa: i % 4 === 0, note: i % 6 === 0 ? null : `entry ${i}` } }),
  };
}

export interface AuditLogFixture {
  readonly driver: AuditDriver;
  /** The data directory: the config file, master.key, and the SQLite file (on PostgreSQL, the instance's hot store). */
  readonly dir: string;
  /** A config file for `--config`: the CLI reads this store, not ./data or the environment. */
  readonly configFile: string;
  /** The log's verifier key, as the ledger made it. */
  readonly verifierKey: string;
  /** The bytes of every entry as recorded. */
  readonly entries: readonly Uint8Array[];
  /**
   * Runs one statement on the raw connection. Parameters are written `$1`,
   * `$2`, ... for both drivers; rejects with the database's own error.
   */
  sql<R = Record<string, unknown>>(text: string, params?: readonly unknown[]): Promise<R[]>;
  close(): Promise<void>;
}

export interface BuildOptions {
  /** Entries to record (default 40). */
  readonly entries?: number;
  /** Sign a checkpoint when the log reaches each of these sizes (default 10, 25, 40). */
  readonly checkpointsAt?: readonly number[];
}

/** Builds a log on `driver`, closes the stores (the CLI opens its own), and opens the raw connection. */
export async function buildAuditLog(driver: AuditDriver, options: BuildOptions = {}): Promise<AuditLogFixture> {
  const count = options.entries ?? 40;
  const checkpointsAt = new Set(options.checkpointsAt ?? [10, 25, 40]);
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-audit-'));
  const cleanups: (() => Promise<void> | void)[] = [() => rmSync(dir, { recursive: true, force: true })];
  const cleanup = async () => {
    for (const step of cleanups.reverse()) await step();
  };
  try {
    let schema: string | undefined;
    if (driver === 'postgres') {
      if (testDatabaseUrl === undefined) throw new Error('the postgres audit log fixture needs PORTCULLIS_TEST_DATABASE_URL');
      // Unreachable PostgreSQL rejects here: the suite fails, never skips.
      const created = await createTestSchema(testDatabaseUrl);
      schema = created.schema;
      cleanups.push(created.drop);
    }
    const configFile = join(dir, 'portcullis.json');
    const configInput = driver === 'postgres' ? { dataDir: dir, database: { url: testDatabaseUrl, schema, poolSize: 2 } } : { dataDir: dir };
    writeFileSync(configFile, `${JSON.stringify(configInput, null, 2)}\n`);

    // The master key file where `portcullis init` puts it (<dataDir>/master.key, 0600).
    const masterKey = new Uint8Array(randomBytes(32));
    writeFileSync(join(dir, 'master.key'), `${Buffer.from(masterKey).toString('base64url')}\n`, { mode: 0o600 });

    const config = loadConfig({ env: {}, file: configFile });
    let now = LOG_START;
    const stores = await openStores(config, { clock: () => now });
    let verifierKey: string;
    const entries: Uint8Array[] = [];
    try {
      await stores.durable.migrate();
      const ledger = await openLedger({
        log: stores.durable.auditLog,
        records: stores.durable.records,
        vault: KeyVault.fromBytes(masterKey),
        issuer: 'https://id.example.com',
        clock: () => now,
        audit: { ipAddresses: 'truncate', witnesses: [], maxPendingEntries: 10_000 },
      });
      verifierKey = ledger.verifierKey;
      for (let i = 0; i < count; i++) {
        now = LOG_START + i * 1000;
        // One at a time: the indices, and so the tamper cases' targets, are fixed.
        const { index } = await ledger.record(auditEvent(i));
        if (index !== i) throw new Error(`entry ${i} was recorded at index ${index}`);
        if (checkpointsAt.has(i + 1)) {
          now += 500;
          await ledger.signCheckpoint();
        }
      }
      await ledger.close();
      for (let start = 0; start < count; start += 1000) {
        for (const row of await stores.durable.auditLog.entries(start, Math.min(count, start + 1000))) entries.push(row.entry);
      }
    } finally {
      await stores.close();
    }

    const sql = driver === 'postgres' ? await postgresSql(testDatabaseUrl!, schema!, cleanups) : sqliteSql(sqlitePath(config), cleanups);
    return { driver, dir, configFile, verifierKey, entries, sql, close: cleanup };
  } catch (error) {
    await cleanup();
    throw error;
  }
}

type Sql = AuditLogFixture['sql'];

function sqliteSql(path: string, cleanups: (() => Promise<void> | void)[]): Sql {
  // A second connection, as the sqlite3 shell would open it.
  const raw = new DatabaseSync(path);
  raw.exec('PRAGMA busy_timeout = 5000');
  cleanups.push(() => raw.close());
  return async <R>(text: string, params: readonly unknown[] = []) =>
    // SQLite numbers parameters ?1, ?2, ...; binding positionally fills them in order.
    raw.prepare(text.replace(/\$(\d+)/g, '?$1')).all(...(params as never[])) as unknown as R[];
}

async function postgresSql(url: string, schema: string, cleanups: (() => Promise<void> | void)[]): Promise<Sql> {
  const raw = new pg.Client({ connectionString: url, options: `-c search_path=${schema}` });
  await raw.connect();
  cleanups.push(() => raw.end());
  return async <R>(text: string, params: readonly unknown[] = []) => (await raw.query(text, params as unknown[])).rows as R[];
}

export interface CliRun {
  readonly code: number;
  /** stdout lines. */
  readonly out: readonly string[];
  /** stderr lines. */
  readonly err: readonly string[];
  /** Progress text (only when run with `progress: true`). */
  readonly progress: string;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `portcullis <args>` in this process (src/cli/main.ts) and captures what it writes. */
export async function runCli(args: readonly string[], options: { progress?: boolean } = {}): Promise<CliRun> {
  const out: string[] = [];
  const err: string[] = [];
  let progress = '';
  const code = await main(args, {
    out: (line) => out.push(line),
    err: (line) => err.push(line),
    ...(options.progress === true && { progress: (text: string) => (progress += text) }),
  });
  return { code, out, err, progress, stdout: out.join('\n'), stderr: err.join('\n') };
}

export { runBinary, type BinaryRun } from './process.ts';
