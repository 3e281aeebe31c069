import { randomBytes } from 'node:crypto';
import type { RecordStore, StoredRecord } from '../store/index.ts';
import type { Profile } from './profile.ts';
import { UserError } from './user-error.ts';

export { UserError };

const USERS = 'users';
const EMAILS = 'user_emails';
const MAX_EMAIL_LENGTH = 254;
/** A practical address check (RFC 5321 lengths, one @, a dotted domain); deliverability is not our business. */
const EMAIL = /^[^\s@]{1,64}@[^\s@.]+(\.[^\s@.]+)+$/u;

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
}

interface UserData {
  email: string;
  passwordHash: string | null;
  disabled: boolean;
  passwordChangedAt: number | null;
  totpSecret?: string | null;
  profile?: Profile;
  tokensNotBefore?: number;
}

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
  readonly #records: RecordStore;

  constructor(records: RecordStore) {
    this.#records = records;
  }

  async create(email: string, passwordHash: string | null, now: number): Promise<User> {
    const address = checkEmail(email);
    const id = `u_${randomBytes(16).toString('base64url')}`;
    if (!(await this.#records.create(EMAILS, address, { userId: id }))) {
      // A claim whose user record never got written (a crash between the
      // two creates) is reclaimed; a live one means the address is taken.
      const claim = await this.#records.get<{ userId: string }>(EMAILS, address);
      if (claim === null || (await this.#records.get(USERS, claim.data.userId)) !== null) throw new UserError('email_taken', 'that email address already has an account');
      if (!(await this.#records.delete(EMAILS, address, claim.version)) || !(await this.#records.create(EMAILS, address, { userId: id }))) {
        throw new UserError('email_taken', 'that email address already has an account');
      }
    }
    const data: UserData = { email: address, passwordHash, disabled: false, passwordChangedAt: passwordHash === null ? null : now, totpSecret: null };
    await this.#records.create(USERS, id, data);
    const created = await this.#records.get<UserData>(USERS, id);
    if (created === null) throw new Error('the new user record vanished');
    return toUser(created);
  }

  async byId(id: string): Promise<User | null> {
    const record = await this.#records.get<UserData>(USERS, id);
    return record === null ? null : toUser(record);
  }

  async byEmail(email: string): Promise<User | null> {
    const claim = await this.#records.get<{ userId: string }>(EMAILS, normaliseEmail(email));
    return claim === null ? null : this.byId(claim.data.userId);
  }

  /** Users in id order (keyset pagination). */
  async list(options: { after?: string; limit?: number } = {}): Promise<User[]> {
    return (await this.#records.list<UserData>(USERS, options)).map(toUser);
  }

  /** Applies `change` with a compare-and-set, retrying a few times on a concurrent update. */
  async update(id: string, change: (user: User) => Partial<UserData>): Promise<User> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const record = await this.#records.get<UserData>(USERS, id);
      if (record === null) throw new UserError('not_found', 'no such user');
      const data = { ...record.data, ...change(toUser(record)) };
      const version = await this.#records.update(USERS, id, record.version, data);
      if (version !== null) return toUser({ ...record, version, data });
    }
    throw new UserError('conflict', 'the user changed concurrently too often; try again');
  }

  async delete(id: string): Promise<boolean> {
    const record = await this.#records.get<UserData>(USERS, id);
    if (record === null) return false;
    await this.#records.delete(USERS, id);
    const claim = await this.#records.get<{ userId: string }>(EMAILS, record.data.email);
    if (claim?.data.userId === id) await this.#records.delete(EMAILS, record.data.email, claim.version);
    return true;
  }
}
