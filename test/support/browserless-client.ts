/**
 * A browser without a browser: Node's fetch with a cookie jar, manual
 * redirects and the headers a real browser sends on a same-origin form post
 * (Origin, Sec-Fetch-Site). Tests use one per person or attacker; each can
 * speak from its own client address (X-Forwarded-For, for a server that
 * trusts the loopback proxy).
 */

export interface SetCookie {
  readonly name: string;
  readonly value: string;
  /** Attribute names lower-cased; a flag (HttpOnly) maps to true. */
  readonly attributes: ReadonlyMap<string, string | true>;
  readonly raw: string;
}

export interface PageResponse {
  readonly status: number;
  readonly headers: Headers;
  readonly body: string;
  readonly setCookies: readonly SetCookie[];
  /** The Location header, for redirects. */
  readonly location: string | null;
}

export interface RequestOptions {
  readonly method?: string;
  /** Sent as application/x-www-form-urlencoded. */
  readonly form?: Record<string, string>;
  /** A raw body, with its own content-type in `headers`. */
  readonly body?: string | Uint8Array;
  /** Extra headers; a value of null removes a default one (Origin, Sec-Fetch-Site). */
  readonly headers?: Record<string, string | null>;
}

export function parseSetCookie(raw: string): SetCookie {
  const [pair = '', ...parts] = raw.split(';');
  const equals = pair.indexOf('=');
  const attributes = new Map<string, string | true>();
  for (const part of parts) {
    const at = part.indexOf('=');
    if (at === -1) attributes.set(part.trim().toLowerCase(), true);
    else attributes.set(part.slice(0, at).trim().toLowerCase(), part.slice(at + 1).trim());
  }
  return { name: pair.slice(0, equals).trim(), value: pair.slice(equals + 1).trim(), attributes, raw };
}

/** The value of the first hidden `_csrf` field of a page, if any. */
export function csrfField(html: string): string | undefined {
  return /name="_csrf" value="([^"]*)"/.exec(html)?.[1];
}

export class BrowserlessClient {
  readonly #base: string;
  readonly #jar = new Map<string, string>();
  readonly #defaults: Record<string, string>;
  /** Every cookie value and CSRF token this client was ever given (for "never in the log" checks). */
  readonly secretsSeen = new Set<string>();

  readonly #observe: ((response: PageResponse) => void) | undefined;

  /** `headers`: more headers on every request (a browser that sends `Sec-GPC: 1`, say). */
  constructor(base: string, options: { ip?: string; userAgent?: string; observe?: (response: PageResponse) => void; headers?: Record<string, string> } = {}) {
    this.#base = base;
    this.#observe = options.observe;
    this.#defaults = {
      origin: new URL(base).origin,
      'sec-fetch-site': 'same-origin',
      'user-agent': options.userAgent ?? 'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0',
      ...(options.ip !== undefined && { 'x-forwarded-for': options.ip }),
      ...Object.fromEntries(Object.entries(options.headers ?? {}).map(([name, value]) => [name.toLowerCase(), value])),
    };
  }

  cookie(name: string): string | undefined {
    return this.#jar.get(name);
  }

  setCookie(name: string, value: string): void {
    this.#jar.set(name, value);
  }

  deleteCookie(name: string): void {
    this.#jar.delete(name);
  }

  async request(path: string, options: RequestOptions = {}): Promise<PageResponse> {
    const headers: Record<string, string> = { ...this.#defaults };
    for (const [name, value] of Object.entries(options.headers ?? {})) {
      if (value === null) delete headers[name.toLowerCase()];
      else headers[name.toLowerCase()] = value;
    }
    if (this.#jar.size > 0) headers['cookie'] = [...this.#jar].map(([name, value]) => `${name}=${value}`).join('; ');
    let body: string | Uint8Array | undefined = options.body;
    if (options.form !== undefined) {
      body = new URLSearchParams(options.form).toString();
      headers['content-type'] ??= 'application/x-www-form-urlencoded';
    }
    const method = options.method ?? (body === undefined ? 'GET' : 'POST');
    const response = await fetch(new URL(path, this.#base), { method, headers, redirect: 'manual', ...(body !== undefined && { body }) });
    const setCookies = response.headers.getSetCookie().map(parseSetCookie);
    for (const cookie of setCookies) {
      const maxAge = cookie.attributes.get('max-age');
      const expires = cookie.attributes.get('expires');
      const gone = (typeof maxAge === 'string' && Number(maxAge) <= 0) || (typeof expires === 'string' && Date.parse(expires) <= Date.now()) || cookie.value === '';
      if (gone) this.#jar.delete(cookie.name);
      else {
        this.#jar.set(cookie.name, cookie.value);
        this.secretsSeen.add(cookie.value);
      }
    }
    const text = await response.text();
    const token = csrfField(text);
    if (token !== undefined && token !== '') this.secretsSeen.add(token);
    const page: PageResponse = { status: response.status, headers: response.headers, body: text, setCookies, location: response.headers.get('location') };
    this.#observe?.(page);
    return page;
  }

  get(path: string, headers?: Record<string, string | null>): Promise<PageResponse> {
    return this.request(path, { ...(headers !== undefined && { headers }) });
  }

  post(path: string, form: Record<string, string>, headers?: Record<string, string | null>): Promise<PageResponse> {
    return this.request(path, { method: 'POST', form, ...(headers !== undefined && { headers }) });
  }
}
