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
 *
 * This file is the ring (reads, writes, snapshots, JWKS); the schedule's
 * pure rules are in keyring-schedule.ts, key generation and sealing in
 * key-material.ts, the stored form in keyring-types.ts and
 * keyring-document.ts.
 */
import type { DomainEvent, DomainEvents } from '../events/index.ts';
import { codec, collection, keep, write, type Clock, type Collection, type RecordStore } from '../store/index.ts';
import { SIGNING_ALGORITHMS, isAlgorithmFor, type KeyVault, type SigningAlgorithm } from '../crypto/index.ts';
import { newKey, openStoredKey, type CreateReason, type NewKey, type OpenedKey } from './key-material.ts';
import { parseDocument } from './keyring-document.ts';
import { byActivation, chainOf, checkPolicy, currentIn, lifetimes, wrap } from './keyring-schedule.ts';
import {
  KEYRING_COLLECTION,
  KEYRING_DOCUMENT_FORMAT,
  KEYRING_DOCUMENT_ID,
  KeyringError,
  type KeyInfo,
  type KeyState,
  type KeyringDocument,
  type KeyringPolicy,
  type SigningKey,
  type StoredKey,
  type VerificationKey,
} from './keyring-types.ts';

/** What the keyring emits through: key.created and key.revoked (the ledger records them; other instances take the change up). */
export type KeyringEvents = Pick<DomainEvents, 'emitAll'>;

export interface KeyringOptions {
  readonly records: RecordStore;
  readonly vault: KeyVault;
  readonly clock: Clock;
  readonly policy: KeyringPolicy;
  readonly events?: KeyringEvents;
}

/** Compare-and-set attempts before giving up; each loser re-reads, so two or three are the most a race needs. */
const MAX_WRITE_ATTEMPTS = 10;

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

/** What one compare-and-set write changes, and what it tells the ledger. */
interface Change<T> {
  readonly keys: readonly StoredKey[];
  readonly created: readonly NewKey[];
  readonly events: readonly DomainEvent<'key.created' | 'key.revoked'>[];
  readonly result: (keyring: Keyring) => T;
}

/** Whether it is in the JWKS at `now`: not revoked and not past its removal. */
function published(key: LoadedKey, now: number): boolean {
  return key.stored.revokedAt === undefined && (key.removeAt === undefined || now < key.removeAt);
}

function checkAlgorithm(alg: string): asserts alg is SigningAlgorithm {
  if (!isAlgorithmFor('keyring', alg)) throw new KeyringError(`unknown signing algorithm ${alg} (one of ${SIGNING_ALGORITHMS.join(', ')})`);
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
  readonly #vault: KeyVault;
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
    this.#documents = collection(options.records, { name: KEYRING_COLLECTION, codec: codec(parseDocument) });
    this.#vault = options.vault;
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
      const created = await newKey(alg, this.#vault, now, now + this.#policy.jwksMaxAgeSeconds * 1000, 'manual');
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
      const replacement = wasCurrent ? [await newKey(target.alg, this.#vault, now, now, 'replaces_revoked')] : [];
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
      const created = await Promise.all(missing.map((alg) => newKey(alg, this.#vault, now, now, 'initial')));
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
      if (due !== undefined) created.push(await newKey(alg, this.#vault, now, due.activatesAt, due.reason));
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
      KEYRING_DOCUMENT_ID,
      async (record) => {
        await this.#apply(record);
        const change = await plan(record?.data.keys ?? [], this.#clock());
        return change === null ? keep(null) : write({ format: KEYRING_DOCUMENT_FORMAT, keys: change.keys }, change);
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
    return this.#documents.get(KEYRING_DOCUMENT_ID);
  }

  /** Takes up a document read from the store, unless a newer one is already in use. */
  async #apply(record: { version: number; data: KeyringDocument } | null): Promise<void> {
    if (record === null || record.version <= this.#snapshot.version) return;
    const opened = new Map<string, OpenedKey>();
    for (const stored of record.data.keys) {
      const known = this.#opened.get(stored.kid);
      opened.set(stored.kid, known !== undefined && known.sealedPrivateKey === stored.sealedPrivateKey ? known : await openStoredKey(stored, this.#vault));
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
