/**
 * A deployment for the privacy workflow tests: `portcullis init` on a
 * config file (so `portcullis user erase`, `privacy ...` and `audit verify`
 * run against it in this process, as an operator would), served in this
 * process on a fixed loopback port (the issuer) with a clock the test can
 * move forward; on the embedded store, or on a private PostgreSQL schema and
 * Redis key prefix. Also a stand-in application that receives erasure
 * notices at its erasure_notification_uri, and can be down.
 */
import type { LogEntry } from '../../src/signals/records.ts';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import pg from 'pg';
import { decodeEntry, type AuditEntry } from '../../src/audit/index.ts';
import { loadConfig } from '../../src/config/index.ts';
import type { JobReport } from '../../src/privacy/index.ts';
import { startPortcullis, type RunningPortcullis } from '../../src/server/index.ts';
import { BrowserlessClient, csrfField } from './browserless-client.ts';
import type { OutboxWorker, StoredRecord } from '../../src/store/index.ts';
import { initDeployment, runCli, type CliRun } from './cli.ts';
import { completeAuthorization, type Person, type RegisteredClient } from './oauth-flow.ts';
import { needlesOf, scanFilesRaw, scanPostgres, scanRedis, type Hit, type Probe } from './privacy-probe.ts';
import { freePort } from './process.ts';
import { CapturedLogs, type TestBackend } from './server.ts';
import { createTestSchema, deleteRedisKeys, redisTestPrefix, testDatabaseUrl, testRedisUrl } from './services.ts';

export const ADMIN_TOKEN = 'privacy-admin-token-0123456789abcdefghijkl';

/** The server's clock: the real time plus an offset the test moves forward (never back). */
export class OffsetClock {
  offsetMs = 0;
  readonly now = (): number => Date.now() + this.offsetMs;
  advance(ms: number): void {
    this.offsetMs += ms;
  }
}

export interface PrivacyDeployment {
  readonly backend: TestBackend;
  readonly dir: string;
  readonly dataDir: string;
  readonly configFile: string;
  readonly url: string;
  readonly clock: OffsetClock;
  /** PostgreSQL + Redis: the schema and the key prefix. */
  readonly schema?: string;
  readonly keyPrefix?: string;
  /** The running server (after `start`). */
  readonly running: RunningPortcullis;
  /** What the running server logged at warn and above. */
  readonly logs: CapturedLogs;
  start(): Promise<RunningPortcullis>;
  /** Stops the server, if started; the deployment stays. */
  stop(): Promise<void>;
  /** `portcullis ...args --config FILE`, in this process. */
  cli(args: string[], stdin?: string): Promise<CliRun>;
  /** The running server's outbox worker: `runOnce()` delivers what is due now. */
  outbox(): OutboxWorker;
  /** Admin API call with the bearer. */
  admin(path: string, init?: { method?: string; body?: unknown; token?: string | null }): Promise<Response>;
  /**
   * Every place the deployment keeps anything, searched for the probe's
   * addresses and name: the data directory's files as raw bytes (SQLite
   * database, WAL, shared memory; the tombstone file, the keys), and on
   * PostgreSQL + Redis every table of the schema and every key.
   */
  traces(probe: Probe): Promise<Hit[]>;
  /** The outbox's messages of a topic, as stored (delivery attempts, last error). */
  outboxRows(topic: string): Promise<OutboxRow[]>;
  /** Every outbox message (pending or delivered), with its payload as stored, in id order. */
  outboxMessages(): Promise<OutboxMessageRow[]>;
  /** Every record of a collection, read from the database itself (no server needed), in id order. */
  records<T>(collection: string): Promise<{ id: string; data: T }[]>;
  /** Stops the server and removes the directory, schema and keys. */
  remove(): Promise<void>;
}

export interface OutboxRow {
  readonly key: string;
  readonly attempts: number;
  readonly delivered: boolean;
  readonly lastError: string | null;
}

export interface OutboxMessageRow {
  readonly topic: string;
  readonly key: string;
  readonly delivered: boolean;
  readonly payload: unknown;
}

/** `select` (with `$1`-style parameters) on the deployment's durable database, read-only on SQLite. */
async function queryDurable<Row>(dataDir: string, schema: string | undefined, select: string, params: (string | number)[]): Promise<Row[]> {
  if (schema === undefined) {
    const database = new DatabaseSync(join(dataDir, 'portcullis.db'), { readOnly: true });
    try {
      return database.prepare(select.replace(/\$\d+/g, '?')).all(...params) as unknown as Row[];
    } finally {
      database.close();
    }
  }
  const database = new pg.Client({ connectionString: testDatabaseUrl! });
  await database.connect();
  try {
    await database.query(`SET search_path TO ${schema}`);
    return (await database.query(select, params)).rows as Row[];
  } finally {
    await database.end();
  }
}

/**
 * `privacy` adds to the privacy settings (notices to loopback are always
 * allowed); `config` to the rest. On PostgreSQL + Redis, `routes` are the
 * URLs the server reaches them by (a fault proxy, a Redis of the test's
 * own); the schema is made, read and dropped on the test database directly.
 */
