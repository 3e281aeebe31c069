/** Small helpers shared by the benchmark scripts. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { request as httpRequest, type Agent } from 'node:http';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import autocannon, { type Result as LoadResult } from 'autocannon';
import pg from 'pg';
import { loadConfig } from '../src/config/index.ts';
import { deleteRedisKeys } from '../test/support/services.ts';

/** Nearest-rank percentile (p in 0..100) of numbers; sorts a copy. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1]!;
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** What a reader needs to judge whether two result files are comparable. */
export function machine(): Record<string, unknown> {
  return { node: process.version, platform: process.platform, arch: process.arch, cpus: cpus().length, cpuModel: cpus()[0]?.model, loadavg: loadavg() };
}

/** Writes bench/results/<name>-<timestamp>.json and returns its path. */
export function writeResult(name: string, data: unknown): string {
  const directory = join(import.meta.dirname, 'results');
  mkdirSync(directory, { recursive: true });
  const path = join(directory, `${name}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(path, `${JSON.stringify(data, null, 2)}\n`);
  return path;
}

/** A plain fixed-width text table: numeric cells right-aligned, text left-aligned. */
export function table(header: readonly string[], rows: readonly (readonly (string | number)[])[]): string {
  const cells = [header, ...rows].map((row) => row.map((cell) => String(cell)));
  const widths = header.map((_, column) => Math.max(...cells.map((row) => row[column]?.length ?? 0)));
  const numeric = /^[\d.,/ -]+$/;
  const line = (row: readonly string[]) =>
    row.map((cell, column) => (numeric.test(cell) ? cell.padStart(widths[column]!) : cell.padEnd(widths[column]!))).join('  ').trimEnd();
  return [line(cells[0]!), widths.map((width) => '-'.repeat(width)).join('  '), ...cells.slice(1).map(line)].join('\n');
}

/** `--name value` from argv, or the fallback. */
export function option(name: string, fallback: string): string;
export function option(name: string, fallback?: string): string | undefined;
export function option(name: string, fallback?: string): string | undefined {
  const index = process.argv.indexOf(`--${name}`);
  return index >= 0 && index + 1 < process.argv.length ? process.argv[index + 1] : fallback;
}

/** The repeatable `--env NAME=value` options, as an environment for the Portcullis children. */
export function envOptions(): Record<string, string> {
  return Object.fromEntries(options('env').map((pair) => [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)]));
}

/** Every value of a repeatable `--name value` option. */
export function options(name: string): string[] {
  return process.argv.flatMap((arg, index) => (arg === `--${name}` && index + 1 < process.argv.length ? [process.argv[index + 1]!] : []));
}

/**
 * The options of a bench that runs autocannon in rounds: `--rounds`,
 * `--duration` and `--warmup` (seconds per measured run and per warm-up run),
 * `--connections` and `--pipelining`.
 */
export function loadRoundOptions(defaults: { readonly rounds?: number; readonly durationSeconds?: number } = {}) {
  return {
    rounds: positiveInteger('rounds', defaults.rounds ?? 5),
    durationSeconds: positiveInteger('duration', defaults.durationSeconds ?? 5),
    warmupSeconds: positiveInteger('warmup', 1),
    connections: positiveInteger('connections', 50),
    pipelining: positiveInteger('pipelining', 1),
  };
}

export function positiveInteger(name: string, fallback: number): number {
  const raw = option(name, String(fallback));
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value <= 0) throw new Error(`--${name} must be a positive integer, got "${raw}"`);
  return value;
}

/** `--name value` as a number > 0 (fractions allowed). */
export function positiveNumber(name: string, fallback: number): number {
  const raw = option(name, String(fallback));
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name} must be a positive number, got "${raw}"`);
  return value;
}

export function round2(value: number): number {
  return Math.round(value * 100) / 100;
}

