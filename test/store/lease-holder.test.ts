/**
 * Lease holders that name their process (store/lease-holder.ts): only a
 * holder of this kernel and pid namespace whose process is gone (or whose
 * pid now runs a process started later) is judged gone, so only a lease
 * left by a process killed here is taken before it lapses. A live holder
 * of another pid namespace (a container with the same hostname) is never
 * taken, even though its pid does not exist here.
 */
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, readlinkSync, rmSync, symlinkSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { leaseHolderGone, processLeaseHolder } from '../../src/store/lease-holder.ts';

const RANDOM = '00000000-0000-4000-8000-000000000000';
const linux = existsSync('/proc/self/stat') && existsSync('/proc/sys/kernel/random/boot_id');

/** Field 22 of /proc/<pid>/stat: the fields from 3 on follow the last ')' (field 2 may hold ')' and spaces). */
function startTime(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  const start = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  assert.match(start ?? '', /^[0-9]+$/);
  return start ?? '';
}

function namespace(kind: string): string {
  return /\[([0-9]+)\]/.exec(readlinkSync(`/proc/self/ns/${kind}`))?.[1] ?? '';
}

/** `<boot>:<pid ns>:<time ns>` of this process, as the holder names it. */
function ourKernel(): string {
  const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'latin1').trim();
  return `${boot}:${namespace('pid')}:${existsSync('/proc/self/ns/time') ? namespace('time') : '0'}`;
}

function holderOf(pid: number, start: string, kernel = ourKernel()): string {
  return `${hostname()}/${kernel}/${pid}/${start}/${RANDOM}`;
}

function idle(): ChildProcess {
  return spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
}

async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGKILL');
  await exited;
}

/** A pid of a child of ours that was killed and reaped: no process has it here (until reused). */
async function deadPid(): Promise<number> {
  const child = idle();
  await once(child, 'spawn');
  await kill(child);
  assert.ok(child.pid !== undefined);
  return child.pid;
}

