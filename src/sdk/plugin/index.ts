/**
 * `portcullis/sdk/plugin`: writing a Portcullis plugin (issue 14).
 *
 *     import { definePlugin } from "portcullis/sdk/plugin"; // (double quotes: the architecture test reads imports as text)
 *     export default definePlugin({
 *       hooks: {
 *         'token.claims': async (ctx) => ({ claims: { 'https://acme.example/team': 'red' } }),
 *         'login.before': async (ctx) => (ctx.ip === '203.0.113.7' ? { deny: 'not from here' } : undefined),
 *       },
 *     });
 *
 * A handler gets its point's context, the claims so far (claims points) and
 * `host`, the host calls the manifest's `hostCalls` allow (`users.read`,
 * `audit.record`, `http.fetch`; any other is refused by the host). It
 * answers:
 * - nothing (`undefined`): pass, the next handler decides;
 * - `{ deny: reason }`: deny, with a short reason (printable ASCII, 1 to 200
 *   characters) the person or client may be shown;
 * - `{ claims }` (claims points only): modify; a claim set to null is
 *   removed. The host keeps only names inside the manifest's
 *   `claimsNamespace`.
 * Anything else throws: the host counts a throw as the plugin failing, and
 * the manifest's `onFailure` decides (deny, or skip for claims points). A
 * plugin never answers allow: it can only hold a request back or add claims.
 *
 * The wire (JSON-RPC 2.0 with the host, src/plugins/sandbox/): the host
 * calls `hook.<point>` with `{ context, claims }` and reads `{ verdict:
 * 'pass' | 'deny' | 'modify', ... }`; `definePlugin` returns exactly the
 * `{ hooks }` the sandbox runtime (child.ts) serves.
 *
 * Rule: this file imports NOTHING, not even a type. The sandbox runs the
 * plugin with read access to this one file of the package (spawn.ts), so
 * any import would fail to load there; the types the server uses for the
 * same points (src/hooks/points.ts) are restated here as the wire carries
 * them, and test/sdk/plugin-sdk.test.ts keeps the point list in step.
 */

/** The hook points, and which kind each is (the server's list, src/hooks/points.ts). */
export const HOOK_POINTS = {
  'login.before': 'decision',
  'login.after': 'decision',
  'registration.before': 'decision',
  'consent.before': 'decision',
  'token.claims': 'claims',
  'access-token.claims': 'claims',
  'userinfo.claims': 'claims',
} as const;

export type HookPoint = keyof typeof HOOK_POINTS;
export type DecisionPoint = { [P in HookPoint]: (typeof HOOK_POINTS)[P] extends 'decision' ? P : never }[HookPoint];
export type ClaimsPoint = { [P in HookPoint]: (typeof HOOK_POINTS)[P] extends 'claims' ? P : never }[HookPoint];

/** A JSON value, as claims and audit details carry them. */
export type JsonValue = null | boolean | number | string | readonly JsonValue[] | { readonly [key: string]: JsonValue };

/** Claims as the handlers before this one left them. */
export type Claims = Readonly<Record<string, JsonValue>>;

/** Claim changes a handler answers: a value sets the claim, null removes it. */
export type ClaimChanges = Readonly<Record<string, JsonValue>>;

