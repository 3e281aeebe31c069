/**
 * Codecs: what a typed collection stores, checked at the boundary. A stored
 * document is JSON that another build, an operator or a restore may have
 * written; a codec turns it into the type the feature works with, or says
 * precisely what is wrong, instead of a `get<T>` cast that lets a malformed
 * record travel on until something far away breaks.
 *
 * Two ways to make one: a TypeBox schema (`typeboxCodec`, checked by
 * TypeBox's compiled checker), or a hand-written decode function (`codec`)
 * where the rules are not structural (a key must open, a scheme must be
 * known).
 */
import type { Static, TSchema } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';

export interface Codec<T> {
  /** The stored JSON as a T; throws a {@link CodecError} when it is not one. */
  decode(data: unknown): T;
  /** The JSON to store for a T; throws a {@link CodecError} for a value that must not be stored. */
  encode(value: T): unknown;
}

/** A value does not have the shape its codec expects. */
export class CodecError extends Error {
  override readonly name = 'CodecError';
  /** JSON pointer (RFC 6901) of the first offending value, '' for the whole document. */
  readonly path: string;
  constructor(path: string, message: string) {
    super(path === '' ? message : `${path}: ${message}`);
    this.path = path;
  }
}

/**
 * A stored record of a collection failed its codec. The message names the
 * collection and the offending path, never the record's id or values (ids
 * can be e-mail addresses, values secrets' hashes).
 */
export class RecordCodecError extends Error {
  override readonly name = 'RecordCodecError';
  readonly collection: string;
  readonly direction: 'decode' | 'encode';
  constructor(collection: string, direction: 'decode' | 'encode', cause: CodecError) {
    super(
      direction === 'decode'
        ? `a stored ${collection} record does not have the expected shape (${cause.message})`
        : `refusing to store a malformed ${collection} record (${cause.message})`,
      { cause },
    );
    this.collection = collection;
    this.direction = direction;
  }
}

/**
 * A codec that checks against a TypeBox schema, both ways. Properties the
 * schema does not name are kept (a newer build may add fields an older one
 * carries through), so schemas should not set `additionalProperties: false`
 * unless that is the rule.
 */
export function typeboxCodec<S extends TSchema>(schema: S): Codec<Static<S>> {
  const checker = TypeCompiler.Compile(schema);
  const check = (value: unknown): Static<S> => {
    if (checker.Check(value)) return value;
    const first = checker.Errors(value).First();
    throw new CodecError(first?.path ?? '', first?.message ?? 'does not match the schema');
  };
  return { decode: check, encode: check };
}

/** A codec from a hand-written decoder; `encode` defaults to storing the value as it is. */
export function codec<T>(decode: (data: unknown) => T, encode: (value: T) => unknown = (value) => value): Codec<T> {
  return { decode, encode };
}
