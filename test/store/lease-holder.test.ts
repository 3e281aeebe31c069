/**
 * Lease holders that name their process (store/lease-holder.ts): only a
 * holder of this machine whose process is gone is judged gone, so only a
 * lease left by a process killed here is taken before it lapses.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { hostname } from 'node:os';
import { leaseHolderGone, processLeaseHolder } from '../../src/store/lease-holder.ts';

describe('lease holders', () => {
  it('names this machine and process, and a new random part each time', () => {
    const [host, pid, id] = processLeaseHolder().split('/');
    assert.equal(host, hostname());
    assert.equal(pid, String(process.pid));
    assert.match(id ?? '', /^[0-9a-f-]{36}$/);
    assert.notEqual(processLeaseHolder(), processLeaseHolder());
  });

  it('judges gone only a holder of this machine whose process has exited', async () => {
    const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)']);
    const holder = `${hostname()}/${child.pid}/00000000-0000-4000-8000-000000000000`;
    assert.equal(leaseHolderGone(holder), false, 'the process runs');
    const exited = once(child, 'exit');
    child.kill('SIGKILL');
    await exited;
    assert.equal(leaseHolderGone(holder), true, 'killed: its lease can be taken');
    assert.equal(leaseHolderGone(`another-host.example/${child.pid}/x`), false, 'another machine\'s process is never judged');
    assert.equal(leaseHolderGone(processLeaseHolder()), false, 'this process\'s other holders run');
    assert.equal(leaseHolderGone('3f1c7a52-0b7e-4c3e-9d6a-2a8f5e1b9c40'), false, 'an older build\'s random holder lapses as before');
    assert.equal(leaseHolderGone(`${hostname()}/0/x`), false);
  });
});
