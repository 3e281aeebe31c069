import { createHmac, randomBytes } from 'node:crypto';
import { Type } from '@sinclair/typebox';
import { collection, typeboxCodec, type Codec, type Collection, type RecordStore } from '../store/index.ts';

const COLLECTION = 'audit_subject_keys';

interface SubjectKey {
  /** 256 random bits, base64url. */
  readonly secret: string;
}

const subjectKeyCodec: Codec<SubjectKey> = typeboxCodec(Type.Object({ secret: Type.String({ pattern: '^[A-Za-z0-9_-]{43}$' }) }));

/**
 * Keyed pseudonyms of the people in the audit log (GDPR Art. 4(5)). Each
 * user gets a random secret of their own, kept in the durable records, never
 * in the log; their entries carry HMAC-SHA256(secret, user id) instead of the
 * id. Erasure destroys the secret: the entries stay, every proof stays valid,
 * and nothing links them to the person any more.
 */
export class SubjectPseudonyms {
  readonly #keys: Collection<SubjectKey>;

  constructor(records: RecordStore) {
    this.#keys = collection(records, { name: COLLECTION, codec: subjectKeyCodec });
  }

  /** The user's pseudonym, creating their secret on first use (atomic: concurrent first uses agree). */
  async pseudonym(userId: string): Promise<string> {
    let record = await this.#keys.get(userId);
    if (record === null) {
      await this.#keys.create(userId, { secret: randomBytes(32).toString('base64url') });
      // Whoever won the create, everyone now reads the same secret.
      record = await this.#keys.get(userId);
      if (record === null) throw new Error('the pseudonym secret vanished while it was being created');
    }
    return pseudonymOf(Buffer.from(record.data.secret, 'base64url'), userId);
  }

  /** The pseudonym the user has now, without creating a secret (null once forgotten). */
  async existingPseudonym(userId: string): Promise<string | null> {
    const record = await this.#keys.get(userId);
    return record === null ? null : pseudonymOf(Buffer.from(record.data.secret, 'base64url'), userId);
  }

  /** Destroys the user's secret inside a transaction (`records`: the transaction's). Resolves with the pseudonym it made, if any. */
  async forgetIn(records: RecordStore, userId: string): Promise<string | null> {
    const record = await records.get<SubjectKey>(COLLECTION, userId);
    if (record === null) return null;
    await records.delete(COLLECTION, userId);
    return pseudonymOf(Buffer.from(record.data.secret, 'base64url'), userId);
  }

  /** Destroys the user's secret. Returns whether there was one. */
  async forget(userId: string): Promise<boolean> {
    return this.#keys.delete(userId);
  }
}

function pseudonymOf(secret: Uint8Array, userId: string): string {
  return createHmac('sha256', secret).update(`portcullis/audit-actor/${userId}`).digest('base64url');
}
