/**
 * What is specific to the Redis hot store: connecting (and failing to),
 * EVALSHA fallback, the key layout, and Redis Cluster. The semantics every
 * driver shares live in hot-store.contract.test.ts.
 *
 * Needs PORTCULLIS_TEST_REDIS_URL; when it is set Redis MUST be reachable
 * (the `before` hook fails otherwise). The Cluster test starts its own three
 * `redis-server` processes and needs `redis-server` and `redis-cli` on PATH.
 * Tests that need no server (unreachable addresses) always run.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { StoreUnavailableError } from '../../src/store/errors.ts';
import type { HotStore } from '../../src/store/ports.ts';
import { openRedisHotStore, redisPubSubConnections } from '../../src/store/redis/hot-store.ts';
import { openRedisMessageBus } from '../../src/store/redis/message-bus.ts';
import { BOUNDED_SET_ADD_LUA, SET_LUA } from '../../src/store/redis/scripts.ts';
import { deleteRedisKeys } from '../support/services.ts';

const redisUrl = process.env['PORTCULLIS_TEST_REDIS_URL'] || undefined;
const run = promisify(execFile);
const prefix = () => `portcullis:test:${randomBytes(6).toString('hex')}:`;
const sha1 = (text: string) => createHash('sha1').update(text).digest('hex');
const SECRET = 'hunter2-do-not-print';

/** Polls `check` until it returns true, failing after `timeoutMs`; never a blind sleep. */
async function until(what: string, timeoutMs: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(50);
  }
}

/** Opens a raw client to look behind the store's back. */
async function rawClient(url: string): Promise<Redis> {
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null });
  client.on('error', () => {});
  await client.connect();
  return client;
}


/** Asserts that `promise` rejects with a StoreUnavailableError, quickly and without the password. */
async function assertUnreachable(promise: Promise<unknown>, where: string, withinMs: number): Promise<void> {
  const started = performance.now();
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof StoreUnavailableError, `expected StoreUnavailableError, got ${String(error)}`);
    assert.equal(error.driver, 'redis');
    assert.match(error.message, /^cannot reach Redis at /);
    assert.ok(error.message.includes(where), error.message);
    assert.ok(!error.message.includes(SECRET), 'the message must not carry the password');
    return true;
  });
  const elapsed = performance.now() - started;
  assert.ok(elapsed < withinMs, `took ${Math.round(elapsed)} ms, expected under ${withinMs} ms`);
}