/** What the host tells each point (the `context` of `hook.<point>`). */
export interface HookContexts {
  /** Before the password is checked. */
  'login.before': {
    /** The account named, normalised. */
    readonly account: string;
    readonly ip: string;
    /** The sign-in throttle's verdict for this attempt, already counted. */
    readonly throttle: { readonly allowed: boolean };
  };
  /** After each authentication step: may a session start now? */
  'login.after': {
    readonly userId: string;
    /** RFC 8176 methods proven so far (`pwd`, then `otp` or `mfa`). */
    readonly amr: readonly string[];
    readonly secondFactorEnrolled: boolean;
    readonly ip: string;
  };
  /** RFC 7591: may this client register? */
  'registration.before': {
    readonly policy: 'open' | 'token' | 'off';
    /** The initial access token: checked and right, checked and wrong, absent, or not looked at. */
    readonly initialAccessToken: 'valid' | 'wrong' | 'absent' | 'unchecked';
    /** The client metadata as sent, NOT yet validated: check every field's type before use. */
    readonly metadata: unknown;
    readonly ip: string;
  };
  /** May the code be issued without asking the person? */
  'consent.before': {
    readonly userId: string;
    readonly clientId: string;
    readonly scopes: readonly string[];
    readonly resources: readonly string[];
    readonly prompt: readonly string[];
    /** Whether the person's stored consent already covers every scope and resource. */
    readonly consented: boolean;
  };
  /** The extra claims of an ID token. */
  'token.claims': {
    readonly userId: string;
    readonly clientId: string;
    readonly scopes: readonly string[];
    readonly accessTokenIssued: boolean;
  };
  /** The extra claims of an access token (RFC 9068), every grant. */
  'access-token.claims': {
    /** null for client_credentials: the client acts for itself. */
    readonly userId: string | null;
    readonly clientId: string;
    /** `client_credentials`, `authorization_code` or `refresh_token`. */
    readonly grantType: string;
    readonly scopes: readonly string[];
    readonly audience: readonly string[];
  };
  /** The claims of the UserInfo response. */
  'userinfo.claims': {
    readonly userId: string;
    readonly clientId: string;
    readonly scopes: readonly string[];
  };
}

/** `users.read`: the account, or null when it does not exist. */
export interface PluginUser {
  readonly id: string;
  readonly email: string;
  readonly emailVerified: boolean;
  readonly name?: string;
  readonly givenName?: string;
  readonly familyName?: string;
  readonly locale?: string;
  readonly disabled: boolean;
}

export interface FetchInit {
  readonly method?: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: string;
}

/** `http.fetch`'s answer. A non-2xx status is an answer, not an error; a refused or failed request throws. */
export interface FetchResponse {
  readonly status: number;
  /** Whether the status is 2xx. */
  readonly ok: boolean;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
  /** The URL answered (after redirects the host followed). */
  readonly url: string;
  /** The body parsed as JSON; throws when it is not JSON. */
  json(): unknown;
}

/** The host calls, typed. Only those the manifest's `hostCalls` lists are answered. */
export interface PluginHost {
  readonly users: {
    read(userId: string): Promise<PluginUser | null>;
  };
  readonly audit: {
    /** `action`: /^[a-z][a-z0-9._-]{0,63}$/ (prefix it with the plugin's name); `detail`: at most 4 KiB of JSON. */
    record(action: string, detail?: Readonly<Record<string, JsonValue>>): Promise<void>;
  };
  /** An HTTP request through the host, to the manifest's origins only (the sandbox has no network). */
  fetch(url: string, init?: FetchInit): Promise<FetchResponse>;
}

/** What a handler of point P gets. */
export type HookContext<P extends HookPoint> = HookContexts[P] & { readonly host: PluginHost } & (P extends ClaimsPoint ? { readonly claims: Claims } : unknown);

export interface DenyAnswer {
  /** Printable ASCII, 1 to 200 characters: the person or client may be shown it. */
  readonly deny: string;
}

export interface ClaimsAnswer {
  readonly claims: ClaimChanges;
}

/** What a handler of point P may answer (`undefined`: pass). */
export type HookResult<P extends HookPoint> = (P extends ClaimsPoint ? ClaimsAnswer | DenyAnswer : DenyAnswer) | undefined | void;

export type HookHandler<P extends HookPoint> = (context: HookContext<P>) => HookResult<P> | Promise<HookResult<P>>;

export interface PluginDefinition {
  readonly hooks: { readonly [P in HookPoint]?: HookHandler<P> };
}

/** The answer on the wire (the JSON-RPC result of `hook.<point>`). */
export type WireAnswer =
  | { readonly verdict: 'pass' }
  | { readonly verdict: 'deny'; readonly reason: string }
  | { readonly verdict: 'modify'; readonly claims: ClaimChanges };

/** The sandbox runtime's host object: a JSON-RPC call to the host. */
export interface RawHost {
  call(method: string, params?: unknown): Promise<unknown>;
}

/** A handler as the sandbox runtime calls it: `params` is `{ context, claims }`. */
export type WireHandler = (params: unknown, host: RawHost) => Promise<WireAnswer>;

