/**
 * The Redis (and Redis Cluster) driver of the HotStore port.
 *
 * Every HotStore method is ONE Redis command or ONE Lua script, so each is
 * atomic for every process sharing the Redis (see scripts.ts). Scripts are
 * registered with ioredis' `defineCommand`, which sends EVALSHA and falls
 * back to EVAL when the server answers NOSCRIPT (after a restart, a failover
 * or SCRIPT FLUSH).
 *
 * Redis Cluster: every operation touches exactly one key, and the scripts
 * receive it as KEYS[1], so each command and each script is single-slot and
 * runs whole on the node that owns the key. Nothing here may ever combine
 * two keys in one operation, or Cluster would refuse it (CROSSSLOT).
 *
 * Value TTLs are Redis' own (PEXPIRE, server time). Bounded-set members carry
 * their own expiresAt and are compared with the injected clock, passed to the
 * scripts as an argument, so that tests can freeze time.
 */
import { Cluster, Redis } from 'ioredis';
import type { ClusterNode, RedisOptions } from 'ioredis';
import type { BoundedSetAddResult, BoundedSetMember, CounterValue, HotStore, VersionedValue } from '../ports.ts';
import { systemClock } from '../ports.ts';
import { StoreUnavailableError, assertExpectedVersion, assertIncrement, assertLimit, assertTtl } from '../errors.ts';
import {
  BOUNDED_SET_ADD_LUA,
  BOUNDED_SET_REMOVE_LUA,
  COMPARE_AND_SET_LUA,
  CONSUME_LUA,
  INCREMENT_LUA,
  NOT_INTEGER,
  OUT_OF_RANGE,
  SET_IF_ABSENT_LUA,
  SET_LUA,
  WRONG_KIND,
} from './scripts.ts';

export interface RedisHotStoreOptions {
  /** redis://[user:pass@]host:port[/db]; in cluster mode a comma-separated list of seed URLs or host:port pairs */
  readonly url: string;
  readonly cluster?: boolean;
  /** prepended to every key, e.g. 'portcullis:' or a per-test-run prefix */
  readonly keyPrefix: string;
  /** ms since epoch; used for boundedSet expiry comparisons (pass it as ARGV to Lua). Default Date.now */
  readonly clock?: () => number;
  readonly connectTimeoutMs?: number; // default 5000
  /**
   * A command without a reply after this long fails with StoreUnavailableError
   * (its outcome unknown) instead of holding the request. Default 5000.
   */
  readonly commandTimeoutMs?: number;
  /** called with (operation name, seconds) after every operation, for metrics; optional */
  readonly onOperation?: (operation: string, seconds: number) => void;
}

/** The scripts, as `defineCommand` adds them to the client. */
interface ScriptCommands {
  portcullisSet(key: string, value: string, ttlMs: number): Promise<number>;
  portcullisSetIfAbsent(key: string, value: string, ttlMs: number): Promise<number>;
  portcullisConsume(key: string): Promise<string | null>;
  portcullisCompareAndSet(key: string, expectedVersion: number, value: string, ttlMs: number): Promise<number | null>;
  portcullisIncrement(key: string, ttlMs: number, by: number): Promise<[string, number]>;
  portcullisBoundedSetAdd(key: string, member: string, expiresAt: number, limit: number, now: number): Promise<string[]>;
  portcullisBoundedSetRemove(key: string, member: string, now: number): Promise<number>;
}

type Client = (Redis | Cluster) & ScriptCommands;

const SCRIPTS: Record<keyof ScriptCommands, string> = {
  portcullisSet: SET_LUA,
  portcullisSetIfAbsent: SET_IF_ABSENT_LUA,
  portcullisConsume: CONSUME_LUA,
  portcullisCompareAndSet: COMPARE_AND_SET_LUA,
  portcullisIncrement: INCREMENT_LUA,
  portcullisBoundedSetAdd: BOUNDED_SET_ADD_LUA,
  portcullisBoundedSetRemove: BOUNDED_SET_REMOVE_LUA,
};

/** The longest wait between two reconnect attempts. */
const RECONNECT_CAP_MS = 500;

/** Server errors that mean "not available right now", not "your request is wrong". */
const UNAVAILABLE_REPLY = /^(LOADING|BUSY|MASTERDOWN|CLUSTERDOWN|TRYAGAIN|READONLY|NOAUTH|WRONGPASS|NOPERM|OOM)\b/;

/** What `openRedisHotStore` needs from the URL(s): where to go and how to log in. */
interface Endpoints {
  readonly nodes: { host: string; port: number }[];
  /** host:port list for messages; never carries credentials. */
  readonly where: string;
  readonly username?: string;
  readonly password?: string;
  readonly db: number;
  readonly tls: boolean;
}

