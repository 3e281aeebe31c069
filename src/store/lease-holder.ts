/**
 * Lease holders that say which process holds the lease:
 * `<host>/<pid>/<random>`. A holder killed with SIGKILL cannot let its
 * lease go; left alone, the lease stops all delivery until it lapses (the
 * outbox's SQLite lease after twice the delivery timeout, a push stream's
 * after 52 push timeouts: 8 min 40 s by default). A server restarted on the
 * same machine can see that the process named is gone, and take the lease
 * at once (issue 16: deliveries resume after kill -9).
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';

/** A new holder name for this process (random per worker: two workers of one process are two holders). */
export function processLeaseHolder(): string {
  return `${hostname()}/${process.pid}/${randomUUID()}`;
}

/**
 * Whether `holder` names a process of this machine that no longer runs.
 * Holders of another machine, of this process, or in another form (an
 * older build's random UUID) are never judged gone: their lease lapses as
 * before. A pid reused since by another process reads as alive (the same).
 */
export function leaseHolderGone(holder: string): boolean {
  const [host, pid, id, ...rest] = holder.split('/');
  if (host !== hostname() || id === undefined || rest.length > 0 || !/^[1-9][0-9]{0,9}$/.test(pid ?? '') || Number(pid) === process.pid) return false;
  try {
    // Signal 0 only checks that the process exists.
    process.kill(Number(pid), 0);
    return false;
  } catch (error) {
    // ESRCH: no such process. EPERM: it runs, as another user.
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
}
