/**
 * What the issuer's security signals revoked, applied to access tokens that
 * still verify: a JWT access token is good until `exp` by itself, so a
 * resource server that listens to the issuer's Security Event Tokens (RFC
 * 8417; CAEP 1.0, RISC 1.0, SSF 1.0) can stop honouring it sooner.
 *
 * The SETs arrive already verified (the signals client checks signature,
 * issuer and audience); this list only reads them, and only those whose
 * `iss` (and subject's `iss`) is the verifier's issuer, so that another
 * issuer's events cannot revoke this issuer's tokens:
 *
 * - `tokens-revoked` (Portcullis): `jti: string[]` refuses those tokens,
 *   `sid: string` every token of that session; so does a `jwt_id` subject;
 * - CAEP `session-revoked` with a `session_id` subject: that `sid`;
 * - RISC `account-disabled`, `account-purged`, `sessions-revoked`,
 *   `credential-compromise` with an `iss_sub` subject: that subject's tokens
 *   issued at or before the event (`event_timestamp`, else the SET's `iat`);
 *   a disabled account's tokens are refused whenever issued, until
 * - RISC `account-enabled`: tokens issued after it are good again, older
 *   ones stay refused;
 * - `client-deleted` (Portcullis): `client_id` (and an `opaque` subject
 *   naming the same id, when there is one): every token whose `client_id`
 *   claim (RFC 9068 section 2.2) is that client and that was issued at or
 *   before the event (`event_timestamp`, else the SET's `iat`);
 * - `key-rotated` (Portcullis) with `state: 'revoked'`: the `kid` goes to
 *   `onKeyRevoked`, and the verifier drops that key from its JWKS cache at
 *   once rather than after the JWKS max-age; `state: 'created'` changes
 *   nothing (a token under a new kid fetches the keys, rate-limited).
 *
 * Every entry expires `ttlSeconds` after it is applied (default 24 h: set
 * it above the issuer's longest access token lifetime, after which the
 * tokens it names have expired anyway), and each of the four tables holds
 * at most `maxEntries`; past that the oldest entry is dropped (an event
 * cannot be refused), so size it above the revocations one TTL can bring.
 */
import { SECURITY_EVENT_TYPES, type SecurityEventToken } from '../security-events.ts';

/** Where verified SETs come from (`portcullis/sdk/signals` provides one). */
export interface SecurityEventSource {
  /** Calls `listener` with each verified SET; returns the function that stops it. */
  onEvent(listener: (set: SecurityEventToken) => void): () => void;
}

export interface RevocationListOptions {
  readonly issuer: string;
  /** Seconds an entry lasts (default 86400). */
  readonly ttlSeconds?: number;
  /** Entries per table at most (default 100000). */
  readonly maxEntries?: number;
  /** Milliseconds since the epoch; `Date.now` by default. */
  readonly clock?: () => number;
  /** Told the `kid` of each `key-rotated` event with `state: 'revoked'` from the issuer. */
  readonly onKeyRevoked?: (kid: string) => void;
}

/** The claims a revocation can name. */
export interface RevocableToken {
  readonly jti: string;
  readonly sub: string;
  readonly iat: number;
  readonly sid?: unknown;
  /** The client the token was issued to (RFC 9068 section 2.2). */
  readonly client_id?: unknown;
}

interface SubjectState {
  /** Tokens issued at or before this (seconds) are refused. */
  refusedThrough: number;
  disabledSince: number | undefined;
  enabledAt: number | undefined;
  expiresAt: number;
}

const RISC_CUTOFF_EVENTS = new Set<string>([SECURITY_EVENT_TYPES.accountDisabled, SECURITY_EVENT_TYPES.accountPurged, SECURITY_EVENT_TYPES.sessionsRevoked, SECURITY_EVENT_TYPES.credentialCompromise]);
/** Identifiers longer than this, and jti lists longer than MAX_JTIS, are not ours: ignored. */
const MAX_ID_LENGTH = 256;
const MAX_JTIS = 1000;

const isId = (value: unknown): value is string => typeof value === 'string' && value !== '' && value.length <= MAX_ID_LENGTH;

