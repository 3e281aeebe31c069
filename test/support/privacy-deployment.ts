/**
 * A deployment for the privacy workflow tests: `portcullis init` on a
 * config file (so `portcullis user erase`, `privacy ...` and `audit verify`
 * run against it in this process, as an operator would), served in this
 * process on a fixed loopback port (the issuer) with a clock the test can
 * move forward; on the embedded store, or on a private PostgreSQL schema and
 * Redis key prefix. Also a stand-in application that receives erasure
 * notices at its erasure_notification_uri, and can be down.
 */
import { rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { decodeEntry, type AuditEntry } from '../../src/audit/index.ts';
import { loadConfig } from '../../src/config/index.ts';
import { startPortcullis, type RunningPortcullis } from '../../src/server/index.ts';
import type { OutboxWorker } from '../../src/store/index.ts';
import { initDeployment, runCli, type CliRun } from './cli.ts';
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
  /** Stops the server and removes the directory, schema and keys. */
  remove(): Promise<void>;
}

/** `privacy` adds to the privacy settings (notices to loopback are always allowed); `config` to the rest. */
export async function privacyDeployment(backend: TestBackend, settings: { privacy?: Record<string, unknown>; config?: Record<string, unknown> } = {}): Promise<PrivacyDeployment> {
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
    stores = { database: { url: testDatabaseUrl!, schema }, redis: { url: testRedisUrl!, keyPrefix } };
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
