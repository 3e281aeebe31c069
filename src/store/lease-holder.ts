/**
 * Lease holders that say which process holds the lease. A holder killed
 * with SIGKILL cannot let its lease go; left alone, the lease stops all
 * delivery until it lapses (the outbox's SQLite lease after twice the
 * delivery timeout, a push stream's after 52 push timeouts: 8 min 40 s by
 * default). A server restarted beside it can see that the process named is
 * gone, and take the lease at once (issue 16: deliveries resume after
 * kill -9). Taking a lease whose holder still runs makes two workers
 * deliver at once, so "gone" must be proven, never guessed:
 *
 *   `<host>/<boot id>:<pid namespace>:<time namespace>/<pid>/<start>/<random>`
 *
 * - host: the hostname, for people reading the lease; never judged (one
 *   hostname may span machines, containers with a fixed `hostname:` or
 *   `--network host`, cloned VMs). Characters other than letters, digits,
 *   `.` and `-` read `_`, and it is cut at 64.
 * - boot id (/proc/sys/kernel/random/boot_id): the running kernel, new at
 *   each boot: a pid of another machine or of an earlier boot means
 *   nothing here.
 * - pid namespace (the inode of /proc/self/ns/pid): which pids the number
 *   is in. Containers share the kernel but each has its own pids: another
 *   container's live worker does not exist in ours (kill gives ESRCH).
 * - time namespace (/proc/self/ns/time, `0` where the kernel has none): the
 *   start time below is read through it (Linux adds its boot-time offset).
 * - pid, and start: field 22 of /proc/<pid>/stat, clock ticks since boot.
 *   A pid is reused once its process is reaped; pid and start together name
 *   one process of one boot.
 * - random: one per holder (two workers of one process are two holders).
 *
 * A holder is judged gone only if its boot and namespaces are ours, its pid
 * is not ours, and kill(pid, 0) says no such process, or that pid now runs
 * a process started at another time. Anything else (another machine,
 * namespace or boot; an older build's random UUID or `<host>/<pid>/<random>`;
 * EPERM; no /proc, as on macOS or in a hardened container; a /proc of
 * another pid namespace; anything unreadable) is not gone: its lease lapses
 * as before. Without a readable /proc this process's holders read
 * `<host>/-/<pid>/-/<random>`, which nobody judges. Every part is bounded:
 * a holder stays under 200 characters (stored in SQLite and Redis).
 */
import { randomUUID } from 'node:crypto';
import { readFileSync, readlinkSync } from 'node:fs';
import { hostname } from 'node:os';

interface ProcessIdentity {
  /** `<boot id>:<pid namespace>:<time namespace>`. */
  readonly kernel: string;
  /** Field 22 of this process's /proc/<pid>/stat. */
  readonly start: string;
}

const BOOT_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const KERNEL = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}:[1-9][0-9]{0,9}:(?:0|[1-9][0-9]{0,9})$/;
const PID = /^[1-9][0-9]{0,9}$/;
const START = /^(?:0|[1-9][0-9]{0,19})$/;

/** The inode of a namespace link: `pid:[4026531836]` gives `4026531836`. */
function namespaceId(kind: 'pid' | 'time'): string {
  const match = /^[a-z_]+:\[([1-9][0-9]{0,9})\]$/.exec(readlinkSync(`/proc/self/ns/${kind}`));
  if (match?.[1] === undefined) throw new Error(`unexpected ${kind} namespace link`);
  return match[1];
}

function timeNamespaceId(): string {
  try {
    return namespaceId('time');
  } catch (error) {
    // Linux before 5.6 has no time namespaces: every process reads boot time alike.
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return '0';
    throw error;
  }
}

/**
 * Field 22 (starttime) of /proc/<pid>/stat, or undefined if unreadable.
 * Field 2 is the command name in parentheses, which may hold spaces and
 * ')': the fields from 3 on follow the last ')'.
 */
function startTime(pid: number): string | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return undefined;
  }
  const close = stat.lastIndexOf(')');
  if (close < 0 || stat[close + 1] !== ' ') return undefined;
  const start = stat.slice(close + 2).split(' ')[22 - 3];
  return start !== undefined && START.test(start) ? start : undefined;
}

let identity: ProcessIdentity | null | undefined;

/** This process's kernel, namespaces and start, read once; null where /proc cannot be trusted for our pids. */
function ownIdentity(): ProcessIdentity | null {
  if (identity !== undefined) return identity;
  identity = null;
  try {
    // A /proc mounted for another pid namespace (unshare without --mount-proc)
    // would answer for other processes than kill(): then nothing is judged.
    if (readlinkSync('/proc/self') !== String(process.pid)) return identity;
    const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'latin1').trim();
    const start = startTime(process.pid);
    const kernel = `${boot}:${namespaceId('pid')}:${timeNamespaceId()}`;
    if (BOOT_ID.test(boot) && KERNEL.test(kernel) && start !== undefined) identity = { kernel, start };
  } catch {
    // No /proc (macOS), or a hardened one: our holders cannot be judged, nor can we judge.
  }
  return identity;
}

/** A new holder name for this process (random per worker: two workers of one process are two holders). */
export function processLeaseHolder(): string {
  const host = hostname().replace(/[^A-Za-z0-9.-]/g, '_').slice(0, 64) || '_';
  const own = ownIdentity();
  return `${host}/${own?.kernel ?? '-'}/${process.pid}/${own?.start ?? '-'}/${randomUUID()}`;
}

/**
 * Whether `holder` names a process of this kernel and pid namespace that no
 * longer runs (see the header). Any doubt is "no": the lease then lapses.
 */
export function leaseHolderGone(holder: string): boolean {
  const parts = holder.split('/');
  if (parts.length !== 5) return false;
  const [, kernel, pidText, start, id] = parts;
  if (kernel === undefined || pidText === undefined || start === undefined || !id) return false;
  if (!KERNEL.test(kernel) || !PID.test(pidText) || !START.test(start)) return false;
  const own = ownIdentity();
  const pid = Number(pidText);
  if (own === null || kernel !== own.kernel || pid === process.pid) return false;
  try {
    // Signal 0 only checks that the process exists.
    process.kill(pid, 0);
  } catch (error) {
    // ESRCH: no such process. EPERM: it runs, as another user.
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
  // The pid runs: the holder's own process, or another one since (reused).
  const now = startTime(pid);
  return now !== undefined && now !== start;
}
