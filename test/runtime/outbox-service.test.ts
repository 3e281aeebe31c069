/**
 * The outbox delivery worker as a service of a running instance (issue 11
 * section 5): a message committed with a change is handed to the deliverer
 * of its topic, with its idempotency key; a topic nobody delivers stays
 * pending (retried with backoff), never lost; stopping the instance stops
 * the worker before the stores close.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/index.ts';
import type { OutboxDelivery } from '../../src/store/index.ts';
import { startPortcullis } from '../../src/server/index.ts';
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
});