export async function openRedisHotStore(options: RedisHotStoreOptions): Promise<HotStore> {
  const connectTimeoutMs = options.connectTimeoutMs ?? 5000;
  const commandTimeoutMs = options.commandTimeoutMs ?? 5000;
  for (const [name, value] of [['connectTimeoutMs', connectTimeoutMs], ['commandTimeoutMs', commandTimeoutMs]] as const) {
    if (!Number.isSafeInteger(value) || value <= 0) throw new TypeError(`${name} must be a positive integer, got ${String(value)}`);
  }
  const cluster = options.cluster ?? false;
  const endpoints = parseEndpoints(options.url, cluster);

  // Until the first successful connect, every retry strategy answers null: a
  // wrong address must fail `open` once and promptly, not loop in the
  // background. Afterwards ioredis reconnects with a capped backoff: at most half a second between attempts, so a
  // Redis that comes back is found within that (its breaker's half-open ping waits for the reconnect: issue 16,
  // time to full throughput after the store returns; bench/store-outage.ts).
  let connected = false;
  const retry = (times: number): number | null => (connected ? Math.min(times * 100, RECONNECT_CAP_MS) : null);

  const redisOptions: RedisOptions = {
    username: endpoints.username,
    password: endpoints.password,
    connectTimeout: connectTimeoutMs,
    // The driver reads replies in RESP2 shapes (flat WITHSCORES arrays); pin
    // the protocol so a client default cannot change them.
    protocol: 2,
    // Fail a hot-path call after a couple of reconnect attempts instead of
    // holding a login request for the default twenty.
    maxRetriesPerRequest: 2,
    // A command that was sent but not answered when the connection dropped
    // may already have run: re-sending it could double an increment, turn a
    // won setIfAbsent/compareAndSet into a reported loss, or lose the list a
    // boundedSetAdd evicted. Fail it instead (StoreUnavailableError); commands
    // never sent still go out on reconnect.
    autoResendUnfulfilledCommands: false,
    // ioredis 6 drops those unanswered commands without settling their
    // promises (event_handler.js, readyHandler), so only a command timeout
    // makes them fail; it also bounds a call to a server that stopped answering.
    commandTimeout: commandTimeoutMs,
    // Names the connection in CLIENT LIST, for operators.
    connectionName: 'portcullis-hot-store',
    lazyConnect: true,
    ...(endpoints.tls ? { tls: {} } : {}),
  };
  const client = (
    cluster
      ? new Cluster(endpoints.nodes satisfies ClusterNode[], {
          lazyConnect: true,
          clusterRetryStrategy: retry,
          redisOptions,
        })
      : new Redis({ ...redisOptions, host: endpoints.nodes[0]!.host, port: endpoints.nodes[0]!.port, db: endpoints.db, retryStrategy: retry })
  ) as Client;
  for (const [name, lua] of Object.entries(SCRIPTS)) client.defineCommand(name, { lua, numberOfKeys: 1 });

  // ioredis prints unhandled 'error' events to the console; the store reports
  // failures through rejected calls instead, and keeps the last one to say why.
  const lastError = { message: '' };
  const remember = (error: unknown): void => {
    lastError.message = describeError(error);
  };
  client.on('error', remember);
  if (cluster) client.on('node error', remember);

  let timer: NodeJS.Timeout | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${connectTimeoutMs} ms`)), connectTimeoutMs);
      client
        .connect()
        .then(() => client.ping())
        .then(() => resolve(), reject);
    });
  } catch (error) {
    client.disconnect();
    const reason = lastError.message || describeError(error);
    throw new StoreUnavailableError('redis', `cannot reach Redis at ${endpoints.where}: ${reason}`, { cause: error });
  } finally {
    clearTimeout(timer);
  }
  connected = true;
  return new RedisHotStore(client, options.keyPrefix, options.clock ?? systemClock, options.onOperation, lastError);
}

/** The pub/sub connections of a Redis hot store (see RedisHotStore.pubSubConnections); undefined for another driver. */
export function redisPubSubConnections(store: HotStore): { publisher: Redis | Cluster; subscriber: Redis | Cluster } | undefined {
  return store instanceof RedisHotStore ? store.pubSubConnections() : undefined;
}

class RedisHotStore implements HotStore {
  readonly driver = 'redis' as const;
  readonly #client: Client;
  readonly #prefix: string;
  readonly #clock: () => number;
  readonly #onOperation: ((operation: string, seconds: number) => void) | undefined;
  readonly #lastError: { readonly message: string };
  #closing: Promise<void> | undefined;

  constructor(
    client: Client,
    prefix: string,
    clock: () => number,
    onOperation: ((operation: string, seconds: number) => void) | undefined,
    lastError: { readonly message: string },
  ) {
    this.#client = client;
    this.#prefix = prefix;
    this.#clock = clock;
    this.#onOperation = onOperation;
    this.#lastError = lastError;
  }

  async get(key: string): Promise<string | null> {
    return this.#run('get', () => this.#client.hget(this.#key(key), 'v'));
  }

  async set(key: string, value: string, ttlMs: number): Promise<void> {
    assertTtl(ttlMs);
    await this.#run('set', () => this.#client.portcullisSet(this.#key(key), value, ttlMs));
  }

  async delete(key: string): Promise<boolean> {
    return (await this.#run('delete', () => this.#client.del(this.#key(key)))) > 0;
  }

  async setIfAbsent(key: string, value: string, ttlMs: number): Promise<boolean> {
    assertTtl(ttlMs);
    return (await this.#run('setIfAbsent', () => this.#client.portcullisSetIfAbsent(this.#key(key), value, ttlMs))) === 1;
  }

  async consume(key: string): Promise<string | null> {
    return this.#run('consume', () => this.#client.portcullisConsume(this.#key(key)));
  }

  async getVersioned(key: string): Promise<VersionedValue | null> {
    // One HMGET reads value and version together, so they always match.
    const [value, version] = await this.#run('getVersioned', () => this.#client.hmget(this.#key(key), 'v', 'n'));
    if (value === null || value === undefined || version === null || version === undefined) return null;
    return { value, version: Number(version) };
  }

  async compareAndSet(key: string, expectedVersion: number, value: string, ttlMs: number): Promise<number | null> {
    assertExpectedVersion(expectedVersion);
    assertTtl(ttlMs);
    return this.#run('compareAndSet', () =>
      this.#client.portcullisCompareAndSet(this.#key(key), expectedVersion, value, ttlMs),
    );
  }

  async increment(key: string, ttlMs: number, by = 1): Promise<CounterValue> {
    assertTtl(ttlMs);
    assertIncrement(by);
    const [value, remaining] = await this.#run('increment', () => this.#client.portcullisIncrement(this.#key(key), ttlMs, by));
    return { value: Number(value), ttlMs: remaining };
  }

  async boundedSetAdd(key: string, member: string, expiresAt: number, limit: number): Promise<BoundedSetAddResult> {
    assertLimit(limit);
    assertExpiresAt(expiresAt);
    const now = this.#clock();
    const evicted = await this.#run('boundedSetAdd', () =>
      this.#client.portcullisBoundedSetAdd(this.#key(key), member, expiresAt, limit, now),
    );
    return { evicted };
  }

  async boundedSetRemove(key: string, member: string): Promise<boolean> {
    const now = this.#clock();
    return (await this.#run('boundedSetRemove', () => this.#client.portcullisBoundedSetRemove(this.#key(key), member, now))) === 1;
  }

  async boundedSetMembers(key: string): Promise<BoundedSetMember[]> {
    // A read needs no script: one ZRANGEBYSCORE from just after `now` returns
    // exactly the live members, soonest-expiring first (ties by member), and
    // stays read-only. Expired ones are pruned by the next add or remove.
    const now = this.#clock();
    const flat = await this.#run('boundedSetMembers', () =>
      this.#client.zrangebyscore(this.#key(key), `(${now}`, '+inf', 'WITHSCORES'),
    );
    const members: BoundedSetMember[] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) members.push({ member: flat[i]!, expiresAt: Number(flat[i + 1]) });
    return members;
  }

  async ping(): Promise<void> {
    await this.#run('ping', () => this.#client.ping());
  }

  /**
   * The connections a message bus on this Redis needs: this store's own for
   * PUBLISH, and a new one with the same settings for SUBSCRIBE (a
   * subscribed connection can run no other command).
   */
  pubSubConnections(): { publisher: Redis | Cluster; subscriber: Redis | Cluster } {
    const client: Redis | Cluster = this.#client;
    return { publisher: client, subscriber: client instanceof Cluster ? client.duplicate() : client.duplicate() };
  }

  close(): Promise<void> {
    // QUIT lets replies already on their way arrive; if the connection is
    // down there is nobody to say goodbye to, so just drop it.
    this.#closing ??= this.#client.quit().then(
      () => undefined,
      () => this.#client.disconnect(),
    );
    return this.#closing;
  }

  #key(key: string): string {
    return this.#prefix + key;
  }

  /** Runs one Redis call, reports its duration and turns its errors into the store's. */
  async #run<T>(operation: string, call: () => Promise<T>): Promise<T> {
    const started = performance.now();
    try {
      return await call();
    } catch (error) {
      throw this.#translate(error);
    } finally {
      if (this.#onOperation !== undefined) {
        // A metrics hook must not turn a successful write into a failure.
        try {
          this.#onOperation(operation, (performance.now() - started) / 1000);
        } catch {
          // ignored on purpose
        }
      }
    }
  }

  #translate(error: unknown): unknown {
    if (!(error instanceof Error)) return error;
    if (error.name === 'ReplyError') {
      const message = error.message;
      if (message.startsWith(WRONG_KIND) || message.startsWith('WRONGTYPE')) {
        return new TypeError('hot store: a key was used both as a value and as a bounded set', { cause: error });
      }
      if (message.startsWith(NOT_INTEGER)) return new TypeError('increment: the stored value is not an integer', { cause: error });
      if (message.startsWith(OUT_OF_RANGE)) return new RangeError('increment: the counter would leave the safe integer range', { cause: error });
      if (UNAVAILABLE_REPLY.test(message)) return new StoreUnavailableError('redis', `Redis refused the operation: ${firstWord(message)}`, { cause: error });
      return error;
    }
    // Anything else is the connection: closed, timed out, out of retries.
    const why = this.#lastError.message ? ` (last error: ${this.#lastError.message})` : '';
    return new StoreUnavailableError('redis', `Redis operation failed: ${error.message}${why}`, { cause: error });
  }
}

function assertExpiresAt(expiresAt: number): void {
  if (!Number.isFinite(expiresAt)) throw new TypeError(`expiresAt must be a finite number of ms since the epoch, got ${String(expiresAt)}`);
}

/**
 * Reads the URL (or, in cluster mode, the comma-separated seeds). Credentials,
 * database and TLS come from the first entry that names them; the cluster
 * protocol has no databases, so a cluster URL with /db other than 0 is refused.
 */
function parseEndpoints(url: string, cluster: boolean): Endpoints {
  const entries = (cluster ? url.split(',') : [url]).map((entry) => entry.trim()).filter((entry) => entry !== '');
  if (entries.length === 0) throw new TypeError('Redis URL is empty');
  const nodes: { host: string; port: number }[] = [];
  const where: string[] = [];
  let username: string | undefined;
  let password: string | undefined;
  let db = 0;
  let tls = false;
  for (const entry of entries) {
    const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(entry) ? entry : `redis://${entry}`;
    let parsed: URL;
    try {
      parsed = new URL(withScheme);
    } catch {
      throw new TypeError(`invalid Redis URL: ${redactSeed(entry)}`);
    }
    if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
      throw new TypeError(`invalid Redis URL scheme ${parsed.protocol} (expected redis: or rediss:)`);
    }
    if (parsed.hostname === '') throw new TypeError(`invalid Redis URL: ${redactSeed(entry)} has no host`);
    const port = parsed.port === '' ? 6379 : Number(parsed.port);
    // new URL keeps IPv6 hosts in brackets; sockets want them bare.
    nodes.push({ host: parsed.hostname.replace(/^\[(.*)\]$/, '$1'), port });
    where.push(`${parsed.hostname}:${port}`);
    if (parsed.protocol === 'rediss:') tls = true;
    if (username === undefined && parsed.username !== '') username = decodeURIComponent(parsed.username);
    if (password === undefined && parsed.password !== '') password = decodeURIComponent(parsed.password);
    const path = parsed.pathname.replace(/^\//, '');
    if (path !== '') {
      if (!/^\d+$/.test(path)) throw new TypeError(`invalid Redis database "${path}" in URL (expected a number)`);
      db = Number(path);
    }
  }
  if (cluster && db !== 0) throw new TypeError('Redis Cluster has no numbered databases: remove the /db from the URL');
  return {
    nodes,
    where: where.join(', '),
    db,
    tls,
    ...(username !== undefined ? { username } : {}),
    ...(password !== undefined ? { password } : {}),
  };
}

/** A seed that did not parse, shown without anything that looks like credentials. */
function redactSeed(entry: string): string {
  const at = entry.lastIndexOf('@');
  return at === -1 ? entry : `****@${entry.slice(at + 1)}`;
}

function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  // Cluster wraps the per-node failure; the socket error itself stays inside
  // ioredis' internal connections, so say what failed in the cluster's terms.
  const nodeError = (error as { lastNodeError?: unknown }).lastNodeError;
  if (error.name === 'ClusterAllFailedError') {
    return `no seed node answered CLUSTER SLOTS${nodeError instanceof Error ? ` (${nodeError.message})` : ''}`;
  }
  return error.message;
}

function firstWord(message: string): string {
  return message.split(' ', 1)[0] ?? message;
}
