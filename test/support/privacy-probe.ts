/**
 * The privacy probe: a person with a known email address, name and client
 * IP address, seeded into a real server through its pages and APIs, and
 * the search for them in everything the server keeps (every table of every
 * SQLite database of the data directory, or its raw bytes; every table of a
 * PostgreSQL schema; every key under a Redis prefix). Shared by the data
 * map's test (every hit is in a place the map names) and the erasure tests
 * (after an erasure, no hit at all).
 *
 * Seeded, with the client address 203.0.113.77 (the server trusts the
 * loopback proxy's X-Forwarded-For): an account created with one address
 * and moved to another (as `portcullis user set-email` does), a mistyped
 * and a right password on the sign-in page, a name on the profile page,
 * two-step verification set up on the account page and used to sign in
 * again, an authorization-code flow run by openid-client with consent, a
 * login_hint (unless told not to), a refresh token and userinfo, a pushed
 * request left unused (with the login_hint), a password change on the
 * account page, a refused call to the signals API from the same address,
 * and a receiver's poll stream that gets the resulting security events and
 * removes the person's address as a subject.
 *
 * Searched for: both addresses (plain, URL-encoded, and inside base64 or
 * base64url at any alignment: a stored JWT), the name (likewise), the IP
 * address, its masked form (maskIp: /24 without the suffix) and its audit
 * truncation (truncateIp: with /24).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { Redis } from 'ioredis';
import { decodeJwt } from 'jose';
import * as client from 'openid-client';
import pg from 'pg';
import { truncateIp } from '../../src/audit/index.ts';
import { totpCodeAt } from '../../src/identity/totp.ts';
import { maskIp } from '../../src/observability/redaction.ts';
import { validateClientMetadata } from '../../src/oauth/index.ts';
import { placeOf, type DataPlace, type DataStore } from '../../src/privacy/index.ts';
import { SECURITY_EVENT_TYPES } from '../../src/sdk/index.ts';
import { BrowserlessClient, csrfField } from './browserless-client.ts';
import { completeAuthorization, registerClient, type Person, type RegisteredClient } from './oauth-flow.ts';
import type { TestBackend, TestServer } from './server.ts';
import { createTestSchema, deleteRedisKeys, redisTestPrefix, testDatabaseUrl, testRedisUrl } from './services.ts';

/** What the seeding needs of a server: its URL and the running instance. */
export type ProbeServer = Pick<TestServer, 'url' | 'running'>;

export const PASSWORD = 'correct horse battery staple';
export const NEW_PASSWORD = 'a quokka never forgets its feather';
export const REDIRECT = 'http://127.0.0.1:8080/callback';
export const IP = '203.0.113.77';
export const SCOPE = 'openid profile email offline_access';

/** The personal data one run seeds. */
export interface Probe {
  /** The address the account has at the end (and signs in with). */
  readonly email: string;
  /** The address it was created with, before the change. */
  readonly previousEmail: string;
  readonly name: string;
  readonly ip: string;
}

export function newProbe(label = 'map-probe'): Probe {
  const tag = randomBytes(4).toString('hex');
  return { email: `${label}-${tag}@example.test`, previousEmail: `${label}-${tag}-was@example.test`, name: `Zelda Quokkafeather-${tag}`, ip: IP };
}

// ---------------------------------------------------------------------------
// Searching

export interface Needle {
  readonly label: string;
  readonly text: string;
}

/**
 * The base64 and base64url forms of `text` inside a longer encoded value,
 * at each of the three byte alignments: only the characters that depend on
 * `text` alone.
 */
export function encodedForms(text: string): string[] {
  const bytes = Buffer.from(text, 'utf8');
  const forms: string[] = [];
  for (const pad of [0, 1, 2]) {
    const encoded = Buffer.concat([Buffer.alloc(pad), bytes]).toString('base64');
    const start = Math.ceil((8 * pad) / 6);
    const end = Math.floor((8 * (pad + bytes.length)) / 6);
    const core = encoded.slice(start, end);
    forms.push(core, core.replaceAll('+', '-').replaceAll('/', '_'));
  }
  return [...new Set(forms)];
}

