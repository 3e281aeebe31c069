/**
 * Lua sources of the Redis hot store's compound operations.
 *
 * Redis runs a script as one atomic step: no other client's command runs
 * between two `redis.call`s of a script, which is what makes each HotStore
 * method one atomic operation across every process sharing the Redis.
 *
 * Every script touches exactly ONE key, passed as KEYS[1] (never built inside
 * the script), so in Redis Cluster each script is single-slot: the client
 * routes it by that key and the node that owns the slot runs it whole.
 *
 * A script is not rolled back when a `redis.call` fails half-way, so each
 * script checks the key's type first and answers with an error reply before
 * it has written anything.
 *
 * Layout:
 * - a value key is a HASH { v = value, n = version } with a PEXPIRE;
 * - a bounded-set key is a ZSET whose score is the member's expiresAt.
 *
 * Numbers go back to Redis as strings formatted with '%d': Lua 5.1 turns a
 * number into a string with '%.14g', which would write 1e+14 for a large
 * counter or TTL.
 */

/** Error-reply prefixes the driver maps to TypeError. */
export const WRONG_KIND = 'WRONGKIND';
export const NOT_INTEGER = 'NOTINTEGER';
export const OUT_OF_RANGE = 'OUTOFRANGE';

/** Answers an error reply unless KEYS[1] is absent or of the wanted type. */
function expectType(wanted: 'hash' | 'zset'): string {
  const other = wanted === 'hash' ? 'a bounded set' : 'a value';
  return `
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind ~= 'none' and kind ~= '${wanted}' then
  return redis.error_reply('${WRONG_KIND} the key holds ${other}')
end
`;
}

/**
 * set(key, value, ttlMs) -> new version.
 * ARGV: value, ttlMs. HINCRBY creates n = 1 on an absent (or expired) key and
 * adds 1 to a live one, exactly the VersionedValue rule.
 */
export const SET_LUA = `${expectType('hash')}
local version = redis.call('HINCRBY', KEYS[1], 'n', 1)
redis.call('HSET', KEYS[1], 'v', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return version
`;

/** setIfAbsent(key, value, ttlMs) -> 1 stored, 0 already present. ARGV: value, ttlMs. */
export const SET_IF_ABSENT_LUA = `${expectType('hash')}
if kind ~= 'none' then
  return 0
end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'n', 1)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`;

/** consume(key) -> value or nil; the key is gone afterwards. */
export const CONSUME_LUA = `${expectType('hash')}
local value = redis.call('HGET', KEYS[1], 'v')
if value then
  redis.call('DEL', KEYS[1])
end
return value
`;

/**
 * compareAndSet(key, expectedVersion, value, ttlMs) -> new version or nil.
 * ARGV: expectedVersion, value, ttlMs. An absent key has version 0.
 */
export const COMPARE_AND_SET_LUA = `${expectType('hash')}
local current = tonumber(redis.call('HGET', KEYS[1], 'n') or '0')
if current ~= tonumber(ARGV[1]) then
  return false
end
local version = redis.call('HINCRBY', KEYS[1], 'n', 1)
redis.call('HSET', KEYS[1], 'v', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return version
`;

/**
 * increment(key, ttlMs, by) -> { value as decimal string, remaining PTTL }.
 * ARGV: ttlMs, by.
 *
 * The TTL is set only when the counter is created (a fixed window): later
 * increments leave it alone, so an attacker cannot keep a rate-limit counter
 * alive forever. A counter with 0 ms left reads as expired here, as it does
 * in the other drivers, and starts a new window.
 *
 * Values stay within JavaScript's safe integers (2^53 - 1) so that the
 * number the caller receives is exactly the one stored.
 */
export const INCREMENT_LUA = `${expectType('hash')}
local maxSafe = 9007199254740991
local ttl = redis.call('PTTL', KEYS[1])
if kind == 'none' or ttl == 0 then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'v', ARGV[2], 'n', 1)
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  return {ARGV[2], tonumber(ARGV[1])}
end
local raw = redis.call('HGET', KEYS[1], 'v')
local current = tonumber(raw)
if not raw or not string.match(raw, '^%-?%d+$') or not current or math.abs(current) > maxSafe then
  return redis.error_reply('${NOT_INTEGER} the stored value is not an integer')
end
local sum = current + tonumber(ARGV[2])
if math.abs(sum) > maxSafe then
  return redis.error_reply('${OUT_OF_RANGE} the counter would leave the safe integer range')
end
local value = string.format('%d', sum)
redis.call('HSET', KEYS[1], 'v', value)
redis.call('HINCRBY', KEYS[1], 'n', 1)
if ttl < 0 then
  -- Not written by this driver (no TTL): nothing in the hot store lives
  -- forever, so give it the window it should have had.
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {value, ttl}
`;

/**
 * boundedSetAdd(key, member, expiresAt, limit) -> evicted members, soonest
 * expiring first. ARGV: member, expiresAt, limit, now (the store's clock, so
 * that tests can freeze time and so that every instance prunes by the same
 * rule as the other drivers).
 *
 * Expired members (expiresAt <= now) are dropped first; then, while the set
 * is over its limit, the lowest scores go. ZSET order breaks score ties by
 * member, the same tie-break the other drivers use.
 *
 * The key's own TTL follows its latest-expiring member so that an abandoned
 * set disappears. It is set as a duration (PEXPIRE), not an instant
 * (PEXPIREAT): the clock is the application's, not the Redis server's, and a
 * duration is immune to skew between the two.
 */
export const BOUNDED_SET_ADD_LUA = `${expectType('zset')}
local now = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[4])
if tonumber(ARGV[2]) <= now then
  -- Already expired: it must not count, and an older entry of it goes too.
  redis.call('ZREM', KEYS[1], ARGV[1])
  return {}
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
local evicted = {}
local excess = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[3])
if excess > 0 then
  evicted = redis.call('ZRANGE', KEYS[1], 0, excess - 1)
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, excess - 1)
end
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if last[2] then
  redis.call('PEXPIRE', KEYS[1], string.format('%d', math.ceil(tonumber(last[2]) - now)))
end
return evicted
`;

/**
 * boundedSetRemove(key, member) -> 1 removed, 0 absent or already expired.
 * ARGV: member, now. Expired members are pruned first so that removing one
 * reports false, as in the other drivers. The key's TTL is left as it is:
 * it is only an upper bound, and reads ignore expired members anyway.
 */
export const BOUNDED_SET_REMOVE_LUA = `${expectType('zset')}
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
return redis.call('ZREM', KEYS[1], ARGV[1])
`;
