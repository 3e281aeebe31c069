/**
 * JSON-RPC 2.0 both ways over one framed channel (issue 14). Each side is a
 * `JsonRpcPeer`: it calls the other side's methods with ids it allocates
 * itself, and answers only the methods in its own `methods` table.
 *
 * Stricter than the specification, on purpose: the peer on the other end is
 * an untrusted plugin.
 * - No batches: an array is refused (-32600) and reported.
 * - No notifications: a request without an id is reported and not answered.
 * - A response must answer a call this side made and has not settled: an id
 *   never allocated (forged) or already answered (duplicate) is reported; a
 *   response to a call whose deadline passed is reported as late.
 * - A request reusing the id of one still in flight is refused and reported.
 * - A method not in the table is -32601 and reported (the host audits it and
 *   counts it toward quarantine).
 * - At most `maxIncoming` requests of the other side run at once; more are
 *   answered -32000 and reported (a plugin cannot flood the host).
 * Every such event reaches `onViolation`; the peer itself never closes the
 * channel for them, the supervisor decides.
 *
 * Imports only `node:` built-ins and `framing.ts`: the child runtime loads it.
 */
export const PARSE_ERROR = -32700;
export const INVALID_REQUEST = -32600;
export const METHOD_NOT_FOUND = -32601;
export const INVALID_PARAMS = -32602;
export const INTERNAL_ERROR = -32603;
/** Implementation-defined server errors (-32000 to -32099). */
export const HANDLER_ERROR = -32000;

export type RpcId = number | string;

export type ViolationKind =
  | 'parse-error'
  | 'batch'
  | 'invalid-request'
  | 'notification'
  | 'duplicate-request-id'
  | 'method-not-found'
  | 'invalid-response'
  | 'unknown-response-id'
  | 'duplicate-response'
  | 'late-response'
  | 'unattributed-error'
  | 'too-many-requests';

export interface ProtocolViolation {
  readonly kind: ViolationKind;
  readonly id?: RpcId | null;
  readonly method?: string;
  readonly detail?: string;
}

/** An error answer: thrown by a method to choose its code, and what `call` rejects with when the other side answers an error. */
export class RpcError extends Error {
  readonly code: number;
  readonly data: unknown;
  constructor(code: number, message: string, data?: unknown) {
    super(message);
    this.name = 'RpcError';
    this.code = code;
    this.data = data;
  }
}

/** A call's deadline passed; the call is rejected, the other side is left running. */
export class RpcDeadlineError extends Error {
  readonly method: string;
  readonly timeoutMs: number;
  constructor(method: string, timeoutMs: number) {
    super(`${method} did not answer within ${timeoutMs} ms`);
    this.name = 'RpcDeadlineError';
    this.method = method;
    this.timeoutMs = timeoutMs;
  }
}

/** The channel closed with the call unanswered (or before it was sent). */
export class RpcClosedError extends Error {
  constructor(reason: string) {
    super(`the channel closed: ${reason}`);
    this.name = 'RpcClosedError';
  }
}

export type RpcMethod = (params: unknown) => unknown;

/** What the peer needs from a channel: `FrameChannel` fits. `send` may throw (an oversized message). */
export interface TextChannel {
  send(text: string): void;
}

export interface JsonRpcPeerOptions {
  readonly channel: TextChannel;
  /** The methods this side answers; anything else is -32601. */
  readonly methods: Readonly<Record<string, RpcMethod>>;
  /** The deadline of a call that names none. */
  readonly defaultTimeoutMs: number;
  readonly onViolation?: (violation: ProtocolViolation) => void;
  /**
   * Whether an error a method throws (other than `RpcError`) shows its
   * message to the other side: true in the child (a plugin's error is its
   * own), false on the host (internals stay inside).
   */
  readonly exposeErrors?: boolean;
  /** How many requests of the other side may run at once; more are answered -32000 at once. Defaults to 64. */
  readonly maxIncoming?: number;
}