describe('Redis hot store: unreachable Redis (no server needed)', () => {
  it('rejects a refused address promptly, without the password and without console output', async (t) => {
    const consoleError = t.mock.method(console, 'error', () => {});
    const consoleLog = t.mock.method(console, 'log', () => {});
    await assertUnreachable(
      openRedisHotStore({ url: `redis://portcullis:${SECRET}@127.0.0.1:1/0`, keyPrefix: prefix(), connectTimeoutMs: 2000 }),
      '127.0.0.1:1',
      2000,
    );
    assert.equal(consoleError.mock.callCount(), 0);
    assert.equal(consoleLog.mock.callCount(), 0);
  });

  it('tries once and does not keep reconnecting after a failed open', async (t) => {
    const consoleError = t.mock.method(console, 'error', () => {});
    // A listener that hangs up on every connection, and counts them.
    let attempts = 0;
    const rude: Server = createServer((socket) => {
      attempts += 1;
      socket.destroy();
    });
    await new Promise<void>((resolve) => rude.listen(0, '127.0.0.1', resolve));
    const { port } = rude.address() as { port: number };
    try {
      await assertUnreachable(openRedisHotStore({ url: `redis://127.0.0.1:${port}`, keyPrefix: prefix() }), `127.0.0.1:${port}`, 2000);
      assert.equal(attempts, 1);
      // This waits for nothing: it is the window in which a retry loop would
      // show itself (ioredis' default backoff starts at 50 ms).
      await delay(300);
      assert.equal(attempts, 1, 'no reconnect after open has failed');
      assert.equal(consoleError.mock.callCount(), 0, 'no unhandled error events');
    } finally {
      await new Promise<void>((resolve) => rude.close(() => resolve()));
    }
  });

  it('rejects within connectTimeoutMs when the server accepts but never answers', async () => {
    // A listener that takes the connection and says nothing: only the timeout can end this.
    const sockets = new Set<Socket>();
    const silent: Server = createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => {});
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as { port: number };
    try {
      await assertUnreachable(
        openRedisHotStore({ url: `redis://:${SECRET}@127.0.0.1:${port}`, keyPrefix: prefix(), connectTimeoutMs: 300 }),
        `127.0.0.1:${port}`,
        1500,
      );
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });

  it('rejects an unreachable cluster the same way', async () => {
    await assertUnreachable(
      openRedisHotStore({
        url: `redis://:${SECRET}@127.0.0.1:1,127.0.0.1:2`,
        cluster: true,
        keyPrefix: prefix(),
        connectTimeoutMs: 2000,
      }),
      '127.0.0.1:1, 127.0.0.1:2',
      2000,
    );
  });

  it('refuses a malformed URL with a TypeError that does not echo the password', async () => {
    await assert.rejects(openRedisHotStore({ url: `http://:${SECRET}@127.0.0.1:6379`, keyPrefix: 'x:' }), (error: unknown) => {
      assert.ok(error instanceof TypeError);
      assert.ok(!error.message.includes(SECRET));
      return true;
    });
    await assert.rejects(openRedisHotStore({ url: 'redis://127.0.0.1:6379/2', cluster: true, keyPrefix: 'x:' }), TypeError);
    await assert.rejects(openRedisHotStore({ url: 'redis://127.0.0.1:6379/abc', keyPrefix: 'x:' }), TypeError);
  });
});

