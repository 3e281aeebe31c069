/**
 * Stream management (SSF 1.0 section 8.1): a receiver creates, reads,
 * updates, replaces and deletes its streams, sets their status, removes and
 * adds subjects, and asks for a verification event. A receiver is an OAuth
 * client; it sees and changes only its own streams (another's stream is
 * "not found", never "forbidden": its existence is not disclosed).
 */
import { randomUUID } from 'node:crypto';
import type { KeyVault } from '../crypto/index.ts';
import { keep, write, type StoredRecord } from '../store/index.ts';
import { DELIVERY_METHODS, SECURITY_EVENT_TYPES, type SubjectIdentifier } from '../sdk/index.ts';
import { subjectKey } from './mapping.ts';
import type { StreamCollection, StreamRecord } from './records.ts';
import { DEFAULT_SET_ALGORITHM, SET_ALGORITHMS, isSetAlgorithm } from './sets.ts';

export type StreamErrorCode = 'invalid_request' | 'not_found' | 'too_many_streams' | 'too_soon' | 'conflict';

export class StreamError extends Error {
  override readonly name = 'StreamError';
  readonly code: StreamErrorCode;
  constructor(code: StreamErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

/** Every event type a stream can ask for (SSF 1.0 section 7.1 `events_supported`); verification and stream-updated are always sent. */
export const EVENTS_SUPPORTED: readonly string[] = Object.values(SECURITY_EVENT_TYPES).filter((uri) => uri !== SECURITY_EVENT_TYPES.verification && uri !== SECURITY_EVENT_TYPES.streamUpdated);

const PUSH = DELIVERY_METHODS.push;
const POLL = DELIVERY_METHODS.poll;
const SOCKET = DELIVERY_METHODS.websocket;
const METHODS: readonly string[] = [PUSH, POLL, SOCKET];
const MAX_DESCRIPTION = 256;
const MAX_AUTHORIZATION = 2048;
const MAX_REMOVED_SUBJECTS = 10_000;

/** The stream configuration a receiver reads (SSF 1.0 section 8.1.1). */
export interface StreamConfiguration {
  readonly stream_id: string;
  readonly iss: string;
  readonly aud: string | readonly string[];
  readonly events_supported: readonly string[];
  readonly events_requested: readonly string[];
  readonly events_delivered: readonly string[];
  readonly delivery: { readonly method: string; readonly endpoint_url?: string };
  readonly min_verification_interval?: number;
  readonly description?: string;
  /** Portcullis: the JWS algorithm of this stream's SETs (ES256, EdDSA or RS256). */
  readonly set_signing_alg: string;
}

export interface StreamStatus {
  readonly stream_id: string;
  readonly status: StreamRecord['status'];
  readonly reason?: string;
}

export interface StreamManagerOptions {
  readonly streams: StreamCollection;
  readonly vault: Pick<KeyVault, 'seal' | 'open'>;
  readonly issuer: string;
  readonly maxStreamsPerClient: number;
  readonly pushPrivateNetworks: boolean;
  readonly clock: () => number;
  /** The highest sequence number in the log: a new stream starts after it. */
  readonly head: () => Promise<number>;
  /** Seconds between two verification requests of one stream, at least. */
  readonly minVerificationInterval?: number;
}

export class StreamManager {
  readonly #options: StreamManagerOptions;

  constructor(options: StreamManagerOptions) {
    this.#options = options;
  }

  pollEndpoint(streamId: string): string {
    return `${this.#base()}/signals/poll/${streamId}`;
  }

  socketEndpoint(streamId: string): string {
    return `${this.#base().replace(/^http/, 'ws')}/signals/ws?stream_id=${streamId}`;
  }

  /** The issuer as a base URL: an issuer may end in a slash (RFC 8414 allows a path), endpoint paths are joined without doubling it. */
  #base(): string {
    return this.#options.issuer.replace(/\/$/, '');
  }

  configuration(id: string, stream: StreamRecord): StreamConfiguration {
    const endpoint = stream.method === PUSH ? stream.endpointUrl : stream.method === POLL ? this.pollEndpoint(id) : this.socketEndpoint(id);
    return {
      stream_id: id,
      iss: this.#options.issuer,
      aud: stream.aud.length === 1 ? stream.aud[0]! : stream.aud,
      events_supported: EVENTS_SUPPORTED,
      events_requested: stream.eventsRequested,
      events_delivered: delivered(stream.eventsRequested),
      delivery: { method: stream.method, ...(endpoint !== undefined && { endpoint_url: endpoint }) },
      ...(this.#options.minVerificationInterval !== undefined && { min_verification_interval: this.#options.minVerificationInterval }),
      ...(stream.description !== undefined && { description: stream.description }),
      set_signing_alg: stream.alg,
    };
  }

  /** SSF 1.0 section 8.1.1.1. */
  async create(clientId: string, body: unknown): Promise<{ id: string; stream: StreamRecord }> {
    const config = this.#parse(body, { requireStreamId: false });
    const head = await this.#options.head();
    const existing = await this.#options.streams.findAllBy('client', clientId);
    if (existing.length >= this.#options.maxStreamsPerClient) throw new StreamError('too_many_streams', `This receiver already has ${existing.length} streams, the most it may have.`);
    const stream: StreamRecord = {
      clientId,
      alg: config.alg ?? DEFAULT_SET_ALGORITHM,
      // SSF 1.0 section 8.1.1: `aud` is the transmitter's to set; the receiver is named by its client id.
      aud: [clientId],
      eventsRequested: config.eventsRequested ?? [],
      method: config.method,
      ...(config.endpointUrl !== undefined && { endpointUrl: config.endpointUrl }),
      ...(config.authorization !== undefined && { sealedAuthorization: this.#seal(config.authorization) }),
      ...(config.description !== undefined && { description: config.description }),
      status: 'enabled',
      removedSubjects: [],
      // A new stream receives what happens from now on.
      cursor: head,
      floor: head,
      acked: [],
      attempts: 0,
      createdAt: this.#options.clock(),
    };
    const id = randomUUID();
    await this.#options.streams.create(id, stream);
    return { id, stream };
  }

  async get(clientId: string, id: string): Promise<StoredRecord<StreamRecord>> {
    const record = typeof id === 'string' && id.length <= 64 ? await this.#options.streams.get(id) : null;
    if (record === null || record.data.clientId !== clientId) throw new StreamError('not_found', 'No stream with this stream_id.');
    return record;
  }

  async list(clientId: string): Promise<StoredRecord<StreamRecord>[]> {
    return this.#options.streams.findAllBy('client', clientId);
  }

  /** PATCH (section 8.1.1.3) merges the fields given; PUT (section 8.1.1.4) replaces every receiver-supplied field. */
  async update(clientId: string, body: unknown, mode: 'patch' | 'replace'): Promise<{ id: string; stream: StreamRecord }> {
    const config = this.#parse(body, { requireStreamId: true });
    const id = config.streamId!;
    await this.get(clientId, id);
    const outcome = await this.#options.streams.mutate(
      id,
      (current) => {
        if (current === null || current.data.clientId !== clientId) throw new StreamError('not_found', 'No stream with this stream_id.');
        const was = current.data;
        const method = mode === 'replace' ? config.method : config.methodGiven ? config.method : was.method;
        const next: StreamRecord = {
          ...was,
          alg: config.alg ?? (mode === 'replace' ? DEFAULT_SET_ALGORITHM : was.alg),
          eventsRequested: config.eventsRequested ?? (mode === 'replace' ? [] : was.eventsRequested),
          method,
        };
        const endpoint = config.endpointUrl ?? (mode === 'patch' && method === was.method ? was.endpointUrl : undefined);
        const sealed = config.authorization !== undefined ? this.#seal(config.authorization) : mode === 'patch' && method === was.method ? was.sealedAuthorization : undefined;
        const description = config.description ?? (mode === 'patch' ? was.description : undefined);
        delete next.endpointUrl;
        delete next.sealedAuthorization;
        delete next.description;
        if (method === PUSH && endpoint === undefined) throw new StreamError('invalid_request', 'A push stream needs delivery.endpoint_url (RFC 8935).');
        return write({ ...next, ...(method === PUSH && { endpointUrl: endpoint }), ...(method === PUSH && sealed !== undefined && { sealedAuthorization: sealed }), ...(description !== undefined && { description }) }, undefined);
      },
      { attempts: 5, exhausted: () => Promise.reject(new StreamError('conflict', 'The stream changed while this update was applied; try again.')) },
    );
    return { id, stream: outcome.record!.data };
  }

  async delete(clientId: string, id: string): Promise<void> {
    const record = await this.get(clientId, id);
    await this.#options.streams.delete(id, record.version);
  }

  status(id: string, stream: StreamRecord): StreamStatus {
    return { stream_id: id, status: stream.status, ...(stream.statusReason !== undefined && { reason: stream.statusReason }) };
  }

  /**
   * SSF 1.0 section 8.1.2.2. Disabled drops what happens meanwhile (the
   * stream resumes at the log's head); paused holds it.
   */
  async setStatus(clientId: string, body: unknown): Promise<{ id: string; stream: StreamRecord }> {
    const object = asObject(body);
    const id = streamIdOf(object);
    const status = object['status'];
    if (status !== 'enabled' && status !== 'paused' && status !== 'disabled') throw new StreamError('invalid_request', 'status must be enabled, paused or disabled.');
    const reason = optionalString(object['reason'], 'reason', MAX_DESCRIPTION);
    await this.get(clientId, id);
    const head = status === 'enabled' ? await this.#options.head() : 0;
    const outcome = await this.#options.streams.mutate(
      id,
      (current) => {
        if (current === null || current.data.clientId !== clientId) throw new StreamError('not_found', 'No stream with this stream_id.');
        const was = current.data;
        const next: StreamRecord = { ...was, status, statusBy: 'receiver', attempts: 0 };
        delete next.statusReason;
        delete next.failingSince;
        delete next.nextAttemptAt;
        if (reason !== undefined) next.statusReason = reason;
        if (was.status === 'disabled' && status === 'enabled') {
          next.cursor = Math.max(was.cursor, head);
          next.floor = Math.max(was.floor ?? 0, head);
          next.acked = [];
        }
        return write(next, undefined);
      },
      { attempts: 5, exhausted: () => Promise.reject(new StreamError('conflict', 'The stream changed while its status was set; try again.')) },
    );
    return { id, stream: outcome.record!.data };
  }

  /** SSF 1.0 sections 8.1.3.2 and 8.1.3.3: with default_subjects ALL, removing excludes a subject and adding includes it again. */
  async changeSubject(clientId: string, body: unknown, change: 'add' | 'remove'): Promise<void> {
    const object = asObject(body);
    const id = streamIdOf(object);
    const key = subjectKey(parseSubject(object['subject'], this.#options.issuer));
    await this.get(clientId, id);
    await this.#options.streams.mutate(
      id,
      (current) => {
        if (current === null || current.data.clientId !== clientId) throw new StreamError('not_found', 'No stream with this stream_id.');
        const removed = new Set(current.data.removedSubjects);
        if (change === 'remove' ? removed.has(key) : !removed.has(key)) return keep(undefined);
        if (change === 'remove') {
          if (removed.size >= MAX_REMOVED_SUBJECTS) throw new StreamError('invalid_request', `A stream excludes at most ${MAX_REMOVED_SUBJECTS} subjects.`);
          removed.add(key);
        } else removed.delete(key);
        return write({ ...current.data, removedSubjects: [...removed] }, undefined);
      },
      { attempts: 5, exhausted: () => Promise.reject(new StreamError('conflict', 'The stream changed while its subjects were changed; try again.')) },
    );
  }

  /**
   * SSF 1.0 section 8.1.4.2: a verification request, answered by a
   * verification event on the stream. Refused sooner than the minimum
   * interval after the last (a receiver cannot make the transmitter sign in
   * a loop). Resolves with the stream id and the receiver's `state`.
   */
  async requestVerification(clientId: string, body: unknown): Promise<{ id: string; state?: string }> {
    const object = asObject(body);
    const id = streamIdOf(object);
    const state = optionalString(object['state'], 'state', MAX_DESCRIPTION);
    await this.get(clientId, id);
    const now = this.#options.clock();
    const intervalMs = (this.#options.minVerificationInterval ?? 0) * 1000;
    await this.#options.streams.mutate(
      id,
      (current) => {
        if (current === null || current.data.clientId !== clientId) throw new StreamError('not_found', 'No stream with this stream_id.');
        const last = current.data.lastVerificationAt;
        if (last !== undefined && now - last < intervalMs) throw new StreamError('too_soon', `At most one verification request per ${intervalMs / 1000} s.`);
        return write({ ...current.data, lastVerificationAt: now }, undefined);
      },
      { attempts: 5, exhausted: () => Promise.reject(new StreamError('conflict', 'The stream changed meanwhile; try again.')) },
    );
    return { id, ...(state !== undefined && { state }) };
  }

  /** The Authorization header a push receiver asked for, opened. */
  authorizationOf(stream: StreamRecord): string | undefined {
    return stream.sealedAuthorization === undefined ? undefined : new TextDecoder().decode(this.#options.vault.open('signals-push-authorization', stream.sealedAuthorization));
  }

  #seal(authorization: string): string {
    return this.#options.vault.seal('signals-push-authorization', new TextEncoder().encode(authorization));
  }

  #parse(body: unknown, options: { requireStreamId: boolean }): ParsedConfig {
    const object = asObject(body);
    const streamId = options.requireStreamId ? streamIdOf(object) : undefined;
    // Transmitter-supplied (SSF 1.0 section 8.1.1): a receiver may echo `iss` back, never change it.
    if (object['iss'] !== undefined && object['iss'] !== this.#options.issuer) throw new StreamError('invalid_request', 'iss is set by the transmitter.');
    const eventsRequested = object['events_requested'] === undefined ? undefined : stringArray(object['events_requested'], 'events_requested', 64);
    const delivery = object['delivery'] === undefined ? undefined : asObject(object['delivery'], 'delivery');
    const methodGiven = delivery !== undefined && delivery['method'] !== undefined;
    const method = methodGiven ? delivery['method'] : PUSH;
    if (typeof method !== 'string' || !METHODS.includes(method)) throw new StreamError('invalid_request', `delivery.method must be one of ${METHODS.join(', ')}.`);
    const endpointUrl = method === PUSH ? optionalString(delivery?.['endpoint_url'], 'delivery.endpoint_url', 2048) : undefined;
    if (endpointUrl !== undefined) this.#checkEndpoint(endpointUrl);
    if (method === PUSH && endpointUrl === undefined && !options.requireStreamId) throw new StreamError('invalid_request', 'A push stream needs delivery.endpoint_url (RFC 8935).');
    const authorization = method === PUSH ? optionalString(delivery?.['authorization_header'], 'delivery.authorization_header', MAX_AUTHORIZATION) : undefined;
    if (authorization !== undefined && !/^[\x21-\x7e][\x20-\x7e]*$/.test(authorization)) throw new StreamError('invalid_request', 'delivery.authorization_header must be a header value of visible ASCII.');
    const description = optionalString(object['description'], 'description', MAX_DESCRIPTION);
    const alg = object['set_signing_alg'];
    if (alg !== undefined && !isSetAlgorithm(alg)) throw new StreamError('invalid_request', `set_signing_alg must be one of ${SET_ALGORITHMS.join(', ')}.`);
    return { ...(streamId !== undefined && { streamId }), ...(eventsRequested !== undefined && { eventsRequested }), method, methodGiven, ...(endpointUrl !== undefined && { endpointUrl }), ...(authorization !== undefined && { authorization }), ...(description !== undefined && { description }), ...(alg !== undefined && { alg }) };
  }

  /** RFC 8935 section 5.1 (TLS) and the SSRF rules of outbound requests: https to a public host, unless private networks are allowed. */
  #checkEndpoint(url: string): void {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new StreamError('invalid_request', 'delivery.endpoint_url is not a URL.');
    }
    if (parsed.username !== '' || parsed.password !== '' || parsed.hash !== '') throw new StreamError('invalid_request', 'delivery.endpoint_url may not carry credentials or a fragment.');
    const allowed = parsed.protocol === 'https:' || (this.#options.pushPrivateNetworks && parsed.protocol === 'http:');
    if (!allowed) throw new StreamError('invalid_request', 'delivery.endpoint_url must be https.');
  }
}

interface ParsedConfig {
  readonly streamId?: string;
  readonly eventsRequested?: string[];
  readonly method: string;
  readonly methodGiven: boolean;
  readonly endpointUrl?: string;
  readonly authorization?: string;
  readonly description?: string;
  readonly alg?: string;
}

/** What a stream receives of what it asked for: the supported ones (SSF 1.0 section 8.1.1 `events_delivered`). */
export function delivered(requested: readonly string[]): string[] {
  return requested.filter((uri) => EVENTS_SUPPORTED.includes(uri));
}

function asObject(value: unknown, what = 'The body'): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new StreamError('invalid_request', `${what} must be a JSON object.`);
  return value as Record<string, unknown>;
}

function streamIdOf(object: Record<string, unknown>): string {
  const id = object['stream_id'];
  if (typeof id !== 'string' || id.length === 0 || id.length > 64) throw new StreamError('invalid_request', 'stream_id is required.');
  return id;
}

function optionalString(value: unknown, what: string, max: number): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value.length === 0 || value.length > max) throw new StreamError('invalid_request', `${what} must be a string of 1 to ${max} characters.`);
  return value;
}

