/**
 * First-hour D8: a supervisor that runs `npm start` and stops it with
 * SIGTERM (or an operator's SIGINT to npm) must stop the server too. npm
 * forwards the signal to its child, the script shell; the shell used to die
 * of it and leave `node … serve` re-parented to init, still answering. The
 * start script now `exec`s node, so the signal reaches the server itself.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { freePort, within } from '../support/process.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** The npm that runs this suite (npm test sets npm_execpath), else the one on PATH. */
const NPM = process.env['npm_execpath'];
/** Bound on start-up, and on shutdown: the server's http.shutdownTimeoutMs (set below) plus a margin. */
const SHUTDOWN_TIMEOUT_MS = 5_000;
const BOUND_MS = 30_000;

const dirs: string[] = [];
after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** Every process below `pid` right now, from /proc (Linux). */
function descendants(pid: number): number[] {
  const parentOf = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // Field 4 of /proc/PID/stat is the parent; the name (field 2) may hold spaces, so split after its ')'.
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      parentOf.set(Number(entry), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // the process ended while we looked
    }
  }
  const found: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const parent = queue.shift()!;
    for (const [child, ppid] of parentOf) {
      if (ppid === parent) {
        found.push(child);
        queue.push(child);
      }
    }
  }
  return found;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function portAccepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

describe('npm start (first-hour D8)', () => {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`${signal} to the npm process stops the server: no process left, the port is closed`, { timeout: 2 * BOUND_MS }, async () => {
      const dir = mkdtempSync(join(tmpdir(), 'portcullis-npm-start-'));
      dirs.push(dir);
      const port = await freePort();
      const command = NPM !== undefined ? process.execPath : 'npm';
      const args = [...(NPM !== undefined ? [NPM] : []), 'start', '--', '--port', String(port)];
      const npm = spawn(command, args, {
        cwd: ROOT,
        env: {
          PATH: process.env['PATH'] ?? '',
          HOME: dir,
          npm_config_cache: join(dir, 'npm-cache'),
          npm_config_update_notifier: 'false',
          PORTCULLIS_DATA_DIR: join(dir, 'data'),
          PORTCULLIS_HTTP_SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_TIMEOUT_MS),
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stderr = '';
      npm.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      const exited = new Promise<void>((resolve) => npm.once('exit', () => resolve()));
      let started: number[] = [];
      try {
        await within(
          new Promise<void>((resolve) => {
            createInterface({ input: npm.stdout }).on('line', (line) => {
              if (line.includes('"portcullis listening"')) resolve();
            });
          }),
          BOUND_MS,
          `npm start listening (stderr: ${stderr})`,
        );
        assert.equal(await portAccepts(port), true, 'the server answers');
        started = descendants(npm.pid!);
        assert.ok(started.length > 0, 'npm runs the server as a child');

        npm.kill(signal);
        await within(exited, SHUTDOWN_TIMEOUT_MS + BOUND_MS, `npm exit after ${signal}`);

        assert.deepEqual(started.filter(alive), [], `every process npm started has ended (stderr: ${stderr})`);
        assert.equal(await portAccepts(port), false, 'nothing listens on the port any more');
      } finally {
        // Never leave a server behind a failed test (an orphan is no longer below npm).
        for (const pid of [...started, ...descendants(npm.pid!)]) if (alive(pid)) process.kill(pid, 'SIGKILL');
        if (npm.exitCode === null && npm.signalCode === null) npm.kill('SIGKILL');
      }
    });
  }
});
