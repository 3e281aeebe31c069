/**
 * Refresh tokens: opaque, hashed at rest, rotated on every use (RFC 9700
 * section 4.14.2, OAuth 2.1 section 4.3.1), one family per authorization.
 *
 * A family is one durable record; every change to it is a compare-and-set on
 * its version, so a rotation is one atomic operation whichever instance runs
 * it. Two tabs or two serverless instances refreshing at the same moment is
 * normal, not an attack: a repeat of the refresh that was just made, by the
 * same client, within `graceSeconds`, gets back the same successor tokens
 * (kept sealed for that purpose) instead of a fork or a revocation. Any
 * other reuse of a rotated token, or a token presented by another client,
 * revokes the whole family (RFC 9700 section 4.14.2, "refresh token reuse
 * detection").
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { Type } from '@sinclair/typebox';
import type { KeyVault } from '../crypto/index.ts';
import { collection, keep, typeboxCodec, write, type Clock, type Codec, type Collection, type RecordStore } from '../store/index.ts';
import type { UserGrant } from './user-tokens.ts';

const COLLECTION = 'refresh-families';
/**
 * A family id is a keyed hash of the user (11 characters), one of the client
 * (11), and 128 random bits (22), so the id says nothing about who they are.
 * (Families are found by user through an index, not by this id's prefix;
 * the format stays so that tokens already issued keep working.)
 */
const FAMILY_ID = /^[A-Za-z0-9_-]{44}$/;
const SECRET = /^[A-Za-z0-9_-]{43}$/;
/** Access tokens remembered per family, to revoke with it (RFC 7009 section 2.1). */
const MAX_REMEMBERED_ACCESS_TOKENS = 32;
const MAX_CAS_ATTEMPTS = 8;
/** Rotated tokens remembered per family beyond the previous one. */
const MAX_RETIRED_HASHES = 64;

/** What the family was granted: the same for every token of it. */
export interface RefreshGrant extends Omit<UserGrant, 'nonce' | 'dpopJkt' | 'certificateThumbprint'> {
  readonly clientId: string;
  /** RFC 9449 section 5: the family is bound to this DPoP key (public clients). */
  readonly dpopJkt?: string;
  /** RFC 8705 section 4: the family is bound to this TLS client certificate, `x5t#S256` (public clients). */
  readonly certificateThumbprint?: string;
}

interface FamilyData {
  readonly grant: RefreshGrant;
  readonly createdAt: number;
  readonly absoluteExpiresAt: number;
  readonly current: { readonly hash: string; readonly issuedAt: number };
  readonly previous?: { readonly hash: string; readonly rotatedAt: number; readonly successor: string };
  /** Hashes of older rotated tokens, so their reuse is recognised as reuse (absent in the earliest records). */
  readonly retired?: readonly string[];
  readonly accessTokens: readonly { readonly jti: string; readonly exp: number }[];
  readonly revoked?: { readonly at: number; readonly reason: string };
}

/** A refresh family's grant, as stored (the data export reads it too, without the session handle). */
export const RefreshGrantSchema = Type.Object({
  userId: Type.String(),
  clientId: Type.String(),
  scope: Type.String(),
  resources: Type.Array(Type.String()),
  authTime: Type.Number(),
  amr: Type.Array(Type.String()),
  sessionHandle: Type.Optional(Type.String()),
  dpopJkt: Type.Optional(Type.String()),
  certificateThumbprint: Type.Optional(Type.String()),
});

const FamilySchema = Type.Object({
  grant: RefreshGrantSchema,
  createdAt: Type.Number(),
  absoluteExpiresAt: Type.Number(),
  current: Type.Object({ hash: Type.String(), issuedAt: Type.Number() }),
  previous: Type.Optional(Type.Object({ hash: Type.String(), rotatedAt: Type.Number(), successor: Type.String() })),
  retired: Type.Optional(Type.Array(Type.String())),
  accessTokens: Type.Array(Type.Object({ jti: Type.String(), exp: Type.Number() })),
  revoked: Type.Optional(Type.Object({ at: Type.Number(), reason: Type.String() })),
});

