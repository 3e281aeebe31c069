/**
 * The outbox across process deaths, on every durable driver: a child process
 * is killed with SIGKILL (no shutdown code runs) and a new store and worker
 * in this process must still deliver what the dead one committed, and
 * deliver again what it was delivering. Two processes racing over one
 * database deliver every message exactly once between them.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { DurableStore } from '../../src/store/ports.ts';
import { SqliteDatabase } from '../../src/store/sqlite/database.ts';
import { openSqliteDurableStore } from '../../src/store/sqlite/durable-store.ts';
import { createOutboxWorker, type OutboxDelivery } from '../../src/store/outbox-worker.ts';
import { createTestSchema, testDatabaseUrl } from '../support/services.ts';
import { within } from '../support/process.ts';
import { recorder, unique } from './outbox-support.ts';

const CHILD = join(import.meta.dirname, 'outbox-child.ts');
const LEASE_MS = 60_000;

interface Target {
  readonly name: string;
  /** What the child needs to open the same database. */
  readonly env: Record<string, string>;
  open(): Promise<DurableStore>;
  drop(): Promise<void>;
}

async function sqliteTarget(): Promise<Target> {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-outbox-crash-'));
  const path = join(dir, 'portcullis.db');
  const open = async () => openSqliteDurableStore(new SqliteDatabase({ path }));
  const first = await open();
  await first.migrate();
  await first.close();
  return { name: 'sqlite', env: { OUTBOX_DRIVER: 'sqlite', OUTBOX_PATH: path }, open, drop: async () => rmSync(dir, { recursive: true, force: true }) };
}

async function postgresTarget(url: string): Promise<Target> {
  const { openPostgresDurableStore } = await import('../../src/store/postgres/durable-store.ts');
  const { schema, drop } = await createTestSchema(url);
  const open = () => openPostgresDurableStore({ url, schema, poolSize: 2 });
  const first = await open();
  await first.migrate();
  await first.close();
  return { name: 'postgres', env: { OUTBOX_DRIVER: 'postgres', OUTBOX_URL: url, OUTBOX_SCHEMA: schema }, open, drop };
}

const databaseUrl = testDatabaseUrl;
const targets: { name: string; make: () => Promise<Target> }[] = [
  { name: 'sqlite', make: sqliteTarget },
  ...(databaseUrl === undefined ? [] : [{ name: 'postgres', make: () => postgresTarget(databaseUrl) }]),
];

interface Child {
  readonly process: ChildProcessWithoutNullStreams;
  readonly lines: string[];
  /** Resolves with the first line matching `pattern`, rejects if the child exits first. */
  line(pattern: RegExp): Promise<string>;
  kill(): Promise<void>;
}

function child(target: Target, env: Record<string, string>): Child {
  const proc = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', CHILD], {
    env: { PATH: process.env['PATH'] ?? '', ...target.env, ...env },
  });
  const lines: string[] = [];
  const waiting: { pattern: RegExp; resolve: (line: string) => void }[] = [];
  let stderr = '';
  proc.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  createInterface({ input: proc.stdout }).on('line', (line) => {
    lines.push(line);
    for (const waiter of waiting.filter((w) => w.pattern.test(line))) {
      waiting.splice(waiting.indexOf(waiter), 1);
      waiter.resolve(line);
    }
  });
  const exited = once(proc, 'exit');
  return {
    process: proc,
    lines,
    line: (pattern) => {
      const seen = lines.find((line) => pattern.test(line));
      if (seen !== undefined) return Promise.resolve(seen);
      return Promise.race([
        new Promise<string>((resolve) => waiting.push({ pattern, resolve })),
        exited.then(([code, signal]) => {
          throw new Error(`child exited (${String(code ?? signal)}) before printing ${pattern}: ${stderr}`);
        }),
      ]);
    },
    kill: async () => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      const [, signal] = await exited;
      assert.ok(signal === 'SIGKILL' || proc.exitCode !== null);
    },
  };
}

