/**
 * Poll delivery (RFC 8936): the receiver POSTs its acknowledgements and
 * errors, and gets the SETs it is owed. A SET is sent again on every poll
 * until it is acknowledged (section 2.4), always with the same `jti`.
 */
import { keep, write } from '../store/index.ts';
import { DELIVERY_METHODS } from '../sdk/index.ts';
import { seqOfJti } from './sets.ts';
import { StreamError } from './streams.ts';
import type { Transmitter } from './transmitter.ts';

export interface PollResponse {
  readonly sets: Record<string, string>;
  readonly moreAvailable: boolean;
}

const MAX_ACKS = 1000;
/** Acknowledgements kept above a stream's cursor. */
const MAX_OUTSTANDING_ACKS = 10_000;

export async function poll(transmitter: Transmitter, clientId: string, streamId: string, body: unknown, signal?: AbortSignal): Promise<PollResponse> {
  const request = parsePollRequest(body);
  const record = await transmitter.manager.get(clientId, streamId);
  if (record.data.method !== DELIVERY_METHODS.poll) throw new StreamError('invalid_request', 'This stream is not delivered by polling.');
  // Section 2.4: acknowledged and refused SETs are done with either way; a
  // refusal is remembered as the stream's last error for the operator.
  // Only SETs that exist can be acknowledged: an ack of a future sequence number would skip that event when it comes.
  const head = await transmitter.log.head();
  const done = [...request.ack, ...Object.keys(request.setErrs)].map((jti) => seqOfJti(streamId, jti)).filter((seq): seq is number => seq !== undefined && seq <= head);
  const firstError = Object.entries(request.setErrs)[0];
  if (done.length > 0 || firstError !== undefined) {
    await transmitter.streams.mutate(
      streamId,
      (current) => {
        if (current === null) return keep(undefined);
        // Bounded: at most what one stream can have outstanding (a receiver acking out of order keeps the newest).
        const acked = [...new Set([...current.data.acked, ...done.filter((seq) => seq > current.data.cursor)])].sort((a, b) => a - b).slice(-MAX_OUTSTANDING_ACKS);
        const next = { ...current.data, acked };
        if (firstError !== undefined) next.lastError = `receiver: ${firstError[1].err}`.slice(0, 200);
        return write(next, undefined);
      },
      { attempts: 8, exhausted: () => undefined },
    );
  }
  const maxEvents = Math.min(request.maxEvents ?? transmitter.settings.pollMaxEvents, transmitter.settings.pollMaxEvents);
  const deadline = transmitter.now() + (request.returnImmediately ? 0 : transmitter.settings.pollWaitMs);
  for (;;) {
    const current = await transmitter.manager.get(clientId, streamId);
    const stream = current.data;
    // SSF 1.0 section 8.1.2: a paused stream holds its events, a disabled one sends none.
    const sending = stream.status === 'enabled';
    const selection = sending ? await transmitter.owed(streamId, stream, maxEvents) : { entries: [], cursor: stream.cursor, acked: stream.acked, more: false };
    if (selection.cursor > stream.cursor) await transmitter.advance(streamId, selection.cursor, selection.acked);
    // Section 2.1: maxEvents 0 only acknowledges.
    if (maxEvents === 0) return { sets: {}, moreAvailable: selection.more };
    if (selection.entries.length > 0) {
      const sets: Record<string, string> = {};
      for (const entry of selection.entries) {
        const { jti, set } = await transmitter.signer.sign({ id: streamId, alg: stream.alg, aud: stream.aud }, entry);
        sets[jti] = set;
      }
      return { sets, moreAvailable: selection.more };
    }
    const wait = deadline - transmitter.now();
    if (wait <= 0 || signal?.aborted === true) return { sets: {}, moreAvailable: false };
    await transmitter.waitForAppend(Math.max(selection.cursor, transmitter.known), Math.min(wait, 5_000), signal);
  }
}

interface PollRequest {
  readonly ack: string[];
  readonly setErrs: Record<string, { err: string; description?: string }>;
  readonly maxEvents?: number;
  readonly returnImmediately: boolean;
}

/** RFC 8936 section 2.1; an empty body is a poll with defaults. */
function parsePollRequest(body: unknown): PollRequest {
  const object = body === undefined || body === null ? {} : body;
  if (typeof object !== 'object' || Array.isArray(object)) throw new StreamError('invalid_request', 'The poll request must be a JSON object (RFC 8936 section 2.1).');
  const value = object as Record<string, unknown>;
  const ack = value['ack'] ?? [];
  if (!Array.isArray(ack) || ack.length > MAX_ACKS || !ack.every((jti) => typeof jti === 'string' && jti.length <= 128)) throw new StreamError('invalid_request', `ack must be an array of at most ${MAX_ACKS} jti strings.`);
  const setErrs = value['setErrs'] ?? {};
  if (setErrs === null || typeof setErrs !== 'object' || Array.isArray(setErrs) || Object.keys(setErrs).length > MAX_ACKS) throw new StreamError('invalid_request', 'setErrs must be an object of jti to {err, description}.');
  for (const [jti, error] of Object.entries(setErrs as Record<string, unknown>)) {
    const entry = error as Record<string, unknown> | null;
    if (jti.length > 128 || entry === null || typeof entry !== 'object' || typeof entry['err'] !== 'string' || entry['err'].length > 64) throw new StreamError('invalid_request', 'Each setErrs member needs an err code (RFC 8936 section 2.1).');
  }
  const maxEvents = value['maxEvents'];
  if (maxEvents !== undefined && (!Number.isSafeInteger(maxEvents) || (maxEvents as number) < 0)) throw new StreamError('invalid_request', 'maxEvents must be a non-negative integer.');
  const returnImmediately = value['returnImmediately'] ?? false;
  if (typeof returnImmediately !== 'boolean') throw new StreamError('invalid_request', 'returnImmediately must be a boolean.');
  return { ack: ack as string[], setErrs: setErrs as PollRequest['setErrs'], ...(maxEvents !== undefined && { maxEvents: maxEvents as number }), returnImmediately };
}
