/**
 * An erasure cuts the person's earlier addresses out of the signal log too
 * (src/privacy/erasure.ts `#addressesOf`: the `email:` keys of the entries
 * that name the user by `iss_sub`, such as the identifier-changed event of
 * an email change), but not an earlier address another account holds now:
 * that address names the other person, whose entries are not this
 * erasure's.
 *
 * - A changes their address x to y; B then registers x and is disabled
 *   (RISC account-disabled, with B's `email:x` subject key). Erasing A
 *   leaves B's entry naming x, and cuts both x and y out of A's entries
 *   (x only from the entries that name A). The same in the outbox: the
 *   messages that name A's id (the identifier-changed one, kept after its
 *   delivery) lose x, B's account-disabled message keeps it
 *   (redactSharedRecords' `onlyAbout`).
 * - The control: A2 changes x2 to y2 and nobody takes x2. Erasing A2 cuts
 *   both x2 and y2 out of A2's entries.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { LogEntry } from '../../src/signals/records.ts';
import { SECURITY_EVENT_TYPES } from '../../src/sdk/index.ts';
import { SIGNALS_TOPIC } from '../../src/signals/index.ts';
import type { StoredRecord } from '../../src/store/index.ts';
import { privacyDeployment, signalLogEntries, type PrivacyDeployment } from '../support/privacy-deployment.ts';
import { newProbe, PASSWORD } from '../support/privacy-probe.ts';
import { testBackends } from '../support/server.ts';

for (const backend of testBackends) {
  describe(`an erasure and an earlier address another account holds now (${backend})`, () => {
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

    /** The log's entries about the user (their `iss_sub` key among the subject keys). */
    async function entriesAbout(userId: string): Promise<StoredRecord<LogEntry>[]> {
      return (await signalLog()).filter((entry) => entry.data.subjectKeys.includes(userKey(userId)));
    }

    /** Runs the outbox until an entry of the signal log matches (the worker may have delivered it already); that entry. */
    async function logged(what: string, matches: (entry: LogEntry) => boolean, timeoutMs = 10_000): Promise<StoredRecord<LogEntry>> {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const found = (await signalLog()).find((entry) => matches(entry.data));
        if (found !== undefined) return found;
        assert.ok(Date.now() < deadline, `${what} in the signal log within ${timeoutMs} ms`);
        await deployment.outbox().runOnce();
      }
    }

    /** An account created with `earlier`, then moved to `current`; its identifier-changed entry, delivered to the log. */
    async function movedAccount(earlier: string, current: string): Promise<{ userId: string; changed: StoredRecord<LogEntry> }> {
      const { accounts } = deployment.running.identity;
      const user = await accounts.createUser(earlier, PASSWORD, { actor: 'test' });
      await accounts.changeEmail(user.id, current, { actor: 'test' });
      const changed = await logged(`the identifier-changed event of ${earlier}`, (entry) => entry.type === SECURITY_EVENT_TYPES.identifierChanged && entry.subjectKeys.includes(userKey(user.id)));
      assert.deepEqual(changed.data.subject, { format: 'email', email: earlier }, 'the subject is the earlier address');
      assert.ok(changed.data.subjectKeys.includes(`email:${earlier}`) && changed.data.subjectKeys.includes(`email:${current}`), JSON.stringify(changed.data.subjectKeys));
      return { userId: user.id, changed };
    }

    async function erase(userId: string): Promise<void> {
      const outcome = await deployment.running.erasure.erasures.request(userId, { channel: 'admin', actorService: 'admin' }, { grace: false });
      assert.equal(outcome.kind, 'erased');
      assert.equal(outcome.kind === 'erased' && outcome.cleanup, 'done', 'the shared records were redacted right after the commit');
    }

    /** The JSON text of the entries, lower-cased, for a search. */
    const text = (entries: readonly StoredRecord<LogEntry>[]): string => JSON.stringify(entries.map((entry) => entry.data)).toLowerCase();

    describe('A moved from x to y; B registered x later and was disabled; A is erased', () => {
      const a = newProbe('earlier-a');
      const x = a.previousEmail;
      const y = a.email;
      let moved: { userId: string; changed: StoredRecord<LogEntry> };
      let disabled: StoredRecord<LogEntry>;
      let bId: string;

      before(async () => {
        moved = await movedAccount(x, y);
        // B registers x, A's earlier address, and is disabled: RISC account-disabled with B's email subject key.
        const b = await deployment.running.identity.accounts.createUser(x, PASSWORD, { actor: 'test' });
        bId = b.id;
        await deployment.running.identity.accounts.setDisabled(b.id, true, { actor: 'admin' });
        disabled = await logged("B's account-disabled event", (entry) => entry.type === SECURITY_EVENT_TYPES.accountDisabled && entry.subjectKeys.includes(userKey(b.id)));
        assert.ok(disabled.data.subjectKeys.includes(`email:${x}`), `B's entry names x: ${JSON.stringify(disabled.data.subjectKeys)}`);
        await erase(moved.userId);
      });

      it("B's entry still names x (email:x among its subject keys), unchanged: erasing A did not cut B's address out", async () => {
        const afterB = await deployment.running.stores.durable.records.get<LogEntry>('signal_log', disabled.id);
        assert.ok(afterB !== null, "B's entry is still in the log");
        assert.ok(afterB.data.subjectKeys.includes(`email:${x}`), `B's entry still has email:x: ${JSON.stringify(afterB.data.subjectKeys)}`);
        assert.deepEqual(afterB.data, disabled.data, "B's entry is unchanged");
      });

      it("y, A's address at the erasure, is gone from A's entries (the identifier-changed one among them)", async () => {
        const aboutA = await entriesAbout(moved.userId);
        assert.ok(aboutA.some((entry) => entry.id === moved.changed.id), "A's identifier-changed entry is still in the log");
        assert.ok(!text(aboutA).includes(y), `y is gone from A's entries: ${text(aboutA)}`);
      });

      // x is cut only from the entries with A's iss_sub key (redactSharedRecords' onlyAbout), never from B's.
      it("x is gone from A's entries too", async () => {
        const aboutA = await entriesAbout(moved.userId);
        assert.ok(!text(aboutA).includes(x), `x is gone from A's entries: ${text(aboutA)}`);
      });

      it("the outbox's messages that name A's id no longer contain x; B's account-disabled message still does", async () => {
        const messages = (await deployment.outboxMessages()).map((message) => ({ ...message, json: JSON.stringify(message.payload).toLowerCase() }));
        // Any mention of A's id at all (not only as a whole JSON string): none of them may keep x.
        const aboutA = messages.filter((message) => message.json.includes(moved.userId.toLowerCase()));
        assert.ok(
          aboutA.some((message) => message.topic === SIGNALS_TOPIC && message.json.includes(SECURITY_EVENT_TYPES.identifierChanged)),
          `A's identifier-changed message is kept in the outbox: ${JSON.stringify(aboutA.map((message) => message.payload))}`,
        );
        for (const message of aboutA) assert.ok(!message.json.includes(x), `x is gone from the ${message.topic} message ${message.key}: ${message.json}`);
        const fromB = messages.filter((message) => message.topic === SIGNALS_TOPIC && message.json.includes(bId.toLowerCase()) && message.json.includes(SECURITY_EVENT_TYPES.accountDisabled));
        assert.equal(fromB.length, 1, "B's account-disabled message is in the outbox");
        assert.ok(!fromB[0]!.json.includes(moved.userId.toLowerCase()), "B's message does not name A");
        assert.ok(fromB[0]!.json.includes(x), `B's message still names x: ${fromB[0]!.json}`);
      });
    });

    it('the control: erasing A2, who moved from x2 to y2 and whose x2 nobody took, cuts both out of its entries', async () => {
      const a2 = newProbe('earlier-a2');
      const x2 = a2.previousEmail;
      const y2 = a2.email;
      const moved = await movedAccount(x2, y2);
      assert.equal(await deployment.running.identity.accounts.users.byEmail(x2), null, 'nobody holds x2');

      await erase(moved.userId);

      const aboutA2 = await entriesAbout(moved.userId);
      assert.ok(aboutA2.some((entry) => entry.id === moved.changed.id), "A2's identifier-changed entry is still in the log");
      assert.ok(!text(aboutA2).includes(x2), `x2 is gone from A2's entries: ${text(aboutA2)}`);
      assert.ok(!text(aboutA2).includes(y2), `y2 is gone from A2's entries: ${text(aboutA2)}`);
      // Nowhere in the log either.
      const all = text(await signalLog());
      assert.ok(!all.includes(x2) && !all.includes(y2), 'neither x2 nor y2 is anywhere in the signal log');
    });
  });
}
