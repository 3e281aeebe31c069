/**
 * TLS session resumption for the client, tied to one generation of
 * material. A resumed session carries the identity of the handshake that
 * made it (RFC 8446 section 2.2: the PSK stands for the original
 * authentication), so after a rotation a resumed connection would present
 * the old certificate to the server. Rotation therefore drops every
 * session, and a session that arrives later from a connection made with
 * the old material is not kept.
 */
import type { TLSSocket } from 'node:tls';

export class SessionCache {
  readonly #max: number;
  /** key -> session ticket; Map order is insertion order, so the first entry is the oldest. */
  readonly #sessions = new Map<string, Buffer>();
  #generation = 0;

  /** At most `max` sessions (0: no resumption). */
  constructor(max: number) {
    if (!Number.isInteger(max) || max < 0) throw new TypeError('maxCachedSessions is a whole number, 0 or more');
    this.#max = max;
  }

  get(key: string): Buffer | undefined {
    return this.#sessions.get(key);
  }

  /** Keeps the sessions `socket` receives under `key`, unless the material changed since it was opened; forgets the key if it closes on an error. */
  track(key: string, socket: TLSSocket): void {
    if (this.#max === 0) return;
    const generation = this.#generation;
    socket.on('session', (session: Buffer) => {
      if (generation !== this.#generation) return;
      this.#sessions.delete(key);
      this.#sessions.set(key, session);
      if (this.#sessions.size > this.#max) this.#sessions.delete(this.#sessions.keys().next().value!);
    });
    socket.once('close', (hadError: boolean) => {
      if (hadError && generation === this.#generation) this.#sessions.delete(key);
    });
  }

  /** New material: nothing cached so far may be resumed. */
  clear(): void {
    this.#generation++;
    this.#sessions.clear();
  }
}
