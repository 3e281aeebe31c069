/**
 * Writes about a person that must not outlive their account: a consent and
 * the note that a client received their data. An authorization can be in
 * flight while the account is erased (GDPR Art. 17): it read the session
 * before the erasure ended it, and writes a moment after the erasure
 * deleted the person's records. Each such write therefore runs in one
 * durable transaction with a read of the account, and rolls back when the
 * account is gone.
 *
 * On SQLite, whose writers are serialised, that closes the race. On
 * PostgreSQL (READ COMMITTED), a write can still commit after the erasure
 * read the rows but before it committed; the erasure's settle pass
 * (privacy/erasure.ts) deletes such late rows by user id afterwards. The
 * code issued with them is never redeemed: the token endpoint refuses a
 * user who is gone.
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
      // Written first, read after: on PostgreSQL the read then sees an erasure that committed before the write did.
      const result = await write(tx.records);
      if ((await users.on(tx.records).byId(userId)) === null) throw new AccountGoneError();
      return result;
    });
}