describe('Redis hot store: single node', { skip: redisUrl ? false : 'PORTCULLIS_TEST_REDIS_URL is not set' }, () => {
  const url = redisUrl ?? '';
  const keyPrefix = prefix();
  let store: HotStore;
  let raw: Redis;
  const operations: [string, number][] = [];

  before(async () => {
    // No catch: a set URL that cannot be reached fails the suite.
    store = await openRedisHotStore({ url, keyPrefix, onOperation: (name, seconds) => operations.push([name, seconds]) });
    raw = await rawClient(url);
  });

  after(async () => {
    await store?.close();
    raw?.disconnect();
    await deleteRedisKeys(url, keyPrefix);
  });

  it('stores values as prefixed hashes and bounded sets as prefixed sorted sets', async () => {
    await store.set('value', 'v1', 60_000);
    await store.boundedSetAdd('sessions', 'a', Date.now() + 60_000, 3);
    assert.equal(await raw.exists('value'), 0, 'nothing is written without the prefix');
    assert.equal(await raw.type(`${keyPrefix}value`), 'hash');
    assert.deepEqual(await raw.hgetall(`${keyPrefix}value`), { v: 'v1', n: '1' });
    assert.equal(await raw.type(`${keyPrefix}sessions`), 'zset');
    const [cursor, keys] = await raw.scan('0', 'MATCH', `${keyPrefix}*`, 'COUNT', 1000);
    assert.equal(cursor, '0');
    assert.deepEqual(keys.sort(), [`${keyPrefix}sessions`, `${keyPrefix}value`]);
  });

  it('gives every key a Redis TTL: values, counters (not extended) and bounded sets', async () => {
    await store.set('ttl-value', 'v', 60_000);
    const valueTtl = await raw.pttl(`${keyPrefix}ttl-value`);
    assert.ok(valueTtl > 55_000 && valueTtl <= 60_000, `value PTTL ${valueTtl}`);

    await store.increment('ttl-counter', 60_000);
    await raw.pexpire(`${keyPrefix}ttl-counter`, 30_000);
    const counter = await store.increment('ttl-counter', 60_000);
    assert.ok(counter.ttlMs > 25_000 && counter.ttlMs <= 30_000, `the window is not reset: ${counter.ttlMs}`);

    const now = Date.now();
    await store.boundedSetAdd('ttl-set', 'soon', now + 10_000, 5);
    await store.boundedSetAdd('ttl-set', 'late', now + 40_000, 5);
    const setTtl = await raw.pttl(`${keyPrefix}ttl-set`);
    assert.ok(setTtl > 35_000 && setTtl <= 40_000, `the set lives as long as its latest member: ${setTtl}`);
  });

  it('compares bounded-set expiries with the injected clock', async () => {
    let now = Date.UTC(2030, 0, 1);
    const frozen = await openRedisHotStore({ url, keyPrefix, clock: () => now });
    try {
      await frozen.boundedSetAdd('clocked', 'a', now + 1_000, 5);
      await frozen.boundedSetAdd('clocked', 'b', now + 5_000, 5);
      now += 2_000;
      assert.deepEqual(await frozen.boundedSetMembers('clocked'), [{ member: 'b', expiresAt: Date.UTC(2030, 0, 1) + 5_000 }]);
      assert.equal(await frozen.boundedSetRemove('clocked', 'a'), false, 'an expired member is not there to remove');
    } finally {
      await frozen.close();
    }
  });

  it('keeps working after SCRIPT FLUSH (EVALSHA falls back to EVAL)', async () => {
    await store.set('flush', '1', 60_000);
    await store.boundedSetAdd('flush-set', 'a', Date.now() + 60_000, 1);
    assert.deepEqual(await raw.script('EXISTS', sha1(SET_LUA), sha1(BOUNDED_SET_ADD_LUA)), [1, 1]);

    await raw.script('FLUSH');
    assert.deepEqual(await raw.script('EXISTS', sha1(SET_LUA)), [0]);

    await store.set('flush', '2', 60_000);
    assert.deepEqual(await store.getVersioned('flush'), { value: '2', version: 2 });
    assert.equal(await store.setIfAbsent('flush-new', 'x', 60_000), true);
    assert.equal(await store.compareAndSet('flush', 2, '3', 60_000), 3);
    assert.equal((await store.increment('flush-counter', 60_000)).value, 1);
    assert.equal(await store.consume('flush-new'), 'x');
    assert.deepEqual(await store.boundedSetAdd('flush-set', 'b', Date.now() + 120_000, 1), { evicted: ['a'] });
    assert.equal(await store.boundedSetRemove('flush-set', 'b'), true);
    assert.deepEqual(await raw.script('EXISTS', sha1(SET_LUA)), [1], 'the fallback loaded the script again');
  });

  it('rejects using one key both as a value and as a bounded set, writing nothing', async () => {
    await store.set('mixed', 'v', 60_000);
    await assert.rejects(store.boundedSetAdd('mixed', 'm', Date.now() + 60_000, 3), TypeError);
    await assert.rejects(store.boundedSetMembers('mixed'), TypeError);
    assert.deepEqual(await store.getVersioned('mixed'), { value: 'v', version: 1 });

    await store.boundedSetAdd('mixed-set', 'm', Date.now() + 60_000, 3);
    await assert.rejects(store.set('mixed-set', 'v', 60_000), TypeError);
    await assert.rejects(store.increment('mixed-set', 60_000), TypeError);
    await assert.rejects(store.get('mixed-set'), TypeError);
    assert.equal(await raw.zcard(`${keyPrefix}mixed-set`), 1);
    assert.equal(await store.delete('mixed-set'), true, 'delete removes either kind');
  });

  it('refuses a counter that would leave the safe integer range', async () => {
    await store.set('big', String(Number.MAX_SAFE_INTEGER - 1), 60_000);
    assert.equal((await store.increment('big', 60_000)).value, Number.MAX_SAFE_INTEGER);
    await assert.rejects(store.increment('big', 60_000), RangeError);
    assert.equal(await store.get('big'), String(Number.MAX_SAFE_INTEGER));
    await store.set('huge', '123456789012345678901234567890', 60_000);
    await assert.rejects(store.increment('huge', 60_000), TypeError);
  });

  it('reports each operation and its duration to onOperation', async () => {
    operations.length = 0;
    await store.get('metrics');
    await store.increment('metrics-counter', 60_000);
    assert.deepEqual(
      operations.map(([name]) => name),
      ['get', 'increment'],
    );
    for (const [, seconds] of operations) assert.ok(seconds >= 0 && seconds < 5);
  });

  it('fails a call whose connection dropped unanswered, does not re-send it, and reconnects', async () => {
    // A TCP proxy in front of Redis that can swallow requests and hang up,
    // which is what a network cut looks like from the client.
    const upstream = new URL(url);
    const pairs = new Set<[Socket, Socket]>();
    let swallow = false;
    let swallowed = 0;
    const proxy: Server = createServer((client) => {
      const server = connect(Number(upstream.port || 6379), upstream.hostname.replace(/^\[(.*)\]$/, '$1'));
      const pair: [Socket, Socket] = [client, server];
      pairs.add(pair);
      client.on('data', (chunk) => (swallow ? (swallowed += chunk.length) : server.write(chunk)));
      server.on('data', (chunk) => client.write(chunk));
      for (const socket of pair) {
        socket.on('error', () => {});
        socket.on('close', () => {
          for (const other of pair) other.destroy();
          pairs.delete(pair);
        });
      }
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    const viaProxy = new URL(url);
    viaProxy.hostname = '127.0.0.1';
    viaProxy.port = String((proxy.address() as { port: number }).port);
    const extra = await openRedisHotStore({ url: viaProxy.toString(), keyPrefix, commandTimeoutMs: 500 });
    try {
      swallow = true;
      const pending = extra.set('cut', 'written?', 60_000);
      await until('the request to reach the proxy', 2_000, async () => swallowed > 0);
      for (const pair of pairs) for (const socket of pair) socket.destroy();
      swallow = false;
      await assert.rejects(pending, StoreUnavailableError);
      assert.equal(await raw.exists(`${keyPrefix}cut`), 0, 'the unanswered command was not re-sent after reconnecting');
      await until('the store to serve again', 5_000, async () => {
        await extra.set('reconnected', 'yes', 60_000);
        return true;
      });
      assert.equal(await extra.get('reconnected'), 'yes');
    } finally {
      await extra.close();
      for (const pair of pairs) for (const socket of pair) socket.destroy();
      await new Promise<void>((resolve) => proxy.close(() => resolve()));
    }
  });

  it('close is idempotent, and a closed store reports StoreUnavailableError', async () => {
    const extra = await openRedisHotStore({ url, keyPrefix });
    await extra.ping();
    await extra.close();
    await extra.close();
    await assert.rejects(extra.get('anything'), StoreUnavailableError);
  });
});

const clusterTools = ['redis-server', 'redis-cli'].every((tool) => spawnSync(tool, ['--version']).status === 0);

describe(
  'Redis hot store: Redis Cluster (three local redis-server processes)',
  { skip: clusterTools ? false : 'redis-server and redis-cli are not on PATH' },
  () => {
    let dir = '';
    const servers: ChildProcess[] = [];
    const ports: number[] = [];
    let store: HotStore | undefined;

    /** A loopback port nobody listens on right now. */
    const taken = new Set<number>();
    async function freePort(): Promise<number> {
      for (;;) {
        const probe = createServer();
        await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
        const { port } = probe.address() as { port: number };
        await new Promise<void>((resolve) => probe.close(() => resolve()));
        if (!taken.has(port)) {
          taken.add(port);
          return port;
        }
      }
    }

    const cli = (port: number, ...args: string[]) => run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args]);

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'portcullis-redis-cluster-'));
      for (let i = 0; i < 3; i++) {
        // Each node also needs a cluster-bus port; name it instead of relying on port + 10000.
        const port = await freePort();
        const busPort = await freePort();
        ports.push(port);
        const server = spawn(
          'redis-server',
          [
            '--port', String(port),
            '--bind', '127.0.0.1',
            '--cluster-enabled', 'yes',
            '--cluster-port', String(busPort),
            '--cluster-config-file', `nodes-${port}.conf`,
            '--dir', dir,
            '--save', '',
            '--appendonly', 'no',
          ],
          { stdio: 'ignore' },
        );
        servers.push(server);
      }
      for (const port of ports) {
        await until(`redis-server on port ${port}`, 10_000, async () => (await cli(port, 'ping')).stdout.trim() === 'PONG');
      }
      await run('redis-cli', ['--cluster', 'create', ...ports.map((port) => `127.0.0.1:${port}`), '--cluster-replicas', '0', '--cluster-yes']);
      for (const port of ports) {
        await until(`cluster_state:ok on port ${port}`, 20_000, async () => (await cli(port, 'cluster', 'info')).stdout.includes('cluster_state:ok'));
      }
      store = await openRedisHotStore({
        url: `redis://127.0.0.1:${ports[0]},127.0.0.1:${ports[1]}`,
        cluster: true,
        keyPrefix: prefix(),
      });
    });

    after(async () => {
      await store?.close();
      await Promise.all(
        servers.map(
          (server) =>
            new Promise<void>((resolve) => {
              if (server.exitCode !== null || server.signalCode !== null) return resolve();
              server.once('exit', () => resolve());
              server.kill('SIGKILL');
            }),
        ),
      );
      if (dir !== '') rmSync(dir, { recursive: true, force: true });
    });

    it('carries event messages between instances (pub/sub on the cluster: the events port)', async () => {
      assert.ok(store);
      const channel = `${prefix()}events`;
      const buses = [await openRedisMessageBus({ ...redisPubSubConnections(store)!, channel }), await openRedisMessageBus({ ...redisPubSubConnections(store)!, channel })];
      try {
        const heard = new Promise<string>((resolve) => buses[1]!.subscribe({ message: resolve, interrupted: () => undefined }));
        await buses[0]!.publish('revoked');
        assert.equal(await heard, 'revoked');
      } finally {
        for (const bus of buses) await bus.close();
      }
    });

    it('runs every kind of operation on keys spread over all three nodes', async () => {
      assert.ok(store);
      await store.ping();
      const keys = Array.from({ length: 30 }, (_, i) => `cluster-key-${i}`);
      for (const key of keys) {
        await store.set(key, `value-${key}`, 60_000);
        assert.equal(await store.compareAndSet(key, 1, 'second', 60_000), 2);
        assert.equal((await store.increment(`${key}:counter`, 60_000, 3)).value, 3);
        assert.equal(await store.setIfAbsent(`${key}:nx`, 'x', 60_000), true);
        assert.equal(await store.consume(`${key}:nx`), 'x');
      }
      for (const key of keys) assert.deepEqual(await store.getVersioned(key), { value: 'second', version: 2 });

      // The keys really are spread out, so each script ran on the node owning its slot.
      const sizes = await Promise.all(ports.map(async (port) => Number((await cli(port, 'dbsize')).stdout.trim())));
      assert.ok(sizes.every((size) => size > 0), `every node holds keys: ${sizes.join(', ')}`);
    });

    it('keeps bounded sets within their limit, also under concurrency', async () => {
      assert.ok(store);
      const clusterStore = store;
      const now = Date.now();
      for (const key of ['sessions:alice', 'sessions:bob', 'sessions:carol']) {
        assert.deepEqual(await clusterStore.boundedSetAdd(key, 'a', now + 10_000, 2), { evicted: [] });
        assert.deepEqual(await clusterStore.boundedSetAdd(key, 'b', now + 20_000, 2), { evicted: [] });
        assert.deepEqual(await clusterStore.boundedSetAdd(key, 'c', now + 30_000, 2), { evicted: ['a'] });
        assert.deepEqual(await clusterStore.boundedSetMembers(key), [
          { member: 'b', expiresAt: now + 20_000 },
          { member: 'c', expiresAt: now + 30_000 },
        ]);
        assert.equal(await clusterStore.boundedSetRemove(key, 'b'), true);
        assert.equal(await clusterStore.delete(key), true);
      }
      const results = await Promise.all(
        Array.from({ length: 50 }, (_, i) => clusterStore.boundedSetAdd('sessions:race', `m${i}`, now + 60_000 + i, 5)),
      );
      assert.equal(results.flatMap((result) => result.evicted).length, 45);
      assert.equal((await clusterStore.boundedSetMembers('sessions:race')).length, 5);
    });
  },
);