const familyCodec: Codec<FamilyData> = typeboxCodec(FamilySchema);

/** Refresh families, found by user and by client (migration 5 backfills both). */
function families(records: RecordStore): Collection<FamilyData, 'user' | 'client'> {
  return collection(records, {
    name: COLLECTION,
    codec: familyCodec,
    indexes: { user: (family) => family.grant.userId, client: (family) => family.grant.clientId },
  });
}

export interface RefreshPolicy {
  readonly idleTtlSeconds: number;
  readonly absoluteTtlSeconds: number;
  readonly graceSeconds: number;
}

export type RotationResult<T> =
  | { readonly outcome: 'rotated'; readonly response: T; readonly grant: RefreshGrant; readonly familyId: string; readonly accessTokenJti: string }
  | { readonly outcome: 'repeated'; readonly response: T; readonly familyId: string; readonly grant: RefreshGrant }
  | { readonly outcome: 'reused'; readonly familyId: string; readonly revokedAccessTokens: readonly { jti: string; exp: number }[]; readonly grant: RefreshGrant }
  | { readonly outcome: 'invalid'; readonly reason: 'unknown' | 'revoked' | 'expired' };

export class RefreshTokens {
  readonly #families: Collection<FamilyData, 'user' | 'client'>;
  readonly #clock: Clock;
  readonly #policy: RefreshPolicy;
  readonly #hashKey: Uint8Array;
  readonly #vault: KeyVault;

  constructor(options: { records: RecordStore; clock: Clock; policy: RefreshPolicy; vault: KeyVault }) {
    this.#families = families(options.records);
    this.#clock = options.clock;
    this.#policy = options.policy;
    this.#hashKey = options.vault.derive('refresh-token-hashes');
    this.#vault = options.vault;
  }