function stringArray(value: unknown, what: string, max: number): string[] {
  if (!Array.isArray(value) || value.length > max || !value.every((item) => typeof item === 'string' && item.length > 0 && item.length <= 512)) {
    throw new StreamError('invalid_request', `${what} must be an array of at most ${max} URIs.`);
  }
  return [...new Set(value as string[])];
}

/** A subject in a request (RFC 9493 section 3), checked: only the formats this transmitter names subjects by. */
export function parseSubject(value: unknown, issuer: string): SubjectIdentifier {
  const object = asObject(value, 'subject');
  const text = (key: string): string => {
    const member = object[key];
    if (typeof member !== 'string' || member.length === 0 || member.length > 512) throw new StreamError('invalid_request', `subject.${key} must be a non-empty string.`);
    return member;
  };
  switch (object['format']) {
    case 'iss_sub':
      return { format: 'iss_sub', iss: text('iss') === issuer ? issuer : text('iss'), sub: text('sub') };
    case 'email':
      return { format: 'email', email: text('email') };
    case 'opaque':
      return { format: 'opaque', id: text('id') };
    case 'jwt_id':
      return { format: 'jwt_id', iss: text('iss'), jti: text('jti') };
    case 'session_id':
      return { format: 'session_id', iss: text('iss'), sid: text('sid') };
    default:
      throw new StreamError('invalid_request', 'subject.format must be one of iss_sub, email, opaque, jwt_id, session_id.');
  }
}