/** What `definePlugin` returns: export it as the module's default (or its `hooks` as `hooks`). */
export interface DefinedPlugin {
  readonly hooks: Readonly<Partial<Record<HookPoint, WireHandler>>>;
}

/** A host call failed (refused, not listed in `hostCalls`, timed out, or the host's own error). */
export class HostCallError extends Error {
  override readonly name = 'HostCallError';
  readonly method: string;
  /** The JSON-RPC error code, when the host answered one (-32601: not in the manifest's `hostCalls`). */
  readonly code: number | undefined;
  constructor(method: string, message: string, code?: number) {
    super(`${method}: ${message}`);
    this.method = method;
    this.code = code;
  }
}

const REASON = /^[\x20-\x7e]{1,200}$/;
const AUDIT_ACTION = /^[a-z][a-z0-9._-]{0,63}$/;
const AUDIT_DETAIL_BYTES = 4096;
const MAX_JSON_DEPTH = 32;

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);
const isPlainObject = (value: unknown): value is Record<string, unknown> => {
  if (!isRecord(value)) return false;
  const prototype = Object.getPrototypeOf(value) as unknown;
  return prototype === Object.prototype || prototype === null;
};

/** Whether `value` survives JSON as it is (no undefined, function, NaN, Date, Map; no cycle). */
function isJson(value: unknown, depth = 0): boolean {
  if (depth > MAX_JSON_DEPTH) return false;
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return true;
  if (typeof value === 'number') return Number.isFinite(value);
  if (Array.isArray(value)) return value.every((item) => isJson(item, depth + 1));
  if (isPlainObject(value)) return Object.values(value).every((item) => isJson(item, depth + 1));
  return false;
}

const describeValue = (value: unknown): string => (value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value === 'object' ? `an object with keys ${Object.keys(value).join(', ') || '(none)'}` : typeof value);

/** A handler's answer on the wire; throws a TypeError for anything the sugar does not name. */
export function toWireAnswer(point: HookPoint, answer: unknown): WireAnswer {
  if (answer === undefined) return { verdict: 'pass' };
  const claimsPoint = HOOK_POINTS[point] === 'claims';
  const expected = claimsPoint ? 'undefined (pass), { deny: reason } or { claims }' : 'undefined (pass) or { deny: reason }';
  if (!isPlainObject(answer)) throw new TypeError(`${point}: the handler answered ${describeValue(answer)}; expected ${expected}`);
  const keys = Object.keys(answer);
  if (keys.length === 1 && keys[0] === 'deny') {
    const reason = answer['deny'];
    if (typeof reason !== 'string' || !REASON.test(reason)) throw new TypeError(`${point}: a deny reason is 1 to 200 printable ASCII characters`);
    return { verdict: 'deny', reason };
  }
  if (keys.length === 1 && keys[0] === 'claims') {
    if (!claimsPoint) throw new TypeError(`${point} is a decision point: it takes no claims (answer undefined or { deny: reason })`);
    const claims = answer['claims'];
    if (!isPlainObject(claims)) throw new TypeError(`${point}: claims must be an object of claim name to JSON value (null removes a claim)`);
    for (const [name, value] of Object.entries(claims)) if (!isJson(value)) throw new TypeError(`${point}: the claim ${JSON.stringify(name)} is not a JSON value`);
    return { verdict: 'modify', claims: claims as ClaimChanges };
  }
  // `allow` in particular: a plugin can only hold a request back, never wave it through.
  throw new TypeError(`${point}: the handler answered ${describeValue(answer)}; expected ${expected}`);
}

function fetchResponse(method: string, value: unknown): FetchResponse {
  if (!isRecord(value) || typeof value['status'] !== 'number' || !isRecord(value['headers']) || typeof value['body'] !== 'string' || typeof value['url'] !== 'string') {
    throw new HostCallError(method, 'the host answered something other than { status, headers, body, url }');
  }
  const { status, headers, body, url } = value as { status: number; headers: Record<string, string>; body: string; url: string };
  return {
    status,
    ok: status >= 200 && status < 300,
    headers,
    body,
    url,
    json: () => JSON.parse(body) as unknown,
  };
}

