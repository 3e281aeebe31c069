/**
 * The poll client (RFC 8936): the receiver asks the transmitter's poll
 * endpoint for SETs, and acknowledges in its next request those it has
 * processed. One request (`poll()`), or a long-polling loop (`start()`,
 * `stop()`) with backoff after errors.
 *
 * Per SET received, in the order the response lists them:
 *
 * - verification fails -> reported in the next request's `setErrs`
 *   (RFC 8936 section 2.4): the transmitter learns the SET is refused and
 *   stops re-delivering it; it never reaches the listeners;
 * - the keys cannot be had now (not fetched, or a `kid` the cached key set
 *   lacks during its refetch cool-down: SignalsUnavailableError) ->
 *   neither acknowledged nor reported: it comes again and is verified then;
 * - verified, jti not processed yet -> the listeners; acknowledged in the
 *   next request only once they resolved;
 * - verified, jti processed before (a re-delivery after a lost ack) -> acknowledged again;
 * - a listener fails -> not acknowledged, and not reported as a `setErr`
 *   either (the SET is fine; an error would make the transmitter drop it):
 *   the transmitter re-delivers it and the listeners see it again.
 *
 * Acknowledgements and errors stay pending until a request carrying them
 * got a 200: a request that failed leaves them for the next one.
 *
 * The transmitter sends an unacknowledged SET again on every poll (RFC 8936
 * section 2.4), so after a poll that left SETs unacknowledged the loop waits
 * (backoff, and at least the key set's remaining cool-down) before polling
 * again, rather than spinning on the same SET.
 */
import { Backoff, pause, type BackoffOptions } from './backoff.ts';
import { JtiDeduplicator, type JtiCacheOptions } from './dedup.ts';
import { SetVerificationError, SignalsUnavailableError, type SetErrorCode } from './errors.ts';
import { isObject, requestJson, type HttpOptions } from './fetch.ts';
import { createSsfKeySet, type SetKeySource } from './keys.ts';
import { EventListeners, type SecurityEventListener, type SignalSource } from './listeners.ts';
import { bearer, type TokenProvider } from './token.ts';
import { checkSecureUrl } from './url.ts';
import { verifySecurityEventToken } from './verify.ts';

export interface PollClientOptions extends HttpOptions {
  /** The stream's poll URL (its `delivery.endpoint_url`, SSF 1.0 section 8.1.1). */
  readonly endpoint: string;
  /** Sent as `Authorization: Bearer` on every request; a function is asked each time. */
  readonly token?: TokenProvider;
  readonly issuer: string;
  readonly audience: string;
  /** Default: discovered from `issuer` (createSsfKeySet). */
  readonly keys?: SetKeySource;
  /** At most this many SETs per response (RFC 8936 section 2.2 `maxEvents`). Default 25. */
  readonly maxEvents?: number;
  readonly onEvent?: SecurityEventListener;
  readonly dedup?: JtiCacheOptions;
  /** Waiting after a failed request of the loop. */
  readonly backoff?: BackoffOptions;
  /** The loop waits this long after a response with no SET, in case the transmitter answers long polls at once. Default 1 000 ms. */
  readonly idleDelayMs?: number;
  /** Time allowed for a long poll of the loop; longer than the transmitter holds one. Default 120 000 ms. */
  readonly longPollTimeoutMs?: number;
  /** Failed requests of the loop, refused SETs, failed listeners. */
  readonly onError?: (error: Error) => void;
}

/** What one poll did. */
export interface PollResult {
  /** SETs in the response. */
  readonly received: number;
  /** Passed to the listeners, which resolved. */
  readonly processed: number;
  /** Seen before: acknowledged without the listeners. */
  readonly duplicates: number;
  /** Refused: reported as setErrs. */
  readonly refused: number;
  /** Left unacknowledged (a listener failed, keys out of reach): they come again. */
  readonly retried: number;
  readonly moreAvailable: boolean;
}

/** The poll endpoint answered with something other than 200. */
export class PollRequestError extends Error {
  readonly status: number;
  /** The RFC 8936 section 2.4 `err`, when the body had one. */
  readonly err: string | undefined;

  constructor(status: number, err: string | undefined, description: string | undefined) {
    super(`the poll endpoint answered ${status}${err === undefined ? '' : ` ${err}`}${description === undefined ? '' : `: ${description}`}`);
    this.name = 'PollRequestError';
    this.status = status;
    this.err = err;
  }
}

export interface PollClient extends SignalSource {
  /** One request (returnImmediately true unless told otherwise), carrying the pending acks and errors. Calls run one after another. */
  poll(options?: { readonly returnImmediately?: boolean; readonly signal?: AbortSignal }): Promise<PollResult>;
  /** Starts the long-polling loop; a no-op when it runs. */
  start(): void;
  /** Ends the loop, then sends the pending acks and errors with maxEvents 0 (RFC 8936 section 2.4). */
  stop(): Promise<void>;
}

const RESPONSE_LIMIT = 8 * 1024 * 1024;

class Poller implements PollClient {
  readonly #options: PollClientOptions;
  readonly #endpoint: URL;
  readonly #keys: SetKeySource;
  readonly #listeners: EventListeners;
  readonly #seen: JtiDeduplicator;
  readonly #ack = new Set<string>();
  readonly #setErrs = new Map<string, { err: SetErrorCode; description: string }>();
  /** Polls are serialised: each waits for the one before. */
  #queue: Promise<unknown> = Promise.resolve();
  #loop: { readonly controller: AbortController; readonly done: Promise<void> } | undefined;
  /** Milliseconds the loop waits at least before re-polling: the key set's remaining cool-down. */
  #holdMs = 0;

