/**
 * HTTPS requests a sandboxed plugin asks for through its `http.fetch` host
 * call (the manifest's `origins`). The request is untrusted input: it is
 * validated strictly, then sent only to the listed origins, every redirect
 * hop checked again, and (in production) only to public addresses by the
 * address actually connected to (address.ts, the rule outbound.ts uses).
 * One deadline covers the whole exchange; the response body is capped and
 * the socket dropped the moment it goes past the cap.
 *
 * The steps, each a small function below:
 * 1. parseRequest: the plugin's request, field by field;
 * 2. checkOrigin and checkAddress: before each hop connects;
 * 3. exchange: one request/response, the lookup refusing non-public addresses;
 * 4. followRedirect: the next hop (301/302/303 to GET, 307/308 unchanged).
 *
 * Errors are FetchPolicyError with a stable code and a short fixed sentence
 * (no stack, no resolved address, nothing from the request's headers), so
 * the host can hand them to the plugin as they are.
 */
import type { IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import { OutboundAddressError, addressCheckedLookup, isPublicAddress } from './address.ts';

export interface FetchPolicy {
  /** Exact origins (scheme://host[:port], as new URL(x).origin) the request and every redirect hop may go to. */
  readonly origins: readonly string[];
  /** Refuse connections to non-public addresses (loopback, private, link-local, ...), by the address actually connected (DNS rebinding-proof), as outbound.ts does. True in production. */
  readonly publicOnly: boolean;
  /** One deadline for the whole exchange, redirects included. */
  readonly timeoutMs: number;
  /** Response body bytes allowed; more is an error (FetchPolicyError code 'response_too_large'), the socket destroyed at once — never buffer past the cap. */
  readonly maxResponseBytes: number;
  /** Redirects followed (default 3); each hop re-checked against origins and the address rule. 301/302/303 turn into GET without body, 307/308 keep method+body. */
  readonly maxRedirects?: number;
  /** Extra trusted CA certificates (PEM), for tests and private PKI. */
  readonly ca?: string | readonly string[];
  /** Aborts the exchange: the promise rejects with the signal's reason (as fetch does), the socket destroyed. */
  readonly signal?: AbortSignal;
}

export const FETCH_METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD'] as const;
export type FetchMethod = (typeof FETCH_METHODS)[number];

export interface FetchRequest {
  readonly url: string;
  readonly method?: FetchMethod;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: string;
}

export interface FetchResponse {
  readonly status: number;
  /** Lowercased names, set-cookie dropped, repeated fields joined with ", ", at most 64. */
  readonly headers: Readonly<Record<string, string>>;
  /** The body as UTF-8 text. */
  readonly body: string;
  /** The final URL, after redirects. */
  readonly url: string;
}

export type FetchPolicyErrorCode =
  | 'invalid_request'
  | 'origin_not_allowed'
  | 'address_not_allowed'
  | 'too_many_redirects'
  | 'response_too_large'
  | 'timeout'
  | 'network_error';

export class FetchPolicyError extends Error {
  override readonly name = 'FetchPolicyError';
  readonly code: FetchPolicyErrorCode;
  constructor(code: FetchPolicyErrorCode, message: string) {
    super(message);
    this.code = code;
    // The host's frames are nothing a plugin should read: the stack is the one line.
    this.stack = `${this.name}: ${message}`;
  }
}

const MAX_URL_LENGTH = 2048;
const MAX_HEADERS = 32;
const MAX_HEADER_BYTES = 8 * 1024;
const MAX_BODY_BYTES = 256 * 1024;
const MAX_RESPONSE_HEADERS = 64;
const DEFAULT_MAX_REDIRECTS = 3;
const REQUEST_FIELDS = new Set(['url', 'method', 'headers', 'body']);
// RFC 9110 section 5.6.2 token.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// RFC 9110 section 5.5 field-value characters: VCHAR, obs-text, SP, HTAB (so no CR, LF, NUL or other controls).
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
/** Request headers the host owns (framing, connection, proxies): a plugin may not set them. */
const FORBIDDEN_HEADERS = new Set(['host', 'connection', 'content-length', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'keep-alive', 'expect']);
/** Request headers that describe a body: dropped when a redirect turns the request into a GET (Fetch, "HTTP-redirect fetch"). */
const BODY_HEADERS = ['content-type', 'content-encoding', 'content-language', 'content-location'];
/** Request headers that carry a credential: not sent on to another origin by a redirect (Fetch, "HTTP-redirect fetch"). */
const CREDENTIAL_HEADERS = ['authorization', 'cookie'];
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

const isObject = (value: unknown): value is Record<string, unknown> => value !== null && typeof value === 'object' && !Array.isArray(value);
/** A piece of the plugin's input for a message: quoted and cut short. */
const show = (value: string) => JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
const invalid = (field: string, message: string) => new FetchPolicyError('invalid_request', `${field}: ${message}`);

interface Hop {
  readonly url: URL;
  readonly method: FetchMethod;
  /** Lowercased names. */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string | undefined;
}

function parseUrl(value: unknown): URL {
  if (typeof value !== 'string') throw invalid('url', 'must be a string');
  if (value.length > MAX_URL_LENGTH) throw invalid('url', `must be at most ${MAX_URL_LENGTH} characters`);
  const url = URL.parse(value);
  if (url === null) throw invalid('url', 'must be an absolute URL');
  if (url.protocol !== 'https:') throw invalid('url', 'must be an https URL');
  if (url.username !== '' || url.password !== '') throw invalid('url', 'must not contain a user name or password');
  return url;
}

function parseMethod(value: unknown): FetchMethod {
  if (value === undefined) return 'GET';
  if (typeof value !== 'string' || !(FETCH_METHODS as readonly string[]).includes(value)) throw invalid('method', `must be one of ${FETCH_METHODS.join(', ')}`);
  return value as FetchMethod;
}

function parseHeaders(value: unknown): Record<string, string> {
  if (value === undefined) return {};
  if (!isObject(value)) throw invalid('headers', 'must be an object of header name to string value');
  const entries = Object.entries(value);
  if (entries.length > MAX_HEADERS) throw invalid('headers', `must have at most ${MAX_HEADERS} entries`);
  const headers: Record<string, string> = {};
  let bytes = 0;
  for (const [name, field] of entries) {
    if (!TOKEN.test(name)) throw invalid('headers', `${show(name)} is not a header name`);
    const lower = name.toLowerCase();
    if (FORBIDDEN_HEADERS.has(lower) || lower.startsWith('proxy-')) throw invalid('headers', `${show(name)} may not be set`);
    if (Object.hasOwn(headers, lower)) throw invalid('headers', `${show(name)} is given twice`);
    if (typeof field !== 'string') throw invalid('headers', `${show(name)} must have a string value`);
    if (!FIELD_VALUE.test(field)) throw invalid('headers', `${show(name)} has a value with control characters`);
    bytes += name.length + field.length;
    if (bytes > MAX_HEADER_BYTES) throw invalid('headers', `must total at most ${MAX_HEADER_BYTES} bytes`);
    headers[lower] = field;
  }
  return headers;
}

function parseBody(value: unknown, method: FetchMethod): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw invalid('body', 'must be a string');
  if (method === 'GET' || method === 'HEAD') throw invalid('body', `is not allowed with ${method}`);
  if (value.length > MAX_BODY_BYTES || Buffer.byteLength(value) > MAX_BODY_BYTES) throw invalid('body', `must be at most ${MAX_BODY_BYTES} bytes`);
  return value;
}

