/**
 * Child processes of the benchmark scripts: starting one and waiting for its
 * ready line, stopping it, reading its CPU time, and taking every child down
 * with this process.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';

/** The line a server child prints once it listens: its URL. */
export const URL_LINE = /^https?:\/\/\S+$/;
/** USER_HZ: 100 on every mainstream Linux build. */
const CLOCK_TICKS_PER_SECOND = 100;

export interface Child {
  readonly name: string;
  /** The line it printed when ready: a URL for a server. */
  readonly ready: string;
  readonly pid: number;
  readonly process: ChildProcess;
  stop(): Promise<void>;
}

/** The children still running. */
export const children = new Set<ChildProcess>();
// Whatever ends this process, its children go with it: SIGTERM, so that
// servers still remove their temporary data (they also exit by themselves
// when the IPC channel closes).
process.on('exit', () => {
  for (const child of children) child.kill('SIGTERM');
});

/** Starts `node <nodeFlags> <args>` and resolves with the first stdout line matching `ready`. */
export async function startChild(
  name: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  ready: RegExp,
  nodeFlags: readonly string[],
  startupTimeoutMs = 30_000,
): Promise<Child> {
  const child = spawn(process.execPath, [...nodeFlags, ...args], { env, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
  children.add(child);
  const exited = once(child, 'exit').then(() => children.delete(child));
  // Keep the last lines for the error message, and keep draining both pipes:
  // a full pipe would block the child's synchronous log writes mid-benchmark.
  const recent: string[] = [];
  const remember = (line: string) => {
    recent.push(line);
    if (recent.length > 20) recent.shift();
  };
  createInterface({ input: child.stderr! }).on('line', remember);
  const stdout = createInterface({ input: child.stdout! });
  const line = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not start within ${startupTimeoutMs} ms`)), startupTimeoutMs);
    stdout.on('line', (text) => {
      if (ready.test(text)) {
        clearTimeout(timer);
        resolve(text);
      } else remember(text);
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited (${signal ?? code}) before it was ready:\n${recent.join('\n')}`));
    });
  });
  return {
    name,
    ready: line,
    pid: child.pid!,
    process: child,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(killer);
    },
  };
}

/**
 * CPU time a process has used so far, in microseconds (Linux /proc; clock
 * ticks of 10 ms, fine over a run of seconds). Throughput on a shared machine
 * swings with what else runs; the server's own CPU time per request hardly
 * does, so it is the steadier measure of what each layer costs. Null where
 * /proc is missing (or the process is gone).
 */
export function cpuMicros(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after "(comm)": state is field 3, utime 14 and stime 15 (proc(5)).
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[14 - 3]) + Number(fields[15 - 3])) * 1e6) / CLOCK_TICKS_PER_SECOND;
  } catch {
    return null;
  }
}
