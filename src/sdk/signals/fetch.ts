/**
 * How this SDK makes HTTP requests: the global `fetch` unless one is passed
 * in (tests, proxies, a custom `undici` build), with an optional undici
 * `dispatcher` (for mTLS: `new undici.Agent({ connect: mtlsAgent.connect })`,
 * see `portcullis/sdk/mtls`), a time limit and a body limit.
 */
import { readWebBody } from './body.ts';

/** The subset of `fetch` this SDK calls. */
export type FetchLike = (input: string | URL, init?: RequestInit) => Promise<Response>;

export interface HttpOptions {
  /** Default: the global `fetch`. */
  readonly fetch?: FetchLike;
  /** An undici Dispatcher, passed to `fetch` as `dispatcher` (Node's fetch reads it). */
  readonly dispatcher?: object;
  /** Time allowed for one request, headers and body. Default 10 000 ms. */
  readonly timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 10_000;

export interface JsonResponse {
  readonly status: number;
  readonly headers: Headers;
  /** The parsed body, or undefined when it is not JSON. */
  readonly json: unknown;
}

/** One request whose answer is read as JSON, at most `limit` bytes of it; throws on network errors, timeouts and oversized bodies. */
export async function requestJson(url: string | URL, init: RequestInit, options: HttpOptions, limit: number, signal?: AbortSignal): Promise<JsonResponse> {
  const timeout = AbortSignal.timeout(options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  const withDispatcher = { ...init, signal: signal === undefined ? timeout : AbortSignal.any([signal, timeout]), redirect: 'error' } as RequestInit;
  if (options.dispatcher !== undefined) Object.assign(withDispatcher, { dispatcher: options.dispatcher });
  const response = await (options.fetch ?? fetch)(url, withDispatcher);
  const bytes = await readWebBody(response.body, limit);
  let json: unknown;
  try {
    json = bytes.byteLength === 0 ? undefined : JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    json = undefined;
  }
  return { status: response.status, headers: response.headers, json };
}

export const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);