export class RevocationList {
  readonly #issuer: string;
  readonly #ttlMs: number;
  readonly #maxEntries: number;
  readonly #clock: () => number;
  readonly #jtis = new Map<string, number>();
  readonly #sids = new Map<string, number>();
  readonly #subjects = new Map<string, SubjectState>();
  /** client_id -> tokens issued at or before `refusedThrough` (seconds) are refused. */
  readonly #clients = new Map<string, { refusedThrough: number; expiresAt: number }>();
  readonly #onKeyRevoked: ((kid: string) => void) | undefined;

  constructor(options: RevocationListOptions) {
    this.#issuer = options.issuer;
    const ttl = options.ttlSeconds ?? 86_400;
    if (!(ttl > 0 && ttl <= 30 * 86_400)) throw new TypeError('ttlSeconds must be within (0, 30 days]');
    this.#ttlMs = ttl * 1000;
    this.#maxEntries = options.maxEntries ?? 100_000;
    if (!Number.isSafeInteger(this.#maxEntries) || this.#maxEntries < 1) throw new TypeError('maxEntries must be a positive whole number');
    this.#clock = options.clock ?? Date.now;
    this.#onKeyRevoked = options.onKeyRevoked;
  }

  /** Entries held (expired ones not yet dropped included). */
  get size(): number {
    return this.#jtis.size + this.#sids.size + this.#subjects.size + this.#clients.size;
  }

  /** Listens to `source` until the returned function is called. */
  subscribe(source: SecurityEventSource): () => void {
    return source.onEvent((set) => this.apply(set));
  }

  /** Applies one verified SET; true when it changed what is refused. */
  apply(set: SecurityEventToken): boolean {
    if (set.iss !== this.#issuer || typeof set.events !== 'object' || set.events === null) return false;
    let changed = false;
    for (const [type, members] of Object.entries(set.events)) changed = this.#applyEvent(set, type, members ?? {}) || changed;
    return changed;
  }

  /** Whether a verified token is revoked. */
  isRevoked(token: RevocableToken): boolean {
    const now = this.#clock();
    if (this.#live(this.#jtis, token.jti, now)) return true;
    if (typeof token.sid === 'string' && this.#live(this.#sids, token.sid, now)) return true;
    if (this.#clients.size !== 0 && typeof token.client_id === 'string') {
      const client = this.#clients.get(token.client_id);
      if (client !== undefined && client.expiresAt <= now) this.#clients.delete(token.client_id);
      else if (client !== undefined && token.iat <= client.refusedThrough) return true;
    }
    if (this.#subjects.size === 0) return false;
    const state = this.#subjects.get(token.sub);
    if (state === undefined) return false;
    if (state.expiresAt <= now) {
      this.#subjects.delete(token.sub);
      return false;
    }
    return isDisabled(state) || token.iat <= state.refusedThrough;
  }

  #applyEvent(set: SecurityEventToken, type: string, members: Readonly<Record<string, unknown>>): boolean {
    const subject = set.sub_id;
    if (type === SECURITY_EVENT_TYPES.tokensRevoked) {
      let changed = false;
      const jtis = members['jti'];
      if (Array.isArray(jtis) && jtis.length <= MAX_JTIS) for (const jti of jtis) if (isId(jti)) changed = this.#add(this.#jtis, jti) || changed;
      if (isId(members['sid'])) changed = this.#add(this.#sids, members['sid']) || changed;
      if (subject?.format === 'jwt_id' && subject.iss === this.#issuer && isId(subject.jti)) changed = this.#add(this.#jtis, subject.jti) || changed;
      return changed;
    }
    if (type === SECURITY_EVENT_TYPES.sessionRevoked) {
      return subject?.format === 'session_id' && subject.iss === this.#issuer && isId(subject.sid) && this.#add(this.#sids, subject.sid);
    }
    if (type === SECURITY_EVENT_TYPES.clientDeleted) return this.#clientDeleted(set, members);
    if (type === SECURITY_EVENT_TYPES.keyRotated) return this.#keyRotated(set, members);
    const isCutoff = RISC_CUTOFF_EVENTS.has(type);
    if (!isCutoff && type !== SECURITY_EVENT_TYPES.accountEnabled) return false;
    if (subject?.format !== 'iss_sub' || subject.iss !== this.#issuer || !isId(subject.sub)) return false;
    const at = eventTime(set, members);
    if (at === undefined) return false;
    const state = this.#subject(subject.sub);
    if (isCutoff) {
      state.refusedThrough = Math.max(state.refusedThrough, at);
      if (type === SECURITY_EVENT_TYPES.accountDisabled) {
        state.disabledSince = Math.max(state.disabledSince ?? at, at);
        // Enabled again later (events can arrive out of order): what was issued until then stays refused.
        if (state.enabledAt !== undefined && state.enabledAt >= at) state.refusedThrough = Math.max(state.refusedThrough, state.enabledAt);
      }
    } else {
      state.enabledAt = Math.max(state.enabledAt ?? at, at);
      // Tokens issued while the account was disabled stay refused; those after `at` are good again.
      if (state.disabledSince !== undefined && state.disabledSince <= at) state.refusedThrough = Math.max(state.refusedThrough, at);
    }
    return true;
  }

  #clientDeleted(set: SecurityEventToken, members: Readonly<Record<string, unknown>>): boolean {
    const clientId = members['client_id'];
    const subject = set.sub_id;
    if (!isId(clientId)) return false;
    // The subject, when given, must name the same client: an event at odds with itself is not applied.
    if (subject !== undefined && !(subject.format === 'opaque' && subject.id === clientId)) return false;
    const at = eventTime(set, members);
    if (at === undefined) return false;
    const now = this.#clock();
    const known = this.#clients.get(clientId);
    const refusedThrough = known !== undefined && known.expiresAt > now ? Math.max(known.refusedThrough, at) : at;
    this.#clients.delete(clientId);
    this.#clients.set(clientId, { refusedThrough, expiresAt: now + this.#ttlMs });
    this.#bound(this.#clients, (entry) => entry.expiresAt, now);
    return true;
  }

  #keyRotated(set: SecurityEventToken, members: Readonly<Record<string, unknown>>): boolean {
    const kid = members['kid'];
    if (members['state'] !== 'revoked' || !isId(kid) || this.#onKeyRevoked === undefined) return false;
    if (set.sub_id !== undefined && !(set.sub_id.format === 'opaque' && set.sub_id.id === kid)) return false;
    this.#onKeyRevoked(kid);
    return true;
  }

  #subject(sub: string): SubjectState {
    const now = this.#clock();
    let state = this.#subjects.get(sub);
    if (state === undefined || state.expiresAt <= now) {
      state = { refusedThrough: Number.NEGATIVE_INFINITY, disabledSince: undefined, enabledAt: undefined, expiresAt: 0 };
    }
    state.expiresAt = now + this.#ttlMs;
    this.#subjects.delete(sub);
    this.#subjects.set(sub, state);
    this.#bound(this.#subjects, (entry) => entry.expiresAt, now);
    return state;
  }

  #add(table: Map<string, number>, key: string): boolean {
    const now = this.#clock();
    table.delete(key);
    table.set(key, now + this.#ttlMs);
    this.#bound(table, (expiresAt) => expiresAt, now);
    return true;
  }

  #live(table: Map<string, number>, key: string, now: number): boolean {
    if (table.size === 0) return false;
    const expiresAt = table.get(key);
    if (expiresAt === undefined) return false;
    if (expiresAt > now) return true;
    table.delete(key);
    return false;
  }

  /** Drops expired entries from the front (oldest first), then the oldest while over the bound. */
  #bound<V>(table: Map<string, V>, expiry: (value: V) => number, now: number): void {
    for (const [key, value] of table) {
      if (expiry(value) > now && table.size <= this.#maxEntries) return;
      table.delete(key);
    }
  }
}

/** When the event happened, in seconds: RISC, CAEP and Portcullis give `event_timestamp`; the SET's iat is when it was sent. */
function eventTime(set: SecurityEventToken, members: Readonly<Record<string, unknown>>): number | undefined {
  const stamp = members['event_timestamp'];
  const at = typeof stamp === 'number' && Number.isFinite(stamp) ? stamp : set.iat;
  return Number.isFinite(at) ? at : undefined;
}

function isDisabled(state: SubjectState): boolean {
  return state.disabledSince !== undefined && (state.enabledAt === undefined || state.enabledAt < state.disabledSince);
}
