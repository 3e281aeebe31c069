import { randomBytes } from 'node:crypto';
import { Type } from '@sinclair/typebox';
import { collection, keep, typeboxCodec, write, type Codec, type Collection, type RecordStore, type StoredRecord } from '../store/index.ts';
import type { Profile } from './profile.ts';
import { UserError } from './user-error.ts';

export { UserError };

const USERS = 'users';
const EMAILS = 'user_emails';
const MAX_EMAIL_LENGTH = 254;
/** A practical address check (RFC 5321 lengths, one @, a dotted domain); deliverability is not our business. */
const EMAIL = /^[^\s@]{1,64}@[^\s@.]+(\.[^\s@.]+)+$/u;

/**
 * The person's current privacy choices (issue 15), kept on the account so
 * the authorization server reads them for claims without knowing the
 * privacy workflows. Their history (proof of consent, GDPR Art. 7(1)) is
 * the privacy module's append-only `privacy_consent_log`.
 */
export interface UserPrivacy {
  /** "Do not sell or share my personal information" is on (CCPA 1798.120), since `at`, from `source`. */
  readonly optOut?: { readonly at: number; readonly source: 'gpc' | 'account' | 'admin' };
  /** The latest decision per purpose id (config privacy.purposes), at the purpose's version then. */
  readonly consents?: Readonly<Record<string, { readonly version: number; readonly granted: boolean; readonly at: number; readonly source: string }>>;
}

export interface User {
  readonly id: string;
  readonly email: string;
  readonly passwordHash: string | null;
  readonly disabled: boolean;
  readonly createdAt: number;
  readonly passwordChangedAt: number | null;
  /** Sealed TOTP secret once a second factor is enrolled. */
  readonly totpSecret?: string | null;
  /** OIDC Core section 5.1 profile claims (src/identity/profile.ts); absent until one is set. */
  readonly profile?: Profile;
  /**
   * Tokens issued (access tokens) or granted (refresh families) at or before
   * this time (ms) are refused: an administrator's password reset ends what
   * a thief may already hold (OWASP ASVS 3.3.3).
   */
  readonly tokensNotBefore?: number;
  readonly privacy?: UserPrivacy;
  /**
   * The last successful sign-in or refresh-token use (ms), written at most
   * once per SIGN_IN_RECORD_INTERVAL_MS: what inactivity retention
   * (privacy.retention.inactiveAccountDays) measures. Absent on accounts
   * nobody signed in to since it was introduced.
   */
  readonly lastSignInAt?: number;
}

/**
 * Sign-ins closer together than this write lastSignInAt once: the
 * inactivity rule counts in days, and a write per sign-in would cost every
 * sign-in a durable write.
 */
export const SIGN_IN_RECORD_INTERVAL_MS = 24 * 60 * 60_000;

/**
 * When the account was last used, for inactivity retention: the last
 * sign-in or refresh, or for an account nobody signed in to since lastSignInAt was
 * introduced, the later of its creation and its last password change.
 */
export function lastActivityOf(user: Pick<User, 'createdAt' | 'passwordChangedAt' | 'lastSignInAt'>): number {
  return user.lastSignInAt ?? Math.max(user.createdAt, user.passwordChangedAt ?? 0);
}

interface UserData {
  email: string;
  passwordHash: string | null;
  disabled: boolean;
  passwordChangedAt: number | null;
  totpSecret?: string | null;
  profile?: Profile;
  tokensNotBefore?: number;
  privacy?: UserPrivacy;
  lastSignInAt?: number;
}

const PrivacySchema = Type.Object({
  optOut: Type.Optional(Type.Object({ at: Type.Number(), source: Type.Union([Type.Literal('gpc'), Type.Literal('account'), Type.Literal('admin')]) })),
  consents: Type.Optional(Type.Record(Type.String(), Type.Object({ version: Type.Integer({ minimum: 1 }), granted: Type.Boolean(), at: Type.Number(), source: Type.String() }))),
});