/** The needles of the probe; `ip: false` leaves the IP address out (what an erasure may keep: the audit ledger's truncation). */
export function needlesOf(probe: Probe, options: { ip?: boolean } = {}): Needle[] {
  const needles: Needle[] = [];
  for (const [label, text] of [
    ['email', probe.email],
    ['previous email', probe.previousEmail],
    ['name', probe.name],
  ] as const) {
    needles.push({ label, text });
    if (encodeURIComponent(text) !== text) needles.push({ label: `${label} (URL-encoded)`, text: encodeURIComponent(text) });
    for (const form of encodedForms(text)) needles.push({ label: `${label} (base64)`, text: form });
  }
  if (options.ip === false) return needles;
  // Most specific first: the truncated form contains the masked one.
  needles.push({ label: 'IP', text: probe.ip }, { label: 'IP truncated', text: truncateIp(probe.ip)! }, { label: 'IP masked', text: maskIp(probe.ip) });
  return needles;
}

/** Where a hit is, in the data map's terms: a store and a container (hot: the key). */
export interface Location {
  readonly store: string;
  readonly container: string;
}

export interface Hit {
  /** The database or service, e.g. `sqlite portcullis.db`, `postgres <schema>`, `redis`. */
  readonly source: string;
  readonly table: string;
  readonly column: string;
  readonly location: Location;
  readonly labels: readonly string[];
  readonly snippet: string;
}

/** The needles `text` contains (an IP's masked form only when its longer forms are not there), and a snippet around the first. */
export function search(text: string, needles: readonly Needle[]): { labels: string[]; snippet: string } | undefined {
  const labels: string[] = [];
  let first = -1;
  let firstLength = 0;
  const truncated = needles.find((needle) => needle.label === 'IP truncated')?.text;
  for (const needle of needles) {
    let at = text.indexOf(needle.text);
    // "203.0.113.0" inside "203.0.113.0/24" is the truncation, already counted.
    if (needle.label === 'IP masked' && truncated !== undefined) {
      while (at !== -1 && text.startsWith(truncated, at)) at = text.indexOf(needle.text, at + 1);
    }
    if (at === -1) continue;
    if (!labels.includes(needle.label)) labels.push(needle.label);
    if (first === -1) {
      first = at;
      firstLength = needle.text.length;
    }
  }
  if (labels.length === 0) return undefined;
  const from = Math.max(0, first - 40);
  const to = Math.min(text.length, first + firstLength + 40);
  const snippet = `${from > 0 ? '…' : ''}${text.slice(from, to).replace(/[^\x20-\x7e]/g, '.')}${to < text.length ? '…' : ''}`;
  return { labels, snippet };
}

/** A stored value as text to search: blobs as latin-1 (the needles are ASCII), JSON as JSON, numbers skipped. */
export function asText(value: unknown): string | undefined {
  if (value === null || value === undefined) return undefined;
  if (typeof value === 'string') return value;
  if (value instanceof Uint8Array) return Buffer.from(value).toString('latin1');
  if (typeof value === 'object') return JSON.stringify(value);
  return undefined;
}

/**
 * Which place of the map a table's row belongs to: `records` by its
 * collection, the hot tables by their key, the audit and outbox tables as
 * themselves. Any other table is named by itself, which no place has, so a
 * hit there is unlisted.
 */
export function locationOf(table: string, row: Readonly<Record<string, unknown>>): Location {
  switch (table) {
    case 'records':
      return { store: 'records', container: String(row['collection']) };
    case 'hot_entries':
      return { store: 'hot', container: String(row['key']) };
    case 'hot_set_members':
      return { store: 'hot', container: String(row['set_key']) };
    case 'audit_entries':
      return { store: 'audit', container: 'audit_entries' };
    case 'outbox':
      return { store: 'outbox', container: 'outbox' };
    default:
      return { store: table, container: table };
  }
}

