/**
 * A log entry as one stream's Security Event Token (RFC 8417, SSF 1.0
 * section 4): signed by the keyring with the stream's algorithm, typ
 * `secevent+jwt`, one event, the subject in `sub_id`.
 *
 * The `jti` is derived from the stream and the sequence number, so a SET
 * sent twice (at-least-once delivery, a resumed socket, a re-poll) carries
 * the same `jti` and the receiver's deduplication works (RFC 8417 section
 * 2.2, RFC 8935 section 2: receivers deduplicate by `jti`).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { signJwtAsync, type Keyring, type SigningAlgorithm } from '../tokens/index.ts';
import { SET_TYP } from '../sdk/index.ts';
import { subjectOf } from './log.ts';
import type { LogEntry } from './records.ts';

/** Algorithms a receiver may choose for its SETs (issue 13). */
export const SET_ALGORITHMS = ['ES256', 'EdDSA', 'RS256'] as const satisfies readonly SigningAlgorithm[];
export type SetAlgorithm = (typeof SET_ALGORITHMS)[number];
export const DEFAULT_SET_ALGORITHM: SetAlgorithm = 'ES256';

export function isSetAlgorithm(value: unknown): value is SetAlgorithm {
  return typeof value === 'string' && (SET_ALGORITHMS as readonly string[]).includes(value);
}

function tag(streamId: string, seq: number): string {
  return createHash('sha256').update(`portcullis/set-jti\0${streamId}\0${seq}`).digest('base64url').slice(0, 16);
}

/** The SET id of `seq` on a stream: the sequence number (for acks) and a tag that ties it to the stream. */
export function setJti(streamId: string, seq: number): string {
  return `${seq}-${tag(streamId, seq)}`;
}

/** The sequence number a `jti` of this stream names, or undefined for one it never sent. */
export function seqOfJti(streamId: string, jti: string): number | undefined {
  const match = /^([1-9][0-9]{0,15})-([A-Za-z0-9_-]{16})$/.exec(jti);
  if (match === null) return undefined;
  const seq = Number(match[1]);
  const expected = Buffer.from(tag(streamId, seq));
  const given = Buffer.from(match[2]!);
  return expected.length === given.length && timingSafeEqual(expected, given) ? seq : undefined;
}

export interface SetStream {
  readonly id: string;
  readonly alg: string;
  readonly aud: readonly string[];
}

/**
 * Signs entries for streams, keeping recent results: many sockets of one
 * stream share one signature, also while it is being made (the promise is
 * kept, so sockets woken together by one append do not each sign).
 */
export class SetSigner {
  readonly #keyring: Pick<Keyring, 'signingKey'>;
  readonly #issuer: string;
  readonly #cache = new Map<string, Promise<string>>();
  readonly #cacheSize: number;

  constructor(keyring: Pick<Keyring, 'signingKey'>, issuer: string, cacheSize = 10_000) {
    this.#keyring = keyring;
    this.#issuer = issuer;
    this.#cacheSize = cacheSize;
  }

  async sign(stream: SetStream, entry: LogEntry): Promise<{ jti: string; set: string }> {
    const jti = setJti(stream.id, entry.seq);
    const signing = this.#keyring.signingKey(stream.alg as SetAlgorithm);
    // By key id too: after a rotation or revocation, SETs are signed again with the current key.
    const key = `${stream.id}\0${signing.kid}\0${entry.seq}`;
    const cached = this.#cache.get(key);
    if (cached !== undefined) return { jti, set: await cached };
    const signed = signJwtAsync(
      signing,
      {
        iss: this.#issuer,
        jti,
        // The event's time, not the signing time: a SET signed again is the same SET.
        iat: Math.floor(entry.time / 1000),
        aud: stream.aud.length === 1 ? stream.aud[0] : [...stream.aud],
        txn: entry.txn,
        sub_id: subjectOf(entry),
        events: { [entry.type]: entry.members },
      },
      { typ: SET_TYP },
    );
    this.#cache.set(key, signed);
    // A failed signature is not kept: the next send signs again.
    signed.catch(() => this.#cache.delete(key));
    if (this.#cache.size > this.#cacheSize) this.#cache.delete(this.#cache.keys().next().value!);
    return { jti, set: await signed };
  }
}
