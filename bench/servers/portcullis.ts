/**
 * Portcullis as `portcullis serve` would run it, for bench/overhead.ts: the
 * config comes from the environment (the parent passes a clean one), with a
 * throwaway data directory so the embedded SQLite file starts empty.
 *
 * Prints its URL on stdout once listening (log lines are JSON, so a line that
 * is a bare URL is unambiguous); exits on SIGTERM through the product's own
 * graceful shutdown, or when the parent's IPC channel closes.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/index.ts';
import { exitGracefullyOnSignals, startPortcullis } from '../../src/server/index.ts';

const dataDir = mkdtempSync(join(tmpdir(), 'portcullis-bench-'));
process.on('exit', () => rmSync(dataDir, { recursive: true, force: true }));

const config = loadConfig({ env: process.env, overrides: { dataDir, port: 0 } });
const running = await startPortcullis(config);
exitGracefullyOnSignals(running, config.http.shutdownTimeoutMs);
process.once('disconnect', () => process.kill(process.pid, 'SIGTERM'));
process.stdout.write(`${running.url}\n`);