const userCodec: Codec<UserData> = typeboxCodec(
  Type.Object({
    email: Type.String(),
    passwordHash: Type.Union([Type.String(), Type.Null()]),
    disabled: Type.Boolean(),
    passwordChangedAt: Type.Union([Type.Number(), Type.Null()]),
    totpSecret: Type.Optional(Type.Union([Type.String(), Type.Null()])),
    // The claims' own rules live in profile.ts; stored, a profile is string claims and updated_at.
    profile: Type.Optional(Type.Unsafe<Profile>(Type.Record(Type.String(), Type.Union([Type.String(), Type.Number()])))),
    tokensNotBefore: Type.Optional(Type.Number()),
    privacy: Type.Optional(PrivacySchema),
    lastSignInAt: Type.Optional(Type.Number()),
  }),
);

/** The claim on an address: which user holds it. */
interface EmailClaim {
  readonly userId: string;
}

const emailClaimCodec: Codec<EmailClaim> = typeboxCodec(Type.Object({ userId: Type.String() }));

/** The key an address is unique by: NFKC, trimmed, lower-cased. */
export function normaliseEmail(email: string): string {
  return email.normalize('NFKC').trim().toLowerCase();
}

export function checkEmail(email: string): string {
  const normalised = normaliseEmail(email);
  if (normalised.length > MAX_EMAIL_LENGTH || !EMAIL.test(normalised)) throw new UserError('invalid_email', 'not a valid email address');
  return normalised;
}

function toUser(record: StoredRecord<UserData>): User {
  return { id: record.id, createdAt: record.createdAt, ...record.data };
}

/**
 * Accounts in the durable store. An address is unique through a second
 * collection keyed by the normalised address, claimed with an atomic
 * create before the user record is written: two concurrent sign-ups for one
 * address cannot both succeed.
 */
export class UserDirectory {
  readonly #users: Collection<UserData>;
  readonly #emails: Collection<EmailClaim>;

  readonly #records: RecordStore;

  constructor(records: RecordStore) {
    this.#records = records;
    this.#users = collection(records, { name: USERS, codec: userCodec });
    this.#emails = collection(records, { name: EMAILS, codec: emailClaimCodec });
  }

  /** The same directory over another RecordStore (a transaction's). */
  on(records: RecordStore): UserDirectory {
    return new UserDirectory(records);
  }

