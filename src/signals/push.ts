/**
 * Push delivery (RFC 8935): each push stream's SETs are POSTed to its
 * receiver one at a time, in order, and its cursor moves only when the
 * receiver answered 202 (or refused that SET for good with a 400 error
 * code, section 2.4, which a retry would not change). A failure keeps the
 * SET at the head of the stream and retries with a doubling delay up to a
 * ceiling; a receiver failing for `signals.maxRetryHours` has its stream
 * paused by the transmitter, and the next delivery that works (probed at
 * the ceiling) resumes it from where it stopped.
 *
 * One instance pushes a given stream at a time: a lease in the hot store.
 */
import { leaseHolderGone, processLeaseHolder, type HotStore } from '../store/index.ts';
import { DELIVERY_METHODS, SET_MEDIA_TYPE } from '../sdk/index.ts';
import { OutboundAddressError, postBody } from '../net/index.ts';
import type { StreamRecord } from './records.ts';
import type { Transmitter } from './transmitter.ts';

const LEASE_PREFIX = 'signals:push:';
/** SETs pushed per stream per round, so one busy stream does not starve the others. */
const PER_ROUND = 50;
const BASE_DELAY_MS = 1000;

export type PushOutcome = { readonly kind: 'delivered' } | { readonly kind: 'refused'; readonly error: string } | { readonly kind: 'failed'; readonly error: string };

export interface PushWorkerOptions {
  readonly transmitter: Transmitter;
  readonly hot: Pick<HotStore, 'setIfAbsent' | 'get' | 'delete' | 'getVersioned' | 'compareAndSet'>;
  /** Whether a stream's client may still receive (it exists and an operator approved it): checked before every push. */
  readonly mayReceive: (clientId: string) => Promise<boolean>;
  /** How long a stream whose client may not receive, or whose lease another instance holds, is left alone (ms; default 5 s). */
  readonly skipMs?: number;
  /** Streams pushed at once (default 8): one slow receiver never holds the others. */
  readonly concurrency?: number;
  /** How often streams are looked at without a wake-up (ms). */
  readonly intervalMs?: number;
  readonly onError?: (error: unknown) => void;
}

export class PushWorker {
  readonly #options: PushWorkerOptions;
  readonly #holder = processLeaseHolder();
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #again = false;
  #stopped = false;
  #saturated = false;
  /** Streams being pushed by this instance, and their push. */
  readonly #inFlight = new Map<string, Promise<void>>();
  /** Streams a kick found in flight: looked at again when their push ends (an append may have come after its last read). */
  readonly #dirty = new Set<string>();
  /** Streams left alone until then: a client that may not receive, a lease held elsewhere. */
  readonly #skipUntil = new Map<string, number>();
  #unlisten: (() => void) | undefined;

  constructor(options: PushWorkerOptions) {
    this.#options = options;
  }

