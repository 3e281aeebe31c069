/**
 * A backup restored after an erasure brings the person back; `portcullis
 * privacy reapply` erases them again (issue 15). The tombstone file
 * (privacy.tombstoneFile, in the data directory, outside the backup) is
 * what remembers the erasure. The backup is taken while the server is
 * stopped, before the erasure:
 *
 * - embedded: the SQLite database's files, copied (and copied back);
 * - PostgreSQL + Redis: `pg_dump --format=custom` of the deployment's
 *   schema, restored by dropping the schema and running `pg_restore`
 *   (the Debian client tools, as an operator would). The Redis hot store
 *   is not part of the backup: it keeps what it had after the erasure
 *   (sessions, tokens and caches it held are already gone) and is not
 *   rolled back.
 *
 * After the reapply the tombstone is back in the database and the person
 * is in no byte of the data directory and, on PostgreSQL + Redis, in no
 * table of the schema and no key under the prefix; a new account opened
 * later with the same address is not theirs, and a reapply leaves it alone.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { storedTombstones } from '../../src/privacy/index.ts';
import { BrowserlessClient } from '../support/browserless-client.ts';
import { describeHits, privacyDeployment, type PrivacyDeployment } from '../support/privacy-deployment.ts';
import { newProbe, passwordSignIn, seed, type Hit, type Seeded } from '../support/privacy-probe.ts';
import { testBackends } from '../support/server.ts';
import { testDatabaseUrl } from '../support/services.ts';

const DATABASE_FILES = ['portcullis.db', 'portcullis.db-wal', 'portcullis.db-shm'];

/** A backup of the deployment's database, taken and restored while the server is stopped. */
interface Backup {
  take(): Promise<void>;
  restore(): Promise<void>;
}

/** Embedded: the database's files copied from one directory to another, replacing what is there. */
function fileBackup(deployment: PrivacyDeployment): Backup {
  const backupDir = join(deployment.dir, 'backup');
  const copyDatabase = (from: string, to: string) => {
    mkdirSync(to, { recursive: true });
    for (const name of DATABASE_FILES) {
      rmSync(join(to, name), { force: true });
      if (existsSync(join(from, name))) copyFileSync(join(from, name), join(to, name));
    }
  };
  return {
    take: async () => copyDatabase(deployment.dataDir, backupDir),
    restore: async () => copyDatabase(backupDir, deployment.dataDir),
  };
}

/** Runs a PostgreSQL client tool; fails the test unless it exits 0. */
function runTool(command: string, args: string[]): void {
  const run = spawnSync(command, args, { encoding: 'utf8' });
  if (run.error !== undefined) throw run.error;
  assert.equal(run.status, 0, `${command} ${args.join(' ')} exited ${String(run.status ?? run.signal)}:\n${run.stderr}`);
}

async function onDatabase<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** The tables a schema has (none when it does not exist). */
async function tablesOf(url: string, schema: string): Promise<string[]> {
  return onDatabase(url, async (client) => (await client.query<{ table_name: string }>("SELECT table_name FROM information_schema.tables WHERE table_schema = $1 AND table_type = 'BASE TABLE' ORDER BY table_name", [schema])).rows.map((row) => row.table_name));
}

/** PostgreSQL: `pg_dump` of the deployment's schema (custom format); restored by dropping the schema and `pg_restore`. */
function postgresBackup(deployment: PrivacyDeployment): Backup {
  const url = testDatabaseUrl!;
  const schema = deployment.schema!;
  const file = join(deployment.dir, 'backup.dump');
  let tables: string[] = [];
  return {
    take: async () => {
      tables = await tablesOf(url, schema);
      assert.ok(tables.length > 0, 'the schema has tables to back up');
      runTool('pg_dump', [`--schema=${schema}`, '--format=custom', '-f', file, url]);
      assert.ok(existsSync(file), 'pg_dump wrote the backup');
    },
    restore: async () => {
      await onDatabase(url, (client) => client.query(`DROP SCHEMA ${schema} CASCADE`));
      assert.deepEqual(await tablesOf(url, schema), [], 'the schema is gone before the restore');
      runTool('pg_restore', [`--dbname=${url}`, file]);
      assert.deepEqual(await tablesOf(url, schema), tables, 'pg_restore recreated the schema and its tables');
    },
  };
}

