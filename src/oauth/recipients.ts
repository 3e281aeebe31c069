/**
 * Who received data about a person: every client an authorization code
 * was issued to for them (the code is what hands the client an ID token,
 * UserInfo and tokens naming the person). GDPR Art. 19 obliges the
 * controller to tell each recipient of an erasure, so the list is kept for
 * as long as the account: `data_recipients/<user>:<client>`, found by user.
 * One durable write the first time a client receives the person's data,
 * and at most one a day after that (lastAt), so a busy sign-in costs reads.
 */
import { Type, type Static } from '@sinclair/typebox';
import { collection, keep, typeboxCodec, write, type Clock, type Collection, type RecordStore } from '../store/index.ts';
import type { AccountWrite } from './account-writes.ts';

const RecipientSchema = Type.Object({ userId: Type.String(), clientId: Type.String(), firstAt: Type.Number(), lastAt: Type.Number() });
export type DataRecipient = Static<typeof RecipientSchema>;

const DAY_MS = 24 * 60 * 60_000;

function recipients(records: RecordStore): Collection<DataRecipient, 'user'> {
  return collection(records, { name: 'data_recipients', codec: typeboxCodec(RecipientSchema), indexes: { user: (recipient) => recipient.userId } });
}

export class DataRecipients {
  readonly #records: Collection<DataRecipient, 'user'>;
  readonly #clock: Clock;
  readonly #accountWrite: AccountWrite;

  constructor(options: { records: RecordStore; clock: Clock; accountWrite: AccountWrite }) {
    this.#records = recipients(options.records);
    this.#clock = options.clock;
    this.#accountWrite = options.accountWrite;
  }

  /**
   * Notes that `clientId` is receiving data about `userId` now; rejects
   * with AccountGoneError, writing nothing, when the account was erased
   * meanwhile (account-writes.ts).
   */
  async record(userId: string, clientId: string): Promise<void> {
    const now = this.#clock();
    const id = `${userId}:${clientId}`;
    const current = await this.#records.get(id);
    if (current !== null && now - current.data.lastAt < DAY_MS) return;
    await this.#accountWrite(userId, (records) =>
      this.#records.on(records).mutate(
        id,
        (record) => {
          if (record === null) return write({ userId, clientId, firstAt: now, lastAt: now });
          return now - record.data.lastAt < DAY_MS ? keep(undefined) : write({ ...record.data, lastAt: now });
        },
        // A lost race means someone else just recorded the same fact.
        { attempts: 3, exhausted: () => undefined },
      ),
    );
  }

  /** The clients that received data about the user, oldest first. */
  async ofUser(userId: string): Promise<DataRecipient[]> {
    return (await this.#records.findAllBy('user', userId)).map((record) => record.data).sort((a, b) => a.firstAt - b.firstAt);
  }
}