export async function privacyDeployment(backend: TestBackend, settings: { privacy?: Record<string, unknown>; config?: Record<string, unknown>; routes?: { databaseUrl?: string; redisUrl?: string } } = {}): Promise<PrivacyDeployment> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const cleanups: (() => Promise<void>)[] = [];
  let stores: Record<string, unknown> = {};
  let schema: string | undefined;
  let keyPrefix: string | undefined;
  if (backend === 'postgres+redis') {
    const created = await createTestSchema(testDatabaseUrl!);
    schema = created.schema;
    const prefix = redisTestPrefix();
    keyPrefix = prefix;
    cleanups.push(created.drop, () => deleteRedisKeys(testRedisUrl!, prefix));
    stores = { database: { url: settings.routes?.databaseUrl ?? testDatabaseUrl!, schema }, redis: { url: settings.routes?.redisUrl ?? testRedisUrl!, keyPrefix } };
  }
  const { dir, configFile } = await initDeployment('portcullis-privacy-', {
    port,
    issuer: url,
    trustProxy: ['127.0.0.1'],
    admin: { token: ADMIN_TOKEN },
    ...stores,
    privacy: { notifyPrivateNetworks: true, ...settings.privacy },
    ...settings.config,
  });
  const clock = new OffsetClock();
  let logs = new CapturedLogs();
  let running: RunningPortcullis | undefined;
  const deployment: PrivacyDeployment = {
    backend,
    dir,
    dataDir: join(dir, 'data'),
    configFile,
    url,
    clock,
    ...(schema !== undefined && { schema }),
    ...(keyPrefix !== undefined && { keyPrefix }),
    get running() {
      if (running === undefined) throw new Error('the server is not started');
      return running;
    },
    get logs() {
      return logs;
    },
    start: async () => {
      logs = new CapturedLogs();
      running = await startPortcullis(loadConfig({ env: {}, file: configFile, overrides: { log: { level: 'warn' } } }), { clock: clock.now, logDestination: logs.stream });
      return running;
    },
    stop: async () => {
      const current = running;
      running = undefined;
      await current?.stop();
    },
    cli: (args, stdin) => runCli([...args, '--config', configFile], stdin),
    outbox: () => {
      const worker = deployment.running.runtime.get('outbox');
      if (worker === undefined) throw new Error('no outbox worker');
      return worker;
    },
    admin: (path, init = {}) => {
      const token = init.token === undefined ? ADMIN_TOKEN : init.token;
      return fetch(`${url}${path}`, {
        method: init.method ?? (init.body === undefined ? 'GET' : 'POST'),
        headers: { ...(token !== null && { authorization: `Bearer ${token}` }), ...(init.body !== undefined && { 'content-type': 'application/json' }) },
        ...(init.body !== undefined && { body: JSON.stringify(init.body) }),
      });
    },
    traces: async (probe) => {
      const needles = needlesOf(probe, { ip: false });
      const hits = scanFilesRaw(deployment.dataDir, needles);
      if (schema !== undefined) hits.push(...(await scanPostgres(testDatabaseUrl!, schema, needles)).hits);
      if (keyPrefix !== undefined) hits.push(...(await scanRedis(testRedisUrl!, keyPrefix, needles)).hits);
      return hits;
    },
    outboxRows: async (topic) => {
      type Row = { idempotency_key: string; attempts: number; delivered_at: number | string | null; last_error: string | null };
      const rows = await queryDurable<Row>(deployment.dataDir, schema, 'SELECT idempotency_key, attempts, delivered_at, last_error FROM outbox WHERE topic = $1 ORDER BY id', [topic]);
      return rows.map((row) => ({ key: row.idempotency_key, attempts: Number(row.attempts), delivered: row.delivered_at !== null, lastError: row.last_error }));
    },
    outboxMessages: async () => {
      type Row = { topic: string; idempotency_key: string; delivered_at: number | string | null; payload: unknown };
      const rows = await queryDurable<Row>(deployment.dataDir, schema, 'SELECT topic, idempotency_key, delivered_at, payload FROM outbox ORDER BY id', []);
      // SQLite keeps the payload as JSON text, PostgreSQL as jsonb (parsed by the driver).
      return rows.map((row) => ({ topic: row.topic, key: row.idempotency_key, delivered: row.delivered_at !== null, payload: typeof row.payload === 'string' ? (JSON.parse(row.payload) as unknown) : row.payload }));
    },
    records: async <T>(collection: string) => {
      const rows = await queryDurable<{ id: string; data: unknown }>(deployment.dataDir, schema, 'SELECT id, data FROM records WHERE collection = $1 ORDER BY id', [collection]);
      return rows.map((row) => ({ id: row.id, data: (typeof row.data === 'string' ? JSON.parse(row.data) : row.data) as T }));
    },
    remove: async () => {
      await deployment.stop();
      rmSync(dir, { recursive: true, force: true });
      for (const cleanup of cleanups) await cleanup();
    },
  };
  return deployment;
}