export const STORES: ReadonlySet<string> = new Set<DataStore>(['records', 'hot', 'audit', 'outbox']);

export function placeFor(location: Location): DataPlace | undefined {
  return STORES.has(location.store) ? placeOf(location.store as DataStore, location.container) : undefined;
}

/** The hits in places the map does not name, one line each (grouped by location), for a failure message. */
export function unlistedHits(hits: readonly Hit[]): string[] {
  const lines = new Map<string, string>();
  for (const hit of hits) {
    if (placeFor(hit.location) !== undefined) continue;
    const key = `(${hit.location.store}, ${hit.location.container})`;
    if (!lines.has(key)) lines.set(key, `${key} ← ${hit.source} ${hit.table}.${hit.column}: ${hit.labels.join(', ')} in "${hit.snippet}"`);
  }
  return [...lines.values()];
}

export function rowHits(source: string, table: string, row: Readonly<Record<string, unknown>>, needles: readonly Needle[]): Hit[] {
  const hits: Hit[] = [];
  for (const [column, value] of Object.entries(row)) {
    const text = asText(value);
    if (text === undefined) continue;
    const found = search(text, needles);
    if (found !== undefined) hits.push({ source, table, column, location: locationOf(table, row), ...found });
  }
  return hits;
}

/** Every file under `dir`. */
export function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile())
    .map((entry) => join(entry.parentPath, entry.name));
}

export const SQLITE_HEADER = Buffer.from('SQLite format 3\0', 'latin1');
export const isSqliteCompanion = (path: string) => /-(wal|shm|journal)$/.test(path);

/**
 * The data directory: every table of every SQLite database in it, and any
 * other file as itself (a file is no place of the map). A database's WAL
 * and journal are read through the database.
 */
export function scanDataDir(dataDir: string, needles: readonly Needle[]): { hits: Hit[]; tables: string[] } {
  const hits: Hit[] = [];
  const tables: string[] = [];
  for (const path of filesUnder(dataDir)) {
    if (isSqliteCompanion(path)) continue;
    const bytes = readFileSync(path);
    const name = relative(dataDir, path);
    if (bytes.subarray(0, SQLITE_HEADER.length).equals(SQLITE_HEADER)) {
      const database = new DatabaseSync(path, { readOnly: true });
      try {
        const names = (database.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as { name: string }[]).map((row) => row.name);
        for (const table of names) {
          tables.push(`${name}:${table}`);
          for (const row of database.prepare(`SELECT * FROM "${table.replaceAll('"', '""')}"`).all()) hits.push(...rowHits(`sqlite ${name}`, table, row, needles));
        }
      } finally {
        database.close();
      }
      continue;
    }
    const found = search(bytes.toString('latin1'), needles);
    if (found !== undefined) hits.push({ source: 'file', table: name, column: '(contents)', location: { store: 'file', container: name }, ...found });
  }
  return { hits, tables };
}

/**
 * Every file under `dir` as raw bytes, a SQLite database's WAL and shared
 * memory included: what a copy of the disk would show, free pages and
 * old row versions too. One hit per file.
 */
export function scanFilesRaw(dir: string, needles: readonly Needle[]): Hit[] {
  const hits: Hit[] = [];
  for (const path of filesUnder(dir)) {
    const name = relative(dir, path);
    const found = search(readFileSync(path).toString('latin1'), needles);
    if (found !== undefined) hits.push({ source: 'file', table: name, column: '(bytes)', location: { store: 'file', container: name }, ...found });
  }
  return hits;
}

