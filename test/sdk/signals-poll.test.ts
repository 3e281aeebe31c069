/**
 * createPollClient (RFC 8936) against an in-test poll endpoint on the
 * transmitter stand-in: it keeps the SETs not yet acknowledged, records
 * every request body, answers up to maxEvents of them, and holds a long
 * poll until a SET is queued. Synchronisation is by promises (a listener
 * call, a request recorded), never by sleeping.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ManualClock } from '../support/clock.ts';
import { AUDIENCE, setClaims, signingKey, signSet, startTransmitter, type Transmitter } from '../support/signals.ts';
import { createPollClient, createSsfKeySet, PollRequestError, type PollClientOptions, type SecurityEventToken } from '../../src/sdk/signals/index.ts';

const TOKEN = 'poll-access-token';

interface PollRequest {
  readonly ack: string[];
  readonly setErrs: Record<string, { err: string; description: string }>;
  readonly maxEvents: number;
  readonly returnImmediately: boolean;
  readonly authorization: string | undefined;
}

/** The transmitter's side of RFC 8936, as small as the tests need. */
class PollEndpoint {
  readonly pending = new Map<string, string>();
  readonly requests: PollRequest[] = [];
  /** Answers to give before the normal ones (status codes). */
  readonly failWith: number[] = [];
  /** When set, acks are not honoured (a lost acknowledgement). */
  ignoreAcks = false;
  #held: (() => void)[] = [];
  #requestWaiters: ((request: PollRequest) => void)[] = [];

  queue(jti: string, jws: string): void {
    this.pending.set(jti, jws);
    for (const release of this.#held.splice(0)) release();
  }

  /** The next request the endpoint receives. */
  nextRequest(): Promise<PollRequest> {
    return new Promise((resolve) => this.#requestWaiters.push(resolve));
  }

  readonly handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Omit<PollRequest, 'authorization'>;
    const request = { ...body, authorization: req.headers.authorization };
    this.requests.push(request);
    for (const waiter of this.#requestWaiters.splice(0)) waiter(request);
    const status = this.failWith.shift();
    if (status !== undefined) {
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ err: status === 401 ? 'authentication_failed' : 'invalid_request', description: 'as the test asked' }));
      return;
    }
    if (req.headers.authorization !== `Bearer ${TOKEN}`) {
      res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ err: 'authentication_failed', description: 'bad token' }));
      return;
    }
    if (!this.ignoreAcks) for (const jti of [...body.ack, ...Object.keys(body.setErrs)]) this.pending.delete(jti);
    if (!body.returnImmediately && this.pending.size === 0 && body.maxEvents > 0) {
      await new Promise<void>((resolve) => {
        this.#held.push(resolve);
        res.once('close', resolve);
      });
      if (res.destroyed) return;
    }
    const sets = Object.fromEntries([...this.pending].slice(0, body.maxEvents));
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ sets, moreAvailable: this.pending.size > Object.keys(sets).length }));
  };
}

let transmitter: Transmitter;
let endpoint: PollEndpoint;

before(async () => {
  transmitter = await startTransmitter([await signingKey('ES256')]);
  transmitter.route('/poll', (req, res) => endpoint.handle(req, res));
});
after(() => transmitter.close());

async function queued(overrides: Record<string, unknown> = {}): Promise<string> {
  const claims = setClaims(transmitter.issuer, overrides);
  endpoint.queue(claims.jti as string, await signSet(claims, transmitter.keys[0]!));
  return claims.jti as string;
}

function client(options: Partial<PollClientOptions> = {}) {
  return createPollClient({ endpoint: `${transmitter.issuer}/poll`, token: TOKEN, issuer: transmitter.issuer, audience: AUDIENCE, maxEvents: 10, ...options });
}

