/**
 * A backup restored after an erasure brings the person back; `portcullis
 * privacy reapply` erases them again (issue 15). The backup is the SQLite
 * database's files copied while the server is stopped, before the erasure;
 * the tombstone file (privacy.tombstoneFile, outside the backup) is what
 * remembers the erasure. After the reapply the tombstone is back in the
 * database and the person is in no byte of the data directory; a new
 * account opened later with the same address is not theirs, and a reapply
 * leaves it alone.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { storedTombstones } from '../../src/privacy/index.ts';
import { BrowserlessClient } from '../support/browserless-client.ts';
import { describeHits, privacyDeployment, type PrivacyDeployment } from '../support/privacy-deployment.ts';
import { newProbe, passwordSignIn, seed, type Seeded } from '../support/privacy-probe.ts';

const DATABASE_FILES = ['portcullis.db', 'portcullis.db-wal', 'portcullis.db-shm'];

describe('restoring a backup made before an erasure, then `portcullis privacy reapply` (embedded)', () => {
  let deployment: PrivacyDeployment;
  const probe = newProbe('restore-probe');
  let seeded: Seeded;
  let backupDir: string;

  /** Copies the database's files (the server stopped) from one directory to another, replacing what is there. */
  const copyDatabase = (from: string, to: string) => {
    mkdirSync(to, { recursive: true });
    for (const name of DATABASE_FILES) {
      rmSync(join(to, name), { force: true });
      if (existsSync(join(from, name))) copyFileSync(join(from, name), join(to, name));
    }
  };
  const tombstoneLines = () => readFileSync(join(deployment.dataDir, 'erasure-tombstones.jsonl'), 'utf8').split('\n').filter((line) => line !== '');

  before(async () => {
    deployment = await privacyDeployment('embedded');
    backupDir = join(deployment.dir, 'backup');
    await deployment.start();
    seeded = await seed(deployment, probe, { loginHints: false });
    await deployment.stop();
    copyDatabase(deployment.dataDir, backupDir);
  });
  after(async () => {
    await deployment?.remove();
  });

  it('erases the person the restored database brought back, puts the tombstone back, and leaves no trace', async () => {
    const erased = await deployment.cli(['user', 'erase', probe.email]);
    assert.equal(erased.code, 0, erased.err.join('\n'));
    assert.equal(tombstoneLines().length, 1, 'the erasure is remembered outside the database');
    assert.deepEqual(await deployment.traces(probe), [], 'erased');

    // The backup comes back: the person with it, the tombstone not.
    copyDatabase(backupDir, deployment.dataDir);
    await deployment.start();
    assert.ok(await deployment.running.identity.accounts.users.byId(seeded.userId), 'the restored database has the person again');
    assert.deepEqual(await storedTombstones(deployment.running.stores.durable.records), []);
    await deployment.stop();
    assert.ok((await deployment.traces(probe)).length > 0, 'the search finds the person the backup brought back');

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
