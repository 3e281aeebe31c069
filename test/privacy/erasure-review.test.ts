/**
 * Findings of the erasure re-review, each made to happen on purpose.
 *
 * - An email change y -> z that commits after the erasure read the account
 *   but before its transaction (src/privacy/erasure.ts `#execute`: the
 *   account is read again, locked for update, inside the transaction). The
 *   durable store's `transaction` is wrapped so that the erasure's call
 *   first runs the change to completion. Neither address keeps a claim or
 *   an account, the tombstone is keyed by z, and after the clean-up and its
 *   last pass neither is found in the signal log or the outbox.
 * - An address that reaches the signal log only after the erasure
 *   (erasure-cleanup.ts `#settle`): A moves x -> y while the test holds the
 *   outbox lease, so the identifier-changed signal (x with A's id) is still
 *   in the outbox when A is erased, and the first pass cannot know x. Let
 *   go, it is delivered naming x; the last pass cuts x out.
 * - A WAL checkpoint that another connection blocks (embedded only;
 *   src/store/sqlite/durable-store.ts `reclaim`): a reader holding a
 *   snapshot makes `wal_checkpoint(TRUNCATE)` busy. `reclaim` rejects after
 *   its attempts, and the event loop kept turning meanwhile: no stretch
 *   without a turn came near the connection's busy_timeout, which each
 *   attempt used to spend blocked. The reader gone, it succeeds.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { DatabaseSync } from 'node:sqlite';
import type { CleanupData } from '../../src/privacy/erasure-cleanup.ts';
import { addressesInSignalLog, storedTombstones, type ErasureOutcome } from '../../src/privacy/index.ts';
import { SECURITY_EVENT_TYPES } from '../../src/sdk/index.ts';
import type { LogEntry } from '../../src/signals/records.ts';
import { SIGNALS_TOPIC } from '../../src/signals/index.ts';
import type { DurableStore, StoredRecord } from '../../src/store/index.ts';
import { privacyDeployment, runPrivacyJob, signalLogEntries, type PrivacyDeployment } from '../support/privacy-deployment.ts';
import { newProbe, PASSWORD } from '../support/privacy-probe.ts';
import { testBackends } from '../support/server.ts';

const CLEANUPS = 'privacy_erasure_cleanups';
/** SqliteDatabase's busy_timeout when none is given (the deployment's durable connection): what a blocked checkpoint used to hold the event loop for. */
const SQLITE_BUSY_TIMEOUT_MS = 5000;

