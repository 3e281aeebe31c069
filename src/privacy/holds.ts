/**
 * Legal holds (GDPR Art. 17(3)(e): data needed for legal claims is not
 * erased): while a user is on hold, neither an erasure nor a retention rule
 * touches their data. Setting and releasing a hold is audited.
 * `privacy_holds/<user id>`: the reason, who set it, when.
 */
import { Type, type Static } from '@sinclair/typebox';
import type { DomainEvents } from '../events/index.ts';
import { collection, typeboxCodec, type Clock, type Collection, type RecordStore } from '../store/index.ts';

const HoldSchema = Type.Object({ reason: Type.String({ minLength: 1, maxLength: 200 }), by: Type.String(), at: Type.Number() });
export type LegalHold = Static<typeof HoldSchema>;

function holds(records: RecordStore): Collection<LegalHold> {
  return collection(records, { name: 'privacy_holds', codec: typeboxCodec(HoldSchema) });
}

export class LegalHolds {
  readonly #records: RecordStore;
  readonly #events: DomainEvents;
  readonly #clock: Clock;

  constructor(options: { records: RecordStore; events: DomainEvents; clock: Clock }) {
    this.#records = options.records;
    this.#events = options.events;
    this.#clock = options.clock;
  }

  async isHeld(userId: string): Promise<boolean> {
    return (await holds(this.#records).get(userId)) !== null;
  }

  async get(userId: string): Promise<LegalHold | null> {
    return (await holds(this.#records).get(userId))?.data ?? null;
  }

  /** Places the hold; resolves false when one was already in place (unchanged). The reason stays out of the ledger (free text). */
  async set(userId: string, reason: string, by: string): Promise<boolean> {
    const placed = await holds(this.#records).create(userId, { reason, by, at: this.#clock() });
    if (placed) await this.#events.emit({ type: 'privacy.hold.set', outcome: 'success', actorUserId: userId, actorService: by });
    return placed;
  }

  async release(userId: string, by: string): Promise<boolean> {
    const released = await holds(this.#records).delete(userId);
    if (released) await this.#events.emit({ type: 'privacy.hold.released', outcome: 'success', actorUserId: userId, actorService: by });
    return released;
  }
}
