import { createHash, randomBytes } from 'node:crypto';
import type { Clock, HotStore } from '../store/index.ts';

export interface SessionPolicy {
  readonly idleTimeoutMs: number;
  readonly absoluteTimeoutMs: number;
  /** Sliding renewal writes at most once per this interval. */
  readonly renewIntervalMs: number;
  readonly maxPerUser: number;
}

export interface SessionData {
  readonly userId: string;
  readonly createdAt: number;
  readonly lastSeenAt: number;
  readonly absoluteExpiresAt: number;
  /** When the user last proved who they are (OIDC auth_time), ms. */
  readonly authTime: number;
  /** Authentication methods (RFC 8176): pwd, otp. */
  readonly amr: readonly string[];
  /** Shown on the account page: a short device description and a masked IP. */
  readonly device: string;
  readonly ip: string;
}

export interface Session extends SessionData {
  /** SHA-256 of the session id, base64url: what the store and the account page know it by. */
  readonly handle: string;
}

export interface NewSession {
  /** The opaque id for the cookie: shown once, never stored. */
  readonly id: string;
  readonly session: Session;
  /** Sessions ended to keep the user within the limit. */
  readonly evicted: readonly string[];
}

const SESSION_BYTES = 32;

/** Only a hash of the id is stored: a read of the store does not yield usable cookies. */
export function sessionHandle(id: string): string {
  return createHash('sha256').update(id).digest('base64url');
}

const sessionKey = (handle: string) => `session:${handle}`;
const userSetKey = (userId: string) => `user-sessions:${userId}`;

/**
 * Server-side sessions in the hot store (OWASP ASVS V3).
 *
 * - The id is 256 random bits; the store keeps only its hash.
 * - A value's TTL is the idle timeout, renewed on use (at most once per
 *   renew interval, with a compare-and-set, so a revoked session is never
 *   written back), and never beyond the absolute lifetime.
 * - Each user's sessions are a bounded set scored by absolute expiry: a new
 *   sign-in beyond the limit evicts the oldest in the same atomic operation,
 *   and the evicted sessions' values are deleted at once. Members whose value
 *   idled out stay in the set until their absolute expiry; they count toward
 *   the limit, so live sessions never exceed it.
 */
export class SessionManager {
  readonly #hot: HotStore;
  readonly #clock: Clock;
  readonly #policy: SessionPolicy;

  constructor(options: { hot: HotStore; clock: Clock; policy: SessionPolicy }) {
    this.#hot = options.hot;
    this.#clock = options.clock;
    this.#policy = options.policy;
  }

  get policy(): SessionPolicy {
    return this.#policy;
  }

