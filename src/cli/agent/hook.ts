/**
 * `--exec-on-renew CMD`: a shell command run after each write of the
 * files (to reload the service). It inherits the agent's stdout and
 * stderr; a failure or a run longer than `timeoutMs` is reported, never
 * fatal, and the files stay written.
 */
import { spawn } from 'node:child_process';

/** Runs `command` with /bin/sh; resolves to undefined on exit 0, else one line saying what went wrong. */
export function runHook(command: string, options: { readonly cwd: string; readonly timeoutMs?: number }): Promise<string | undefined> {
  return new Promise((resolve) => {
    const child = spawn(command, { shell: true, cwd: options.cwd, stdio: ['ignore', 'inherit', 'inherit'] });
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
    child.once('error', (error) => {
      clearTimeout(timer);
      resolve(error.message);
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve(code === 0 ? undefined : signal !== null ? `killed by ${signal}` : `exit code ${code}`);
    });
  });
}