for (const backend of testBackends) {
  describe(`the erasure re-review's findings (${backend})`, () => {
    let deployment: PrivacyDeployment;
    let issuer: string;

    before(async () => {
      deployment = await privacyDeployment(backend);
      issuer = (await deployment.start()).authorizationServer.issuer;
    });
    after(async () => {
      await deployment?.remove();
    });

    const userKey = (userId: string): string => `iss_sub:${issuer} ${userId}`;

    const signalLog = () => signalLogEntries(deployment.running);

    /** The JSON text of the signal log's entries, lower-cased, for a search. */
    async function signalLogText(): Promise<string> {
      return JSON.stringify((await signalLog()).map((entry) => entry.data)).toLowerCase();
    }

    /** The JSON text of every outbox message's payload, lower-cased. */
    async function outboxText(): Promise<string> {
      return JSON.stringify((await deployment.outboxMessages()).map((message) => message.payload)).toLowerCase();
    }

    /** Runs the outbox until the user's identifier-changed event is in the signal log (the worker may have delivered it already); that entry. */
    async function identifierChangedLogged(userId: string, timeoutMs = 10_000): Promise<StoredRecord<LogEntry>> {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const found = (await signalLog()).find((entry) => entry.data.type === SECURITY_EVENT_TYPES.identifierChanged && entry.data.subjectKeys.includes(userKey(userId)));
        if (found !== undefined) return found;
        assert.ok(Date.now() < deadline, `the identifier-changed event in the signal log within ${timeoutMs} ms`);
        await deployment.outbox().runOnce();
      }
    }

    /** The user's clean-up record, or null. */
    async function cleanupOf(userId: string): Promise<StoredRecord<CleanupData> | null> {
      const found = (await deployment.running.stores.durable.records.list<CleanupData>(CLEANUPS, { limit: 1000 })).filter((record) => record.data.userId === userId);
      assert.ok(found.length <= 1, `one clean-up record per erasure: ${found.length}`);
      return found[0] ?? null;
    }

    /** Moves the clock past the user's settleAt and runs the job: the last pass of their clean-up is made, the record goes. */
    async function lastPass(userId: string): Promise<void> {
      const settling = await cleanupOf(userId);
      assert.equal(settling?.data.stage, 'settling', 'the first pass ran');
      deployment.clock.advance(Math.max(0, settling.data.settleAt - deployment.clock.now()) + 1000);
      const report = await runPrivacyJob(deployment.running);
      assert.equal(report.cleanups.failed, 0, JSON.stringify(report.cleanups));
      assert.ok(report.cleanups.settled >= 1, JSON.stringify(report.cleanups));
      assert.equal(await cleanupOf(userId), null, 'the clean-up record is gone: the last pass was made');
    }

    function erase(userId: string): Promise<ErasureOutcome> {
      return deployment.running.erasure.erasures.request(userId, { channel: 'admin', actorService: 'admin' }, { grace: false });
    }

    it("an email change y -> z committing between the erasure's read of the account and its transaction: z is erased too", async () => {
      const { running } = deployment;
      const durable: DurableStore = running.stores.durable;
      const records = durable.records;
      const probe = newProbe('racing-change');
      const y = probe.previousEmail;
      const z = probe.email;
      const user = await running.identity.accounts.createUser(y, PASSWORD, { actor: 'test' });

      // The erasure holds this same store (runtime/services.ts hands `stores.durable`, the instrumented copy, to
      // createErasureService) and looks `transaction` up at each call: the erasure's call runs the change first (the
      // wrapper disarmed, as changeEmail's own transaction comes through it too), then the erasure's transaction.
      const transaction = durable.transaction.bind(durable);
      let armed = true;
      let changes = 0;
      durable.transaction = async (work) => {
        if (armed && (new Error().stack ?? '').includes('#execute')) {
          armed = false;
          const changed = await running.identity.accounts.changeEmail(user.id, z, { actor: 'test' });
          assert.equal(changed.email, z);
          changes += 1;
        }
        return transaction(work);
      };
      let outcome: ErasureOutcome;
      try {
        outcome = await erase(user.id);
      } finally {
        durable.transaction = transaction;
      }
      assert.equal(changes, 1, "the change ran once, right before the erasure's transaction");
      assert.ok(outcome.kind === 'erased', outcome.kind);
      assert.equal(outcome.cleanup, 'done');

      assert.equal(await records.get('users', user.id), null, 'the account is gone');
      assert.equal(await records.get('user_emails', z), null, 'no claim of z, the address the change moved to');
      assert.equal(await records.get('user_emails', y), null, 'no claim of y');
      assert.equal(await running.identity.accounts.users.byEmail(z), null);
      assert.equal(await running.identity.accounts.users.byEmail(y), null);
      const tombstone = (await storedTombstones(records)).find((candidate) => candidate.erasure === outcome.erasure.id);
      assert.ok(tombstone !== undefined, "the erasure's tombstone");
      assert.equal(tombstone.email, running.erasure.subjects.ofEmail(z), 'the tombstone is keyed by z, the address at the erasure');

      // The first pass knew z (the address read in the transaction is among the clean-up's addresses): the change's
      // identifier-changed message, committed before the erasure, no longer names either address.
      const afterFirstPass = await outboxText();
      assert.ok(!afterFirstPass.includes(y) && !afterFirstPass.includes(z), `the first pass cut y and z out of the outbox: ${afterFirstPass}`);

      // The change's identifier-changed signal (y with the id, z as the new value) reaches the log; the last pass reads it again.
      await identifierChangedLogged(user.id);
      await lastPass(user.id);
      const log = await signalLogText();
      const outbox = await outboxText();
      for (const [name, address] of [['y', y], ['z', z]] as const) {
        assert.ok(!log.includes(address), `${name} is not in the signal log: ${log}`);
        assert.ok(!outbox.includes(address), `${name} is not in the outbox: ${outbox}`);
      }
    });

    it('an address that reached the signal log after the erasure (its signal still in the outbox then) is cut out by the last pass', async () => {
      const { running } = deployment;
      const records = running.stores.durable.records;
      const probe = newProbe('late-log');
      const x = probe.previousEmail;
      const y = probe.email;
      const user = await running.identity.accounts.createUser(x, PASSWORD, { actor: 'test' });

      // The test holds the outbox lease: no worker (the server's own included) delivers until it lets go.
      const hold = { holder: `test-${probe.email}`, leaseMs: 3_600_000 };
      let held: { acquired: true; result: void } | { acquired: false } = { acquired: false };
      for (let attempt = 0; attempt < 20 && !held.acquired; attempt++) {
        held = await running.stores.durable.outbox.withLease({ ...hold, now: deployment.clock.now() }, async () => {
          await running.identity.accounts.changeEmail(user.id, y, { actor: 'test' });
          assert.ok(!(await addressesInSignalLog(records, userKey(user.id))).includes(x), 'the signal log does not name x with the user before the erasure');
          const outcome = await erase(user.id);
          assert.ok(outcome.kind === 'erased', outcome.kind);
          assert.equal(outcome.cleanup, 'done');
          const changed = (await deployment.outboxMessages()).filter((message) => message.topic === SIGNALS_TOPIC && JSON.stringify(message.payload).includes(SECURITY_EVENT_TYPES.identifierChanged) && JSON.stringify(message.payload).includes(userKey(user.id)));
          assert.equal(changed.length, 1, 'the identifier-changed message is in the outbox');
          assert.equal(changed[0]!.delivered, false, 'not delivered at the erasure');
          assert.ok(JSON.stringify(changed[0]!.payload).toLowerCase().includes(x), `it names x: ${JSON.stringify(changed[0]!.payload)}`);
        });
        // Not acquired: the worker's batch was in flight; the next try comes after it.
        if (!held.acquired) await deployment.outbox().runOnce();
      }
      assert.ok(held.acquired, 'the test held the outbox lease');

      const entry = await identifierChangedLogged(user.id);
      assert.ok(JSON.stringify(entry.data).toLowerCase().includes(x), `the entry reached the log after the erasure, naming x: ${JSON.stringify(entry.data)}`);
      assert.ok(entry.data.subjectKeys.includes(`email:${x}`), JSON.stringify(entry.data.subjectKeys));

      await lastPass(user.id);
      const aboutUser = (await signalLog()).filter((candidate) => candidate.data.subjectKeys.includes(userKey(user.id)));
      assert.ok(aboutUser.some((candidate) => candidate.id === entry.id), 'the identifier-changed entry is still in the log');
      const log = await signalLogText();
      assert.ok(!log.includes(x), `x is not in the signal log: ${log}`);
      assert.ok(!log.includes(y), `y is not in the signal log: ${log}`);
      // Nobody holds x: the delivered message the outbox keeps loses it too.
      assert.equal(await running.identity.accounts.users.byEmail(x), null);
      const outbox = await outboxText();
      assert.ok(!outbox.includes(x), `x is not in the outbox: ${outbox}`);
    });

    if (backend === 'embedded') {
      it('a WAL checkpoint another connection blocks: reclaim keeps the event loop turning, fails after its attempts, and succeeds once the reader is gone', async () => {
        const { running } = deployment;
        const reader = new DatabaseSync(join(deployment.dataDir, 'portcullis.db'), { readOnly: true });
        try {
          // A read transaction holding its snapshot, then a write after it: the checkpoint cannot copy the new frames
          // into the database (the reader still needs the old pages), let alone truncate the WAL.
          reader.exec('BEGIN');
          reader.prepare('SELECT count(*) AS n FROM records').get();
          await running.identity.accounts.createUser(newProbe('wal-writer').email, PASSWORD, { actor: 'test' });

          let turns = 0;
          let longest = 0;
          let settled = false;
          let last = performance.now();
          const turn = (): void => {
            const now = performance.now();
            longest = Math.max(longest, now - last);
            last = now;
            turns += 1;
            if (!settled) setImmediate(turn);
          };
          setImmediate(turn);
          // Timed from before the call: its first attempt runs inside it, synchronously.
          last = performance.now();
          const failure = await running.stores.durable.reclaim().then(
            () => undefined,
            (error: unknown) => error,
          );
          settled = true;
          assert.ok(failure instanceof Error, 'reclaim rejected');
          assert.match(failure.message, /could not be checkpointed/);
          assert.ok(turns > 0, 'the event loop turned while reclaim retried');
          // Blocked in the busy handler, each attempt held the loop for the whole busy_timeout.
          assert.ok(longest < SQLITE_BUSY_TIMEOUT_MS / 2, `the longest stretch without a turn of the event loop (${Math.round(longest)} ms, ${turns} turns) stayed well under the busy_timeout (${SQLITE_BUSY_TIMEOUT_MS} ms)`);

          reader.exec('COMMIT');
          await running.stores.durable.reclaim();
        } finally {
          if (reader.isTransaction) reader.exec('ROLLBACK');
          reader.close();
        }
      });
    }
  });
}