  async create(userId: string, details: { amr: readonly string[]; device: string; ip: string; authTime?: number }): Promise<NewSession> {
    const now = this.#clock();
    const id = randomBytes(SESSION_BYTES).toString('base64url');
    const handle = sessionHandle(id);
    const data: SessionData = {
      userId,
      createdAt: now,
      lastSeenAt: now,
      absoluteExpiresAt: now + this.#policy.absoluteTimeoutMs,
      authTime: details.authTime ?? now,
      amr: details.amr,
      device: details.device,
      ip: details.ip,
    };
    await this.#hot.set(sessionKey(handle), JSON.stringify(data), Math.min(this.#policy.idleTimeoutMs, this.#policy.absoluteTimeoutMs));
    const { evicted } = await this.#hot.boundedSetAdd(userSetKey(userId), handle, data.absoluteExpiresAt, this.#policy.maxPerUser);
    await Promise.all(evicted.map((old) => this.#hot.delete(sessionKey(old))));
    return { id, session: { ...data, handle }, evicted };
  }

  /** The live session for a cookie's id, renewed if due; null if unknown, expired or revoked. */
  async resolve(id: string): Promise<Session | null> {
    if (id.length === 0 || id.length > 128) return null;
    const handle = sessionHandle(id);
    const stored = await this.#hot.getVersioned(sessionKey(handle));
    if (stored === null) return null;
    const data = JSON.parse(stored.value) as SessionData;
    const now = this.#clock();
    if (now >= data.absoluteExpiresAt) {
      await this.revoke(data.userId, handle);
      return null;
    }
    if (now - data.lastSeenAt >= this.#policy.renewIntervalMs) {
      const renewed: SessionData = { ...data, lastSeenAt: now };
      const ttl = Math.min(this.#policy.idleTimeoutMs, data.absoluteExpiresAt - now);
      // A CAS, not a set: if the session was revoked since the read, the
      // write fails instead of bringing it back.
      if ((await this.#hot.compareAndSet(sessionKey(handle), stored.version, JSON.stringify(renewed), Math.max(1, ttl))) === null) {
        return (await this.#hot.get(sessionKey(handle))) === null ? null : { ...data, handle };
      }
      return { ...renewed, handle };
    }
    return { ...data, handle };
  }

  /** Whether the session with this handle is still live (no renewal, no side effect). */
  async isLive(handle: string): Promise<boolean> {
    const stored = await this.#hot.get(sessionKey(handle));
    if (stored === null) return false;
    return this.#clock() < (JSON.parse(stored) as SessionData).absoluteExpiresAt;
  }

  /** The user's live sessions, newest sign-in first; ghosts (idled out) are pruned. */
  async list(userId: string): Promise<Session[]> {
    const members = await this.#hot.boundedSetMembers(userSetKey(userId));
    const sessions: Session[] = [];
    for (const member of members) {
      const value = await this.#hot.get(sessionKey(member.member));
      if (value === null) await this.#hot.boundedSetRemove(userSetKey(userId), member.member);
      else sessions.push({ ...(JSON.parse(value) as SessionData), handle: member.member });
    }
    return sessions.sort((a, b) => b.createdAt - a.createdAt);
  }

  /**
   * Replaces the stored IP of a live session with `rewrite(ip)` (retention:
   * privacy.retention.ipPseudonymiseDays), keeping its expiry. A
   * compare-and-set: a session revoked or renewed since the read is not
   * written back over (a renewal is read again and rewritten, a revocation
   * stays). `rewrite` answers null to leave the IP as it is. Resolves true
   * when it wrote.
   */
  async rewriteIp(handle: string, rewrite: (ip: string) => string | null): Promise<boolean> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const stored = await this.#hot.getVersioned(sessionKey(handle));
      if (stored === null) return false;
      const data = JSON.parse(stored.value) as SessionData;
      const ip = rewrite(data.ip);
      if (ip === null || ip === data.ip) return false;
      // The TTL the value has now: idle from its last renewal, never past the absolute end.
      const ttl = Math.min(data.lastSeenAt + this.#policy.idleTimeoutMs, data.absoluteExpiresAt) - this.#clock();
      if (ttl <= 0) return false;
      if ((await this.#hot.compareAndSet(sessionKey(handle), stored.version, JSON.stringify({ ...data, ip } satisfies SessionData), ttl)) !== null) return true;
    }
    return false;
  }

  async revoke(userId: string, handle: string): Promise<boolean> {
    const deleted = await this.#hot.delete(sessionKey(handle));
    await this.#hot.boundedSetRemove(userSetKey(userId), handle);
    return deleted;
  }

  /** Ends every session of the user (password change, disable), except `keep` if given. Returns how many ended. */
  async revokeAll(userId: string, keep?: string): Promise<number> {
    return (await this.endAll(userId, keep)).length;
  }

  /** revokeAll, resolving with the handles of the sessions it ended. */
  async endAll(userId: string, keep?: string): Promise<string[]> {
    const members = await this.#hot.boundedSetMembers(userSetKey(userId));
    const ended: string[] = [];
    for (const { member } of members) {
      if (member === keep) continue;
      if (await this.revoke(userId, member)) ended.push(member);
    }
    return ended;
  }
}
