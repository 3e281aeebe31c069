/**
 * An erasure's steps after its commit (src/privacy/erasure-cleanup.ts) are
 * not lost when they do not run: the clean-up record the transaction wrote
 * lets the privacy job finish them, and its last pass sweeps what a request
 * in flight wrote after the erasure.
 *
 * - A `portcullis user erase` process is killed (SIGKILL) right after the
 *   erasure's transaction commits: the account is gone but the person's
 *   session lives and the record, pending, still holds their address. The
 *   job leaves it alone for CLEANUP_RETRY_MS (a first pass may still be
 *   running), then finishes it: no session, the browser's cookie refused,
 *   the record settling with no address; after settleAt the last pass
 *   deletes it.
 * - The hot store fails once during the first pass of an erasure made in
 *   the server: the outcome says `cleanup: 'pending'`, the server logs one
 *   error line (no stack, no address), and the job finishes it.
 * - A consent and a session written for the erased id after the erasure
 *   are deleted by the last pass (lateRecords), not before settleAt; a last
 *   pass that fails leaves the record for the next run.
 *
 * Then, the server stopped, none of the people is found in any byte of the
 * data directory, any PostgreSQL table or Redis key; the ledger verifies.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { CLEANUP_RETRY_MS, type CleanupData } from '../../src/privacy/erasure-cleanup.ts';
import type { RunningPortcullis } from '../../src/server/index.ts';
import type { StoredRecord } from '../../src/store/index.ts';
import { describeHits, privacyDeployment, runPrivacyJob, signedInBrowser, type PrivacyDeployment } from '../support/privacy-deployment.ts';
import { newProbe, PASSWORD, seed, type Probe } from '../support/privacy-probe.ts';
import { within } from '../support/process.ts';
import { testBackends } from '../support/server.ts';

const CHILD = fileURLToPath(new URL('../support/erasure-crash-child.ts', import.meta.url));
const CLEANUPS = 'privacy_erasure_cleanups';
const FAILED_LINE = /steps after its commit failed/;

/** The user's clean-up record, read from the durable store itself (no cache), or null. */
async function cleanupOf(running: RunningPortcullis, userId: string): Promise<StoredRecord<CleanupData> | null> {
  const found = (await running.stores.durable.records.list<CleanupData>(CLEANUPS, { limit: 1000 })).filter((record) => record.data.userId === userId);
  assert.ok(found.length <= 1, `one clean-up record per erasure: ${found.length}`);
  return found[0] ?? null;
}

async function liveSessions(running: RunningPortcullis, userId: string): Promise<string[]> {
  return (await running.identity.accounts.sessions.list(userId)).map((session) => session.handle);
}

/** Moves the server's clock to just past the record's settleAt. */
function pastSettleAt(deployment: PrivacyDeployment, cleanup: StoredRecord<CleanupData>): void {
  deployment.clock.advance(Math.max(0, cleanup.data.settleAt - deployment.clock.now()) + 1000);
}

/** erasure-crash-child.ts on the deployment: how it ended and what it wrote. */
async function crashingErase(configFile: string, userId: string): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', CHILD, configFile, userId], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const closed = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('close', (code, signal) => resolve({ code, signal })));
  try {
    return { ...(await within(closed, 60_000, 'the erasing process ending')), stdout, stderr };
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
}

