/**
 * Writes about a person that must not outlive their account: a consent and
 * the note that a client received their data. An authorization can be in
 * flight while the account is erased (GDPR Art. 17): it read the session
 * before the erasure ended it, and writes a moment after the erasure
 * deleted the person's records. Each such write therefore runs in one
 * durable transaction with a read of the account, and rolls back when the
 * account is gone.
 *
 * The read takes a share lock on the account's record (RecordStore
 * ReadOptions). On PostgreSQL an erasure that deleted the record and has not
 * committed makes it wait, then find nothing; one that comes later waits
 * for this transaction to commit before its DELETE goes on, and then reads
 * the rows written here among the recipients it tells. SQLite runs one
 * writing transaction at a time, which gives the same order. The erasure's
 * last pass (privacy/erasure-cleanup.ts) still deletes, by user id, any row
 * a path without this guard writes late (a refresh family issued at the
 * token endpoint while the erasure commits).
 */
import type { UserDirectory } from '../identity/index.ts';
import type { DurableStore, RecordStore } from '../store/index.ts';

/** The account an authorization is for was erased while it was in flight. */
export class AccountGoneError extends Error {
  override readonly name = 'AccountGoneError';

  constructor() {
    super('the account no longer exists');
  }
}

export type AccountWrite = <R>(userId: string, write: (records: RecordStore) => Promise<R>) => Promise<R>;

/** `write` and a read of the account in one transaction; rejects with AccountGoneError (and writes nothing) when the account is gone. */
export function accountWrite(durable: DurableStore, users: UserDirectory): AccountWrite {
  return (userId, write) =>
    durable.transaction(async (tx) => {
      // Locked first: from here to the commit, no erasure of the account can slip between this read and the write.
      if (!(await users.on(tx.records).existsLocked(userId))) throw new AccountGoneError();
      return write(tx.records);
    });
}
