/**
 * Consent, remembered per user and client as the set of scopes and the set
 * of resources (RFC 8707 audiences) the user approved (OIDC Core section
 * 3.1.2.4). A request within both sets needs no new consent; a wider one,
 * or one for another resource, asks again (RFC 9700 section 2.3). The user withdraws it from the
 * account page. Stored durably: `consents/<user>:<client>`, found by user
 * and by client through the collection's indexes.
 */
import type { DomainEvents } from '../../events/index.ts';
import { Type } from '@sinclair/typebox';
import { collection, keep, typeboxCodec, write, type Clock, type Codec, type Collection, type RecordStore } from '../../store/index.ts';
import type { AccountWrite } from '../account-writes.ts';

const COLLECTION = 'consents';
const MAX_CAS_ATTEMPTS = 8;

export interface Consent {
  readonly userId: string;
  readonly clientId: string;
  readonly scopes: readonly string[];
  /** Resources the user let the client reach; absent in records made before resources existed (none). */
  readonly resources?: readonly string[];
  readonly grantedAt: number;
}

type ConsentData = Consent;

const consentCodec: Codec<ConsentData> = typeboxCodec(
  Type.Object({
    userId: Type.String(),
    clientId: Type.String(),
    scopes: Type.Array(Type.String()),
    resources: Type.Optional(Type.Array(Type.String())),
    grantedAt: Type.Number(),
  }),
);

/** Consents by user (the account page) and by client (migration 5 backfills both). */
function consents(records: RecordStore): Collection<ConsentData, 'user' | 'client'> {
  return collection(records, {
    name: COLLECTION,
    codec: consentCodec,
    indexes: { user: (consent) => consent.userId, client: (consent) => consent.clientId },
  });
}

const consentId = (userId: string, clientId: string) => `${userId}:${clientId}`;

function coversAll(consent: ConsentData, scopes: readonly string[], resources: readonly string[]): boolean {
  const approved = consent.resources ?? [];
  return scopes.every((scope) => consent.scopes.includes(scope)) && resources.every((resource) => approved.includes(resource));
}

export class Consents {
  readonly #consents: Collection<ConsentData, 'user' | 'client'>;
  readonly #clock: Clock;
  readonly #events: DomainEvents;
  readonly #accountWrite: AccountWrite;

  constructor(options: { records: RecordStore; clock: Clock; events: DomainEvents; accountWrite: AccountWrite }) {
    this.#consents = consents(options.records);
    this.#clock = options.clock;
    this.#events = options.events;
    this.#accountWrite = options.accountWrite;
  }

  /** Whether the user already approved every one of `scopes`, and of `resources`, for this client. */
  async covers(userId: string, clientId: string, scopes: readonly string[], resources: readonly string[] = []): Promise<boolean> {
    const record = await this.#consents.get(consentId(userId, clientId));
    return record !== null && coversAll(record.data, scopes, resources);
  }

  /**
   * Adds `scopes` and `resources` to what the user approved for the client;
   * rejects with AccountGoneError, writing nothing, when the account was
   * erased meanwhile (account-writes.ts).
   */
  async grant(userId: string, clientId: string, scopes: readonly string[], audit: { requestId?: string; ip?: string }, resources: readonly string[] = []): Promise<void> {
    const { result } = await this.#accountWrite(userId, (records) => this.#consents.on(records).mutate(
      consentId(userId, clientId),
      (record) => {
        // Approving again what is already approved (prompt=consent) changes
        // nothing to store, so it costs no durable write; it is still recorded.
        if (record !== null && coversAll(record.data, scopes, resources)) return keep('renewed' as const);
        const data: ConsentData = {
          userId,
          clientId,
          scopes: [...new Set([...(record?.data.scopes ?? []), ...scopes])].sort(),
          resources: [...new Set([...(record?.data.resources ?? []), ...resources])].sort(),
          grantedAt: this.#clock(),
        };
        return write(data, 'granted' as const);
      },
      {
        attempts: MAX_CAS_ATTEMPTS,
        exhausted: () => {
          throw new Error('consent kept losing its compare-and-set');
        },
      },
    ));
    await this.#events.emit({
      type: 'consent.granted',
      outcome: 'success',
      actorUserId: userId,
      clientId,
      ...audit,
      detail: { scope: scopes.join(' ').slice(0, 256), ...(result === 'renewed' && { renewed: true }) },
    });
  }

  async list(userId: string): Promise<Consent[]> {
    return (await this.#consents.findAllBy('user', userId)).map((record) => record.data);
  }

  /** Withdraws the user's consent for a client; resolves whether there was one. */
  async revoke(userId: string, clientId: string, audit: { requestId?: string; ip?: string }): Promise<boolean> {
    const deleted = await this.#consents.delete(consentId(userId, clientId));
    if (deleted) await this.#events.emit({ type: 'consent.revoked', outcome: 'success', actorUserId: userId, clientId, ...audit });
    return deleted;
  }
}