/** Runs one statement on a connection of its own (creating and dropping a bench schema). */
export async function runSql(url: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

/** One autocannon run, summarised the same way by every HTTP benchmark. */
export interface LoadRun {
  readonly requestsPerSecond: number;
  readonly requests: number;
  readonly latencyMs: { readonly p50: number; readonly p99: number; readonly mean: number };
  /** Server CPU time (user + system) per response; null where /proc is missing. */
  readonly cpuMicrosPerRequest: number | null;
}

/**
 * Requests per second as the total over the real duration rather than
 * autocannon's mean of per-second samples (it does not depend on where the
 * sample boundaries fall); latencies as recorded per response.
 */
export function summariseLoad(result: { readonly requests: { readonly total: number }; readonly duration: number }, latencies: readonly number[], cpuBefore: number | null, cpuAfter: number | null): LoadRun {
  return {
    requestsPerSecond: Math.round(result.requests.total / result.duration),
    requests: result.requests.total,
    latencyMs: {
      p50: round2(percentile(latencies, 50)),
      p99: round2(percentile(latencies, 99)),
      mean: round2(latencies.reduce((sum, value) => sum + value, 0) / latencies.length),
    },
    cpuMicrosPerRequest: cpuBefore === null || cpuAfter === null ? null : round2((cpuAfter - cpuBefore) / result.requests.total),
  };
}

/**
 * The environment of a benchmark's Portcullis children: this process's,
 * without any PORTCULLIS_* of the caller's (so "default Portcullis" means the
 * defaults), quiet logs, plus the run's own settings; and the argon2id
 * parameters that configuration gives.
 */
export function portcullisChildEnvironment(extra: Readonly<Record<string, string>>): {
  baseEnv: Record<string, string | undefined>;
  portcullisEnv: Record<string, string | undefined>;
  argon2: { memoryCostKiB: number; timeCost: number; parallelism: number };
} {
  const baseEnv = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('PORTCULLIS_')));
  const portcullisEnv = { ...baseEnv, PORTCULLIS_LOG_LEVEL: 'warn', ...extra };
  const identity = loadConfig({ env: portcullisEnv, overrides: { dataDir: '/nonexistent', port: 0 } }).identity;
  return { baseEnv, portcullisEnv, argon2: { memoryCostKiB: identity.passwordMemoryCostKiB, timeCost: identity.passwordTimeCost, parallelism: identity.passwordParallelism } };
}

/** Ends the process if a benchmark overruns its budget (a hung child must not hang the run). */
export function giveUpAfter(name: string, budgetMs: number): void {
  setTimeout(() => {
    console.error(`${name}: gave up after ${budgetMs / 1000} s`);
    process.exit(1);
  }, budgetMs).unref();
}

/**
 * Form POSTs to `url` from `connections` autocannon connections for
 * `seconds`; every answer must be a 200 (else it throws, naming `label`).
 * Resolves with autocannon's result and each response's latency (ms).
 */
