import { execFile } from 'node:child_process';
import { chownSync, mkdtempSync, rmSync } from 'node:fs';
import { userInfo, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './process.ts';

const run = promisify(execFile);

/** The PostgreSQL binaries (a source build in /usr/local/bin on the CI image). */
const BIN = process.env['PORTCULLIS_TEST_PG_BIN'] ?? '/usr/local/bin';
const RUN_AS = 'postgres';

/**
 * A throwaway PostgreSQL cluster of the test's own, in a temporary directory,
 * for tests that crash it (`pg_ctl stop -m immediate`): never the machine's
 * shared one. PostgreSQL refuses to run as root, so when the test runs as
 * root every `initdb` and `pg_ctl` runs as the `postgres` user, in a
 * directory that user owns.
 */
export interface OwnPostgres {
  /** postgres://postgres@127.0.0.1:<port>/postgres (trust authentication on loopback). */
  readonly url: string;
  readonly port: number;
  readonly dir: string;
  /** Stops the cluster hard: `pg_ctl stop -m immediate` (no checkpoint, crash recovery on the next start). */
  stopImmediately(): Promise<void>;
  /** Starts it again on the same port and data, waiting until it accepts connections. */
  start(): Promise<void>;
  /** Stops it (if it runs) and deletes its directory. */
  remove(): Promise<void>;
}

async function asPostgres(command: string, args: readonly string[]): Promise<void> {
  const binary = join(BIN, command);
  const root = userInfo().uid === 0;
  try {
    await (root ? run('runuser', ['-u', RUN_AS, '--', binary, ...args], { timeout: 60_000 }) : run(binary, [...args], { timeout: 60_000 }));
  } catch (error) {
    const failed = error as { stderr?: string; stdout?: string; message: string };
    throw new Error(`${command} ${args.join(' ')} failed: ${failed.message} ${failed.stderr ?? ''} ${failed.stdout ?? ''}`);
  }
}

/** Creates (initdb) and starts a new cluster on a free port. */
export async function startOwnPostgres(): Promise<OwnPostgres> {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-own-pg-'));
  if (userInfo().uid === 0) {
    const { stdout } = await run('id', ['-u', RUN_AS]);
    const { stdout: group } = await run('id', ['-g', RUN_AS]);
    chownSync(dir, Number(stdout.trim()), Number(group.trim()));
  }
  const data = join(dir, 'data');
  const port = await freePort();
  await asPostgres('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync']);
  let running = false;
  const start = async (): Promise<void> => {
    // -w: returns once the server accepts connections (bounded by -t seconds).
    await asPostgres('pg_ctl', ['-D', data, '-o', `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=on`, '-l', join(dir, 'log'), '-w', '-t', '30', 'start']);
    running = true;
  };
  const stop = async (mode: 'immediate' | 'fast'): Promise<void> => {
    await asPostgres('pg_ctl', ['-D', data, '-m', mode, '-w', '-t', '30', 'stop']);
    running = false;
  };
  await start();
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    dir,
    stopImmediately: () => stop('immediate'),
    start,
    remove: async () => {
      if (running) await stop('immediate').catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