  /** Starts a family; resolves with its first token and id. */
  async start(grant: RefreshGrant, accessToken: { jti: string; exp: number }): Promise<{ token: string; familyId: string }> {
    const familyId = `${this.#prefix(grant.userId, grant.clientId)}${randomBytes(16).toString('base64url')}`;
    const token = `${familyId}.${randomBytes(32).toString('base64url')}`;
    const now = this.#clock();
    const data: FamilyData = {
      grant,
      createdAt: now,
      absoluteExpiresAt: now + this.#policy.absoluteTtlSeconds * 1000,
      current: { hash: this.#hash(token), issuedAt: now },
      accessTokens: [accessToken],
      retired: [],
    };
    if (!(await this.#families.create(familyId, data))) throw new Error('refresh family id collision');
    return { token, familyId };
  }

  /**
   * Redeems `token` for `clientId`. `build` makes the successor response for
   * a new refresh token; it may run more than once when the compare-and-set
   * loses a race, and only the winning one is returned.
   */
  async rotate<T>(token: string, clientId: string, build: (grant: RefreshGrant, refreshToken: string) => Promise<T & { accessTokenJti: string; accessTokenExp: number }>): Promise<RotationResult<T>> {
    const familyId = parseFamilyId(token);
    if (familyId === undefined) return { outcome: 'invalid', reason: 'unknown' };
    const hash = this.#hash(token);
    type Step = { readonly done: RotationResult<T> } | { readonly reuse: { readonly version: number; readonly family: FamilyData; readonly reason: string } };
    const done = (result: RotationResult<T>) => keep<Step>({ done: result });
    const reuse = (version: number, family: FamilyData, reason: string) => keep<Step>({ reuse: { version, family, reason } });
    // A lost race re-reads: the winner's rotation makes this token the
    // previous one, answered within the grace window.
    const { result: step } = await this.#families.mutate<Step>(
      familyId,
      async (record) => {
        if (record === null) return done({ outcome: 'invalid', reason: 'unknown' });
        const family = record.data;
        const now = this.#clock();
        const isCurrent = sameHash(hash, family.current.hash);
        const isPrevious = family.previous !== undefined && sameHash(hash, family.previous.hash);
        if (!isCurrent && !isPrevious) {
          // An older rotated token is reuse; anything else is a wrong secret
          // for a real family id, which must not let its sender revoke it.
          if (family.revoked === undefined && (family.retired ?? []).some((retired) => sameHash(hash, retired))) return reuse(record.version, family, 'replayed_after_grace');
          return done({ outcome: 'invalid', reason: family.revoked === undefined ? 'unknown' : 'revoked' });
        }
        if (family.revoked !== undefined) return done({ outcome: 'invalid', reason: 'revoked' });
        if (family.grant.clientId !== clientId) return reuse(record.version, family, 'other_client');
        if (isPrevious) {
          const previous = family.previous;
          if (now - previous.rotatedAt <= this.#policy.graceSeconds * 1000) {
            const response = JSON.parse(Buffer.from(this.#vault.open('refresh-successor', previous.successor)).toString('utf8')) as T;
            return done({ outcome: 'repeated', response, familyId, grant: family.grant });
          }
          return reuse(record.version, family, 'replayed_after_grace');
        }
        if (now >= family.absoluteExpiresAt || now - family.current.issuedAt >= this.#policy.idleTtlSeconds * 1000) return done({ outcome: 'invalid', reason: 'expired' });
        const successorToken = `${familyId}.${randomBytes(32).toString('base64url')}`;
        const response = await build(family.grant, successorToken);
        const { accessTokenJti, accessTokenExp, ...visible } = response;
        const next: FamilyData = {
          ...family,
          previous: { hash: family.current.hash, rotatedAt: now, successor: this.#vault.seal('refresh-successor', Buffer.from(JSON.stringify(visible))) },
          current: { hash: this.#hash(successorToken), issuedAt: now },
          retired: [...(family.retired ?? []), ...(family.previous !== undefined ? [family.previous.hash] : [])].slice(-MAX_RETIRED_HASHES),
          accessTokens: [...family.accessTokens.filter((at) => at.exp * 1000 > now), { jti: accessTokenJti, exp: accessTokenExp }].slice(-MAX_REMEMBERED_ACCESS_TOKENS),
        };
        return write(next, { done: { outcome: 'rotated', response: visible as T, grant: family.grant, familyId, accessTokenJti } });
      },
      {
        attempts: MAX_CAS_ATTEMPTS,
        exhausted: () => {
          throw new Error('refresh rotation kept losing its compare-and-set');
        },
      },
    );
    if ('done' in step) return step.done;
    return this.#revokeForReuse(familyId, step.reuse.version, step.reuse.family, step.reuse.reason);
  }

  /** The grant of a live token (for introspection), or null. */
  async inspect(token: string): Promise<{ grant: RefreshGrant; familyId: string; expiresAt: number; issuedAt: number } | null> {
    const familyId = parseFamilyId(token);
    if (familyId === undefined) return null;
    const record = await this.#families.get(familyId);
    if (record === null || record.data.revoked !== undefined || !sameHash(this.#hash(token), record.data.current.hash)) return null;
    const expiresAt = Math.min(record.data.absoluteExpiresAt, record.data.current.issuedAt + this.#policy.idleTtlSeconds * 1000);
    if (this.#clock() >= expiresAt) return null;
    return { grant: record.data.grant, familyId, expiresAt, issuedAt: record.data.current.issuedAt };
  }

  /**
   * Revokes a family (RFC 7009, logout, code replay). Resolves with what it
   * revoked, or null when it was unknown or already revoked. When `token` is
   * given it must be the family's current or just-rotated token.
   */
  async revokeFamily(familyId: string, reason: string, options: { token?: string; clientId?: string } = {}): Promise<{ grant: RefreshGrant; accessTokens: readonly { jti: string; exp: number }[] } | null> {
    type Revoked = { grant: RefreshGrant; accessTokens: readonly { jti: string; exp: number }[] } | null;
    const { result } = await this.#families.mutate<Revoked>(
      familyId,
      (record) => {
        if (record === null || record.data.revoked !== undefined) return keep(null);
        const family = record.data;
        if (options.clientId !== undefined && family.grant.clientId !== options.clientId) return keep(null);
        if (options.token !== undefined) {
          const hash = this.#hash(options.token);
          if (!sameHash(hash, family.current.hash) && !(family.previous !== undefined && sameHash(hash, family.previous.hash))) return keep(null);
        }
        const revoked: FamilyData = { ...family, previous: undefined, revoked: { at: this.#clock(), reason } };
        return write(revoked, { grant: family.grant, accessTokens: family.accessTokens });
      },
      {
        attempts: MAX_CAS_ATTEMPTS,
        exhausted: () => {
          throw new Error('refresh revocation kept losing its compare-and-set');
        },
      },
    );
    return result;
  }

  familyIdOf(token: string): string | undefined {
    return parseFamilyId(token);
  }

  /** Live families of a user, or of a user with one client. */
  async families(userId: string, clientId?: string): Promise<{ familyId: string; grant: RefreshGrant }[]> {
    return (await this.#families.findAllBy('user', userId))
      .filter((record) => record.data.revoked === undefined && (clientId === undefined || record.data.grant.clientId === clientId))
      .map((record) => ({ familyId: record.id, grant: record.data.grant }));
  }

  /**
   * Deletes families none of whose tokens can work any more: past their
   * absolute or idle lifetime, or revoked more than `revokedKeepMs` ago
   * (kept a while so a replay is answered "revoked", and audited, rather
   * than "unknown"). A delete is conditional on the version read, so a
   * rotation racing the sweep wins. Resolves with how many were deleted.
   */
  async sweep(revokedKeepMs = 3_600_000): Promise<number> {
    const idleMs = this.#policy.idleTtlSeconds * 1000;
    let deleted = 0;
    let after: string | undefined;
    for (;;) {
      const page = await this.#families.list({ limit: 500, ...(after !== undefined && { after }) });
      const now = this.#clock();
      for (const record of page) {
        const family = record.data;
        const dead = family.revoked !== undefined ? now - family.revoked.at >= revokedKeepMs : now >= family.absoluteExpiresAt || now - family.current.issuedAt >= idleMs;
        if (dead && (await this.#families.delete(record.id, record.version))) deleted += 1;
      }
      if (page.length < 500) return deleted;
      after = page.at(-1)!.id;
    }
  }

  #prefix(userId: string, clientId?: string): string {
    const part = (label: string, value: string) => createHmac('sha256', this.#hashKey).update(`${label}:${value}`).digest('base64url').slice(0, 11);
    return clientId === undefined ? part('user', userId) : `${part('user', userId)}${part('client', clientId)}`;
  }

  async #revokeForReuse(familyId: string, version: number, family: FamilyData, reason: string): Promise<RotationResult<never>> {
    const revoked = { ...family, previous: undefined, revoked: { at: this.#clock(), reason } } as FamilyData;
    if ((await this.#families.update(familyId, version, revoked)) === null) {
      // Changed meanwhile: whoever changed it decides; re-run as a revocation.
      const outcome = await this.revokeFamily(familyId, reason);
      if (outcome === null) return { outcome: 'invalid', reason: 'revoked' };
      return { outcome: 'reused', familyId, revokedAccessTokens: outcome.accessTokens, grant: outcome.grant };
    }
    return { outcome: 'reused', familyId, revokedAccessTokens: family.accessTokens, grant: family.grant };
  }

  #hash(token: string): string {
    return createHmac('sha256', this.#hashKey).update(token).digest('base64url');
  }
}

function parseFamilyId(token: string): string | undefined {
  const dot = token.indexOf('.');
  if (dot === -1 || token.length > 100) return undefined;
  const familyId = token.slice(0, dot);
  return FAMILY_ID.test(familyId) && SECRET.test(token.slice(dot + 1)) ? familyId : undefined;
}

function sameHash(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}