export async function formPostLoad(options: {
  readonly label: string;
  readonly url: string;
  readonly body: string;
  readonly authorization: string;
  readonly connections: number;
  readonly pipelining: number;
  readonly seconds: number;
}): Promise<{ readonly result: LoadResult; readonly latencies: number[] }> {
  const latencies: number[] = [];
  let notOk = 0;
  // autocannon.d.ts declares only what overhead.ts uses; these options exist.
  const request = {
    url: options.url,
    method: 'POST',
    body: options.body,
    headers: { authorization: options.authorization, 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    connections: options.connections,
    pipelining: options.pipelining,
    duration: options.seconds,
  };
  const run = autocannon(request);
  run.on('response', (_client, status, _bytes, responseTimeMs) => {
    if (status !== 200) notOk += 1;
    latencies.push(responseTimeMs);
  });
  const result = await run;
  if (result.errors + result.timeouts + result.non2xx + notOk > 0) throw new Error(`${options.label}: ${result.errors} errors, ${result.timeouts} timeouts, ${result.non2xx + notOk} answers other than 200`);
  return { result, latencies };
}

/**
 * A schema of its own on PostgreSQL and a key prefix of its own on Redis
 * (either, both or neither), for one Portcullis child: the PORTCULLIS_*
 * settings that point it there (Redis as its hot store), and a cleanup that
 * drops the schema and deletes the keys.
 */
export async function ownStores(databaseUrl: string | undefined, redisUrl: string | undefined): Promise<{ env: Record<string, string>; cleanup: () => Promise<void> }> {
  const env: Record<string, string> = {};
  const cleanups: (() => Promise<void>)[] = [];
  if (databaseUrl !== undefined) {
    const schema = `portcullis_bench_${randomBytes(6).toString('hex')}`;
    await runSql(databaseUrl, `CREATE SCHEMA ${schema}`);
    cleanups.push(() => runSql(databaseUrl, `DROP SCHEMA IF EXISTS ${schema} CASCADE`));
    Object.assign(env, { PORTCULLIS_DATABASE_URL: databaseUrl, PORTCULLIS_DATABASE_SCHEMA: schema });
  }
  if (redisUrl !== undefined) {
    const keyPrefix = `portcullis:bench:${randomBytes(6).toString('hex')}:`;
    cleanups.push(() => deleteRedisKeys(redisUrl, keyPrefix));
    Object.assign(env, { PORTCULLIS_REDIS_URL: redisUrl, PORTCULLIS_REDIS_KEY_PREFIX: keyPrefix, PORTCULLIS_HOT_STORE: 'redis' });
  }
  return {
    env,
    async cleanup() {
      for (const cleanup of cleanups.reverse()) await cleanup();
    },
  };
}

/**
 * `--driver sqlite|postgres` (default: both, PostgreSQL when a URL is known)
 * and `--database URL` (default PORTCULLIS_TEST_DATABASE_URL), checked.
 */
export function driverSelection(): { onlyDriver: 'sqlite' | 'postgres' | undefined; databaseUrl: string | undefined } {
  const onlyDriver = option('driver');
  if (onlyDriver !== undefined && onlyDriver !== 'sqlite' && onlyDriver !== 'postgres') throw new Error(`--driver must be sqlite or postgres, got "${onlyDriver}"`);
  const databaseUrl = option('database') ?? (process.env['PORTCULLIS_TEST_DATABASE_URL'] || undefined);
  if (onlyDriver === 'postgres' && databaseUrl === undefined) throw new Error('--driver postgres needs --database or PORTCULLIS_TEST_DATABASE_URL');
  return { onlyDriver, databaseUrl };
}

// ---------------------------------------------------------------------------
// A small HTTP/1.1 client and a scripted browser, for the benchmarks that
// drive sign-ins and authorization code flows by hand (login, oauth, soak).

export interface HttpResponse {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
}

/** One HTTP/1.1 request, on the given keep-alive agent if any; the body is read in full. */
export function send(agent: Agent | undefined, url: URL, method: 'GET' | 'POST', headers: Record<string, string>, body?: string): Promise<HttpResponse> {
  return new Promise((resolve, reject) => {
    const requestHeaders = body === undefined ? headers : { ...headers, 'content-length': String(Buffer.byteLength(body)) };
    const req = httpRequest(url, { ...(agent !== undefined && { agent }), method, headers: requestHeaders }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

export interface ClientCredentials {
  readonly id: string;
  readonly secret: string;
}

export const basic = (client: ClientCredentials) => `Basic ${Buffer.from(`${encodeURIComponent(client.id)}:${encodeURIComponent(client.secret)}`).toString('base64')}`;
const FORM = 'application/x-www-form-urlencoded';

/** A form POST authenticated as `client` (client_secret_basic); the answer parsed as JSON (else `{ unparsed }`). */
export async function postForm(agent: Agent | undefined, url: URL, params: Record<string, string>, client: ClientCredentials): Promise<{ status: number; json: Record<string, unknown> }> {
  const answer = await send(agent, url, 'POST', { 'content-type': FORM, authorization: basic(client), accept: 'application/json' }, new URLSearchParams(params).toString());
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(answer.body) as Record<string, unknown>;
  } catch {
    json = { unparsed: answer.body.slice(0, 300) };
  }
  return { status: answer.status, json };
}

function cookie(response: HttpResponse, name: string): string | undefined {
  for (const header of response.headers['set-cookie'] ?? []) {
    if (header.startsWith(`${name}=`)) return header.slice(name.length + 1, header.indexOf(';') === -1 ? undefined : header.indexOf(';'));
  }
  return undefined;
}

/**
 * GET /login then POST /login on Portcullis, as a browser would (a new
 * pre-session cookie, so a new session each time); resolves with the POST's
 * latency in ms. Anything but a 303 with a session cookie throws: a
 * throttled or refused sign-in costs far less than a real one and would
 * flatter the figures.
 */
export async function signIn(agent: Agent, base: string, account: string, password: string): Promise<{ postMs: number; sessionId: string }> {
  const form = await send(agent, new URL('/login', base), 'GET', { accept: 'text/html' });
  const nonce = cookie(form, '__Host-portcullis-login');
  const csrf = /name="_csrf" value="([^"]+)"/.exec(form.body)?.[1];
  if (form.status !== 200 || nonce === undefined || csrf === undefined) throw new Error(`GET /login: ${form.status}, no login cookie or CSRF field`);
  const body = new URLSearchParams({ _csrf: csrf, email: account, password }).toString();
  const start = performance.now();
  const answer = await send(agent, new URL('/login', base), 'POST', { 'content-type': FORM, cookie: `__Host-portcullis-login=${nonce}` }, body);
  const postMs = performance.now() - start;
  const sessionId = cookie(answer, '__Host-portcullis');
  if (answer.status !== 303 || sessionId === undefined) {
    const message = /<p class="error"[^>]*>([^<]*)</.exec(answer.body)?.[1] ?? answer.body.slice(0, 200);
    throw new Error(`POST /login as ${account}: ${answer.status} instead of 303 with a session cookie: ${message}`);
  }
  return { postMs, sessionId };
}

const unescapeHtml = (value: string) =>
  value.replace(/&(?:#(\d+)|#x([0-9a-f]+)|(amp|lt|gt|quot|apos));/gi, (_, dec: string | undefined, hex: string | undefined, name: string | undefined) =>
    dec !== undefined ? String.fromCharCode(Number(dec)) : hex !== undefined ? String.fromCharCode(parseInt(hex, 16)) : ({ amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" } as Record<string, string>)[name!.toLowerCase()]!,
  );

/** The page's one POST form: its action and hidden fields, and whether it asks for a password. */
function parseForm(html: string): { action: string; fields: Record<string, string>; password: boolean } | null {
  const form = /<form\b[^>]*\bmethod="post"[^>]*\baction="([^"]+)"[^>]*>([\s\S]*?)<\/form>/i.exec(html);
  if (form === null) return null;
  const fields: Record<string, string> = {};
  for (const input of form[2]!.matchAll(/<input\b[^>]*>/gi)) {
    const tag = input[0];
    if (!/\btype="hidden"/i.test(tag)) continue;
    const name = /\bname="([^"]*)"/.exec(tag)?.[1];
    const value = /\bvalue="([^"]*)"/.exec(tag)?.[1];
    if (name !== undefined) fields[unescapeHtml(name)] = unescapeHtml(value ?? '');
  }
  return { action: unescapeHtml(form[1]!), fields, password: /\bname="password"/.test(form[2]!) };
}