for (const { name, make } of targets) {
  describe(`Outbox across process deaths: ${name}`, () => {
    let target: Target;
    const opened: DurableStore[] = [];
    const children: Child[] = [];
    const open = async () => {
      const store = await target.open();
      opened.push(store);
      return store;
    };
    before(async () => {
      target = await make();
    });
    after(async () => {
      for (const c of children) await c.kill();
      for (const store of opened) await store.close();
      await target.drop();
    });

    it('a message committed by a process killed before delivering is delivered after restart', async () => {
      const key = unique('crash-before-delivery');
      const dying = child(target, { OUTBOX_MODE: 'commit', OUTBOX_KEY: key });
      children.push(dying);
      await within(dying.line(/^committed$/), 20_000, 'the child committing');
      await dying.kill();

      const store = await open();
      assert.deepEqual((await store.records.get('crash', key))?.data, { committed: true });
      const seen = recorder();
      const worker = createOutboxWorker({ outbox: store.outbox, deliver: seen.deliver });
      assert.deepEqual(await worker.runOnce(), { leased: true, delivered: 1, failed: 0 });
      assert.deepEqual(
        seen.calls.map((m) => [m.idempotencyKey, m.payload, m.attempt]),
        [[key, { key }, 1]],
      );
      await worker.stop();
    });

    it('a process killed in the middle of a delivery: the message is delivered again, with the same key', async () => {
      const store = await open();
      const key = unique('crash-during-delivery');
      await store.transaction((tx) => tx.outbox.add({ topic: 'crash', payload: { key }, idempotencyKey: key }));
      const dying = child(target, { OUTBOX_MODE: 'hang', OUTBOX_LEASE_MS: String(LEASE_MS) });
      children.push(dying);
      assert.equal(await within(dying.line(/^delivering /), 20_000, 'the child delivering'), `delivering ${key}`);
      await dying.kill();

      // The dead holder's lease: PostgreSQL frees it with the session; a
      // SQLite lease row stands for LEASE_MS, but it names a process of this
      // machine that is gone (store/lease-holder.ts), so a worker at the
      // real time takes it at once rather than wait for it to lapse.
      const { promise: delivered, resolve } = Promise.withResolvers<OutboxDelivery>();
      const worker = createOutboxWorker({
        outbox: store.outbox,
        pollIntervalMs: 25,
        deliver: async (message) => resolve(message),
      });
      worker.start();
      const again = await within(delivered, 20_000, 'redelivery after the crash');
      await worker.stop();
      assert.equal(again.idempotencyKey, key);
      assert.equal(again.attempt, 1, 'the killed attempt was never recorded');
      assert.deepEqual((await store.outbox.counts()).pending, 0);
    });

    it('two processes racing over 300 messages deliver each exactly once between them', async (t) => {
      const store = await open();
      const topic = unique('race');
      const keys = await store.transaction(async (tx) => {
        const added: string[] = [];
        for (let i = 0; i < 300; i++) added.push((await tx.outbox.add({ topic, payload: { i } })).idempotencyKey);
        return added;
      });
      const racers = [0, 1].map(() => child(target, { OUTBOX_MODE: 'race' }));
      children.push(...racers);
      await within(Promise.all(racers.map((r) => r.line(/^ready$/))), 20_000, 'racers ready');
      for (const racer of racers) racer.process.stdin.end('go\n');
      await within(Promise.all(racers.map((r) => r.line(/^done$/))), 60_000, 'racers done');
      const byRacer = racers.map((r) => r.lines.filter((line) => line.startsWith('delivered ')).map((line) => line.slice('delivered '.length)));
      t.diagnostic(`delivered per process: ${byRacer.map((list) => list.length).join(' + ')}`);
      const all = byRacer.flat();
      assert.equal(new Set(all).size, all.length, 'no message delivered twice');
      assert.deepEqual([...all].sort(), [...keys].sort(), 'every message delivered');
    });
  });
}
