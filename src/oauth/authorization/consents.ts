/**
 * Consent, remembered per user and client as the set of scopes and the set
 * of resources (RFC 8707 audiences) the user approved (OIDC Core section
 * 3.1.2.4). A request within both sets needs no new consent; a wider one,
 * or one for another resource, asks again (RFC 9700 section 2.3). The user withdraws it from the
 * account page. Stored durably: `consents/<user>:<client>`, so one user's
 * consents are one id range.
 */
import type { DomainEvents } from '../../events/index.ts';
import type { Clock, RecordStore } from '../../store/index.ts';

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

const consentId = (userId: string, clientId: string) => `${userId}:${clientId}`;

function coversAll(consent: ConsentData, scopes: readonly string[], resources: readonly string[]): boolean {
  const approved = consent.resources ?? [];
  return scopes.every((scope) => consent.scopes.includes(scope)) && resources.every((resource) => approved.includes(resource));
}

export class Consents {
  readonly #records: RecordStore;
  readonly #clock: Clock;
  readonly #events: DomainEvents;

  constructor(options: { records: RecordStore; clock: Clock; events: DomainEvents }) {
    this.#records = options.records;
    this.#clock = options.clock;
    this.#events = options.events;
  }

  /** Whether the user already approved every one of `scopes`, and of `resources`, for this client. */
  async covers(userId: string, clientId: string, scopes: readonly string[], resources: readonly string[] = []): Promise<boolean> {
    const record = await this.#records.get<ConsentData>(COLLECTION, consentId(userId, clientId));
    return record !== null && coversAll(record.data, scopes, resources);
  }

  /** Adds `scopes` and `resources` to what the user approved for the client. */
  async grant(userId: string, clientId: string, scopes: readonly string[], audit: { requestId?: string; ip?: string }, resources: readonly string[] = []): Promise<void> {
    const id = consentId(userId, clientId);
    for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
      const record = await this.#records.get<ConsentData>(COLLECTION, id);
      // Approving again what is already approved (prompt=consent) changes
      // nothing to store, so it costs no durable write; it is still recorded.
      const covered = record !== null && coversAll(record.data, scopes, resources);
      if (covered) {
        await this.#events.emit({ type: 'consent.granted', outcome: 'success', actorUserId: userId, clientId, ...audit, detail: { scope: scopes.join(' ').slice(0, 256), renewed: true } });
        return;
      }
      const data: ConsentData = {
        userId,
        clientId,
        scopes: [...new Set([...(record?.data.scopes ?? []), ...scopes])].sort(),
        resources: [...new Set([...(record?.data.resources ?? []), ...resources])].sort(),
        grantedAt: this.#clock(),
      };
      const written = record === null ? await this.#records.create(COLLECTION, id, data) : (await this.#records.update(COLLECTION, id, record.version, data)) !== null;
      if (written) {
        await this.#events.emit({ type: 'consent.granted', outcome: 'success', actorUserId: userId, clientId, ...audit, detail: { scope: scopes.join(' ').slice(0, 256) } });
        return;
      }
    }
    throw new Error('consent kept losing its compare-and-set');
  }

  async list(userId: string): Promise<Consent[]> {
    const prefix = `${userId}:`;
    const found: Consent[] = [];
    let after = prefix;
    for (;;) {
      const page = await this.#records.list<ConsentData>(COLLECTION, { after, limit: 200 });
      for (const record of page) {
        if (!record.id.startsWith(prefix)) return found;
        found.push(record.data);
      }
      if (page.length < 200) return found;
      after = page.at(-1)!.id;
    }
  }

  /** Withdraws the user's consent for a client; resolves whether there was one. */
  async revoke(userId: string, clientId: string, audit: { requestId?: string; ip?: string }): Promise<boolean> {
    const deleted = await this.#records.delete(COLLECTION, consentId(userId, clientId));
    if (deleted) await this.#events.emit({ type: 'consent.revoked', outcome: 'success', actorUserId: userId, clientId, ...audit });
    return deleted;
  }
}