for (const backend of testBackends) {
  describe(`an erasure's steps after its commit, finished by the privacy job (${backend})`, () => {
    let deployment: PrivacyDeployment;
    const probes: Probe[] = [];

    /** A person with an account and a browser signed in to it. */
    async function person(label: string) {
      const probe = newProbe(label);
      probes.push(probe);
      const user = await deployment.running.identity.accounts.createUser(probe.email, PASSWORD, { actor: 'test' });
      const browser = await signedInBrowser(deployment.url, probe.email, PASSWORD);
      assert.equal((await liveSessions(deployment.running, user.id)).length, 1, 'signed in: one session');
      return { probe, userId: user.id, browser };
    }

    before(async () => {
      deployment = await privacyDeployment(backend);
      await deployment.start();
    });
    after(async () => {
      await deployment?.remove();
    });

    it('kill -9 right after the commit: the session the crash left is ended by the job after CLEANUP_RETRY_MS, and the record settles and goes', async () => {
      const { running } = deployment;
      const records = running.stores.durable.records;
      const probe = newProbe('crash-probe');
      probes.push(probe);
      const seeded = await seed(deployment, probe, { loginHints: false });
      const before = await liveSessions(running, seeded.userId);
      assert.ok(before.length > 0, 'a live session before');
      assert.equal((await seeded.browser.get('/account/session.json')).status, 200);

      const child = await crashingErase(deployment.configFile, seeded.userId);
      assert.equal(child.signal, 'SIGKILL', `the erasing process died by SIGKILL, not code ${child.code}: ${child.stderr}`);
      const erasureId = /^committed (\S+)$/m.exec(child.stdout)?.[1];
      assert.ok(erasureId, `it stopped at the erasure's commit: ${child.stdout}`);

      // What committed: the account is gone, the erasure executed, the clean-up pending with the address and the sessions.
      assert.equal(await records.get('users', seeded.userId), null, 'the user record is gone');
      assert.equal((await running.erasure.erasures.get(erasureId))?.state, 'executed');
      const pending = await cleanupOf(running, seeded.userId);
      assert.ok(pending !== null, 'a clean-up record');
      assert.equal(pending.id, erasureId);
      assert.equal(pending.data.stage, 'pending');
      assert.ok(pending.data.addresses.includes(probe.email), `the record holds the address: ${JSON.stringify(pending.data.addresses)}`);
      assert.deepEqual([...pending.data.sessionHandles].sort(), [...before].sort(), 'the record names the sessions listed before the transaction');
      // What the crash lost: the first pass never ran.
      assert.deepEqual((await liveSessions(running, seeded.userId)).sort(), [...before].sort(), 'the sessions still live');

      // Within CLEANUP_RETRY_MS a first pass may still be running: the job leaves the record.
      const early = await runPrivacyJob(running);
      assert.deepEqual(early.cleanups, { resumed: 0, settled: 0, lateRecords: 0, failed: 0 });
      assert.equal((await cleanupOf(running, seeded.userId))?.data.stage, 'pending');

      deployment.clock.advance(CLEANUP_RETRY_MS + 1000);
      const resumed = await runPrivacyJob(running);
      assert.deepEqual(resumed.cleanups, { resumed: 1, settled: 0, lateRecords: 0, failed: 0 });
      assert.deepEqual(await liveSessions(running, seeded.userId), [], 'no session is live');
      assert.notEqual((await seeded.browser.get('/account/session.json')).status, 200, 'the browser\'s session cookie is refused');
      const settling = await cleanupOf(running, seeded.userId);
      assert.ok(settling !== null);
      assert.equal(settling.data.stage, 'settling');
      assert.deepEqual(settling.data.addresses, [], 'no address left in the record');
      assert.deepEqual(settling.data.sessionHandles, []);
      assert.ok(!JSON.stringify(settling.data).includes(probe.email));

      // Not before settleAt, then the last pass.
      assert.deepEqual((await runPrivacyJob(running)).cleanups, { resumed: 0, settled: 0, lateRecords: 0, failed: 0 });
      pastSettleAt(deployment, settling);
      assert.deepEqual((await runPrivacyJob(running)).cleanups, { resumed: 0, settled: 1, lateRecords: 0, failed: 0 });
      assert.equal(await records.get(CLEANUPS, erasureId), null, 'the clean-up record is gone');
      // While the server still runs: the passes reclaimed SQLite's pages and WAL (the crashed process's frames too).
      const live = await deployment.traces(probe);
      assert.deepEqual(live.map((hit) => `${hit.source} ${hit.table}`), [], `found while the server runs:\n  ${describeHits(live)}`);
    });

    it('a hot store failing right after the commit: the outcome says pending, one error line is logged, and the job finishes it', async () => {
      const { running } = deployment;
      const { probe, userId, browser } = await person('hot-failure-probe');
      const sessions = running.identity.accounts.sessions;
      const revoke = sessions.revoke.bind(sessions);
      let calls = 0;
      // The erasure service holds this same SessionManager (services.ts hands both the one `identity`): the first revoke fails.
      sessions.revoke = async (...args) => {
        calls += 1;
        if (calls === 1) throw new Error(`hot store unavailable while ending a session of ${probe.email}`);
        return revoke(...args);
      };
      const logged = deployment.logs.lines.length;
      let outcome;
      try {
        outcome = await running.erasure.erasures.request(userId, { channel: 'admin', actorService: 'admin' }, { grace: false });
      } finally {
        Reflect.deleteProperty(sessions, 'revoke');
      }
      assert.equal(calls, 1, 'the failure came from the injected revoke');
      assert.ok(!Object.hasOwn(sessions, 'revoke'), 'the real revoke is back');
      assert.ok(outcome.kind === 'erased', outcome.kind);
      assert.equal(outcome.cleanup, 'pending');

      const lines = deployment.logs.lines.slice(logged).filter((line) => FAILED_LINE.test(line));
      assert.equal(lines.length, 1, `one error line about it:\n${deployment.logs.lines.slice(logged).join('\n')}`);
      const line = JSON.parse(lines[0]!) as { level: string; err?: { message?: string; stack?: unknown } };
      assert.equal(line.level, 'error');
      assert.match(line.err?.message ?? '', /hot store unavailable/, 'it names the failure');
      assert.ok(!('stack' in (line.err ?? {})) && !lines[0]!.includes('    at '), `no stack: ${lines[0]}`);
      assert.ok(!lines[0]!.includes(probe.email), `no address: ${lines[0]}`);

      const pending = await cleanupOf(running, userId);
      assert.ok(pending !== null);
      assert.equal(pending.id, outcome.erasure.id);
      assert.equal(pending.data.stage, 'pending');
      assert.ok(pending.data.addresses.includes(probe.email));
      assert.equal((await liveSessions(running, userId)).length, 1, 'the session the failed pass did not end');

      deployment.clock.advance(CLEANUP_RETRY_MS + 1000);
      assert.deepEqual((await runPrivacyJob(running)).cleanups, { resumed: 1, settled: 0, lateRecords: 0, failed: 0 });
      assert.deepEqual(await liveSessions(running, userId), [], 'no session is live');
      assert.notEqual((await browser.get('/account/session.json')).status, 200, 'the browser\'s session cookie is refused');
      const settling = await cleanupOf(running, userId);
      assert.equal(settling?.data.stage, 'settling');
      assert.deepEqual(settling.data.addresses, []);

      pastSettleAt(deployment, settling);
      assert.deepEqual((await runPrivacyJob(running)).cleanups, { resumed: 0, settled: 1, lateRecords: 0, failed: 0 });
      assert.equal(await cleanupOf(running, userId), null);
    });

    it('a consent and a session written for the erased id after the erasure are deleted by the last pass, at settleAt', async () => {
      const { running } = deployment;
      const records = running.stores.durable.records;
      const { userId } = await person('late-probe');
      const outcome = await running.erasure.erasures.request(userId, { channel: 'admin', actorService: 'admin' }, { grace: false });
      assert.ok(outcome.kind === 'erased', outcome.kind);
      assert.equal(outcome.cleanup, 'done');
      const settling = await cleanupOf(running, userId);
      assert.equal(settling?.data.stage, 'settling');
      assert.deepEqual(await liveSessions(running, userId), []);

      // What a request that read the account before the erasure may still write: a consent (with its index entries, as consents.ts writes them) and a session.
      const consentId = `${userId}:late-client`;
      assert.ok(await records.create('consents', consentId, { userId, clientId: 'late-client', scopes: ['openid'], grantedAt: deployment.clock.now() }, { index: { user: [userId], client: ['late-client'] } }));
      assert.deepEqual((await records.findBy('consents', 'user', userId)).map((record) => record.id), [consentId]);
      const late = await running.identity.accounts.sessions.create(userId, { amr: ['pwd'], device: 'late request', ip: '198.51.100.0' });
      assert.deepEqual(await liveSessions(running, userId), [late.session.handle]);

      // Before settleAt they stay.
      assert.deepEqual((await runPrivacyJob(running)).cleanups, { resumed: 0, settled: 0, lateRecords: 0, failed: 0 });
      assert.notEqual(await records.get('consents', consentId), null);

      pastSettleAt(deployment, settling);
      // The hot store fails as the last pass ends the late session: the record stays for the next run, with what it finds.
      const sessions = running.identity.accounts.sessions;
      sessions.revoke = async () => {
        throw new Error('hot store unavailable');
      };
      try {
        // One failing last pass does not stop the job's run: it is counted, logged, and tried again next run.
        assert.deepEqual((await runPrivacyJob(running)).cleanups, { resumed: 0, settled: 0, lateRecords: 0, failed: 1 });
      } finally {
        Reflect.deleteProperty(sessions, 'revoke');
      }
      assert.ok(!Object.hasOwn(sessions, 'revoke'), 'the real revoke is back');
      assert.equal((await cleanupOf(running, userId))?.data.stage, 'settling', 'the record waits for the next run');
      assert.deepEqual(await liveSessions(running, userId), [late.session.handle]);
      assert.deepEqual((await runPrivacyJob(running)).cleanups, { resumed: 0, settled: 1, lateRecords: 2, failed: 0 }, 'the consent and the session');
      assert.equal(await records.get('consents', consentId), null, 'the late consent is gone');
      assert.deepEqual(await records.findBy('consents', 'user', userId), []);
      assert.deepEqual(await liveSessions(running, userId), [], 'the late session is gone');
      assert.equal(await cleanupOf(running, userId), null, 'the clean-up record is gone');
    });

    it('the ledger verifies, and (server stopped) none of the people is found in any byte, table or key', async () => {
      assert.equal(probes.length, 3, 'the three people above were erased');
      const verified = await deployment.cli(['audit', 'verify']);
      assert.equal(verified.code, 0, [...verified.out, ...verified.err].join('\n'));
      await deployment.stop();
      for (const probe of probes) {
        const hits = await deployment.traces(probe);
        assert.deepEqual(hits.map((hit) => `${hit.source} ${hit.table}`), [], `${probe.email} is still found:\n  ${describeHits(hits)}`);
      }
    });
  });
}
