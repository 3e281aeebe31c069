import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const BIN = fileURLToPath(new URL('../../bin/portcullis.js', import.meta.url));

/**
 * The node flags the server ships with: those of package.json's `start`
 * script (`exec node <flags> bin/portcullis.js serve`), the one place they
 * are written down for the suite. test/cli/deploy-files.test.ts holds the
 * other launchers (the bin's shebang, the systemd unit, the Dockerfile) to
 * the same list, and spawnServe and bench/soak.ts start the server with it.
 */
export const SERVER_NODE_FLAGS: readonly string[] = startScriptNodeFlags();

function startScriptNodeFlags(): string[] {
  const manifest = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { scripts: { start: string } };
  const words = manifest.scripts.start.trim().split(/\s+/);
  const node = words.indexOf('node');
  const entry = words.indexOf('bin/portcullis.js');
  if (words[0] !== 'exec' || node !== 1 || entry < node || words.slice(entry + 1).join(' ') !== 'serve') {
    throw new Error(`package.json scripts.start is not "exec node <flags> bin/portcullis.js serve": ${manifest.scripts.start}`);
  }
  return words.slice(node + 1, entry);
}

export interface ServeProcess {
  readonly child: ChildProcessWithoutNullStreams;
  readonly url: string;
  /** Every stdout line so far. */
  readonly output: string[];
  stop(): Promise<number | null>;
}

/**
 * Runs `portcullis serve` as a user would, and resolves once its
 * "portcullis listening" log line names the URL (bounded by `timeoutMs`).
 */
export async function spawnServe(args: string[], options: { cwd: string; env: Record<string, string>; timeoutMs?: number }): Promise<ServeProcess> {
  const child = spawn(process.execPath, [...SERVER_NODE_FLAGS, BIN, 'serve', ...args], {
    cwd: options.cwd,
    env: { PATH: process.env['PATH'] ?? '', ...options.env },
  });
  const output: string[] = [];
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const listening = new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not start within ${options.timeoutMs ?? 20_000} ms: ${stderr}`)), options.timeoutMs ?? 20_000);
    createInterface({ input: child.stdout }).on('line', (line) => {
      output.push(line);
      try {
        const record = JSON.parse(line) as { msg?: string; url?: string };
        if (record.msg === 'portcullis listening' && record.url) {
          clearTimeout(timer);
          resolve(record.url);
        }
      } catch {
        // not a log line
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`serve exited with ${code} before listening: ${stderr}`));
    });
  });
  let url: string;
  try {
    url = await listening;
  } catch (error) {
    // Never leave a half-started server behind a failed test.
    child.kill('SIGKILL');
    throw error;
  }
  return {
    child,
    url,
    output,
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}

/** Resolves with `promise`, or rejects after `ms` (the timer does not outlive it). */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export interface BinaryRun {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Collects a child's output until it closes (both pipes drained), or kills it after `timeoutMs`. */
export function collectRun(child: ChildProcessWithoutNullStreams, label: string, timeoutMs: number): Promise<BinaryRun> {
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`portcullis ${label} did not exit within ${timeoutMs} ms; stdout: ${stdout}; stderr: ${stderr}`));
    }, timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    // 'close', not 'exit': both pipes are drained by then.
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/**
 * Runs the real `portcullis` binary (bin/portcullis.js) to completion, with
 * an environment that holds no PORTCULLIS_* variable but those given.
 * `stdin`: written to its standard input, which is then closed (a password
 * for --password-stdin); without it, standard input stays open and empty.
 */
export function runBinary(args: readonly string[], options: { cwd: string; env?: Record<string, string>; timeoutMs?: number; stdin?: string }): Promise<BinaryRun> {
  const child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', BIN, ...args], {
    cwd: options.cwd,
    env: { PATH: process.env['PATH'] ?? '', HOME: options.cwd, ...options.env },
  });
  const run = collectRun(child, args.join(' '), options.timeoutMs ?? 30_000);
  if (options.stdin !== undefined) child.stdin.end(options.stdin);
  return run;
}

/** A port that was free a moment ago (nothing listens on it). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address !== 'object') throw new Error('no port');
  return address.port;
}
