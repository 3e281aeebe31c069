import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { FastifyPluginAsync } from 'fastify';
import { loadConfig, type ConfigInput } from '../../src/config/index.ts';
import { startPortcullis, type RunningPortcullis, type StartOptions } from '../../src/server/index.ts';
import { freePort } from './process.ts';
import type { Clock } from '../../src/store/index.ts';
import { createTestSchema, deleteRedisKeys, redisTestPrefix, testDatabaseUrl, testRedisUrl } from './services.ts';

/** Where a test server keeps its state: its own SQLite file, or a fresh PostgreSQL schema and Redis key prefix. */
export type TestBackend = 'embedded' | 'postgres+redis';

/** The backends a test should run against: embedded always, PostgreSQL and Redis when their URLs are set. */
export const testBackends: readonly TestBackend[] = testDatabaseUrl !== undefined && testRedisUrl !== undefined ? ['embedded', 'postgres+redis'] : ['embedded'];

/** Log lines a server wrote, parsed, plus the raw text for "never appears" checks. */
export class CapturedLogs {
  readonly lines: string[] = [];
  readonly #waiters: { readonly pattern: RegExp; readonly resolve: (line: string) => void }[] = [];
  readonly stream = new Writable({
    write: (chunk: Buffer, _encoding, done) => {
      const lines = chunk.toString('utf8').split('\n').filter((line) => line !== '');
      this.lines.push(...lines);
      for (const line of lines) {
        for (const waiter of this.#waiters.filter((candidate) => candidate.pattern.test(line))) {
          this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
          waiter.resolve(line);
        }
      }
      done();
    },
  });
  /** Resolves with the next line written that matches (lines already written do not count). */
  next(pattern: RegExp): Promise<string> {
    return new Promise((resolve) => this.#waiters.push({ pattern, resolve }));
  }
  get text(): string {
    return this.lines.join('\n');
  }
  records(): Record<string, unknown>[] {
    return this.lines.map((line) => JSON.parse(line) as Record<string, unknown>);
  }
}

export interface TestServer {
  readonly url: string;
  readonly running: RunningPortcullis;
  readonly logs: CapturedLogs;
  close(): Promise<void>;
}

/**
 * A real Portcullis listening on a free loopback port, with its own data
 * directory and captured logs.
 */
export async function startTestServer(
  options: {
    overrides?: ConfigInput;
    env?: Record<string, string>;
    plugins?: FastifyPluginAsync[];
    fixedPort?: boolean;
    clock?: Clock;
    backend?: TestBackend;
    hooks?: StartOptions['hooks'];
    listenerAuthority?: StartOptions['listenerAuthority'];
    /** A data directory to start on (a restart of an earlier server): kept when the server closes, for the caller to remove. */
    dataDir?: string;
    /** Turns OpenTelemetry traces on, sent to this exporter (an in-memory one). */
    traceExporter?: StartOptions['traceExporter'];
  } = {},
): Promise<TestServer> {
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'portcullis-server-'));
  const cleanups: (() => Promise<void>)[] = [];
  const env = { ...options.env };
  if (options.backend === 'postgres+redis') {
    const schema = await createTestSchema(testDatabaseUrl!);
    const keyPrefix = redisTestPrefix();
    cleanups.push(schema.drop, () => deleteRedisKeys(testRedisUrl!, keyPrefix));
    Object.assign(env, { PORTCULLIS_DATABASE_URL: testDatabaseUrl!, PORTCULLIS_DATABASE_SCHEMA: schema.schema, PORTCULLIS_REDIS_URL: testRedisUrl!, PORTCULLIS_REDIS_KEY_PREFIX: keyPrefix });
  }
  // OAuth clients check that the issuer is the URL they talk to, so OAuth
  // tests bind a known free port (the issuer is derived from it) instead of 0.
  const port = options.fixedPort === true ? await freePort() : 0;
  const config = loadConfig({ env, overrides: { port, dataDir, log: { level: 'info' }, ...options.overrides } });
  const logs = new CapturedLogs();
  const running = await startPortcullis(config, { logDestination: logs.stream, ...(options.plugins && { plugins: options.plugins }), ...(options.clock !== undefined && { clock: options.clock }), ...(options.hooks !== undefined && { hooks: options.hooks }), ...(options.listenerAuthority !== undefined && { listenerAuthority: options.listenerAuthority }), ...(options.traceExporter !== undefined && { traceExporter: options.traceExporter }) });
  return {
    url: running.url,
    running,
    logs,
    close: async () => {
      await running.stop();
      if (options.dataDir === undefined) rmSync(dataDir, { recursive: true, force: true });
      for (const cleanup of cleanups) await cleanup();
    },
  };
}
