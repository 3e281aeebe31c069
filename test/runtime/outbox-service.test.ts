/**
 * The outbox delivery worker as a service of a running instance (issue 11
 * section 5): a message committed with a change is handed to the deliverer
 * of its topic, with its idempotency key; a topic nobody delivers stays
 * pending (retried with backoff), never lost; a delivered message is
 * pruned once it is older than OUTBOX_RETAIN_DELIVERED_MS; stopping the
 * instance stops the worker before the stores close.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/index.ts';
import type { OutboxDelivery } from '../../src/store/index.ts';
import { OUTBOX_RETAIN_DELIVERED_MS } from '../../src/runtime/index.ts';
import { startPortcullis } from '../../src/server/index.ts';
import { ManualClock } from '../support/clock.ts';
import { CapturedLogs } from '../support/server.ts';

const dirs: string[] = [];
after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

describe('the outbox worker in a running instance', () => {
  it('delivers a message committed with its change to the deliverer of its topic; an unknown topic stays pending', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-outbox-'));
    dirs.push(dir);
    const received: OutboxDelivery[] = [];
    let delivered!: () => void;
    const arrival = new Promise<void>((resolve) => (delivered = resolve));
    const running = await startPortcullis(loadConfig({ env: {}, overrides: { dataDir: dir, port: 0 } }), {
      logDestination: new CapturedLogs().stream,
      outbox: {
        'test.notify': async (message) => {
          received.push(message);
          delivered();
        },
      },
    });
    try {
      const worker = running.runtime.get('outbox');
      assert.ok(worker !== undefined, 'serve runs the outbox worker');
      // Startup's own messages (the security events of the first signing keys) go first.
      await worker.runOnce();
      const before = await running.stores.durable.outbox.counts();
      await running.stores.durable.transaction(async (tx) => {
        assert.equal(await tx.records.create('outbox-service-test', 'r1', { changed: true }), true);
        await tx.outbox.add({ topic: 'test.notify', payload: { record: 'r1' }, idempotencyKey: 'change-r1' });
        await tx.outbox.add({ topic: 'nobody.listens', payload: { record: 'r1' }, idempotencyKey: 'orphan-r1' });
      });
      worker.kick();
      await arrival;
      // The batch that delivered may still be recording; the next one runs after it.
      const report = await worker.runOnce();
      assert.deepEqual(
        received.map((message) => [message.topic, message.idempotencyKey, message.payload]),
        [['test.notify', 'change-r1', { record: 'r1' }]],
      );
      assert.equal(report.delivered, 0, 'nothing is delivered twice');
      assert.deepEqual(await running.stores.durable.outbox.counts(), { pending: before.pending + 1, delivered: before.delivered + 1 }, 'the message without a deliverer is kept for a later attempt');
    } finally {
      await running.stop();
    }
  });

  it('prunes delivered messages once they are older than a week, and keeps pending ones', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-outbox-'));
    dirs.push(dir);
    const clock = new ManualClock();
    const running = await startPortcullis(loadConfig({ env: {}, overrides: { dataDir: dir, port: 0 } }), { logDestination: new CapturedLogs().stream, clock: clock.now, outbox: { 'test.notify': async () => {} } });
    try {
      const worker = running.runtime.get('outbox')!;
      await running.stores.durable.transaction(async (tx) => {
        await tx.outbox.add({ topic: 'test.notify', payload: {}, idempotencyKey: 'kept-a-week' });
        await tx.outbox.add({ topic: 'nobody.listens', payload: {}, idempotencyKey: 'still-pending' });
      });
      await worker.runOnce();
      const delivered = await running.stores.durable.outbox.counts();
      assert.ok(delivered.delivered >= 1);
      clock.advance(OUTBOX_RETAIN_DELIVERED_MS - 60_000);
      await worker.runOnce();
      assert.deepEqual(await running.stores.durable.outbox.counts(), delivered, 'younger than a week: kept');
      clock.advance(120_000);
      await worker.runOnce();
      const after = await running.stores.durable.outbox.counts();
      assert.equal(after.delivered, 0, 'older than a week: pruned');
      assert.equal(after.pending, delivered.pending, 'pending messages are never pruned');
    } finally {
      await running.stop();
    }
  });
});
