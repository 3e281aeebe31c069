import { createHmac, randomBytes } from 'node:crypto';
import { Type } from '@sinclair/typebox';
import { collection, keep, typeboxCodec, write, type Codec, type Collection, type RecordStore } from '../store/index.ts';

const COLLECTION = 'audit_subject_keys';

/**
 * A person's audit key record: their secret while they are known, a marker
 * once they are forgotten. The marker stays for good, so that the person's
 * next event cannot make a fresh secret and start a new, linkable history
 * under their id.
 */
type SubjectKey =
  /** 256 random bits, base64url. */
  | { readonly secret: string }
  /** When the secret was destroyed (ms since the epoch). */
  | { readonly forgottenAt: number };

// One or the other, never both: a record with a secret and a marker would
// leave it to the reader which one wins.
const subjectKeyCodec: Codec<SubjectKey> = typeboxCodec(
  Type.Union([
    Type.Object({ secret: Type.String({ pattern: '^[A-Za-z0-9_-]{43}$' }) }, { additionalProperties: false }),
    Type.Object({ forgottenAt: Type.Integer({ minimum: 0 }) }, { additionalProperties: false }),
  ]),
);

const subjectKeys = (records: RecordStore): Collection<SubjectKey> => collection(records, { name: COLLECTION, codec: subjectKeyCodec });

/** Attempts of the forget's compare-and-set: it only races a first use or another forget. */
const FORGET_ATTEMPTS = 5;

/**
 * Keyed pseudonyms of the people in the audit log (GDPR Art. 4(5)). Each
 * user gets a random secret of their own, kept in the durable records, never
 * in the log; their entries carry HMAC-SHA256(secret, user id) instead of the
 * id. Erasure destroys the secret: the entries stay, every proof stays valid,
 * and nothing links them to the person any more.
 */
export class SubjectPseudonyms {
  readonly #records: RecordStore;
  readonly #keys: Collection<SubjectKey>;

  constructor(records: RecordStore) {
    this.#records = records;
    this.#keys = subjectKeys(records);
  }

  /**
   * The user's pseudonym, creating their secret on first use (atomic:
   * concurrent first uses agree). Null once the user is forgotten: whatever
   * is recorded about them from then on names nobody.
   */
  async pseudonym(userId: string): Promise<string | null> {
    let record = await this.#keys.get(userId);
    if (record === null) {
      await this.#keys.create(userId, { secret: randomBytes(32).toString('base64url') });
      // Whoever won the create (another first use, or a forget), everyone
      // now reads the same record.
      record = await this.#keys.get(userId);
      if (record === null) throw new Error('the pseudonym secret vanished while it was being created');
    }
    return pseudonymOfKey(record.data, userId);
  }

  /** The pseudonym the user has now, without creating a secret (null when they have none, or are forgotten). */
  async existingPseudonym(userId: string): Promise<string | null> {
    const record = await this.#keys.get(userId);
    return record === null ? null : pseudonymOfKey(record.data, userId);
  }

  /** Destroys the user's secret (see `forgetIn`). Returns whether there was one. */
  async forget(userId: string, at: number = Date.now()): Promise<boolean> {
    return (await forgetIn(this.#records, userId, at)) !== null;
  }
}

/**
 * Destroys the user's pseudonym secret, leaving the forgotten marker in its
 * place, through `records`: pass a transaction's (`tx.records`) to forget
 * in the same commit as the rest of an erasure. Resolves with the
 * pseudonym that was forgotten (null when the user had no secret, or was
 * forgotten already), so the caller can drop its subject index rows
 * afterwards (`auditLog.forgetSubject(pseudonym)`, outside the
 * transaction: the audit log is not part of it). Idempotent; a user never
 * seen is marked too, so no secret is ever made for them.
 */
export async function forgetIn(records: RecordStore, userId: string, at: number = Date.now()): Promise<string | null> {
  if (!Number.isSafeInteger(at) || at < 0) throw new TypeError('the time of forgetting must be ms since the epoch');
  const outcome = await subjectKeys(records).mutate(
    userId,
    (current) => {
      if (current !== null && 'forgottenAt' in current.data) return keep(null);
      // Lost to a first use: the next round reads the new secret and forgets it.
      return write<SubjectKey, string | null>({ forgottenAt: at }, current === null ? null : pseudonymOfKey(current.data, userId));
    },
    {
      attempts: FORGET_ATTEMPTS,
      exhausted: () => {
        throw new Error('the pseudonym secret kept changing while it was being forgotten');
      },
    },
  );
  return outcome.result;
}

function pseudonymOfKey(key: SubjectKey, userId: string): string | null {
  return 'secret' in key ? pseudonymOf(Buffer.from(key.secret, 'base64url'), userId) : null;
}

function pseudonymOf(secret: Uint8Array, userId: string): string {
  return createHmac('sha256', secret).update(`portcullis/audit-actor/${userId}`).digest('base64url');
}
