/**
 * A change in the durable store and its security signals commit together
 * (issue 13: "every event goes through the outbox in the same transaction
 * as its cause"): when the signals cannot be written, the change is not
 * made either, on every backend; when they can, both are there.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer, testBackends, type TestServer } from '../support/server.ts';

for (const backend of testBackends) {
  describe(`account changes and their signals commit together (${backend})`, () => {
    let server: TestServer;
    before(async () => {
      server = await startTestServer({ backend });
    });
    after(async () => {
      await server.close();
    });

    it('a disable whose signal cannot be queued is not made; one whose signal is queued is', async () => {
      const accounts = server.running.identity.accounts;
      const user = await accounts.createUser(`staged-${backend}@example.com`, null, { actor: 'test' });
      const remove = server.running.events.stager(async (tx) => {
        // What a failed outbox write does: the transaction rolls back.
        await tx.outbox.add({ topic: 'test.fail', payload: {}, idempotencyKey: 'x' });
        throw new Error('the outbox is unavailable');
      });
      try {
        await assert.rejects(accounts.setDisabled(user.id, true, { actor: 'admin' }), /outbox is unavailable/);
        await assert.rejects(accounts.deleteUser(user.id, { actor: 'admin' }), /outbox is unavailable/);
      } finally {
        remove();
      }
      const unchanged = await server.running.stores.durable.records.get<{ disabled: boolean }>('users', user.id);
      assert.equal(unchanged?.data.disabled, false, 'no disable without its signal');
      const before = await server.running.stores.durable.outbox.counts();
      await accounts.setDisabled(user.id, true, { actor: 'admin' });
      const disabled = await server.running.stores.durable.records.get<{ disabled: boolean }>('users', user.id);
      assert.equal(disabled?.data.disabled, true);
      const after = await server.running.stores.durable.outbox.counts();
      assert.equal(after.pending + after.delivered, before.pending + before.delivered + 1, 'the disable and its signal, one outbox message');
    });
  });
}