/** Step 1: the plugin's request, strictly (unknown fields refused). */
function parseRequest(input: unknown): Hop {
  if (!isObject(input)) throw invalid('request', 'must be an object');
  const unknown = Object.keys(input).find((key) => !REQUEST_FIELDS.has(key));
  if (unknown !== undefined) throw invalid('request', `unknown field ${show(unknown)}`);
  const url = parseUrl(input['url']);
  const method = parseMethod(input['method']);
  const headers = parseHeaders(input['headers']);
  const body = parseBody(input['body'], method);
  return { url, method, headers, body };
}

/** The policy's origins as URL.origin gives them (`https://EXAMPLE.com:443` is `https://example.com`); a malformed entry matches nothing. */
function allowedOrigins(origins: readonly string[]): Set<string> {
  const allowed = new Set<string>();
  for (const origin of origins) {
    const url = URL.parse(origin);
    if (url?.protocol === 'https:') allowed.add(url.origin);
  }
  return allowed;
}

/** Step 2a: the hop goes to a listed https origin. */
function checkOrigin(url: URL, allowed: ReadonlySet<string>): void {
  if (url.protocol !== 'https:' || !allowed.has(url.origin)) {
    const origin = url.origin.length > 100 ? `${url.origin.slice(0, 100)}…` : url.origin;
    throw new FetchPolicyError('origin_not_allowed', `the origin ${origin} is not in the plugin's allow-list`);
  }
}

