import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { FastifyPluginAsync } from 'fastify';
import { loadConfig, type ConfigInput } from '../../src/config/index.ts';
import { startPortcullis, type RunningPortcullis } from '../../src/server/index.ts';

/** Log lines a server wrote, parsed, plus the raw text for "never appears" checks. */
export class CapturedLogs {
  readonly lines: string[] = [];
  readonly stream = new Writable({
    write: (chunk: Buffer, _encoding, done) => {
      this.lines.push(...chunk.toString('utf8').split('\n').filter((line) => line !== ''));
      done();
    },
  });
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
export async function startTestServer(options: { overrides?: ConfigInput; env?: Record<string, string>; plugins?: FastifyPluginAsync[] } = {}): Promise<TestServer> {
  const dataDir = mkdtempSync(join(tmpdir(), 'portcullis-server-'));
  const config = loadConfig({ env: options.env ?? {}, overrides: { port: 0, dataDir, log: { level: 'info' }, ...options.overrides } });
  const logs = new CapturedLogs();
  const running = await startPortcullis(config, { logDestination: logs.stream, ...(options.plugins && { plugins: options.plugins }) });
  return {
    url: running.url,
    running,
    logs,
    close: async () => {
      await running.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