/** A browser's cookie jar, reduced to what these flows need: by name, all paths alike (each new cookie of a name replaces the old). */
class CookieJar {
  readonly #cookies = new Map<string, string>();

  header(): Record<string, string> {
    return this.#cookies.size === 0 ? {} : { cookie: [...this.#cookies].map(([name, value]) => `${name}=${value}`).join('; ') };
  }

  take(response: HttpResponse): void {
    for (const line of response.headers['set-cookie'] ?? []) {
      const [pair = '', ...attributes] = line.split(';');
      const equals = pair.indexOf('=');
      const name = pair.slice(0, equals).trim();
      const value = pair.slice(equals + 1).trim();
      const expired = attributes.some((attribute) => {
        const [key = '', raw = ''] = attribute.split('=');
        const lower = key.trim().toLowerCase();
        return (lower === 'max-age' && Number(raw) <= 0) || (lower === 'expires' && Date.parse(raw) <= Date.now());
      });
      if (expired || value === '') this.#cookies.delete(name);
      else this.#cookies.set(name, value);
    }
  }
}

/** Where and as whom one authorization code flow runs. */
export interface FlowTarget {
  /** Names the server in error messages. */
  readonly name: string;
  /** The server's base URL, which is also the issuer the callback's `iss` must name. */
  readonly url: string;
  /** The confidential client (client_secret_basic) that redeems the code. */
  readonly client: ClientCredentials;
  readonly redirectUri: string;
  readonly scope: string;
  /** The API, sent as `resource` (RFC 8707). */
  readonly resource: string;
  readonly password: string;
  /** prompt=consent: a consent form every time; else only when the server has none on record. */
  readonly promptConsent: boolean;
}

