/**
 * The MessageBus contract (src/store/ports.ts), per driver: in-process
 * always, Redis pub/sub when PORTCULLIS_TEST_REDIS_URL is set. Waits are on
 * the messages themselves, never on the clock.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { EventHub } from '../../src/events/index.ts';
import { openInProcessMessageBus, type HotStore, type MessageBus, type MessageListener } from '../../src/store/index.ts';
import { openRedisHotStore, redisPubSubConnections } from '../../src/store/redis/hot-store.ts';
import { openRedisMessageBus } from '../../src/store/redis/message-bus.ts';
import { redisTestPrefix, testRedisUrl } from '../support/services.ts';

/** A listener that keeps what it hears and lets a test wait for a message. */
class Inbox implements MessageListener {
  readonly messages: string[] = [];
  interruptions = 0;
  #waiters: { text: string; resolve: () => void }[] = [];
  #interruptWaiters: { count: number; resolve: () => void }[] = [];
  message(text: string): void {
    this.messages.push(text);
    for (const waiter of this.#waiters.filter((w) => w.text === text)) waiter.resolve();
    this.#waiters = this.#waiters.filter((w) => w.text !== text);
  }
  interrupted(): void {
    this.interruptions += 1;
    for (const waiter of this.#interruptWaiters.filter((w) => w.count <= this.interruptions)) waiter.resolve();
    this.#interruptWaiters = this.#interruptWaiters.filter((w) => w.count > this.interruptions);
  }
  received(text: string): Promise<void> {
    if (this.messages.includes(text)) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push({ text, resolve }));
  }
  interruptedTimes(count: number): Promise<void> {
    if (this.interruptions >= count) return Promise.resolve();
    return new Promise((resolve) => this.#interruptWaiters.push({ count, resolve }));
  }
}

interface BusDriver {
  readonly name: string;
  readonly reach: 'process' | 'deployment';
  /** Two instances of one deployment (one channel), and one bus of another deployment. */
  open(): Promise<{ first: MessageBus; second: MessageBus; other: MessageBus; close: () => Promise<void> }>;
}

const drivers: BusDriver[] = [
  {
    name: 'in-process',
    reach: 'process',
    async open() {
      // In one process the instances share the bus; another deployment has its own.
      const first = openInProcessMessageBus();
      const other = openInProcessMessageBus();
      return { first, second: first, other, close: async () => (await first.close(), await other.close()) };
    },
  },
];

const redisStores: HotStore[] = [];
async function redisBus(url: string, keyPrefix: string): Promise<{ bus: MessageBus; subscriber: Redis }> {
  const hot = await openRedisHotStore({ url, keyPrefix });
  redisStores.push(hot);
  const connections = redisPubSubConnections(hot)!;
  return { bus: await openRedisMessageBus({ ...connections, channel: `${keyPrefix}events` }), subscriber: connections.subscriber as Redis };
}

if (testRedisUrl !== undefined) {
  drivers.push({
    name: 'redis',
    reach: 'deployment',
    async open() {
      const prefix = redisTestPrefix();
      const first = (await redisBus(testRedisUrl!, prefix)).bus;
      const second = (await redisBus(testRedisUrl!, prefix)).bus;
      const other = (await redisBus(testRedisUrl!, redisTestPrefix())).bus;
      return { first, second, other, close: async () => (await first.close(), await second.close(), await other.close()) };
    },
  });
}

after(async () => {
  for (const store of redisStores) await store.close();
});

for (const driver of drivers) {
  describe(`MessageBus contract: ${driver.name}`, { timeout: 30_000 }, () => {
    it(`says what it reaches (${driver.reach}) and that it is connected`, async () => {
      const { first, close } = await driver.open();
      assert.equal(first.reach, driver.reach);
      assert.equal(first.connected, true);
      await close();
      assert.equal(first.connected, false);
      await first.close();
    });

    it('a message reaches every subscriber of the deployment, the publisher too, and no other deployment', async () => {
      const { first, second, other, close } = await driver.open();
      try {
        const inboxes = [new Inbox(), new Inbox(), new Inbox()];
        first.subscribe(inboxes[0]!);
        second.subscribe(inboxes[1]!);
        other.subscribe(inboxes[2]!);
        await first.publish('hello');
        await Promise.all([inboxes[0]!.received('hello'), inboxes[1]!.received('hello')]);
        // A later message of the other deployment arrives after anything published before it.
        await other.publish('barrier');
        await inboxes[2]!.received('barrier');
        assert.deepEqual(inboxes[2]!.messages, ['barrier']);
        assert.deepEqual(inboxes[0]!.messages, ['hello']);
      } finally {
        await close();
      }
    });

    it('an unsubscribed listener hears nothing more', async () => {
      const { first, second, close } = await driver.open();
      try {
        const gone = new Inbox();
        const stays = new Inbox();
        const unsubscribe = second.subscribe(gone);
        second.subscribe(stays);
        unsubscribe();
        await first.publish('after');
        await stays.received('after');
        assert.deepEqual(gone.messages, []);
      } finally {
        await close();
      }
    });
  });
}

describe('MessageBus on Redis: a dropped connection', { skip: testRedisUrl === undefined ? 'set PORTCULLIS_TEST_REDIS_URL' : false, timeout: 30_000 }, () => {
  it('tells its listeners twice (down, and back and subscribed), is not connected meanwhile, and receives again afterwards', async () => {
    const prefix = redisTestPrefix();
    const { bus, subscriber } = await redisBus(testRedisUrl!, prefix);
    const publisher = (await redisBus(testRedisUrl!, prefix)).bus;
    const admin = new Redis(testRedisUrl!);
    try {
      const inbox = new Inbox();
      bus.subscribe(inbox);
      // The events port above it: caches poll while it is down, and drop everything when told.
      const hub = new EventHub({ bus });
      let told = 0;
      hub.onInterrupted(() => void (told += 1));
      assert.equal(hub.deploymentWide, true);
      const addr = `${subscriber.stream.localAddress}:${subscriber.stream.localPort}`;
      const down = inbox.interruptedTimes(1);
      assert.equal(await admin.client('KILL', 'ADDR', addr), 1, 'exactly our subscriber connection was dropped');
      await down;
      assert.equal(bus.connected, false);
      assert.equal(hub.deploymentWide, false);
      await inbox.interruptedTimes(2);
      assert.equal(bus.connected, true);
      assert.equal(hub.deploymentWide, true);
      assert.equal(told, 2);
      hub.close();
      await publisher.publish('after reconnect');
      await inbox.received('after reconnect');
    } finally {
      admin.disconnect();
      await bus.close();
      await publisher.close();
    }
  });
});
