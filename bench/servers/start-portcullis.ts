/**
 * What every Portcullis bench server does first: a throwaway data
 * directory (removed on exit) unless the bench gives one, the config from
 * the environment, the server started, stopped gracefully on a signal or
 * when the bench (its parent) goes away.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, type Config, type ConfigInput } from '../../src/config/index.ts';
import { exitGracefullyOnSignals, startPortcullis, type RunningPortcullis, type StartOptions } from '../../src/server/index.ts';
import { freePort } from '../../test/support/process.ts';

export interface BenchPortcullisOptions {
  /** Config besides the data directory and the port. */
  readonly overrides?: ConfigInput;
  /** Listen on a free port chosen first, so the issuer is the real URL (tokens name it); default port 0. */
  readonly fixedPort?: boolean;
  readonly start?: StartOptions;
  readonly dataDirPrefix?: string;
  /** A data directory the caller owns (kept on exit, for what it checks afterwards); default a throwaway one. */
  readonly dataDir?: string;
}

export async function startBenchPortcullis(options: BenchPortcullisOptions = {}): Promise<{ readonly running: RunningPortcullis; readonly config: Config; readonly dataDir: string }> {
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), options.dataDirPrefix ?? 'portcullis-bench-'));
  if (options.dataDir === undefined) process.on('exit', () => rmSync(dataDir, { recursive: true, force: true }));
  const config = loadConfig({ env: process.env, overrides: { ...options.overrides, dataDir, port: options.fixedPort === true ? await freePort() : 0 } });
  const running = await startPortcullis(config, options.start);
  exitGracefullyOnSignals(running, config.http.shutdownTimeoutMs);
  process.once('disconnect', () => process.kill(process.pid, 'SIGTERM'));
  if (options.fixedPort === true && running.authorizationServer.issuer !== running.url) throw new Error(`issuer ${running.authorizationServer.issuer} is not the URL ${running.url}`);
  return { running, config, dataDir };
}
