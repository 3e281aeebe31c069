/**
 * Load across certificate rotations, bounded by counts rather than time:
 * N keep-alive connections make requests back to back, a few loops make
 * new handshakes, and between rounds the caller rotates something. A
 * round ends when every connection has had its requests answered and the
 * handshake loops have made their handshakes since the last rotation, so
 * every rotation happens under load and every round sees both kinds of
 * traffic, however fast or slow the machine. Used by
 * test/runtime/mtls-rotation.test.ts and bench/rotation.ts.
 */
import { performance } from 'node:perf_hooks';
import { KeepAliveConnection, tlsGet, type TlsTarget } from './tls-client.ts';

export interface RotationLoadOptions {
  readonly target: TlsTarget;
  readonly connections: number;
  readonly handshakeLoops: number;
  /** Rounds of load; `between(1)` runs after the first, ..., `between(rounds - 1)` before the last. */
  readonly rounds: number;
  /** Requests each connection has answered, and handshakes made, before a round ends. */
  readonly requestsPerConnection?: number;
  readonly handshakesPerRound?: number;
  /** Runs between two rounds (a rotation, or nothing for a baseline); the next round starts once it resolves. */
  readonly between: (round: number) => void | Promise<void>;
  readonly path?: string;
}

export interface RotationLoadResult {
  readonly requests: number;
  readonly failedRequests: number;
  /** Keep-alive connections that ended before the load was over (reset, closed by the server). */
  readonly resets: number;
  readonly handshakes: number;
  readonly failedHandshakes: number;
  /** Latency of each keep-alive request, ms. */
  readonly latenciesMs: readonly number[];
  /** Each handshake's serial, with the round it started in (round r began after between(r) returned). */
  readonly handshakeSerials: readonly { readonly round: number; readonly serial: string }[];
  /** The first few errors, to say what went wrong. */
  readonly errors: readonly string[];
}

/** Opens connections a batch at a time: a thousand at once would overflow the listen backlog (511). */
async function openAll(target: TlsTarget, count: number): Promise<KeepAliveConnection[]> {
  const connections: KeepAliveConnection[] = [];
  while (connections.length < count) {
    const batch = Math.min(100, count - connections.length);
    connections.push(...(await Promise.all(Array.from({ length: batch }, () => KeepAliveConnection.open(target)))));
  }
  return connections;
}

export async function runRotationLoad(options: RotationLoadOptions): Promise<RotationLoadResult> {
  const { target, rounds, between } = options;
  const path = options.path ?? '/healthz';
  const requestsPerConnection = options.requestsPerConnection ?? 1;
  const handshakesPerRound = options.handshakesPerRound ?? options.handshakeLoops;
  const connections = await openAll(target, options.connections);

  const errors: string[] = [];
  const latenciesMs: number[] = [];
  const handshakeSerials: { round: number; serial: string }[] = [];
  let requests = 0;
  let failedRequests = 0;
  let handshakes = 0;
  let failedHandshakes = 0;
  let round = 0;
  let stopping = false;
  let aborted = false;
  // Progress of the current round.
  let answered = new Array<number>(connections.length).fill(0);
  let connectionsDone = 0;
  let handshakesDone = 0;
  let roundOver: (() => void) | undefined;

  const failed = (error: unknown) => {
    if (errors.length < 5) errors.push(error instanceof Error ? error.message : String(error));
    // A round that cannot finish must not hang the run: it ends, and the result says why.
    aborted = true;
    roundOver?.();
  };
  const progressed = () => {
    if (connectionsDone === connections.length && handshakesDone >= handshakesPerRound) roundOver?.();
  };

  const requestLoop = async (index: number) => {
    const connection = connections[index]!;
    while (!stopping && !aborted) {
      const started = performance.now();
      try {
        const status = await connection.get(path);
        if (status !== 200) throw new Error(`status ${status}`);
      } catch (error) {
        failedRequests += 1;
        failed(error);
        return;
      }
      latenciesMs.push(performance.now() - started);
      requests += 1;
      answered[index] = answered[index]! + 1;
      if (answered[index] === requestsPerConnection) {
        connectionsDone += 1;
        progressed();
      }
    }
  };
  const handshakeLoop = async () => {
    while (!stopping && !aborted) {
      const startedIn = round;
      try {
        const exchange = await tlsGet(target, path);
        if (exchange.status !== 200) throw new Error(`status ${exchange.status}`);
        handshakeSerials.push({ round: startedIn, serial: exchange.serverSerial });
        handshakes += 1;
      } catch (error) {
        failedHandshakes += 1;
        failed(error);
        return;
      }
      handshakesDone += 1;
      progressed();
    }
  };

  const roundEnded = () =>
    new Promise<void>((resolve) => {
      roundOver = resolve;
      if (aborted) resolve();
      progressed();
    });
  let resets = 0;
  const loops = [...connections.map((_, index) => requestLoop(index)), ...Array.from({ length: options.handshakeLoops }, () => handshakeLoop())];
  try {
    for (let next = 1; next <= rounds; next += 1) {
      await roundEnded();
      if (aborted || next === rounds) break;
      await between(next);
      answered = new Array<number>(connections.length).fill(0);
      connectionsDone = 0;
      handshakesDone = 0;
      round = next;
    }
  } finally {
    stopping = true;
    await Promise.all(loops);
    resets = connections.filter((connection) => connection.endedEarly).length;
    for (const connection of connections) connection.close();
  }
  return { requests, resets, failedRequests, handshakes, failedHandshakes, latenciesMs, handshakeSerials, errors };
}