/** Every base table of the schema, every row. */
export async function scanPostgres(url: string, schema: string, needles: readonly Needle[]): Promise<{ hits: Hit[]; tables: string[] }> {
  const database = new pg.Client({ connectionString: url });
  await database.connect();
  try {
    const { rows } = await database.query<{ table_name: string }>("SELECT table_name FROM information_schema.tables WHERE table_schema = $1 AND table_type = 'BASE TABLE' ORDER BY table_name", [schema]);
    const hits: Hit[] = [];
    for (const { table_name: table } of rows) {
      const quoted = (identifier: string) => `"${identifier.replaceAll('"', '""')}"`;
      for (const row of (await database.query<Record<string, unknown>>(`SELECT * FROM ${quoted(schema)}.${quoted(table)}`)).rows) hits.push(...rowHits(`postgres ${schema}`, table, row, needles));
    }
    return { hits, tables: rows.map((row) => row.table_name) };
  } finally {
    await database.end();
  }
}

/** Every key under the prefix: its name and its value, whatever its type. */
export async function scanRedis(url: string, prefix: string, needles: readonly Needle[]): Promise<{ hits: Hit[]; types: Map<string, number> }> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await redis.connect();
  try {
    const keys: string[] = [];
    let cursor = '0';
    do {
      const [next, page] = await redis.scan(cursor, 'MATCH', `${prefix.replace(/[*?[\]\\]/g, '\\$&')}*`, 'COUNT', 500);
      cursor = next;
      keys.push(...page);
    } while (cursor !== '0');
    const hits: Hit[] = [];
    const types = new Map<string, number>();
    for (const key of new Set(keys)) {
      const type = await redis.type(key);
      types.set(type, (types.get(type) ?? 0) + 1);
      let value: unknown;
      switch (type) {
        case 'string':
          value = await redis.get(key);
          break;
        case 'hash':
          value = await redis.hgetall(key);
          break;
        case 'set':
          value = await redis.smembers(key);
          break;
        case 'zset':
          value = await redis.zrange(key, '0', '-1', 'WITHSCORES');
          break;
        case 'list':
          value = await redis.lrange(key, 0, -1);
          break;
        case 'stream':
          value = await redis.xrange(key, '-', '+');
          break;
        case 'none':
          continue; // expired between SCAN and TYPE
        default:
          throw new Error(`redis key ${key} has type ${type}, which this test cannot read: add it here`);
      }
      const location: Location = { store: 'hot', container: key.slice(prefix.length) };
      for (const [column, text] of [
        ['key', key.slice(prefix.length)],
        [`value (${type})`, asText(value)],
      ] as const) {
        if (text === undefined) continue;
        const found = search(text, needles);
        if (found !== undefined) hits.push({ source: 'redis', table: type, column, location, ...found });
      }
    }
    return { hits, types };
  } finally {
    redis.disconnect();
  }
}

// ---------------------------------------------------------------------------
// Seeding, through the pages and APIs

export const api = (server: Pick<TestServer, 'url'>, path: string, init: { method?: string; token?: string; body?: unknown; ip?: string } = {}) =>
  fetch(`${server.url}${path}`, {
    method: init.method ?? (init.body === undefined ? 'GET' : 'POST'),
    headers: {
      ...(init.token !== undefined && { authorization: `Bearer ${init.token}` }),
      ...(init.body !== undefined && { 'content-type': 'application/json' }),
      ...(init.ip !== undefined && { 'x-forwarded-for': init.ip }),
    },
    ...(init.body !== undefined && { body: JSON.stringify(init.body) }),
  });

