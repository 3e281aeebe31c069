/**
 * Revocations of access tokens, kept in the durable store beside the hot
 * store's marks (access-tokens.ts). A hot store without persistence that
 * restarts, or fails over to an empty replica, loses its marks, and a
 * revoked token must not become usable again (RFC 7009 section 2): these
 * records are what the marks are checked against and put back from.
 *
 * One record per revoked token (`jti:<jti>`) and per ended session
 * (`sid:<sid>`, the `sid` claim, itself a hash of the session handle),
 * holding only when its hot mark lapses; swept once that has passed.
 */
import { Type } from '@sinclair/typebox';
import { collection, keep, typeboxCodec, write, type Clock, type Codec, type Collection, type RecordStore } from '../store/index.ts';

const COLLECTION = 'oauth_revocations';

interface Revocation {
  /** When the hot mark lapses (ms since the epoch): every token it covers has expired by then, at every instance. */
  readonly until: number;
}

const revocationCodec: Codec<Revocation> = typeboxCodec(Type.Object({ until: Type.Number() }));

/** What was revoked: one token by its `jti`, or every token of a session by its `sid`. */
export type RevokedKind = 'jti' | 'sid';

export interface KeptRevocation {
  readonly kind: RevokedKind;
  readonly value: string;
  readonly until: number;
}

const PAGE = 500;
/**
 * Records read per sweep (hourly): bounded, so one run never holds the
 * store for long; each run goes on where the last stopped, so the whole
 * collection is visited as long as fewer revocations than this arrive per
 * hour (then it grows until the rate falls; nothing is lost).
 */
const SWEEP_PAGES = 40;

export class RevocationRecords {
  readonly #records: Collection<Revocation>;
  readonly #clock: Clock;
  /** Where the next sweep starts (the last id the previous one read). */
  #sweepAfter: string | undefined;

  constructor(options: { records: RecordStore; clock: Clock }) {
    this.#records = collection(options.records, { name: COLLECTION, codec: revocationCodec });
    this.#clock = options.clock;
  }

  /** Keeps a revocation until `until`; one kept already is extended, never shortened (a session ended twice). */
  async remember(kind: RevokedKind, value: string, until: number): Promise<void> {
    const id = `${kind}:${value}`;
    if (await this.#records.create(id, { until })) return;
    await this.#records.mutate(id, (current) => (current !== null && current.data.until >= until ? keep(undefined) : write({ until }, undefined)), {
      attempts: 4,
      // Every attempt lost to a concurrent write of the same revocation: it is kept.
      exhausted: () => undefined,
    });
  }

  /** Whether the token, or its session, was revoked (a record is kept while the token can live). */
  async revoked(jti: string, sid: string | undefined): Promise<boolean> {
    const [token, session] = await Promise.all([this.#records.get(`jti:${jti}`), sid === undefined ? null : this.#records.get(`sid:${sid}`)]);
    return token !== null || session !== null;
  }

  /** The revocations whose hot marks have not lapsed yet, a page at a time. */
  async *unexpired(): AsyncGenerator<KeptRevocation[]> {
    for (let after: string | undefined; ; ) {
      const page = await this.#records.list({ limit: PAGE, ...(after !== undefined && { after }) });
      const now = this.#clock();
      yield page.flatMap((record) => {
        const colon = record.id.indexOf(':');
        const kind = record.id.slice(0, colon);
        return record.data.until > now && (kind === 'jti' || kind === 'sid') ? [{ kind, value: record.id.slice(colon + 1), until: record.data.until }] : [];
      });
      if (page.length < PAGE) return;
      after = page.at(-1)!.id;
    }
  }

  /** Deletes lapsed records, at most SWEEP_PAGES pages of them per call. Resolves with how many were deleted. */
  async sweep(): Promise<number> {
    let deleted = 0;
    for (let pages = 0; pages < SWEEP_PAGES; pages++) {
      const page = await this.#records.list({ limit: PAGE, ...(this.#sweepAfter !== undefined && { after: this.#sweepAfter }) });
      const now = this.#clock();
      // A record extended meanwhile has a new version: the delete misses it, as it should.
      for (const record of page) if (record.data.until <= now && (await this.#records.delete(record.id, record.version))) deleted += 1;
      this.#sweepAfter = page.length < PAGE ? undefined : page.at(-1)!.id;
      if (this.#sweepAfter === undefined) break;
    }
    return deleted;
  }
}
