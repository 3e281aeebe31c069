/**
 * The Redis MessageBus: PUBLISH/SUBSCRIBE on one channel per deployment (the
 * key prefix names it, so deployments sharing a Redis stay apart). Redis
 * pub/sub delivers at most once, to the subscribers connected at that
 * moment; a dropped connection is reported to listeners as `interrupted`,
 * twice per outage (when it drops, and when it is back and subscribed
 * again, ioredis re-subscribing by itself), so their caches poll meanwhile
 * and start empty afterwards.
 */
import type { Cluster, Redis } from 'ioredis';
import type { MessageBus, MessageListener } from '../ports.ts';
import { StoreUnavailableError } from '../errors.ts';

export interface RedisMessageBusOptions {
  /** A connection that runs ordinary commands (the hot store's). */
  readonly publisher: Redis | Cluster;
  /** A connection of its own, not yet connected, that will only subscribe. */
  readonly subscriber: Redis | Cluster;
  readonly channel: string;
  readonly connectTimeoutMs?: number;
}

class RedisMessageBus implements MessageBus {
  readonly driver = 'redis' as const;
  readonly reach = 'deployment' as const;
  readonly #publisher: Redis | Cluster;
  readonly #subscriber: Redis | Cluster;
  readonly #channel: string;
  readonly #listeners = new Set<MessageListener>();
  #connected = false;
  #closing: Promise<void> | undefined;

  constructor(options: RedisMessageBusOptions) {
    this.#publisher = options.publisher;
    this.#subscriber = options.subscriber;
    this.#channel = options.channel;
    this.#subscriber.on('message', (channel: string, text: string) => {
      if (channel !== this.#channel) return;
      for (const listener of [...this.#listeners]) listener.message(text);
    });
    this.#subscriber.on('close', () => {
      if (!this.#connected) return;
      this.#connected = false;
      this.#interrupted();
    });
    this.#subscriber.on('ready', () => {
      if (this.#connected || this.#closing !== undefined) return;
      this.#connected = true;
      this.#interrupted();
    });
    // Failures reach listeners as `interrupted`; ioredis would print the error events.
    this.#subscriber.on('error', () => undefined);
  }

  get connected(): boolean {
    return this.#connected;
  }

  async start(timeoutMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    try {
      await new Promise<void>((resolve, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
        this.#subscriber
          .connect()
          .then(() => this.#subscriber.subscribe(this.#channel))
          .then(() => resolve(), reject);
      });
    } catch (error) {
      this.#subscriber.disconnect();
      throw new StoreUnavailableError('redis', 'cannot subscribe to the event channel on Redis', { cause: error });
    } finally {
      clearTimeout(timer);
    }
    this.#connected = true;
  }

  async publish(text: string): Promise<void> {
    await this.#publisher.publish(this.#channel, text);
  }

  subscribe(listener: MessageListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  close(): Promise<void> {
    this.#closing ??= this.#subscriber.quit().then(
      () => undefined,
      () => this.#subscriber.disconnect(),
    );
    this.#connected = false;
    this.#listeners.clear();
    return this.#closing;
  }

  #interrupted(): void {
    for (const listener of [...this.#listeners]) listener.interrupted();
  }
}

/** Connects the subscriber and subscribes before it resolves, so no message published afterwards is missed. */
export async function openRedisMessageBus(options: RedisMessageBusOptions): Promise<MessageBus> {
  const bus = new RedisMessageBus(options);
  await bus.start(options.connectTimeoutMs ?? 5000);
  return bus;
}