export interface FlowResult {
  readonly ms: number;
  /** Consent forms this flow went through (0 or 1). */
  readonly consents: number;
  /** HTTP requests the flow took, the token request included. */
  readonly requests: number;
  readonly tokens: Record<string, unknown>;
}

/**
 * One full flow as a new browser (no cookies) and the client behind it:
 * GET /authorize (PKCE S256, state, nonce) and the redirects that follow,
 * the sign-in form, the consent form if shown, then POST /token with the
 * code and verifier, which must give a JWT access token and an ID token.
 * Anything other than the expected answer at any step throws.
 */
export async function codeFlow(target: FlowTarget, agent: Agent, account: string): Promise<FlowResult> {
  const start = performance.now();
  const base = new URL(target.url);
  const jar = new CookieJar();
  const verifier = randomBytes(32).toString('base64url');
  const state = randomBytes(16).toString('base64url');
  const authorize = new URL('/authorize', base);
  authorize.search = new URLSearchParams({
    response_type: 'code',
    client_id: target.client.id,
    redirect_uri: target.redirectUri,
    scope: target.scope,
    state,
    nonce: randomBytes(16).toString('base64url'),
    code_challenge: createHash('sha256').update(verifier).digest('base64url'),
    code_challenge_method: 'S256',
    resource: target.resource,
    ...(target.promptConsent && { prompt: 'consent' }),
  }).toString();
  let requests = 0;
  const browse = async (url: URL, method: 'GET' | 'POST', form?: Record<string, string>) => {
    requests += 1;
    const headers: Record<string, string> = { accept: 'text/html', ...jar.header() };
    if (method === 'POST') Object.assign(headers, { 'content-type': FORM, origin: base.origin, 'sec-fetch-site': 'same-origin' });
    const response = await send(agent, url, method, headers, form === undefined ? undefined : new URLSearchParams(form).toString());
    jar.take(response);
    return response;
  };

  let consents = 0;
  let callback: URL | undefined;
  let response = await browse(authorize, 'GET');
  let at = authorize;
  for (let step = 0; step < 12 && callback === undefined; step++) {
    if (response.status === 302 || response.status === 303) {
      const location = new URL(String(response.headers.location), at);
      if (location.href.startsWith(target.redirectUri)) callback = location;
      else response = await browse((at = location), 'GET');
      continue;
    }
    const form = response.status === 200 ? parseForm(response.body) : null;
    if (form === null) throw new Error(`${target.name} flow: ${response.status} at ${at.pathname}: ${response.body.slice(0, 300)}`);
    const next = new URL(form.action, at);
    if (form.password) {
      response = await browse((at = next), 'POST', { ...form.fields, email: account, password: target.password });
      if (response.status === 200) throw new Error(`${target.name} flow: the sign-in as ${account} was refused: ${/role="alert"[^>]*>([^<]*)</.exec(response.body)?.[1] ?? response.body.slice(0, 300)}`);
    } else {
      consents += 1;
      response = await browse((at = next), 'POST', { ...form.fields, decision: 'allow' });
    }
  }
  if (callback === undefined) throw new Error(`${target.name} flow: no redirect to the client after 12 steps`);
  const code = callback.searchParams.get('code');
  if (code === null || callback.searchParams.get('state') !== state || callback.searchParams.get('iss') !== target.url) {
    throw new Error(`${target.name} flow: bad callback ${callback.href}`);
  }
  const tokens = await postForm(agent, new URL('/token', base), { grant_type: 'authorization_code', code, redirect_uri: target.redirectUri, code_verifier: verifier }, target.client);
  if (tokens.status !== 200 || typeof tokens.json['access_token'] !== 'string' || typeof tokens.json['id_token'] !== 'string' || tokens.json['access_token'].split('.').length !== 3) {
    throw new Error(`${target.name} flow: token answer ${tokens.status} ${JSON.stringify(tokens.json).slice(0, 300)}`);
  }
  return { ms: performance.now() - start, consents, requests: requests + 1, tokens: tokens.json };
}