describe('lease holders', { skip: linux ? false : 'needs Linux /proc' }, () => {
  it('names this kernel, pid namespace and process, and a new random part each time', () => {
    const holder = processLeaseHolder();
    const [host, kernel, pid, start, id, ...rest] = holder.split('/');
    assert.equal(host, hostname().replace(/[^A-Za-z0-9.-]/g, '_').slice(0, 64));
    assert.equal(kernel, ourKernel());
    assert.equal(pid, String(process.pid));
    assert.equal(start, startTime(process.pid));
    assert.match(id ?? '', /^[0-9a-f-]{36}$/);
    assert.deepEqual(rest, []);
    assert.ok(holder.length < 200, holder);
    assert.notEqual(processLeaseHolder(), processLeaseHolder());
  });

  it('judges gone a holder of this namespace whose process has exited, and nothing else', async () => {
    const child = idle();
    await once(child, 'spawn');
    assert.ok(child.pid !== undefined);
    const holder = holderOf(child.pid, startTime(child.pid));
    try {
      assert.equal(leaseHolderGone(holder), false, 'the process runs');
    } finally {
      await kill(child);
    }
    assert.equal(leaseHolderGone(holder), true, 'killed: its lease can be taken');
    assert.equal(leaseHolderGone(holder.replace(/^[^/]*/, 'another-host.example')), true, 'the hostname is not judged');
    assert.equal(leaseHolderGone(`${hostname()}/${child.pid}/${RANDOM}`), false, 'the previous <host>/<pid>/<random> form lapses as before');
    assert.equal(leaseHolderGone(processLeaseHolder()), false, 'this process\'s other holders run');
    assert.equal(leaseHolderGone('3f1c7a52-0b7e-4c3e-9d6a-2a8f5e1b9c40'), false, 'an older build\'s random holder lapses as before');
    assert.equal(leaseHolderGone(holderOf(0, '1')), false);
    assert.equal(leaseHolderGone(`${hostname()}/-/${child.pid}/-/${RANDOM}`), false, 'a holder without /proc is never judged');
    assert.equal(leaseHolderGone(`${holder}/more`), false);
    assert.equal(leaseHolderGone(holder.replace(`/${child.pid}/`, `/0${child.pid}/`)), false);
  });

  it('never judges a holder of another kernel or pid namespace, though its pid does not exist here', async () => {
    const pid = await deadPid();
    const [boot, pidNamespace, timeNamespace] = ourKernel().split(':');
    assert.equal(leaseHolderGone(holderOf(pid, '12345')), true, 'the same pid in our namespace would be gone');
    assert.equal(leaseHolderGone(holderOf(pid, '12345', `${boot}:${Number(pidNamespace) + 1}:${timeNamespace}`)), false, 'another pid namespace (a container with the same hostname)');
    assert.equal(leaseHolderGone(holderOf(pid, '12345', `3f1c7a52-0b7e-4c3e-9d6a-2a8f5e1b9c40:${pidNamespace}:${timeNamespace}`)), false, 'another boot or machine');
    assert.equal(leaseHolderGone(holderOf(pid, '12345', `${boot}:${pidNamespace}:${Number(timeNamespace) + 1}`)), false, 'another time namespace');
  });

  it('judges gone a holder whose pid now runs another process (reused pid)', async (t) => {
    // A command name with ')' and spaces: the start time is read after the last ')'.
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-lease-holder-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const sleep = join(dir, 'a) 1 2 (b');
    symlinkSync(existsSync('/bin/sleep') ? '/bin/sleep' : '/usr/bin/sleep', sleep);
    const child = spawn(sleep, ['60'], { stdio: 'ignore' });
    await once(child, 'spawn');
    t.after(() => kill(child));
    assert.ok(child.pid !== undefined);
    assert.match(readFileSync(`/proc/${child.pid}/stat`, 'latin1'), /^[0-9]+ \(a\) 1 2 \(b\) /);
    const start = startTime(child.pid);
    assert.equal(leaseHolderGone(holderOf(child.pid, start)), false, 'the holder itself runs');
    const earlier = String(BigInt(start) - 1n);
    assert.equal(leaseHolderGone(holderOf(child.pid, earlier)), true, 'its pid was reused by a process started later');
  });

  it('never judges a live holder of a real other pid namespace (unshare -pf)', async (t: TestContext) => {
    const pid = await deadPid();
    const probe = spawnSync('unshare', ['-pf', '--mount-proc', 'true'], { stdio: 'ignore' });
    if (probe.status !== 0) {
      t.skip('unshare -pf --mount-proc is not allowed here');
      return;
    }
    const module = new URL('../../src/store/lease-holder.ts', import.meta.url).href;
    const print = `import { processLeaseHolder } from ${JSON.stringify(module)}; console.log(processLeaseHolder()); setInterval(() => {}, 1000);`;
    // In its own pid namespace, the holder is given the pid of our dead child
    // (ns_last_pid), a pid that no process has here.
    const script = 'echo "$1" > /proc/sys/kernel/ns_last_pid; shift; "$@" & wait';
    const child = spawn('unshare', ['-pf', '--kill-child', '--mount-proc', 'sh', '-c', script, 'sh', String(pid - 1), process.execPath, '--disable-warning=ExperimentalWarning', '--input-type=module', '-e', print], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    t.after(() => kill(child));
    const [line] = (await once(createInterface({ input: child.stdout }), 'line')) as [string];
    const [, kernel, inner] = line.split('/');
    const [boot, pidNamespace, timeNamespace] = ourKernel().split(':');
    assert.match(kernel ?? '', new RegExp(`^${boot}:[0-9]+:${timeNamespace}$`), 'the same kernel');
    assert.notEqual(kernel?.split(':')[1], pidNamespace, 'another pid namespace');
    if (inner === String(pid)) {
      assert.throws(() => process.kill(pid, 0), { code: 'ESRCH' }, 'its pid does not exist here');
    } else {
      t.diagnostic(`ns_last_pid was not honoured: the holder runs as pid ${inner} there`);
    }
    assert.equal(leaseHolderGone(line), false, 'it runs, in its own namespace: its lease is not taken');
  });
});
