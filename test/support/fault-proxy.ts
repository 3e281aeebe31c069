/**
 * A TCP fault proxy for the partition tests (issue 16): it listens on a free
 * loopback port and forwards every connection to a target, and the test
 * switches what the "network" does at any moment:
 *
 * - `pass()`: bytes flow both ways as they come;
 * - `latency(ms)`: each chunk, both ways, is delivered `ms` later (in order);
 * - `blackhole()`: connections are accepted and read, but nothing is
 *   forwarded and nothing answered, on new and existing connections alike.
 *   What was read is held, as a partition holds TCP segments, and delivered
 *   in order if the route comes back (`pass()` or `latency()`), unless a side
 *   has given up on its connection meanwhile;
 * - `drop()`: every current connection is reset (both sides); new ones are
 *   accepted and forwarded (the mode is `pass` afterwards);
 * - `close()`: stops listening and closes every connection.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import { once } from 'node:events';

export type FaultMode = { readonly kind: 'pass' } | { readonly kind: 'latency'; readonly ms: number } | { readonly kind: 'blackhole' };

export interface FaultProxy {
  readonly port: number;
  /** The mode in force. */
  readonly mode: FaultMode;
  /** Connections the proxy holds now (each a client and its upstream). */
  readonly connections: number;
  /** Connections accepted since the start. */
  readonly accepted: number;
  pass(): void;
  latency(ms: number): void;
  blackhole(): void;
  drop(): void;
  close(): Promise<void>;
}

interface Pending {
  readonly chunk: Buffer;
  /** When to write it (performance.now() ms); Infinity while black-holed. */
  due: number;
}

/** One direction of one connection: chunks read from `from`, written to `to` when due, in order. */
class Lane {
  readonly #to: Socket;
  readonly #queue: Pending[] = [];
  #timer: NodeJS.Timeout | undefined;

  constructor(from: Socket, to: Socket, dueOf: () => number) {
    this.#to = to;
    from.on('data', (chunk: Buffer) => {
      this.#queue.push({ chunk, due: dueOf() });
      this.pump();
    });
  }

  /** The held chunks (black-holed) become due at `due`. */
  release(due: number): void {
    for (const pending of this.#queue) if (pending.due === Infinity) pending.due = due;
    this.pump();
  }

  pump(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const now = performance.now();
    while (this.#queue.length > 0 && this.#queue[0]!.due <= now) {
      const { chunk } = this.#queue.shift()!;
      if (!this.#to.destroyed) this.#to.write(chunk);
    }
    const head = this.#queue[0];
    if (head !== undefined && head.due !== Infinity) this.#timer = setTimeout(() => this.pump(), Math.max(0, head.due - now));
  }

  stop(): void {
    clearTimeout(this.#timer);
    this.#queue.length = 0;
  }
}

interface Connection {
  readonly client: Socket;
  readonly upstream: Socket;
  readonly lanes: readonly Lane[];
}

export async function startFaultProxy(target: { host: string; port: number }): Promise<FaultProxy> {
  let mode: FaultMode = { kind: 'pass' };
  let accepted = 0;
  const open = new Set<Connection>();
  const dueOf = (): number => {
    switch (mode.kind) {
      case 'pass':
        return performance.now();
      case 'latency':
        return performance.now() + mode.ms;
      case 'blackhole':
        return Infinity;
    }
  };

  const cut = (connection: Connection, reset: boolean): void => {
    if (!open.delete(connection)) return;
    for (const lane of connection.lanes) lane.stop();
    for (const socket of [connection.client, connection.upstream]) {
      // A reset (RST), as a dead route or a middlebox would, on a fully open socket only.
      if (reset && !socket.destroyed && socket.readyState === 'open') socket.resetAndDestroy();
      else socket.destroy();
    }
  };

  const server: Server = createServer((client) => {
    accepted += 1;
    const upstream = connect({ host: target.host, port: target.port });
    const connection: Connection = { client, upstream, lanes: [new Lane(client, upstream, dueOf), new Lane(upstream, client, dueOf)] };
    open.add(connection);
    for (const socket of [client, upstream]) {
      socket.setNoDelay(true);
      // One side gone (closed, reset, refused): the other goes too, as a dead route would end it.
      socket.on('error', () => cut(connection, false));
      socket.on('close', () => cut(connection, false));
    }
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('the fault proxy has no TCP address');

  const switchTo = (next: FaultMode): void => {
    mode = next;
    if (next.kind === 'blackhole') return;
    const due = dueOf();
    for (const connection of open) for (const lane of connection.lanes) lane.release(due);
  };

  return {
    port: address.port,
    get mode() {
      return mode;
    },
    get connections() {
      return open.size;
    },
    get accepted() {
      return accepted;
    },
    pass: () => switchTo({ kind: 'pass' }),
    latency: (ms: number) => {
      if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`latency must be a non-negative number of ms, got ${String(ms)}`);
      switchTo({ kind: 'latency', ms });
    },
    blackhole: () => switchTo({ kind: 'blackhole' }),
    drop: () => {
      mode = { kind: 'pass' };
      for (const connection of [...open]) cut(connection, true);
    },
    close: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      // A plain close here: a reset of a half-closed socket can leave Node spinning (seen with Node 26).
      for (const connection of [...open]) cut(connection, false);
      await closed;
    },
  };
}
