/**
 * A separate process for outbox-crash.test.ts: it opens the durable store the
 * environment names and does one thing, printing a line at each step, so the
 * parent can kill it (SIGKILL) at a chosen moment or collect what it did.
 *
 *   OUTBOX_MODE=commit        commits a record and an outbox message (OUTBOX_KEY), prints `committed`, then waits to be killed
 *   OUTBOX_MODE=hang          runs a worker whose deliverer prints `delivering <key>` and never settles
 *   OUTBOX_MODE=race          on `go` (stdin), delivers until nothing is pending, printing `delivered <key>` each time
 *
 * OUTBOX_DRIVER is sqlite (OUTBOX_PATH) or postgres (OUTBOX_URL, OUTBOX_SCHEMA).
 */
import { once } from 'node:events';
import { setImmediate as turn } from 'node:timers/promises';
import type { DurableStore } from '../../src/store/ports.ts';
import { SqliteDatabase } from '../../src/store/sqlite/database.ts';
import { openSqliteDurableStore } from '../../src/store/sqlite/durable-store.ts';
import { createOutboxWorker } from '../../src/store/outbox-worker.ts';

const env = (name: string): string => {
  const value = process.env[name];
  if (value === undefined) throw new Error(`${name} is not set`);
  return value;
};

async function open(): Promise<DurableStore> {
  if (env('OUTBOX_DRIVER') === 'sqlite') return openSqliteDurableStore(new SqliteDatabase({ path: env('OUTBOX_PATH') }));
  const { openPostgresDurableStore } = await import('../../src/store/postgres/durable-store.ts');
  return openPostgresDurableStore({ url: env('OUTBOX_URL'), schema: env('OUTBOX_SCHEMA'), poolSize: 2 });
}

const say = (line: string) => process.stdout.write(`${line}\n`);
const store = await open();

switch (env('OUTBOX_MODE')) {
  case 'commit': {
    const key = env('OUTBOX_KEY');
    await store.transaction(async (tx) => {
      await tx.records.create('crash', key, { committed: true });
      await tx.outbox.add({ topic: 'crash', payload: { key }, idempotencyKey: key });
    });
    say('committed');
    setInterval(() => {}, 60_000); // alive until killed, no worker ever runs here
    break;
  }
  case 'hang': {
    const worker = createOutboxWorker({
      outbox: store.outbox,
      leaseMs: Number(env('OUTBOX_LEASE_MS')),
      deliver: (message) => {
        say(`delivering ${message.idempotencyKey}`);
        return new Promise<void>(() => {}); // never settles: killed mid-delivery
      },
    });
    await worker.runOnce();
    break;
  }
  case 'race': {
    const worker = createOutboxWorker({
      outbox: store.outbox,
      batchSize: 5,
      deliver: async (message) => {
        say(`delivered ${message.idempotencyKey}`);
      },
    });
    say('ready');
    await once(process.stdin, 'data');
    while ((await store.outbox.counts()).pending > 0) {
      await worker.runOnce();
      await turn();
    }
    await worker.stop();
    await store.close();
    say('done');
    process.exit(0);
  }
}