/** The typed host calls over the runtime's raw `call`. */
export function createPluginHost(raw: RawHost): PluginHost {
  const call = async (method: string, params: unknown): Promise<unknown> => {
    try {
      return await raw.call(method, params);
    } catch (error) {
      const code = isRecord(error) && typeof error['code'] === 'number' ? error['code'] : undefined;
      throw new HostCallError(method, error instanceof Error ? error.message : String(error), code);
    }
  };
  return Object.freeze({
    users: Object.freeze({
      async read(userId: string): Promise<PluginUser | null> {
        if (typeof userId !== 'string' || userId === '') throw new TypeError('users.read: userId must be a non-empty string');
        const user = await call('users.read', { userId });
        if (user !== null && !isRecord(user)) throw new HostCallError('users.read', 'the host answered something other than a user or null');
        return user as PluginUser | null;
      },
    }),
    audit: Object.freeze({
      async record(action: string, detail?: Readonly<Record<string, JsonValue>>): Promise<void> {
        if (typeof action !== 'string' || !AUDIT_ACTION.test(action)) throw new TypeError('audit.record: the action must match /^[a-z][a-z0-9._-]{0,63}$/');
        if (detail !== undefined) {
          if (!isPlainObject(detail) || !isJson(detail)) throw new TypeError('audit.record: the detail must be an object of JSON values');
          if (new TextEncoder().encode(JSON.stringify(detail)).length > AUDIT_DETAIL_BYTES) throw new TypeError(`audit.record: the detail is more than ${AUDIT_DETAIL_BYTES} bytes of JSON`);
        }
        await call('audit.record', detail === undefined ? { action } : { action, detail });
      },
    }),
    async fetch(url: string, init: FetchInit = {}): Promise<FetchResponse> {
      if (typeof url !== 'string') throw new TypeError('http.fetch: the url must be a string');
      if (init.body !== undefined && typeof init.body !== 'string') throw new TypeError('http.fetch: the body must be a string (JSON.stringify an object)');
      const params = {
        url,
        ...(init.method !== undefined && { method: init.method }),
        ...(init.headers !== undefined && { headers: init.headers }),
        ...(init.body !== undefined && { body: init.body }),
      };
      return fetchResponse('http.fetch', await call('http.fetch', params));
    },
  });
}

/**
 * A plugin's hooks: checks each point name, and wraps each handler so the
 * sandbox runtime can call it with the wire's `(params, host)` and gets the
 * wire's answer back.
 */
export function definePlugin(definition: PluginDefinition): DefinedPlugin {
  if (!isRecord(definition) || !isRecord(definition.hooks)) throw new TypeError('definePlugin: expected { hooks: { [point]: handler } }');
  const hooks: Partial<Record<HookPoint, WireHandler>> = {};
  for (const [point, handler] of Object.entries(definition.hooks)) {
    if (!Object.hasOwn(HOOK_POINTS, point)) throw new TypeError(`definePlugin: unknown hook point ${JSON.stringify(point)} (known: ${Object.keys(HOOK_POINTS).join(', ')})`);
    if (typeof handler !== 'function') throw new TypeError(`definePlugin: the hook ${point} is not a function`);
    const hookPoint = point as HookPoint;
    const claimsPoint = HOOK_POINTS[hookPoint] === 'claims';
    hooks[hookPoint] = async (params, raw) => {
      if (!isRecord(params) || !isRecord(params['context'])) throw new TypeError(`${point}: the host sent no context`);
      const claims = params['claims'] ?? {};
      if (claimsPoint && !isRecord(claims)) throw new TypeError(`${point}: the host sent claims that are not an object`);
      // Frozen: changing ctx.claims changes nothing on the host, so it throws instead; answer { claims } to modify.
      const context = Object.freeze({
        ...params['context'],
        ...(claimsPoint && { claims: Object.freeze({ ...(claims as Claims) }) }),
        host: createPluginHost(raw),
      });
      const answer: unknown = await (handler as (context: unknown) => unknown)(context);
      return toWireAnswer(hookPoint, answer);
    };
  }
  return Object.freeze({ hooks: Object.freeze(hooks) });
}