  start(): void {
    this.#unlisten = this.#options.transmitter.onAppended(() => this.kick());
    const tick = (): void => {
      // The head as stored: an append whose wake-up this instance missed still makes its streams due.
      void this.#options.transmitter
        .refreshHead()
        .catch((error: unknown) => this.#options.onError?.(error))
        .finally(() => this.kick());
      this.#timer = setTimeout(tick, this.#options.intervalMs ?? 1000);
      this.#timer.unref();
    };
    tick();
  }

  /**
   * Looks for due streams now (or right after the scan in flight) and
   * starts pushing each that is not already being pushed here, up to the
   * concurrency: a stream's push in flight never holds the others.
   */
  kick(): void {
    if (this.#stopped) return;
    if (this.#running !== undefined) {
      this.#again = true;
      return;
    }
    this.#running = this.#scan()
      .catch((error: unknown) => this.#options.onError?.(error))
      .finally(() => {
        this.#running = undefined;
        if (this.#again) {
          this.#again = false;
          this.kick();
        }
      });
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#unlisten?.();
    await this.#running;
    await Promise.all(this.#inFlight.values());
  }

  /** One scan, then waits for every push it started (tests and one-shot use). */
  async runOnce(): Promise<void> {
    await this.#scan();
    await Promise.all(this.#inFlight.values());
  }

  async #scan(): Promise<void> {
    const { transmitter } = this.#options;
    const concurrency = this.#options.concurrency ?? 8;
    const now = transmitter.now();
    let after: string | undefined;
    for (;;) {
      const page = await transmitter.streams.list({ limit: 200, ...(after !== undefined && { after }) });
      for (const record of page) {
        if (this.#stopped) return;
        const id = record.id;
        if (this.#inFlight.has(id)) {
          this.#dirty.add(id);
          continue;
        }
        if ((this.#skipUntil.get(id) ?? 0) > now || !isDue(record.data, now, transmitter.known)) continue;
        if (this.#inFlight.size >= concurrency) {
          // Full: the next push to end looks again (pushed streams are no longer due, so the later ones get their turn).
          this.#saturated = true;
          return;
        }
        this.#start(id);
      }
      if (page.length < 200) return;
      after = page.at(-1)!.id;
    }
  }

  #start(id: string): void {
    const push = this.#pushStream(id)
      .catch((error: unknown) => {
        this.#options.onError?.(error);
        return false;
      })
      .then((more) => {
        this.#inFlight.delete(id);
        const dirty = this.#dirty.delete(id);
        if (more || dirty || this.#saturated) {
          this.#saturated = false;
          // After the current turn: a scan never follows a scan without the event loop running between.
          setImmediate(() => this.kick());
        }
      });
    this.#inFlight.set(id, push);
  }

  /** Pushes what a stream is owed, up to one round; resolves true when it stopped with more to send. */
  async #pushStream(streamId: string): Promise<boolean> {
    const { transmitter, hot } = this.#options;
    const lease = LEASE_PREFIX + streamId;
    // Longer than the most a round can take (each push has one deadline), so it cannot lapse while this instance pushes.
    const leaseMs = transmitter.settings.pushTimeoutMs * (PER_ROUND + 2);
    if (!(await hot.setIfAbsent(lease, this.#holder, leaseMs)) && !(await this.#takeOver(lease, leaseMs))) {
      // Another instance pushes it now.
      this.#skip(streamId);
      return false;
    }
    try {
      // Read again under the lease: another instance may have pushed, or the receiver paused, since the list was read.
      const record = await transmitter.streams.get(streamId);
      if (record === null || !isDue(record.data, transmitter.now(), transmitter.known)) return false;
      let stream = record.data;
      for (let sent = 0; sent < PER_ROUND && !this.#stopped; ) {
        const selection = await transmitter.owed(streamId, { ...stream, acked: [] }, 1);
        if (selection.cursor > stream.cursor) stream = (await transmitter.advance(streamId, selection.cursor)) ?? stream;
        const entry = selection.entries[0];
        if (entry === undefined) return false;
        // Before every push: a deleted or no longer approved client receives nothing more (its stream waits, or goes with the client).
        if (!(await this.#options.mayReceive(stream.clientId))) {
          this.#skip(streamId);
          return false;
        }
        const { set } = await transmitter.signer.sign({ id: streamId, alg: stream.alg, aud: stream.aud }, entry);
        const outcome = await this.push(stream, set);
        sent++;
        const next = await this.#record(streamId, entry.seq, outcome);
        if (next === null || outcome.kind === 'failed') return false;
        stream = next;
      }
      return !this.#stopped;
    } finally {
      if ((await hot.get(lease)) === this.#holder) await hot.delete(lease);
    }
  }

  /**
   * Takes a stream's lease whose holder was killed in this kernel and pid
   * namespace (kill -9; lease-holder.ts): it would otherwise hold the stream
   * for 52 push timeouts. Only if the lease is still that holder's
   * (compare-and-set on its version).
   */
  async #takeOver(lease: string, leaseMs: number): Promise<boolean> {
    const { hot } = this.#options;
    const current = await hot.getVersioned(lease);
    return current !== null && leaseHolderGone(current.value) && (await hot.compareAndSet(lease, current.version, this.#holder, leaseMs)) !== null;
  }

  #skip(streamId: string): void {
    this.#skipUntil.set(streamId, this.#options.transmitter.now() + (this.#options.skipMs ?? 5_000));
    if (this.#skipUntil.size > 10_000) this.#skipUntil.delete(this.#skipUntil.keys().next().value!);
  }

  /** RFC 8935 section 2: POST the SET; 202 accepted, 400 with an error code refused, anything else a failure to retry. */
  async push(stream: StreamRecord, set: string): Promise<PushOutcome> {
    const { transmitter } = this.#options;
    const authorization = transmitter.manager.authorizationOf(stream);
    try {
      const response = await postBody(stream.endpointUrl!, set, SET_MEDIA_TYPE, {
        publicOnly: !transmitter.settings.pushPrivateNetworks,
        timeoutMs: transmitter.settings.pushTimeoutMs,
        headers: { accept: 'application/json', ...(authorization !== undefined && { authorization }) },
      });
      if (response.status === 202 || response.status === 200 || response.status === 204) return { kind: 'delivered' };
      if (response.status === 400) {
        const code = errorCode(response.body);
        if (code !== undefined) return { kind: 'refused', error: code };
      }
      return { kind: 'failed', error: `HTTP ${response.status}` };
    } catch (error) {
      return { kind: 'failed', error: error instanceof OutboundAddressError ? 'the endpoint is not on the public internet' : 'no answer (connection failed or timed out)' };
    }
  }

  async #record(streamId: string, seq: number, outcome: PushOutcome): Promise<StreamRecord | null> {
    const { transmitter } = this.#options;
    const now = transmitter.now();
    const settings = transmitter.settings;
    const result = await transmitter.streams.mutate(
      streamId,
      (current) => {
        if (current === null) return { kind: 'keep', result: undefined } as const;
        const was = current.data;
        if (outcome.kind !== 'failed') {
          const next: StreamRecord = { ...was, cursor: Math.max(was.cursor, seq), attempts: 0 };
          delete next.failingSince;
          delete next.nextAttemptAt;
          if (outcome.kind === 'refused') next.lastError = `receiver refused: ${outcome.error}`;
          // The receiver answers again: a pause the transmitter made is over.
          if (was.status === 'paused' && was.statusBy === 'transmitter') {
            next.status = 'enabled';
            delete next.statusReason;
            delete next.statusBy;
          }
          return { kind: 'write', value: next, result: undefined } as const;
        }
        const failingSince = was.failingSince ?? now;
        const attempts = was.attempts + 1;
        const delay = Math.min(settings.retryCeilingMs, BASE_DELAY_MS * 2 ** Math.min(attempts - 1, 30));
        const next: StreamRecord = { ...was, failingSince, attempts, nextAttemptAt: now + delay, lastError: outcome.error };
        if (was.status === 'enabled' && now - failingSince >= settings.maxRetryMs) {
          next.status = 'paused';
          next.statusBy = 'transmitter';
          next.statusReason = `The receiver has not accepted events since ${new Date(failingSince).toISOString()}.`;
        }
        return { kind: 'write', value: next, result: undefined } as const;
      },
      { attempts: 8, exhausted: () => undefined },
    );
    return result.record?.data ?? null;
  }
}

/** Whether a push stream should be tried now: enabled, or paused by the transmitter (to probe), past its backoff, and behind the log's head. */
function isDue(stream: StreamRecord, now: number, head: number): boolean {
  if (stream.method !== DELIVERY_METHODS.push) return false;
  const active = stream.status === 'enabled' || (stream.status === 'paused' && stream.statusBy === 'transmitter');
  // Owed something: the log has grown past its cursor (a stream all caught up is not pushed at all).
  return active && stream.cursor < head && (stream.nextAttemptAt === undefined || stream.nextAttemptAt <= now);
}

/** RFC 8935 section 2.4: `{"err": code, "description": text}`. */
function errorCode(body: string): string | undefined {
  try {
    const value = JSON.parse(body) as { err?: unknown };
    return typeof value.err === 'string' && /^[a-z_]{1,64}$/.test(value.err) ? value.err : undefined;
  } catch {
    return undefined;
  }
}