/** Step 2b: a host written as an IP address is judged before connecting (no lookup runs for it). */
function checkAddress(url: URL, isAllowedAddress: ((address: string) => boolean) | undefined): void {
  if (isAllowedAddress === undefined) return;
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (isIP(host) !== 0 && !isAllowedAddress(host)) throw new FetchPolicyError('address_not_allowed', 'the host is an address that is not on the public internet');
}

/** A connection-level failure as a fixed sentence (the underlying error names addresses and ports). */
function networkError(error: unknown): FetchPolicyError {
  if (error instanceof FetchPolicyError) return error;
  if (error instanceof OutboundAddressError) return new FetchPolicyError('address_not_allowed', 'the host resolves to an address that is not on the public internet');
  const code = typeof (error as { code?: unknown } | null)?.code === 'string' ? (error as { code: string }).code : '';
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return new FetchPolicyError('network_error', 'the host name did not resolve');
  if (code === 'ECONNREFUSED') return new FetchPolicyError('network_error', 'the connection was refused');
  if (/CERT|SSL|TLS|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_OSSL/.test(code)) return new FetchPolicyError('network_error', 'the TLS connection failed (certificate or handshake)');
  if (code.startsWith('HPE_')) return new FetchPolicyError('network_error', 'the answer was not valid HTTP');
  return new FetchPolicyError('network_error', 'the connection failed');
}

/** Lowercased (node:http already lowercases), set-cookie dropped, at most 64. */
function responseHeaders(response: IncomingMessage): Record<string, string> {
  const headers: Record<string, string> = {};
  let kept = 0;
  for (const [name, value] of Object.entries(response.headers)) {
    if (kept >= MAX_RESPONSE_HEADERS) break;
    if (name === 'set-cookie' || value === undefined) continue;
    headers[name] = Array.isArray(value) ? value.join(', ') : value;
    kept += 1;
  }
  return headers;
}

type Answer =
  | { readonly kind: 'redirect'; readonly status: number; readonly location: string }
  | { readonly kind: 'final'; readonly status: number; readonly headers: Record<string, string>; readonly body: string };

interface Exchange {
  readonly signal: AbortSignal;
  readonly maxResponseBytes: number;
  readonly ca: string | string[] | undefined;
  readonly lookup: ReturnType<typeof addressCheckedLookup> | undefined;
}

/**
 * Step 3: one request and its answer. A redirect's body is not read; a
 * final body is read up to the cap (a larger declared Content-Length is
 * refused before reading). The signal (deadline or caller) destroys the
 * request wherever it is.
 */
function exchange(hop: Hop, context: Exchange): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const { signal } = context;
    // The deadline's FetchPolicyError, or the caller's reason as given (an AbortError DOMException by default).
    const abortReason = (): Error => signal.reason as Error;
    if (signal.aborted) {
      reject(abortReason());
      return;
    }
    const headers: Record<string, string> = { ...hop.headers, 'accept-encoding': 'identity' };
    if (hop.body !== undefined) headers['content-length'] = String(Buffer.byteLength(hop.body));
    else if (hop.method === 'POST' || hop.method === 'PUT' || hop.method === 'PATCH') headers['content-length'] = '0';
    let settled = false;
    const settle = (outcome: () => void): void => {
      if (settled) return;
      settled = true;
      signal.removeEventListener('abort', onAbort);
      // No keep-alive agent: the socket goes with the exchange, whatever the outcome.
      outgoing.destroy();
      outcome();
    };
    const fail = (error: Error): void => settle(() => reject(error));
    const onAbort = (): void => fail(abortReason());
    const tooLarge = (): void => fail(new FetchPolicyError('response_too_large', `the response body is larger than ${context.maxResponseBytes} bytes`));
    const outgoing = httpsRequest(
      hop.url,
      {
        method: hop.method,
        headers,
        // A fresh agent per request: no pooled socket (perhaps connected under another policy) is reused.
        agent: false,
        ...(context.ca !== undefined && { ca: context.ca }),
        ...(context.lookup !== undefined && { lookup: context.lookup }),
      },
      (response) => {
        const status = response.statusCode ?? 0;
        const { location } = response.headers;
        if (REDIRECT_STATUSES.has(status) && location !== undefined) {
          settle(() => resolve({ kind: 'redirect', status, location }));
          return;
        }
        const declared = Number(response.headers['content-length']);
        if (hop.method !== 'HEAD' && Number.isFinite(declared) && declared > context.maxResponseBytes) {
          tooLarge();
          return;
        }
        const chunks: Buffer[] = [];
        let size = 0;
        response.on('data', (chunk: Buffer) => {
          if (settled) return;
          size += chunk.length;
          if (size > context.maxResponseBytes) return tooLarge();
          chunks.push(chunk);
        });
        response.on('end', () => settle(() => resolve({ kind: 'final', status, headers: responseHeaders(response), body: Buffer.concat(chunks, size).toString('utf8') })));
        response.on('error', (error) => fail(networkError(error)));
        response.on('close', () => {
          if (!response.complete) fail(new FetchPolicyError('network_error', 'the connection closed before the answer was complete'));
        });
      },
    );
    signal.addEventListener('abort', onAbort, { once: true });
    outgoing.on('error', (error) => fail(networkError(error)));
    outgoing.end(hop.body);
  });
}