  constructor(options: PollClientOptions) {
    this.#options = options;
    this.#endpoint = checkSecureUrl(options.endpoint, 'poll endpoint');
    this.#keys = options.keys ?? createSsfKeySet({ issuer: options.issuer, fetch: options.fetch, dispatcher: options.dispatcher, timeoutMs: options.timeoutMs });
    this.#listeners = new EventListeners(options.onEvent);
    this.#seen = new JtiDeduplicator(options.dedup);
  }

  onEvent(listener: SecurityEventListener): () => void {
    return this.#listeners.onEvent(listener);
  }

  poll(options: { readonly returnImmediately?: boolean; readonly signal?: AbortSignal } = {}): Promise<PollResult> {
    const run = this.#queue.then(() => this.#pollOnce(options.returnImmediately ?? true, this.#options.maxEvents ?? 25, options.signal));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  start(): void {
    if (this.#loop !== undefined) return;
    const controller = new AbortController();
    this.#loop = { controller, done: this.#run(controller.signal) };
  }

  async stop(): Promise<void> {
    const loop = this.#loop;
    if (loop !== undefined) {
      loop.controller.abort();
      await loop.done;
      this.#loop = undefined;
    }
    if (this.#ack.size === 0 && this.#setErrs.size === 0) return;
    const flush = this.#queue.then(() => this.#pollOnce(true, 0, undefined));
    this.#queue = flush.catch(() => undefined);
    await flush.catch((error: unknown) => this.#report(error));
  }

  async #run(signal: AbortSignal): Promise<void> {
    const backoff = new Backoff(this.#options.backoff);
    while (!signal.aborted) {
      try {
        const result = await this.poll({ returnImmediately: false, signal });
        if (result.retried > 0) {
          const delay = Math.max(backoff.next(), this.#holdMs);
          this.#holdMs = 0;
          await pause(delay, signal);
          continue;
        }
        backoff.reset();
        if (result.received === 0 && !result.moreAvailable) await pause(this.#options.idleDelayMs ?? 1_000, signal);
      } catch (error) {
        if (signal.aborted) break;
        this.#report(error);
        await pause(backoff.next(), signal);
      }
    }
  }

  async #pollOnce(returnImmediately: boolean, maxEvents: number, signal: AbortSignal | undefined): Promise<PollResult> {
    const ack = [...this.#ack];
    const setErrs = Object.fromEntries(this.#setErrs);
    // RFC 8936 section 2.2: the request members.
    const body = JSON.stringify({ ack, setErrs, maxEvents, returnImmediately });
    const http = returnImmediately ? this.#options : { ...this.#options, timeoutMs: this.#options.longPollTimeoutMs ?? 120_000 };
    const answer = await requestJson(
      this.#endpoint,
      { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json', ...(await bearer(this.#options.token)) }, body },
      http,
      RESPONSE_LIMIT,
      signal,
    );
    if (answer.status !== 200) {
      const error = isObject(answer.json) ? answer.json : {};
      throw new PollRequestError(answer.status, typeof error.err === 'string' ? error.err : undefined, typeof error.description === 'string' ? error.description : undefined);
    }
    // The transmitter has them now: what it re-delivers from here on is acknowledged again.
    for (const jti of ack) this.#ack.delete(jti);
    for (const jti of Object.keys(setErrs)) this.#setErrs.delete(jti);
    const response = isObject(answer.json) ? answer.json : undefined;
    if (response === undefined || !isObject(response.sets)) throw new PollRequestError(200, 'invalid_response', 'the poll response has no sets object (RFC 8936 section 2.3)');
    const counts = { received: 0, processed: 0, duplicates: 0, refused: 0, retried: 0 };
    for (const [jti, jws] of Object.entries(response.sets)) {
      counts.received++;
      counts[await this.#handle(jti, jws)]++;
    }
    return { ...counts, moreAvailable: response.moreAvailable === true };
  }

  async #handle(jti: string, jws: unknown): Promise<'processed' | 'duplicates' | 'refused' | 'retried'> {
    try {
      if (typeof jws !== 'string') throw new SetVerificationError('invalid_request', 'the SET is not a string');
      const event = await verifySecurityEventToken(jws, { issuer: this.#options.issuer, audience: this.#options.audience, keys: this.#keys });
      // RFC 8936 section 2.3: `sets` is keyed by jti; a SET listed under another jti would be acknowledged under the wrong name.
      if (event.jti !== jti) throw new SetVerificationError('invalid_request', `the SET's jti is not the key ${JSON.stringify(jti)} it was delivered under`);
      const outcome = await this.#seen.once(jti, () => this.#listeners.dispatch(event));
      this.#ack.add(jti);
      return outcome === 'processed' ? 'processed' : 'duplicates';
    } catch (error) {
      this.#report(error);
      if (error instanceof SignalsUnavailableError && error.retryAfterMs !== undefined) this.#holdMs = Math.max(this.#holdMs, error.retryAfterMs);
      if (!(error instanceof SetVerificationError)) return 'retried';
      this.#setErrs.set(jti, { err: error.code, description: error.message });
      return 'refused';
    }
  }

  #report(error: unknown): void {
    this.#options.onError?.(error instanceof Error ? error : new Error(String(error)));
  }
}

export function createPollClient(options: PollClientOptions): PollClient {
  return new Poller(options);
}