/** A receiver of security signals (an approved client with ssf:stream) and its access token. */
export async function signalReceiver(server: ProbeServer): Promise<string> {
  const metadata = validateClientMetadata({ grant_types: ['client_credentials'], redirect_uris: [], scope: 'ssf:stream', client_name: 'Map probe receiver' }, { allowedScopes: ['ssf:stream'], defaultSigningAlgorithm: 'EdDSA' });
  const { client: registered, clientSecret } = await server.running.authorizationServer.clients.register(metadata, { actor: 'test' }, { approved: true });
  const response = await fetch(`${server.url}/token`, {
    method: 'POST',
    headers: { authorization: `Basic ${Buffer.from(`${registered.client_id}:${clientSecret!}`).toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
    body: 'grant_type=client_credentials',
  });
  const body = (await response.json()) as { access_token: string };
  assert.equal(response.status, 200, JSON.stringify(body));
  return body.access_token;
}

/** Signs in on the sign-in page; resolves with where the server sends the browser next. */
export async function passwordSignIn(browser: BrowserlessClient, email: string, password: string): Promise<{ status: number; location: string | null }> {
  const form = await browser.get('/login');
  assert.equal(form.status, 200);
  const answer = await browser.post('/login', { _csrf: csrfField(form.body)!, email, password });
  return { status: answer.status, location: answer.location };
}

export async function accountCsrf(browser: BrowserlessClient): Promise<string> {
  const page = await browser.get('/account');
  assert.equal(page.status, 200, 'signed in: the account page');
  return csrfField(page.body)!;
}

/** Long-polls the stream, acknowledging as it goes, until `done` holds for the events received. */
export async function pollUntil(server: Pick<TestServer, 'url'>, token: string, streamId: string, done: (events: Record<string, Record<string, unknown>>[]) => boolean): Promise<Record<string, Record<string, unknown>>[]> {
  const events: Record<string, Record<string, unknown>>[] = [];
  let ack: string[] = [];
  const deadline = Date.now() + 20_000;
  while (!done(events)) {
    assert.ok(Date.now() < deadline, `the stream did not get the expected events; it got ${JSON.stringify(events.map((event) => Object.keys(event)))}`);
    const response = await api(server, `/signals/poll/${streamId}`, { token, body: { ack, maxEvents: 50, returnImmediately: false } });
    assert.equal(response.status, 200);
    const { sets } = (await response.json()) as { sets: Record<string, string> };
    ack = Object.keys(sets);
    for (const set of Object.values(sets)) events.push(decodeJwt(set)['events'] as Record<string, Record<string, unknown>>);
  }
  if (ack.length > 0) assert.equal((await api(server, `/signals/poll/${streamId}`, { token, body: { ack, maxEvents: 0 } })).status, 200);
  return events;
}

export interface SeedOptions {
  /** Whether requests carry a login_hint (default true). One stays in the hot store until its TTL (the data map's `expire`), so an erasure test goes without. */
  readonly loginHints?: boolean;
  /** More metadata for the application the person signs in to (a secret, an erasure_notification_uri). */
  readonly app?: Record<string, unknown>;
  /** Runs with a browser signed in as the person (password and second factor) before the password change ends its session: more applications they use. */
  readonly whileSignedIn?: (browser: BrowserlessClient, person: Person) => Promise<void>;
}

export interface Seeded {
  readonly userId: string;
  readonly app: RegisteredClient;
  /** What the application holds at the end: an access token and the refresh token of the last rotation. */
  readonly accessToken: string;
  readonly refreshToken: string;
  /** The browser whose session outlived the password change. */
  readonly browser: BrowserlessClient;
  /** The signal receiver's access token and poll stream. */
  readonly receiverToken: string;
  readonly streamId: string;
  /** The person's password at the end. */
  readonly password: string;
}

export async function seed(server: ProbeServer, probe: Probe, options: SeedOptions = {}): Promise<Seeded> {
  const loginHints = options.loginHints ?? true;
  const issuer = server.running.authorizationServer.issuer;
  const app = await registerClient(server, { redirect_uris: [REDIRECT], grant_types: ['authorization_code', 'refresh_token'], scope: SCOPE, client_name: 'Map probe app', application_type: 'native', token_endpoint_auth_method: 'none', ...options.app });

  // A receiver with a poll stream, before anything happens to the person.
  const receiverToken = await signalReceiver(server);
  const created = await api(server, '/signals/stream', {
    token: receiverToken,
    body: {
      delivery: { method: 'urn:ietf:rfc:8936' },
      events_requested: [SECURITY_EVENT_TYPES.identifierChanged, SECURITY_EVENT_TYPES.tokenClaimsChange, SECURITY_EVENT_TYPES.credentialChange, SECURITY_EVENT_TYPES.assuranceLevelChange, SECURITY_EVENT_TYPES.sessionsRevoked, SECURITY_EVENT_TYPES.sessionRevoked],
    },
  });
  assert.equal(created.status, 201, await created.clone().text());
  const streamId = ((await created.json()) as { stream_id: string }).stream_id;

  // The account, created and then moved to its final address, as `portcullis user create` and `user set-email` do.
  const user = await server.running.identity.accounts.createUser(probe.previousEmail, PASSWORD, { actor: 'test' });
  await server.running.identity.accounts.changeEmail(user.id, probe.email, { actor: 'test' });

  // Sign-in from the probe's address: a mistyped password, then the right one.
  const browser = new BrowserlessClient(server.url, { ip: probe.ip });
  assert.equal((await passwordSignIn(browser, probe.email, 'not the password at all')).status, 401);
  assert.deepEqual(await passwordSignIn(browser, probe.email, PASSWORD), { status: 303, location: '/account' });

  // The name, on the profile page.
  const saved = await browser.post('/account/profile', { _csrf: await accountCsrf(browser), name: probe.name });
  assert.equal(saved.status, 303, saved.body.slice(0, 300));

  // Two-step verification, set up on the account page.
  assert.equal((await browser.post('/account/totp/begin', { _csrf: await accountCsrf(browser) })).status, 303);
  const setup = await browser.get('/account');
  const secret = /<code id="totp-secret">([A-Z2-7 ]+)<\/code>/.exec(setup.body)?.[1]?.replaceAll(' ', '');
  assert.ok(secret, 'the setup shows the secret');
  const confirmed = await browser.post('/account/totp/confirm', { _csrf: csrfField(setup.body)!, code: await totpCodeAt(secret, Date.now()) });
  assert.equal(confirmed.status, 200, confirmed.body.slice(0, 300));

  // A second browser at the same address signs in with the password and a code (the next step's: the current one was used).
  const second = new BrowserlessClient(server.url, { ip: probe.ip });
  assert.deepEqual(await passwordSignIn(second, probe.email, PASSWORD), { status: 303, location: '/login/totp' });
  const challenge = await second.get('/login/totp');
  const answered = await second.post('/login/totp', { _csrf: csrfField(challenge.body)!, code: await totpCodeAt(secret, Date.now() + 30_000) });
  assert.equal(answered.location, '/account', answered.body.slice(0, 300));

  // The application: openid-client runs the code flow (with a login_hint, unless told not to, and consent), redeems, reads userinfo, refreshes.
  const authentication = app.clientSecret === undefined ? client.None() : client.ClientSecretBasic(app.clientSecret);
  const config = await client.discovery(new URL(issuer), app.clientId, app.clientSecret, authentication, { execute: [client.allowInsecureRequests] });
  config[client.customFetch] = (url, options) => {
    const headers = new Headers(options.headers);
    headers.set('x-forwarded-for', probe.ip);
    return fetch(url, { ...options, headers });
  };
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const authorizationUrl = client.buildAuthorizationUrl(config, { redirect_uri: REDIRECT, scope: SCOPE, code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', state, nonce, ...(loginHints && { login_hint: probe.email }) });
  const callback = await completeAuthorization(second, authorizationUrl, { email: probe.email, password: PASSWORD }, { redirectUri: REDIRECT });
  const tokens = await client.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce });
  assert.ok(tokens.refresh_token, 'a refresh token for offline_access');
  const sub = tokens.claims()!.sub;
  const userinfo = await client.fetchUserInfo(config, tokens.access_token, sub);
  assert.equal(userinfo.email, probe.email);
  assert.equal(userinfo.name, probe.name);
  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
  assert.ok(refreshed.access_token);

  // More applications the person uses, while this browser is signed in.
  await options.whileSignedIn?.(second, { email: probe.email, password: PASSWORD });

  // Requests that leave a login_hint in the hot store (until their TTL), for the data map.
  if (loginHints) {
    // A pushed authorization request with a login_hint, never used.
    const pushed = await client.buildAuthorizationUrlWithPAR(config, { redirect_uri: REDIRECT, scope: 'openid email', code_challenge: await client.calculatePKCECodeChallenge(client.randomPKCECodeVerifier()), code_challenge_method: 'S256', state: client.randomState(), login_hint: probe.email });
    assert.match(pushed.searchParams.get('request_uri') ?? '', /^urn:ietf:params:oauth:request_uri:/);

    // An authorization request with a login_hint, abandoned on the sign-in page by a browser without a session.
    const abandoned = client.buildAuthorizationUrl(config, { redirect_uri: REDIRECT, scope: 'openid email', code_challenge: await client.calculatePKCECodeChallenge(client.randomPKCECodeVerifier()), code_challenge_method: 'S256', state: client.randomState(), login_hint: probe.email });
    const toSignIn = await new BrowserlessClient(server.url, { ip: probe.ip }).get(abandoned.href);
    assert.ok([302, 303].includes(toSignIn.status) && toSignIn.location?.startsWith('/login'), `sent to sign in: ${toSignIn.status} ${toSignIn.location}`);
  }

  // A password change on the account page (it ends the second browser's session).
  const changed = await browser.post('/account/password', { _csrf: await accountCsrf(browser), current_password: PASSWORD, new_password: NEW_PASSWORD });
  assert.equal(changed.location, '/account?done=password', changed.body.slice(0, 300));

  // A refused call from the same address (failures are counted per network).
  assert.equal((await api(server, '/signals/stream', { token: 'not-a-token', ip: probe.ip })).status, 401);

  // The receiver gets the events (so the outbox delivered them to the signal log), then removes the person as a subject.
  const has = (events: Record<string, Record<string, unknown>>[], type: string, members: Record<string, unknown> = {}) =>
    events.some((event) => type in event && Object.entries(members).every(([name, value]) => event[type]![name] === value));
  await pollUntil(
    server,
    receiverToken,
    streamId,
    (events) =>
      has(events, SECURITY_EVENT_TYPES.identifierChanged, { 'new-value': probe.email }) &&
      has(events, SECURITY_EVENT_TYPES.tokenClaimsChange) &&
      has(events, SECURITY_EVENT_TYPES.credentialChange, { credential_type: 'app' }) &&
      has(events, SECURITY_EVENT_TYPES.credentialChange, { credential_type: 'password' }),
  );
  const removed = await api(server, '/signals/subjects/remove', { token: receiverToken, body: { stream_id: streamId, subject: { format: 'email', email: probe.email } } });
  assert.equal(removed.status, 204, await removed.text());
  return { userId: user.id, app, accessToken: refreshed.access_token, refreshToken: refreshed.refresh_token!, browser, receiverToken, streamId, password: NEW_PASSWORD };
}

// ---------------------------------------------------------------------------
// The deployments of the data map test: a data directory, and a PostgreSQL schema and Redis key prefix

export interface Deployment {
  readonly dataDir: string;
  readonly env: Record<string, string>;
  readonly schema?: string;
  readonly keyPrefix?: string;
  remove(): Promise<void>;
}

export async function deployment(backend: TestBackend): Promise<Deployment> {
  const dataDir = mkdtempSync(join(tmpdir(), 'portcullis-data-map-'));
  if (backend === 'embedded') return { dataDir, env: {}, remove: async () => rmSync(dataDir, { recursive: true, force: true }) };
  const { schema, drop } = await createTestSchema(testDatabaseUrl!);
  const keyPrefix = redisTestPrefix();
  return {
    dataDir,
    schema,
    keyPrefix,
    env: { PORTCULLIS_DATABASE_URL: testDatabaseUrl!, PORTCULLIS_DATABASE_SCHEMA: schema, PORTCULLIS_REDIS_URL: testRedisUrl!, PORTCULLIS_REDIS_KEY_PREFIX: keyPrefix },
    remove: async () => {
      rmSync(dataDir, { recursive: true, force: true });
      await drop();
      await deleteRedisKeys(testRedisUrl!, keyPrefix);
    },
  };
}