/** Step 4: the next hop. 301/302/303 turn into a GET without body (HEAD stays HEAD); 307/308 keep method and body; credentials stay with their origin. */
function followRedirect(hop: Hop, answer: { readonly status: number; readonly location: string }): Hop {
  const url = answer.location.length <= MAX_URL_LENGTH ? URL.parse(answer.location, hop.url.href) : null;
  if (url === null || url.username !== '' || url.password !== '') throw new FetchPolicyError('network_error', 'the server answered with an invalid redirect');
  const headers = { ...hop.headers };
  let { method, body } = hop;
  if (answer.status <= 303 && method !== 'GET' && method !== 'HEAD') {
    method = 'GET';
    body = undefined;
    for (const name of BODY_HEADERS) delete headers[name];
  }
  if (url.origin !== hop.url.origin) for (const name of CREDENTIAL_HEADERS) delete headers[name];
  return { url, method, headers, body };
}

/**
 * {@link fetchWithPolicy} with the address rule passed in: production code
 * calls fetchWithPolicy (the rule is isPublicAddress); a test may stand a
 * loopback server in for a public one.
 */
export async function fetchWithAddressRule(request: unknown, policy: FetchPolicy, isAllowedAddress: (address: string) => boolean): Promise<FetchResponse> {
  let hop = parseRequest(request);
  policy.signal?.throwIfAborted();
  const allowed = allowedOrigins(policy.origins);
  const maxRedirects = policy.maxRedirects ?? DEFAULT_MAX_REDIRECTS;
  const rule = policy.publicOnly ? isAllowedAddress : undefined;
  const stop = new AbortController();
  const onCallerAbort = (): void => stop.abort(policy.signal?.reason);
  policy.signal?.addEventListener('abort', onCallerAbort, { once: true });
  // One deadline for every hop, connect to last body byte.
  const deadline = setTimeout(() => stop.abort(new FetchPolicyError('timeout', `the request did not complete within ${policy.timeoutMs} ms`)), policy.timeoutMs);
  const context: Exchange = {
    signal: stop.signal,
    maxResponseBytes: policy.maxResponseBytes,
    ca: typeof policy.ca === 'string' ? policy.ca : policy.ca === undefined ? undefined : [...policy.ca],
    lookup: rule === undefined ? undefined : addressCheckedLookup(rule),
  };
  try {
    for (let redirects = 0; ; redirects += 1) {
      checkOrigin(hop.url, allowed);
      checkAddress(hop.url, rule);
      const answer = await exchange(hop, context);
      if (answer.kind === 'final') return { status: answer.status, headers: answer.headers, body: answer.body, url: hop.url.href };
      if (redirects >= maxRedirects) throw new FetchPolicyError('too_many_redirects', `the server redirected more than ${maxRedirects} times`);
      hop = followRedirect(hop, answer);
    }
  } finally {
    clearTimeout(deadline);
    policy.signal?.removeEventListener('abort', onCallerAbort);
  }
}

/**
 * Sends a plugin's request under its policy: https only, to the listed
 * origins, every redirect hop re-checked, with `publicOnly` only to public
 * addresses (the address connected to), within one deadline and a response
 * cap. Rejects with FetchPolicyError, or with the signal's reason when the
 * caller aborts.
 */
export function fetchWithPolicy(request: unknown, policy: FetchPolicy): Promise<FetchResponse> {
  return fetchWithAddressRule(request, policy, isPublicAddress);
}