/** One line per hit, for an assertion message. */
export function describeHits(hits: readonly Hit[]): string {
  return hits.map((hit) => `${hit.source} ${hit.table}.${hit.column}: ${hit.labels.join(', ')} in "${hit.snippet}"`).join('\n  ');
}

export interface ReceivedNotice {
  readonly contentType: string | undefined;
  readonly body: string;
}

/**
 * An application's erasure_notification_uri (RFC 8935 framing): answers
 * 202, or `status` while the test says it is down; keeps every request.
 */
export interface NoticeReceiver {
  readonly url: string;
  readonly received: ReceivedNotice[];
  /** How many POSTs arrived, answered or not. */
  attempts: number;
  /** What it answers: 202 when up. */
  status: number;
  close(): Promise<void>;
}

export async function startNoticeReceiver(): Promise<NoticeReceiver> {
  const received: ReceivedNotice[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      receiver.attempts += 1;
      if (req.method === 'POST' && receiver.status === 202) received.push({ contentType: req.headers['content-type'], body: Buffer.concat(chunks).toString('utf8') });
      res.writeHead(req.method === 'POST' ? receiver.status : 405).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const receiver: NoticeReceiver = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/erasure-notices`,
    received,
    attempts: 0,
    status: 202,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  return receiver;
}

/** Every audit entry of the running server's ledger, decoded, with its index. */
export async function ledgerEntries(running: RunningPortcullis): Promise<(AuditEntry & { index: number })[]> {
  const size = await running.ledger.size();
  const entries: (AuditEntry & { index: number })[] = [];
  for (let start = 0; start < size; start += 1000) {
    for (const row of await running.stores.durable.auditLog.entries(start, Math.min(size, start + 1000))) entries.push({ ...decodeEntry(row.entry), index: row.index });
  }
  return entries;
}

/** Basic client authentication (RFC 6749 section 2.3.1). */
export function basicAuth(client: { clientId: string; clientSecret?: string }): string {
  return `Basic ${Buffer.from(`${encodeURIComponent(client.clientId)}:${encodeURIComponent(client.clientSecret ?? '')}`).toString('base64')}`;
}

/** A form POST to a token-side endpoint with the client's credentials: status and JSON body. */
export async function clientPost(url: string, path: string, client: { clientId: string; clientSecret?: string }, form: Record<string, string>): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${url}${path}`, { method: 'POST', headers: { authorization: basicAuth(client), 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(form).toString() });
  const text = await response.text();
  return { status: response.status, body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>) };
}

/** Signs in on the sign-in page in a new browser (from `ip`, when given); fails unless it lands on the account page. */
export async function signedInBrowser(url: string, email: string, password: string, ip?: string): Promise<BrowserlessClient> {
  const browser = new BrowserlessClient(url, ip === undefined ? {} : { ip });
  const form = await browser.get('/login');
  const answer = await browser.post('/login', { _csrf: csrfField(form.body)!, email, password });
  assert.equal(answer.location, '/account', `signed in: ${answer.status} ${answer.body.slice(0, 200)}`);
  return browser;
}

/** A code flow in a browser signed in as the person (consent when asked), the code redeemed by the client: the token response. */
export async function codeFlow(url: string, browser: BrowserlessClient, person: Person, client: RegisteredClient, redirectUri: string, scope: string): Promise<Record<string, unknown>> {
  const verifier = randomBytes(32).toString('base64url');
  const query = new URLSearchParams({ response_type: 'code', client_id: client.clientId, redirect_uri: redirectUri, scope, state: randomBytes(8).toString('hex'), nonce: randomBytes(8).toString('hex'), code_challenge: createHash('sha256').update(verifier).digest('base64url'), code_challenge_method: 'S256' });
  const callback = await completeAuthorization(browser, `/authorize?${query.toString()}`, person, { redirectUri });
  const code = callback.searchParams.get('code');
  assert.ok(code, `a code: ${callback.href}`);
  const redeemed = await clientPost(url, '/token', client, { grant_type: 'authorization_code', code, redirect_uri: redirectUri, code_verifier: verifier });
  assert.equal(redeemed.status, 200, JSON.stringify(redeemed.body));
  return redeemed.body;
}

/**
 * One run of the privacy job. Its lease lasts an interval of wall-clock time
 * on Redis, which the test's clock does not move: it is let go first, as the
 * interval's end would.
 */
export async function runPrivacyJob(running: RunningPortcullis): Promise<JobReport> {
  await running.stores.hot.delete('privacy:job-lease');
  const report = await running.erasure.runJob();
  assert.ok(report !== null, 'the job ran');
  return report;
}

/** Every entry of the signal log, read from the durable store in pages. */
export async function signalLogEntries(running: RunningPortcullis): Promise<StoredRecord<LogEntry>[]> {
  const entries: StoredRecord<LogEntry>[] = [];
  for (let after: string | undefined; ; ) {
    const page = await running.stores.durable.records.list<LogEntry>('signal_log', { limit: 500, ...(after !== undefined && { after }) });
    entries.push(...page);
    if (page.length < 500) return entries;
    after = page.at(-1)!.id;
  }
}