  /**
   * Whether the account exists, read with a share lock (ReadOptions): on a
   * transaction's store, an erasure deleting it meanwhile waits for that
   * transaction, or this read waits for the erasure and finds nothing.
   */
  async existsLocked(id: string): Promise<boolean> {
    return (await this.#records.get(USERS, id, { lock: 'share' })) !== null;
  }

  async create(email: string, passwordHash: string | null, now: number): Promise<User> {
    const address = checkEmail(email);
    const id = `u_${randomBytes(16).toString('base64url')}`;
    if (!(await this.#emails.create(address, { userId: id }))) {
      // A claim whose user record never got written (a crash between the
      // two creates) is reclaimed; a live one means the address is taken.
      const claim = await this.#emails.get(address);
      if (claim === null || (await this.#users.get(claim.data.userId)) !== null) throw new UserError('email_taken', 'that email address already has an account');
      if (!(await this.#emails.delete(address, claim.version)) || !(await this.#emails.create(address, { userId: id }))) {
        throw new UserError('email_taken', 'that email address already has an account');
      }
    }
    const data: UserData = { email: address, passwordHash, disabled: false, passwordChangedAt: passwordHash === null ? null : now, totpSecret: null };
    await this.#users.create(id, data);
    const created = await this.#users.get(id);
    if (created === null) throw new Error('the new user record vanished');
    return toUser(created);
  }

  async byId(id: string): Promise<User | null> {
    const record = await this.#users.get(id);
    return record === null ? null : toUser(record);
  }

  async byEmail(email: string): Promise<User | null> {
    const claim = await this.#emails.get(normaliseEmail(email));
    return claim === null ? null : this.byId(claim.data.userId);
  }

  /** Users in id order (keyset pagination). */
  async list(options: { after?: string; limit?: number } = {}): Promise<User[]> {
    return (await this.#users.list(options)).map(toUser);
  }

  /** Applies `change` with a compare-and-set, retrying a few times on a concurrent update. */
  async update(id: string, change: (user: User) => Partial<UserData>): Promise<User> {
    const { record } = await this.#users.mutate(
      id,
      (current) => {
        if (current === null) throw new UserError('not_found', 'no such user');
        return write({ ...current.data, ...change(toUser(current)) });
      },
      {
        attempts: 5,
        exhausted: () => {
          throw new UserError('conflict', 'the user changed concurrently too often; try again');
        },
      },
    );
    return toUser(record!);
  }

  /**
   * Changes the user's privacy choices with a compare-and-set: `change`
   * sees the current ones and answers the new ones, or null to leave the
   * record as it is (nothing written). Retries a lost race, deciding again
   * on what won it, so of two concurrent identical changes one changes.
   */
  async changePrivacy(id: string, change: (current: UserPrivacy) => UserPrivacy | null): Promise<{ user: User; changed: boolean }> {
    const { record, written } = await this.#users.mutate(
      id,
      (current) => {
        if (current === null) throw new UserError('not_found', 'no such user');
        const next = change(current.data.privacy ?? {});
        return next === null ? keep(undefined) : write({ ...current.data, privacy: next });
      },
      {
        attempts: 5,
        exhausted: () => {
          throw new UserError('conflict', 'the user changed concurrently too often; try again');
        },
      },
    );
    return { user: toUser(record!), changed: written };
  }

  /**
   * Records a successful sign-in at `now`, unless the stored one is younger
   * than SIGN_IN_RECORD_INTERVAL_MS. A compare-and-set: of concurrent
   * sign-ins one writes, the others read its value and keep it; a user
   * deleted meanwhile is not written back. Resolves true when it wrote.
   */
  async recordSignIn(id: string, now: number): Promise<boolean> {
    const { result } = await this.#users.mutate(
      id,
      (current) => {
        const last = current?.data.lastSignInAt;
        if (current === null || (last !== undefined && now - last < SIGN_IN_RECORD_INTERVAL_MS)) return keep(false);
        return write({ ...current.data, lastSignInAt: now }, true);
      },
      // Losing every race means others recorded a sign-in just now: nothing is missing.
      { attempts: 3, exhausted: () => false },
    );
    return result;
  }

  /**
   * Moves a user to another address: the new address is claimed first (so
   * two users can never hold one), then the user's record and the old claim
   * change. Run it in a transaction: all of it commits or none.
   */
  async changeEmail(id: string, email: string): Promise<{ user: User; previous: string }> {
    const address = checkEmail(email);
    const record = await this.#users.get(id);
    if (record === null) throw new UserError('not_found', 'no such user');
    const previous = record.data.email;
    if (previous === address) return { user: toUser(record), previous };
    if (!(await this.#emails.create(address, { userId: id }))) throw new UserError('email_taken', 'that email address already has an account');
    if ((await this.#users.update(id, record.version, { ...record.data, email: address })) === null) throw new UserError('conflict', 'the user changed concurrently; try again');
    const claim = await this.#emails.get(previous);
    if (claim?.data.userId === id) await this.#emails.delete(previous, claim.version);
    const updated = await this.#users.get(id);
    return { user: toUser(updated!), previous };
  }

  async delete(id: string): Promise<boolean> {
    const record = await this.#users.get(id);
    if (record === null) return false;
    await this.#users.delete(id);
    const claim = await this.#emails.get(record.data.email);
    if (claim?.data.userId === id) await this.#emails.delete(record.data.email, claim.version);
    return true;
  }
}