describe('signals: poll client (RFC 8936)', () => {
  it('one poll: receives the SETs, passes each to the listener, and acknowledges them in the next request (not before)', async () => {
    endpoint = new PollEndpoint();
    const got: string[] = [];
    const poller = client({ onEvent: (event) => void got.push(event.jti) });
    const a = await queued();
    const b = await queued();
    const result = await poller.poll();
    assert.deepEqual(result, { received: 2, processed: 2, duplicates: 0, refused: 0, retried: 0, moreAvailable: false });
    assert.deepEqual(got, [a, b]);
    assert.deepEqual(endpoint.requests[0], { ack: [], setErrs: {}, maxEvents: 10, returnImmediately: true, authorization: `Bearer ${TOKEN}` });
    await poller.poll();
    assert.deepEqual(endpoint.requests[1]!.ack, [a, b]);
    assert.equal(endpoint.pending.size, 0);
    // Acknowledged once: the request after does not repeat them.
    await poller.poll();
    assert.deepEqual(endpoint.requests[2]!.ack, []);
  });

  it('a listener that throws leaves its SET unacknowledged and unreported; the re-delivery runs the listener again, then it is acknowledged', async () => {
    endpoint = new PollEndpoint();
    let fail = true;
    const calls: string[] = [];
    const errors: Error[] = [];
    const poller = client({
      onEvent: (event) => {
        calls.push(event.jti);
        if (fail) throw new Error('downstream unavailable');
      },
      onError: (error) => errors.push(error),
    });
    const jti = await queued();
    assert.equal((await poller.poll()).retried, 1);
    fail = false;
    const second = await poller.poll();
    assert.deepEqual(endpoint.requests[1]!.ack, []);
    assert.deepEqual(endpoint.requests[1]!.setErrs, {});
    assert.equal(second.processed, 1);
    await poller.poll();
    assert.deepEqual(endpoint.requests[2]!.ack, [jti]);
    assert.deepEqual(calls, [jti, jti]);
    assert.equal(errors[0]!.message, 'downstream unavailable');
  });

  it('a forged SET, a wrong audience and a SET under another jti are reported in setErrs and never reach the listener', async () => {
    endpoint = new PollEndpoint();
    const got: SecurityEventToken[] = [];
    const poller = client({ onEvent: (event) => void got.push(event) });
    const impostor = await signingKey('ES256', transmitter.keys[0]!.kid);
    const forged = setClaims(transmitter.issuer);
    endpoint.queue(forged.jti as string, await signSet(forged, impostor));
    const wrongAudience = await queued({ aud: 'https://another.example' });
    const real = await signSet(setClaims(transmitter.issuer), transmitter.keys[0]!);
    endpoint.queue('relabelled', real);
    const result = await poller.poll();
    assert.equal(result.refused, 3);
    await poller.poll();
    const { setErrs, ack } = endpoint.requests[1]!;
    assert.deepEqual(ack, []);
    assert.equal(setErrs[forged.jti as string]!.err, 'invalid_key');
    assert.equal(setErrs[wrongAudience]!.err, 'invalid_audience');
    assert.equal(setErrs.relabelled!.err, 'invalid_request');
    assert.equal(typeof setErrs.relabelled!.description, 'string');
    assert.deepEqual(got, []);
  });

  it('security: a SET under a kid the cached keys lack, during the refetch cool-down, is neither reported in setErrs nor acknowledged; re-delivered, it is processed once a fetch is allowed', async () => {
    endpoint = new PollEndpoint();
    const clock = new ManualClock();
    const got: string[] = [];
    const poller = client({ keys: createSsfKeySet({ issuer: transmitter.issuer, now: clock.now }), onEvent: (event) => void got.push(event.jti) });
    const first = await queued();
    await poller.poll();
    const rotated = await signingKey('ES256');
    transmitter.keys = [...transmitter.keys, rotated];
    try {
      const claims = setClaims(transmitter.issuer);
      endpoint.queue(claims.jti as string, await signSet(claims, rotated));
      clock.advance(1000);
      const during = await poller.poll();
      assert.deepEqual({ refused: during.refused, retried: during.retried }, { refused: 0, retried: 1 });
      clock.advance(29_000);
      const afterCooldown = await poller.poll();
      assert.deepEqual(endpoint.requests[2]!.setErrs, {}, 'not reported as refused: the transmitter would drop it');
      assert.deepEqual(endpoint.requests[2]!.ack, [], 'not acknowledged either');
      assert.equal(afterCooldown.processed, 1);
      await poller.poll();
      assert.deepEqual(endpoint.requests[3]!.ack, [claims.jti]);
      assert.deepEqual(got, [first, claims.jti]);
    } finally {
      transmitter.keys = transmitter.keys.filter((key) => key !== rotated);
    }
  });

  it('start(): after a poll that left a SET unacknowledged, the loop waits (backoff) before polling again instead of spinning on the re-delivery', async () => {
    endpoint = new PollEndpoint();
    let calls = 0;
    const poller = client({
      idleDelayMs: 0,
      backoff: { initialMs: 200, maxMs: 200, random: () => 1 },
      onEvent: () => {
        calls++;
        throw new Error('downstream unavailable');
      },
      onError: () => undefined,
    });
    await queued();
    const started = Date.now();
    const second = endpoint.nextRequest().then(() => endpoint.nextRequest());
    poller.start();
    await second;
    const elapsed = Date.now() - started;
    await poller.stop();
    assert.ok(elapsed >= 190, `waited ${elapsed} ms`);
    assert.ok(calls <= 2);
  });

  it('a SET re-delivered after a lost acknowledgement is acknowledged again but not passed to the listener again', async () => {
    endpoint = new PollEndpoint();
    endpoint.ignoreAcks = true;
    let calls = 0;
    const poller = client({ onEvent: () => void calls++ });
    const jti = await queued();
    await poller.poll();
    const again = await poller.poll();
    assert.equal(again.duplicates, 1);
    await poller.poll();
    assert.deepEqual(endpoint.requests[2]!.ack, [jti]);
    assert.equal(calls, 1);
  });

  it('a refused request (401) keeps the pending acknowledgements for the next one; a token function is asked per request', async () => {
    endpoint = new PollEndpoint();
    let asked = 0;
    const poller = client({
      token: async () => {
        asked++;
        return TOKEN;
      },
    });
    const jti = await queued();
    await poller.poll();
    endpoint.failWith.push(401);
    await assert.rejects(poller.poll(), (error: unknown) => error instanceof PollRequestError && error.status === 401 && error.err === 'authentication_failed');
    assert.deepEqual(endpoint.requests[1]!.ack, [jti]);
    await poller.poll();
    assert.deepEqual(endpoint.requests[2]!.ack, [jti]);
    assert.equal(asked, 3);
    await assert.rejects(client({ token: 'wrong' }).poll(), PollRequestError);
  });

  it('start(): long polls (returnImmediately false), gets SETs as they are queued, retries after errors with backoff, and stop() sends the last acks with maxEvents 0', async () => {
    endpoint = new PollEndpoint();
    endpoint.failWith.push(503);
    const errors: Error[] = [];
    const events: string[] = [];
    let notify: (() => void) | undefined;
    const poller = client({
      idleDelayMs: 0,
      backoff: { initialMs: 1, maxMs: 1 },
      onError: (error) => errors.push(error),
      onEvent: (event) => {
        events.push(event.jti);
        notify?.();
      },
    });
    const heldPoll = endpoint.nextRequest().then(() => endpoint.nextRequest());
    poller.start();
    poller.start();
    // The first request fails (503); after the backoff the loop long-polls again.
    const held = await heldPoll;
    assert.equal(held.returnImmediately, false);
    assert.ok(errors[0] instanceof PollRequestError);
    const delivered = new Promise<void>((resolve) => (notify = resolve));
    const jti = await queued();
    await delivered;
    assert.deepEqual(events, [jti]);
    await poller.stop();
    // The ack went out either with the loop's next long poll or with stop()'s final request: exactly once.
    assert.deepEqual(endpoint.requests.flatMap((request) => request.ack), [jti]);
    assert.equal(endpoint.pending.size, 0);
    assert.ok(endpoint.requests.slice(1).every((request) => request.returnImmediately === (request.maxEvents === 0)));
  });

  it('stop() after a poll sends the pending acknowledgements alone: maxEvents 0, returnImmediately true', async () => {
    endpoint = new PollEndpoint();
    const poller = client();
    const jti = await queued();
    await poller.poll();
    await poller.stop();
    assert.deepEqual(endpoint.requests.at(-1), { ack: [jti], setErrs: {}, maxEvents: 0, returnImmediately: true, authorization: `Bearer ${TOKEN}` });
    assert.equal(endpoint.pending.size, 0);
    const count = endpoint.requests.length;
    await poller.stop();
    assert.equal(endpoint.requests.length, count, 'nothing pending, nothing sent');
  });
});
