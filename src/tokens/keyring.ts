/**
 * The signing-key manager: generates, seals, rotates, revokes and publishes
 * the keys that sign access and ID tokens, one set per JWS algorithm.
 *
 * All keys live in ONE versioned record (collection `signing-keys`, id
 * `keyring`). Every change is a compare-and-set on its version, so of many
 * instances that rotate at the same moment exactly one write wins; the others
 * re-read, find nothing left to do, and use the winner's keys. Instances pick
 * up each other's changes at once from the `key.created` / `key.revoked`
 * events (`refresh`), and in any case by re-reading every `refreshMs`.
 *
 * Schedule (RFC 7517 section 5 and RFC 7515 section 4.1.4 `kid`): a verifier
 * may cache the JWKS for `jwksMaxAgeSeconds`, so a key is published at least
 * that long before it signs its first token (else a verifier holding the old
 * set would refuse it), and a key that stopped signing stays published until
 * the longest-lived token it signed has expired. The key that signs is picked
 * by the clock (the newest key whose `activatesAt` has passed), so takeover
 * needs no write and happens on every instance at the same moment.
 */
import { createPrivateKey, createPublicKey, generateKeyPair, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { calculateJwkThumbprint, exportJWK, type JWK } from 'jose';
import type { DomainEvent, DomainEvents } from '../events/index.ts';
import { codec, collection, keep, write, type Clock, type Collection, type RecordStore } from '../store/index.ts';
import { openSecret, sealSecret } from './sealed.ts';

export type SigningAlgorithm = 'EdDSA' | 'ES256' | 'RS256' | 'PS256';

/** RFC 8037 (EdDSA with Ed25519) and RFC 7518 section 3.1 (ES256, RS256, PS256); nothing symmetric, nothing `none`. */
export const SIGNING_ALGORITHMS: readonly SigningAlgorithm[] = Object.freeze(['EdDSA', 'ES256', 'RS256', 'PS256'] as const);

export interface SigningKey {
  readonly kid: string;
  readonly alg: SigningAlgorithm;
  readonly privateKey: KeyObject;
}

export interface VerificationKey {
  readonly kid: string;
  readonly alg: SigningAlgorithm;
  readonly publicKey: KeyObject;
}

export interface KeyringPolicy {
  /** A key signs for this long. */
  readonly rotationIntervalMs: number;
  /** `Cache-Control: max-age` of /jwks: a new key is published at least this long before it signs. */
  readonly jwksMaxAgeSeconds: number;
  /** The longest-lived token a key signs: a retired key stays published this long after it stopped signing. */
  readonly maxTokenLifetimeSeconds: number;
  /** How often `start()` re-reads the store (and runs the rotation schedule). */
  readonly refreshMs: number;
}

export type KeyState = 'next' | 'current' | 'retired' | 'revoked';

export interface KeyInfo {
  readonly kid: string;
  readonly alg: SigningAlgorithm;
  readonly state: KeyState;
  readonly createdAt: number;
  /** When it starts (or started) signing. */
  readonly activatesAt: number;
  /** When it stops (or stopped) signing: its successor's `activatesAt`, once a successor exists. */
  readonly retiredAt?: number;
  /**
   * When it leaves the JWKS (`retiredAt` + the longest token lifetime), after
   * which `maintain()` drops it. For a revoked key (already unpublished), when
   * it is dropped from the stored keyring.
   */
  readonly removeAt?: number;
  /** When it was revoked (state `revoked` only). */
  readonly revokedAt?: number;
}

/** A refusal the operator can act on (unknown kid, already revoked, unreadable keyring); safe to print. */
export class KeyringError extends Error {
  override readonly name = 'KeyringError';
}

/** What the keyring emits through: key.created and key.revoked (the ledger records them; other instances take the change up). */
export type KeyringEvents = Pick<DomainEvents, 'emitAll'>;

export interface KeyringOptions {
  readonly records: RecordStore;
  readonly masterKey: Uint8Array;
  readonly clock: Clock;
  readonly policy: KeyringPolicy;
  readonly events?: KeyringEvents;
}

/** The `tokens.*` settings a keyring policy is made from. */
export interface KeyringPolicySettings {
  readonly keyRotationIntervalMs: number;
  readonly jwksMaxAgeSeconds: number;
  readonly keyringRefreshMs: number;
  readonly accessTokenTtlSeconds: number;
  readonly idTokenTtlSeconds: number;
}

/**
 * Verifiers allow this much clock skew past a token's `exp`, so a retired
 * key stays published that much longer.
 */
export const VERIFIER_CLOCK_TOLERANCE_SECONDS = 60;

/**
 * The policy the `tokens.*` settings give: the same for the server and the
 * `keys` command, so both retire keys on one schedule.
 */
export function keyringPolicy(tokens: KeyringPolicySettings, extraLifetimeSeconds = VERIFIER_CLOCK_TOLERANCE_SECONDS): KeyringPolicy {
  return {
    rotationIntervalMs: tokens.keyRotationIntervalMs,
    jwksMaxAgeSeconds: tokens.jwksMaxAgeSeconds,
    maxTokenLifetimeSeconds: Math.max(tokens.accessTokenTtlSeconds, tokens.idTokenTtlSeconds) + extraLifetimeSeconds,
    refreshMs: tokens.keyringRefreshMs,
  };
}

const COLLECTION = 'signing-keys';
const DOCUMENT_ID = 'keyring';
const DOCUMENT_FORMAT = 1;
/** Sealing purpose (and AAD) of the private keys: a sealed value from another slot does not open here. */
const SEAL_PURPOSE = 'signing-keys';
/** Compare-and-set attempts before giving up; each loser re-reads, so two or three are the most a race needs. */
const MAX_WRITE_ATTEMPTS = 10;
const RSA_MODULUS_BITS = 2048;

/** One key as stored: the private key only sealed (AES-256-GCM under a master-key-derived key), never in clear. */
interface StoredKey {
  readonly kid: string;
  readonly alg: SigningAlgorithm;
  readonly createdAt: number;
  readonly activatesAt: number;
  readonly revokedAt?: number;
  /** PKCS #8 DER of the private key, sealed. */
  readonly sealedPrivateKey: string;
}

interface KeyringDocument {
  readonly format: typeof DOCUMENT_FORMAT;
  readonly keys: readonly StoredKey[];
}

/** A key opened in memory: what signing and verifying need, ready on the hot path. */
interface OpenedKey {
  readonly sealedPrivateKey: string;
  readonly signing: SigningKey;
  readonly verification: VerificationKey;
  /** The public JWK as published (RFC 7517 section 4), with kid, alg and use. */
  readonly publicJwk: Readonly<JWK>;
}

interface LoadedKey extends OpenedKey {
  readonly stored: StoredKey;
  readonly retiredAt: number | undefined;
  readonly removeAt: number | undefined;
}

interface KeyringSnapshot {
  readonly version: number;
  readonly keys: readonly LoadedKey[];
  readonly byKid: ReadonlyMap<string, LoadedKey>;
  /** Per algorithm, the keys that signed or will sign, in takeover order. */
  readonly chains: ReadonlyMap<SigningAlgorithm, readonly LoadedKey[]>;
}

const EMPTY_SNAPSHOT: KeyringSnapshot = { version: 0, keys: [], byKid: new Map(), chains: new Map() };

type CreateReason = 'initial' | 'scheduled' | 'manual' | 'replaces_revoked';

interface NewKey {
  readonly stored: StoredKey;
  readonly opened: OpenedKey;
  readonly reason: CreateReason;
}

/** What one compare-and-set write changes, and what it tells the ledger. */
interface Change<T> {
  readonly keys: readonly StoredKey[];
  readonly created: readonly NewKey[];
  readonly events: readonly DomainEvent<'key.created' | 'key.revoked'>[];
  readonly result: (keyring: Keyring) => T;
}

// ---- schedule: pure functions of the stored keys and the clock -------------

function byActivation(a: Pick<StoredKey, 'activatesAt' | 'createdAt' | 'kid'>, b: Pick<StoredKey, 'activatesAt' | 'createdAt' | 'kid'>): number {
  return a.activatesAt - b.activatesAt || a.createdAt - b.createdAt || (a.kid < b.kid ? -1 : a.kid > b.kid ? 1 : 0);
}

/** A key revoked before its activation never signed, so it never retired anything. */
function tookOver(key: StoredKey): boolean {
  return key.revokedAt === undefined || key.revokedAt > key.activatesAt;
}

/** The keys of one algorithm that signed or will sign, in the order they take over. */
function chainOf<K extends { readonly stored: StoredKey }>(keys: readonly K[], alg: SigningAlgorithm): K[] {
  return keys.filter((key) => key.stored.alg === alg && tookOver(key.stored)).sort((a, b) => byActivation(a.stored, b.stored));
}

/**
 * The key that signs at `now`: the one that took over last, unless it was
 * revoked. A key made to sign at once (the first keys, a revoked key's
 * replacement: `activatesAt` = `createdAt`) signs at once on every instance,
 * also on one whose clock is a little behind the instance that made it;
 * else that instance would make keys of its own, or have none to sign with.
 */
function currentIn<K extends { readonly stored: StoredKey }>(chain: readonly K[], now: number): K | undefined {
  for (let i = chain.length - 1; i >= 0; i--) {
    const key = chain[i]!;
    if (key.stored.activatesAt > now) continue;
    if (key.stored.revokedAt === undefined) return key;
    break;
  }
  return chain.find(({ stored }) => stored.revokedAt === undefined && stored.activatesAt > now && stored.activatesAt === stored.createdAt);
}

function wrap(keys: readonly StoredKey[]): { stored: StoredKey }[] {
  return keys.map((stored) => ({ stored }));
}

/** When each key stops signing and leaves the document, from the stored keys alone. */
function lifetimes(keys: readonly StoredKey[], policy: KeyringPolicy): Map<string, { retiredAt?: number; removeAt?: number }> {
  const lifetimeMs = policy.maxTokenLifetimeSeconds * 1000;
  const result = new Map<string, { retiredAt?: number; removeAt?: number }>();
  for (const key of keys) {
    if (key.revokedAt !== undefined) result.set(key.kid, { removeAt: key.revokedAt + lifetimeMs });
  }
  for (const alg of SIGNING_ALGORITHMS) {
    const chain = chainOf(wrap(keys), alg);
    chain.forEach(({ stored }, i) => {
      const successor = chain[i + 1];
      if (stored.revokedAt !== undefined || successor === undefined) return;
      // Tokens it signed until its successor took over live at most one
      // token lifetime more; until then verifiers need it (RFC 7517 section 5).
      result.set(stored.kid, { retiredAt: successor.stored.activatesAt, removeAt: successor.stored.activatesAt + lifetimeMs });
    });
  }
  return result;
}

/** Whether it is in the JWKS at `now`: not revoked and not past its removal. */
function published(key: LoadedKey, now: number): boolean {
  return key.stored.revokedAt === undefined && (key.removeAt === undefined || now < key.removeAt);
}

// ---- key material ----------------------------------------------------------

const generateKeyPairAsync = promisify(generateKeyPair);

async function generatePrivateKey(alg: SigningAlgorithm): Promise<KeyObject> {
  switch (alg) {
    case 'EdDSA':
      return (await generateKeyPairAsync('ed25519')).privateKey;
    case 'ES256':
      return (await generateKeyPairAsync('ec', { namedCurve: 'P-256' })).privateKey;
    case 'RS256':
    case 'PS256':
      // RFC 7518 section 3.3/3.5: 2048 bits at least.
      return (await generateKeyPairAsync('rsa', { modulusLength: RSA_MODULUS_BITS, publicExponent: 0x10001 })).privateKey;
  }
}

/** Refuses a stored key whose type does not fit its algorithm (RFC 8725 section 3.1: one key, one algorithm). */
function checkKeyType(alg: SigningAlgorithm, key: KeyObject, kid: string): void {
  const details = key.asymmetricKeyDetails;
  const fits =
    alg === 'EdDSA'
      ? key.asymmetricKeyType === 'ed25519'
      : alg === 'ES256'
        ? key.asymmetricKeyType === 'ec' && details?.namedCurve === 'prime256v1'
        : key.asymmetricKeyType === 'rsa' && (details?.modulusLength ?? 0) >= RSA_MODULUS_BITS;
  if (!fits) throw new KeyringError(`signing key ${kid}: not a ${alg} key`);
}

/** The public JWK with the members a verifier selects by (RFC 7517 section 4: use, alg, kid). */
async function publicJwkOf(publicKey: KeyObject): Promise<{ jwk: JWK; kid: string }> {
  const { kty, crv, x, y, n, e } = await exportJWK(publicKey);
  const members: JWK = { kty, ...(crv !== undefined && { crv }), ...(x !== undefined && { x }), ...(y !== undefined && { y }), ...(n !== undefined && { n }), ...(e !== undefined && { e }) };
  // RFC 7638: the kid is the SHA-256 thumbprint of the required public members.
  return { jwk: members, kid: await calculateJwkThumbprint(members, 'sha256') };
}

function openedKey(kid: string, alg: SigningAlgorithm, privateKey: KeyObject, publicKey: KeyObject, jwk: JWK, sealedPrivateKey: string): OpenedKey {
  return {
    sealedPrivateKey,
    signing: Object.freeze({ kid, alg, privateKey }),
    verification: Object.freeze({ kid, alg, publicKey }),
    publicJwk: Object.freeze({ ...jwk, kid, use: 'sig', alg }),
  };
}

async function newKey(alg: SigningAlgorithm, masterKey: Uint8Array, createdAt: number, activatesAt: number, reason: CreateReason): Promise<NewKey> {
  const privateKey = await generatePrivateKey(alg);
  const publicKey = createPublicKey(privateKey);
  const { jwk, kid } = await publicJwkOf(publicKey);
  const sealedPrivateKey = sealSecret(masterKey, SEAL_PURPOSE, privateKey.export({ format: 'der', type: 'pkcs8' }));
  return { stored: { kid, alg, createdAt, activatesAt, sealedPrivateKey }, opened: openedKey(kid, alg, privateKey, publicKey, jwk, sealedPrivateKey), reason };
}

async function openStoredKey(stored: StoredKey, masterKey: Uint8Array): Promise<OpenedKey> {
  const privateKey = createPrivateKey({ key: Buffer.from(openSecret(masterKey, SEAL_PURPOSE, stored.sealedPrivateKey)), format: 'der', type: 'pkcs8' });
  checkKeyType(stored.alg, privateKey, stored.kid);
  const publicKey = createPublicKey(privateKey);
  const { jwk, kid } = await publicJwkOf(publicKey);
  // A private key moved under another kid would sign tokens that verify
  // against the wrong published key; the thumbprint ties them together.
  if (kid !== stored.kid) throw new KeyringError(`signing key ${stored.kid}: its private key does not match its kid`);
  return openedKey(kid, stored.alg, privateKey, publicKey, jwk, stored.sealedPrivateKey);
}

// ---- the stored document ---------------------------------------------------

const ALGORITHMS = new Set<string>(SIGNING_ALGORITHMS);

function isTime(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function parseStoredKey(value: unknown): StoredKey {
  const key = (typeof value === 'object' && value !== null ? value : {}) as Record<string, unknown>;
  const { kid, alg, createdAt, activatesAt, revokedAt, sealedPrivateKey } = key;
  if (
    typeof kid !== 'string' ||
    typeof alg !== 'string' ||
    !ALGORITHMS.has(alg) ||
    !isTime(createdAt) ||
    !isTime(activatesAt) ||
    (revokedAt !== undefined && !isTime(revokedAt)) ||
    typeof sealedPrivateKey !== 'string'
  ) {
    throw new KeyringError('the stored signing keys are not in a format this build reads');
  }
  return { kid, alg: alg as SigningAlgorithm, createdAt, activatesAt, ...(revokedAt !== undefined && { revokedAt }), sealedPrivateKey };
}

function parseDocument(data: unknown): KeyringDocument {
  const document = (typeof data === 'object' && data !== null ? data : {}) as Record<string, unknown>;
  if (document['format'] !== DOCUMENT_FORMAT || !Array.isArray(document['keys'])) {
    throw new KeyringError('the stored signing keys are not in a format this build reads');
  }
  return { format: DOCUMENT_FORMAT, keys: (document['keys'] as unknown[]).map(parseStoredKey) };
}

function checkPolicy(policy: KeyringPolicy): void {
  for (const name of ['rotationIntervalMs', 'jwksMaxAgeSeconds', 'maxTokenLifetimeSeconds', 'refreshMs'] as const) {
    const value = policy[name];
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) throw new KeyringError(`keyring policy ${name} must be a positive integer`);
  }
}

function checkAlgorithm(alg: string): asserts alg is SigningAlgorithm {
  if (!ALGORITHMS.has(alg)) throw new KeyringError(`unknown signing algorithm ${alg} (one of ${SIGNING_ALGORITHMS.join(', ')})`);
}

function createdEvent(key: NewKey, actorService: string): DomainEvent<'key.created'> {
  return {
    type: 'key.created',
    outcome: 'success',
    actorService,
    detail: { kid: key.stored.kid, alg: key.stored.alg, reason: key.reason, activatesAt: key.stored.activatesAt },
  };
}

export class Keyring {
  readonly #documents: Collection<KeyringDocument>;
  readonly #masterKey: Uint8Array;
  readonly #clock: Clock;
  readonly #policy: KeyringPolicy;
  readonly #events: KeyringEvents | undefined;
  #snapshot: KeyringSnapshot = EMPTY_SNAPSHOT;
  /** Opened keys by kid, so a refresh decrypts only keys it has not seen. */
  #opened = new Map<string, OpenedKey>();
  #jwks: { readonly text: string; readonly validUntil: number } | undefined;
  #timer: NodeJS.Timeout | undefined;
  #ticking = false;

  private constructor(options: KeyringOptions) {
    this.#documents = collection(options.records, { name: COLLECTION, codec: codec(parseDocument) });
    this.#masterKey = options.masterKey;
    this.#clock = options.clock;
    const { rotationIntervalMs, jwksMaxAgeSeconds, maxTokenLifetimeSeconds, refreshMs } = options.policy;
    this.#policy = { rotationIntervalMs, jwksMaxAgeSeconds, maxTokenLifetimeSeconds, refreshMs };
    this.#events = options.events;
  }

  /**
   * Loads the keyring; on first use creates one key per algorithm, signing
   * at once (nothing was published before, so no cache can miss it). Of
   * several instances opening together, one creates and all use its keys.
   */
  static async open(options: KeyringOptions): Promise<Keyring> {
    checkPolicy(options.policy);
    const keyring = new Keyring(options);
    await keyring.#ensureSigningKeys();
    return keyring;
  }

  /** The key that signs for `alg` now. Synchronous, from memory. */
  signingKey(alg: SigningAlgorithm): SigningKey {
    const chain = this.#snapshot.chains.get(alg);
    const current = chain === undefined ? undefined : currentIn(chain, this.#clock());
    if (current === undefined) throw new KeyringError(`no ${alg} signing key is current; run the keyring's maintenance`);
    return current.signing;
  }

  /** A published key by kid: next, current or retired; never revoked or removed. */
  verificationKey(kid: string): VerificationKey | undefined {
    const key = this.#snapshot.byKid.get(kid);
    return key !== undefined && published(key, this.#clock()) ? key.verification : undefined;
  }

  /** The JWK Set (RFC 7517 section 5) as JSON text, kept until the keyring or the set of published keys changes. */
  jwks(): string {
    const now = this.#clock();
    if (this.#jwks !== undefined && now < this.#jwks.validUntil) return this.#jwks.text;
    const keys = this.#publishedInOrder(now);
    // The set changes when a key leaves it; its order when a key takes over.
    const changes = keys.flatMap((key) => [key.removeAt, key.stored.activatesAt]).filter((at): at is number => at !== undefined && at > now);
    this.#jwks = { text: JSON.stringify({ keys: keys.map((key) => key.publicJwk) }), validUntil: Math.min(Infinity, ...changes) };
    return this.#jwks.text;
  }

  list(): KeyInfo[] {
    const now = this.#clock();
    return this.#snapshot.keys.map((key) => this.#infoOf(key, now));
  }

  /**
   * The rotation schedule, run on every instance every `refreshMs`: gives
   * each algorithm a successor when its current key has one JWKS max-age of
   * signing left, and drops keys whose last token has expired. Returns the
   * keys this call created: none when nothing was due, or when another
   * instance's write won the compare-and-set (this one then uses its keys).
   */
  async maintain(): Promise<KeyInfo[]> {
    return (await this.#change((keys, now) => this.#scheduled(keys, now))) ?? [];
  }

  /**
   * Publishes a new key of `alg` now; it starts signing one JWKS max-age
   * later, when every verifier's cached set has it. A successor that was
   * already scheduled keeps its time.
   */
  async rotate(alg: SigningAlgorithm = SIGNING_ALGORITHMS[0]!): Promise<KeyInfo> {
    checkAlgorithm(alg);
    const info = await this.#change(async (keys, now) => {
      const created = await newKey(alg, this.#masterKey, now, now + this.#policy.jwksMaxAgeSeconds * 1000, 'manual');
      return { keys: [...keys, created.stored], created: [created], events: [createdEvent(created, 'admin')], result: (keyring) => keyring.#info(created.stored.kid) };
    });
    return info!;
  }

  /**
   * Revokes a (compromised) key: it leaves the JWKS and stops verifying at
   * once. If it was signing, a fresh key of its algorithm signs from now,
   * without the usual max-age of notice: verifiers that cached the old set
   * fetch it again on the unknown kid (RFC 7517 section 4.5 / OIDC Core
   * section 10.1.1), which is better than signing on with a compromised key.
   */
  async revoke(kid: string): Promise<KeyInfo & { readonly stateBefore: KeyState }> {
    const info = await this.#change(async (keys, now) => {
      const target = keys.find((key) => key.kid === kid);
      // A key can leave the stored keyring between an operator's `keys list`
      // and this call (maintain() drops it once its last token expired).
      if (target === undefined) throw new KeyringError(`no signing key ${kid} (unknown, or removed from the keyring after its last token expired; see portcullis keys list)`);
      if (target.revokedAt !== undefined) throw new KeyringError(`signing key ${kid} is already revoked`);
      const wasCurrent = currentIn(chainOf(wrap(keys), target.alg), now)?.stored.kid === kid;
      // Decided on the keys and the time of this very write (compare-and-set), not on an earlier read.
      const stateBefore: KeyState = wasCurrent ? 'current' : target.activatesAt > now ? 'next' : 'retired';
      const retiredAt = stateBefore === 'retired' ? lifetimes(keys, this.#policy).get(kid)?.retiredAt : undefined;
      const replacement = wasCurrent ? [await newKey(target.alg, this.#masterKey, now, now, 'replaces_revoked')] : [];
      return {
        keys: [...keys.map((key) => (key.kid === kid ? { ...key, revokedAt: now } : key)), ...replacement.map((key) => key.stored)],
        created: replacement,
        events: [{ type: 'key.revoked', outcome: 'success', actorService: 'admin', detail: { kid, alg: target.alg } }, ...replacement.map((key) => createdEvent(key, 'admin'))],
        result: (keyring) => ({ ...keyring.#info(kid), stateBefore, ...(retiredAt !== undefined && { retiredAt }) }),
      };
    });
    return info!;
  }

  /** Re-reads the store and takes up any change another instance made. */
  async refresh(): Promise<void> {
    await this.#apply(await this.#read());
  }

  /** Runs the schedule (which re-reads the store) now and every `refreshMs`; timers never hold the process open. */
  start(onError: (error: unknown) => void): void {
    if (this.#timer !== undefined) return;
    const tick = (): void => {
      if (this.#ticking) return;
      this.#ticking = true;
      this.maintain()
        .catch(onError)
        .finally(() => {
          this.#ticking = false;
        });
    };
    this.#timer = setInterval(tick, this.#policy.refreshMs);
    this.#timer.unref();
    tick();
  }

  close(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  // ---- internals -----------------------------------------------------------

  async #ensureSigningKeys(): Promise<void> {
    await this.#change(async (keys, now) => {
      const missing = SIGNING_ALGORITHMS.filter((alg) => currentIn(chainOf(wrap(keys), alg), now) === undefined);
      if (missing.length === 0) return null;
      const created = await Promise.all(missing.map((alg) => newKey(alg, this.#masterKey, now, now, 'initial')));
      return { keys: [...keys, ...created.map((key) => key.stored)], created, events: created.map((key) => createdEvent(key, 'system')), result: () => undefined };
    });
  }

  /** What the schedule asks for at `now`, or null when nothing is due. */
  async #scheduled(keys: readonly StoredKey[], now: number): Promise<Change<KeyInfo[]> | null> {
    const times = lifetimes(keys, this.#policy);
    const kept = keys.filter((key) => {
      const removeAt = times.get(key.kid)?.removeAt;
      return removeAt === undefined || now < removeAt;
    });
    const created: NewKey[] = [];
    for (const alg of SIGNING_ALGORITHMS) {
      const due = this.#dueSuccessor(kept, alg, now);
      if (due !== undefined) created.push(await newKey(alg, this.#masterKey, now, due.activatesAt, due.reason));
    }
    if (created.length === 0 && kept.length === keys.length) return null;
    return {
      keys: [...kept, ...created.map((key) => key.stored)],
      created,
      events: created.map((key) => createdEvent(key, 'system')),
      result: (keyring) => created.map((key) => keyring.#info(key.stored.kid)),
    };
  }

  /**
   * When the current key has one JWKS max-age of its interval left and no
   * successor is published yet, a successor activating when the interval
   * ends, but never sooner than one max-age from now (a late run must not
   * shorten the notice verifiers get).
   */
  #dueSuccessor(keys: readonly StoredKey[], alg: SigningAlgorithm, now: number): { activatesAt: number; reason: CreateReason } | undefined {
    const chain = chainOf(wrap(keys), alg);
    const current = currentIn(chain, now);
    if (current === undefined) return { activatesAt: now, reason: 'initial' };
    const pending = chain.some(({ stored }) => stored.revokedAt === undefined && byActivation(stored, current.stored) > 0);
    const maxAgeMs = this.#policy.jwksMaxAgeSeconds * 1000;
    const endsAt = current.stored.activatesAt + this.#policy.rotationIntervalMs;
    if (pending || now < endsAt - maxAgeMs) return undefined;
    return { activatesAt: Math.max(now + maxAgeMs, endsAt), reason: 'scheduled' };
  }

  /**
   * One compare-and-set change: read, plan against what was read, write on
   * the version read. A lost race re-reads and plans again, so the plan sees
   * the winner's keys (and usually finds nothing left to do).
   */
  async #change<T>(plan: (keys: readonly StoredKey[], now: number) => Promise<Change<T> | null>): Promise<T | null> {
    const outcome = await this.#documents.mutate<Change<T> | null>(
      DOCUMENT_ID,
      async (record) => {
        await this.#apply(record);
        const change = await plan(record?.data.keys ?? [], this.#clock());
        return change === null ? keep(null) : write({ format: DOCUMENT_FORMAT, keys: change.keys }, change);
      },
      {
        attempts: MAX_WRITE_ATTEMPTS,
        exhausted: () => {
          throw new KeyringError('the signing keys kept changing under this instance; try again');
        },
      },
    );
    const change = outcome.result;
    if (!outcome.written || change === null || outcome.record === null) return null;
    for (const key of change.created) this.#opened.set(key.stored.kid, key.opened);
    await this.#apply(outcome.record);
    if (this.#events !== undefined && change.events.length > 0) await this.#events.emitAll(change.events);
    return change.result(this);
  }

  async #read(): Promise<{ version: number; data: KeyringDocument } | null> {
    return this.#documents.get(DOCUMENT_ID);
  }

  /** Takes up a document read from the store, unless a newer one is already in use. */
  async #apply(record: { version: number; data: KeyringDocument } | null): Promise<void> {
    if (record === null || record.version <= this.#snapshot.version) return;
    const opened = new Map<string, OpenedKey>();
    for (const stored of record.data.keys) {
      const known = this.#opened.get(stored.kid);
      opened.set(stored.kid, known !== undefined && known.sealedPrivateKey === stored.sealedPrivateKey ? known : await openStoredKey(stored, this.#masterKey));
    }
    // Another read may have been taken up while this one was opening keys.
    if (record.version <= this.#snapshot.version) return;
    this.#opened = opened;
    this.#snapshot = this.#snapshotOf(record.version, record.data.keys, opened);
    this.#jwks = undefined;
  }

  #snapshotOf(version: number, storedKeys: readonly StoredKey[], opened: ReadonlyMap<string, OpenedKey>): KeyringSnapshot {
    const times = lifetimes(storedKeys, this.#policy);
    const keys = storedKeys
      .map((stored): LoadedKey => ({ ...opened.get(stored.kid)!, stored, retiredAt: times.get(stored.kid)?.retiredAt, removeAt: times.get(stored.kid)?.removeAt }))
      .sort((a, b) => SIGNING_ALGORITHMS.indexOf(a.stored.alg) - SIGNING_ALGORITHMS.indexOf(b.stored.alg) || byActivation(a.stored, b.stored));
    return {
      version,
      keys,
      byKid: new Map(keys.map((key) => [key.stored.kid, key])),
      chains: new Map(SIGNING_ALGORITHMS.map((alg) => [alg, chainOf(keys, alg)])),
    };
  }

  /** Per algorithm: the current key first (verifiers that try keys in order hit it first), then the rest, newest first. */
  #publishedInOrder(now: number): LoadedKey[] {
    return SIGNING_ALGORITHMS.flatMap((alg) => {
      const current = currentIn(this.#snapshot.chains.get(alg) ?? [], now);
      const others = this.#snapshot.keys.filter((key) => key.stored.alg === alg && key !== current && published(key, now)).reverse();
      return current === undefined ? others : [current, ...others];
    });
  }

  #info(kid: string): KeyInfo {
    return this.#infoOf(this.#snapshot.byKid.get(kid)!, this.#clock());
  }

  #infoOf(key: LoadedKey, now: number): KeyInfo {
    const { kid, alg, createdAt, activatesAt, revokedAt } = key.stored;
    const current = currentIn(this.#snapshot.chains.get(alg) ?? [], now) === key;
    const state: KeyState = revokedAt !== undefined ? 'revoked' : current ? 'current' : activatesAt > now ? 'next' : 'retired';
    return {
      kid,
      alg,
      state,
      createdAt,
      activatesAt,
      ...(key.retiredAt !== undefined && { retiredAt: key.retiredAt }),
      ...(key.removeAt !== undefined && { removeAt: key.removeAt }),
      ...(revokedAt !== undefined && { revokedAt }),
    };
  }
}
