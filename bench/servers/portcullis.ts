/**
 * Portcullis as `portcullis serve` would run it, for bench/overhead.ts: the
 * config comes from the environment (the parent passes a clean one), with a
 * throwaway data directory so the embedded SQLite file starts empty.
 *
 * Prints its URL on stdout once listening (log lines are JSON, so a line that
 * is a bare URL is unambiguous); exits on SIGTERM through the product's own
 * graceful shutdown, or when the parent's IPC channel closes.
 */
import { startBenchPortcullis } from './start-portcullis.ts';

const { running } = await startBenchPortcullis();
process.stdout.write(`${running.url}\n`);