for (const backend of testBackends) describe(`restoring a backup made before an erasure, then \`portcullis privacy reapply\` (${backend})`, () => {
  let deployment: PrivacyDeployment;
  const probe = newProbe('restore-probe');
  let seeded: Seeded;
  let backup: Backup;

  const tombstoneLines = () => readFileSync(join(deployment.dataDir, 'erasure-tombstones.jsonl'), 'utf8').split('\n').filter((line) => line !== '');

  before(async () => {
    deployment = await privacyDeployment(backend);
    backup = backend === 'embedded' ? fileBackup(deployment) : postgresBackup(deployment);
    await deployment.start();
    seeded = await seed(deployment, probe, { loginHints: false });
    await deployment.stop();
    await backup.take();
  });
  after(async () => {
    await deployment?.remove();
  });

  it('erases the person the restored database brought back, puts the tombstone back, and leaves no trace', async () => {
    const erased = await deployment.cli(['user', 'erase', probe.email]);
    assert.equal(erased.code, 0, erased.err.join('\n'));
    assert.equal(tombstoneLines().length, 1, 'the erasure is remembered outside the database');
    assert.deepEqual(await deployment.traces(probe), [], 'erased');

    // The backup comes back: the person with it, the tombstone not (Redis, not in the backup, stays as the erasure left it).
    await backup.restore();
    await deployment.start();
    assert.ok(await deployment.running.identity.accounts.users.byId(seeded.userId), 'the restored database has the person again');
    assert.deepEqual(await storedTombstones(deployment.running.stores.durable.records), []);
    await deployment.stop();
    const restored = await deployment.traces(probe);
    const inDatabase = (hit: Hit) => (backend === 'embedded' ? hit.table.startsWith('portcullis.db') : hit.source === `postgres ${deployment.schema!}`);
    assert.ok(restored.some(inDatabase), `the search finds the person the backup brought back, in the restored database:\n  ${describeHits(restored)}`);

    const reapplied = await deployment.cli(['privacy', 'reapply']);
    assert.equal(reapplied.code, 0, reapplied.err.join('\n'));
    assert.deepEqual(reapplied.out, ['Tombstones: 1 (1 put back into the database). Accounts erased again: 1.']);

    const hits = await deployment.traces(probe);
    assert.deepEqual(hits.map((hit) => `${hit.source} ${hit.table}`), [], `the person is still found after the reapply:\n  ${describeHits(hits)}`);
    const running = await deployment.start();
    assert.equal(await running.identity.accounts.users.byId(seeded.userId), null);
    assert.deepEqual(await passwordSignIn(new BrowserlessClient(deployment.url), probe.email, seeded.password), { status: 401, location: null });
    const tombstones = await storedTombstones(running.stores.durable.records);
    assert.deepEqual(tombstones.map((tombstone) => tombstone.user), [running.erasure.subjects.ofUser(seeded.userId)], 'the tombstone is back in the database');
    const erasures = await running.erasure.erasures.list();
    assert.equal(erasures.length, 1, 'the reapply\'s own erasure (the first one\'s record went with the restore)');
    assert.equal(erasures[0]!.state, 'executed');
    assert.equal(await running.ledger.pseudonyms.existingPseudonym(seeded.userId), null);
    await deployment.stop();
    const verified = await deployment.cli(['audit', 'verify']);
    assert.equal(verified.code, 0, [...verified.out, ...verified.err].join('\n'));
  });

  it('a new account opened with the same address after the erasure is not erased by a reapply', async () => {
    const created = await deployment.cli(['user', 'create', '--email', probe.email, '--password-stdin'], 'another fine passphrase for a new person\n');
    assert.equal(created.code, 0, created.err.join('\n'));
    const newId = /\((u_[A-Za-z0-9_-]{22})\)/.exec(created.out.join('\n'))?.[1];
    assert.ok(newId && newId !== seeded.userId, created.out.join('\n'));

    const reapplied = await deployment.cli(['privacy', 'reapply']);
    assert.equal(reapplied.code, 0, reapplied.err.join('\n'));
    assert.match(reapplied.out.join('\n'), /Accounts erased again: 0\.$/);
    const running = await deployment.start();
    const user = await running.identity.accounts.users.byEmail(probe.email);
    assert.equal(user?.id, newId, 'the new account is still there');
    assert.deepEqual(await passwordSignIn(new BrowserlessClient(deployment.url), probe.email, 'another fine passphrase for a new person'), { status: 303, location: '/account' });
    await deployment.stop();
  });
});