interface Pending {
  readonly method: string;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: Error) => void;
  readonly timer: NodeJS.Timeout;
}

/** How many timed-out ids are remembered to tell a late answer from a duplicate one. */
const TIMED_OUT_MEMORY = 4096;

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);
const isId = (value: unknown): value is RpcId => (typeof value === 'number' && Number.isSafeInteger(value)) || (typeof value === 'string' && value.length <= 128);

export class JsonRpcPeer {
  readonly #options: JsonRpcPeerOptions;
  readonly #pending = new Map<number, Pending>();
  readonly #timedOut = new Set<number>();
  readonly #incoming = new Set<RpcId>();
  #nextId = 1;
  #closed: string | undefined;

  constructor(options: JsonRpcPeerOptions) {
    this.#options = options;
  }

  /** Calls a method on the other side; rejects with `RpcError`, `RpcDeadlineError` or `RpcClosedError`. */
  call(method: string, params?: unknown, options: { readonly timeoutMs?: number } = {}): Promise<unknown> {
    if (this.#closed !== undefined) return Promise.reject(new RpcClosedError(this.#closed));
    const id = this.#nextId++;
    const timeoutMs = options.timeoutMs ?? this.#options.defaultTimeoutMs;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        this.#timedOut.add(id);
        if (this.#timedOut.size > TIMED_OUT_MEMORY) this.#timedOut.delete(this.#timedOut.values().next().value!);
        reject(new RpcDeadlineError(method, timeoutMs));
      }, timeoutMs);
      this.#pending.set(id, { method, resolve, reject, timer });
      try {
        this.#options.channel.send(JSON.stringify({ jsonrpc: '2.0', id, method, ...(params === undefined ? {} : { params }) }));
      } catch (error) {
        clearTimeout(timer);
        this.#pending.delete(id);
        reject(error instanceof Error ? error : new Error(String(error)));
      }
    });
  }

  /** How many calls of this side wait for an answer. */
  get pendingCalls(): number {
    return this.#pending.size;
  }

  /** Rejects every pending call; later calls reject at once and incoming messages are ignored. */
  close(reason: string): void {
    if (this.#closed !== undefined) return;
    this.#closed = reason;
    for (const [id, pending] of this.#pending) {
      clearTimeout(pending.timer);
      this.#pending.delete(id);
      pending.reject(new RpcClosedError(reason));
    }
  }

  /** One frame's text from the channel. */
  receive(text: string): void {
    if (this.#closed !== undefined) return;
    let message: unknown;
    try {
      message = JSON.parse(text);
    } catch {
      this.#violation({ kind: 'parse-error' });
      this.#sendError(null, PARSE_ERROR, 'Parse error');
      return;
    }
    if (Array.isArray(message)) {
      this.#violation({ kind: 'batch', detail: `${message.length} entries` });
      this.#sendError(null, INVALID_REQUEST, 'Batches are not accepted');
      return;
    }
    if (!isObject(message) || message.jsonrpc !== '2.0') {
      this.#violation({ kind: 'invalid-request', detail: 'not a JSON-RPC 2.0 object' });
      this.#sendError(null, INVALID_REQUEST, 'Invalid Request');
      return;
    }
    if ('method' in message) this.#onRequest(message);
    else if ('result' in message || 'error' in message) this.#onResponse(message);
    else {
      this.#violation({ kind: 'invalid-request', detail: 'neither a request nor a response' });
      this.#sendError(null, INVALID_REQUEST, 'Invalid Request');
    }
  }

  #onRequest(message: Record<string, unknown>): void {
    const { id, method, params } = message;
    if (!('id' in message)) {
      this.#violation({ kind: 'notification', method: typeof method === 'string' ? method : undefined });
      return;
    }
    if (!isId(id) || typeof method !== 'string' || (params !== undefined && typeof params !== 'object') || params === null || 'result' in message || 'error' in message) {
      this.#violation({ kind: 'invalid-request', id: isId(id) ? id : null });
      this.#sendError(isId(id) && !this.#incoming.has(id) ? id : null, INVALID_REQUEST, 'Invalid Request');
      return;
    }
    if (this.#incoming.has(id)) {
      // Answering with this id would be taken for the answer to the first request.
      this.#violation({ kind: 'duplicate-request-id', id, method });
      this.#sendError(null, INVALID_REQUEST, 'Duplicate request id');
      return;
    }
    const handler = Object.hasOwn(this.#options.methods, method) ? this.#options.methods[method] : undefined;
    if (!handler) {
      this.#violation({ kind: 'method-not-found', id, method });
      this.#sendError(id, METHOD_NOT_FOUND, 'Method not found');
      return;
    }
    if (this.#incoming.size >= (this.#options.maxIncoming ?? 64)) {
      this.#violation({ kind: 'too-many-requests', id, method });
      this.#sendError(id, HANDLER_ERROR, 'Too many requests in flight');
      return;
    }
    this.#incoming.add(id);
    Promise.resolve()
      .then(() => handler(params))
      .then(
        (result) => this.#answer(id, { result: result === undefined ? null : result }),
        (error: unknown) => {
          if (error instanceof RpcError) this.#answer(id, { error: { code: error.code, message: error.message, ...(error.data === undefined ? {} : { data: error.data }) } });
          else this.#answer(id, { error: { code: this.#options.exposeErrors ? HANDLER_ERROR : INTERNAL_ERROR, message: this.#options.exposeErrors && error instanceof Error ? error.message : 'Internal error' } });
        },
      );
  }

  #answer(id: RpcId, body: { result: unknown } | { error: { code: number; message: string; data?: unknown } }): void {
    this.#incoming.delete(id);
    if (this.#closed !== undefined) return;
    try {
      this.#options.channel.send(JSON.stringify({ jsonrpc: '2.0', id, ...body }));
    } catch {
      // The answer is too large for the channel (or does not serialize): say so instead.
      this.#sendError(id, INTERNAL_ERROR, 'The answer could not be sent');
    }
  }

  #onResponse(message: Record<string, unknown>): void {
    const { id } = message;
    if (id === null && 'error' in message) {
      // The other side could not read one of ours (a parse error, a refused batch): nothing to settle.
      this.#violation({ kind: 'unattributed-error', id: null });
      return;
    }
    const numeric = typeof id === 'number' && Number.isSafeInteger(id) ? id : undefined;
    const pending = numeric === undefined ? undefined : this.#pending.get(numeric);
    if (numeric === undefined || !pending) {
      if (numeric !== undefined && this.#timedOut.delete(numeric)) this.#violation({ kind: 'late-response', id: numeric });
      else if (numeric !== undefined && numeric > 0 && numeric < this.#nextId) this.#violation({ kind: 'duplicate-response', id: numeric });
      else this.#violation({ kind: 'unknown-response-id', id: isId(id) ? id : null });
      return;
    }
    const { error } = message;
    const valid =
      ('result' in message) !== ('error' in message) &&
      (!('error' in message) || (isObject(error) && typeof error.code === 'number' && Number.isInteger(error.code) && typeof error.message === 'string'));
    this.#pending.delete(numeric);
    clearTimeout(pending.timer);
    if (!valid) {
      this.#violation({ kind: 'invalid-response', id: numeric, method: pending.method });
      pending.reject(new RpcError(INVALID_REQUEST, 'Invalid response'));
      return;
    }
    if (isObject(error)) pending.reject(new RpcError(error.code as number, error.message as string, error.data));
    else pending.resolve(message.result);
  }

  #sendError(id: RpcId | null, code: number, message: string): void {
    try {
      this.#options.channel.send(JSON.stringify({ jsonrpc: '2.0', id, error: { code, message } }));
    } catch {
      // Nothing more can be said on a channel that refuses a short error.
    }
  }

  #violation(violation: ProtocolViolation): void {
    this.#options.onViolation?.(violation);
  }
}
