/**
 * The embedded SQLite file's disk fills up (issue 16), for real: the data
 * directory is on a small tmpfs of the test's own, and a filler file takes
 * the space that is left while sign-ins run.
 *
 * While it is full: no answer is a 500; the sign-ins that need to write are
 * refused with 503 and Retry-After; what was committed before stays (the
 * accounts are still there, reads go on); one error line says a store went
 * down. Once the filler is removed, the breaker's write probe finds the disk
 * writable again, one info line says so, and sign-ins succeed, without a
 * restart. `portcullis audit verify` passes afterwards.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BrowserlessClient, csrfField } from '../support/browserless-client.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

const PASSWORD = 'correct horse battery staple';
const DOWN_LINE = /"msg":"store unavailable/;
const UP_LINE = /"msg":"store available again"/;

/** Writes `path` until the filesystem is full (ENOSPC); resolves with the bytes written. */
function fill(path: string): number {
  const chunk = Buffer.alloc(64 * 1024, 0x5a);
  const fd = openSync(path, 'w');
  let written = 0;
  try {
    for (;;) {
      try {
        written += writeSync(fd, chunk);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOSPC') return written;
        throw error;
      }
    }
  } finally {
    closeSync(fd);
  }
}

async function signIn(server: TestServer, email: string): Promise<{ status: number; retryAfter: string | null }> {
  const browser = new BrowserlessClient(server.url, { ip: '198.51.100.33' });
  const form = await browser.get('/login');
  if (form.status !== 200) return { status: form.status, retryAfter: form.headers.get('retry-after') };
  const answer = await browser.post('/login', { _csrf: csrfField(form.body)!, email, password: PASSWORD });
  return { status: answer.status, retryAfter: answer.headers.get('retry-after') };
}

describe('the embedded database\'s disk fills up, then has room again', () => {
  let mount: string;
  let server: TestServer;
  const emails: string[] = [];
  const ids: string[] = [];

  before(async () => {
    mount = mkdtempSync(join(tmpdir(), 'portcullis-full-'));
    // A filesystem of the test's own, 24 MiB: the database, its WAL and the filler share it.
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=24m', 'tmpfs', mount]);
    mkdirSync(join(mount, 'data'));
    server = await startTestServer({ dataDir: join(mount, 'data') });
    for (let i = 0; i < 5; i++) {
      const email = `full-${i}@example.com`;
      emails.push(email);
      ids.push((await server.running.identity.accounts.createUser(email, PASSWORD, { actor: 'test' })).id);
    }
  });
  after(async () => {
    await server?.close();
    if (mount !== undefined) {
      execFileSync('umount', [mount]);
      rmSync(mount, { recursive: true, force: true });
    }
  });

  it('answers 503 while it is full (never 500), keeps what was committed, and recovers when space returns', async () => {
    assert.equal((await signIn(server, emails[0]!)).status, 303, 'sign-in works before');
    const filler = join(mount, 'filler');
    const down = server.logs.next(DOWN_LINE);
    const filled = fill(filler);
    assert.ok(filled > 0);

    // Sign-ins write (a session, an audit entry): refused while nothing can be written.
    const answers: { status: number; retryAfter: string | null }[] = [];
    const reason = await Promise.race([down.then((line) => line), (async () => {
      for (let i = 0; i < 50; i++) answers.push(await signIn(server, emails[i % emails.length]!));
      return undefined;
    })()]);
    assert.ok(reason !== undefined, `the breaker opened: ${JSON.stringify(answers.slice(-3))}`);
    for (let i = 0; i < 10; i++) answers.push(await signIn(server, emails[i % emails.length]!));
    assert.deepEqual(answers.filter((answer) => answer.status !== 503 && answer.status !== 303), [], 'nothing but 503 (and sign-ins that fit in what was left), never a 500');
    const last = answers.slice(-10);
    assert.ok(last.every((answer) => answer.status === 503 && answer.retryAfter !== null), `once full, every sign-in is a 503 with Retry-After: ${JSON.stringify(last)}`);
    // What was committed stays, and can be read.
    for (const id of ids) assert.notEqual(await server.running.identity.accounts.users.byId(id), null);

    const up = server.logs.next(UP_LINE);
    rmSync(filler);
    await up;
    assert.equal((await signIn(server, emails[1]!)).status, 303, 'sign-in works again, without a restart');

    const lines = server.logs.records();
    const downLines = lines.filter((line) => DOWN_LINE.test(JSON.stringify(line)));
    assert.ok(downLines.length >= 1 && downLines.length <= 2, 'one line per store that went down');
    assert.equal(lines.filter((line) => UP_LINE.test(JSON.stringify(line))).length, downLines.length, 'and one each on the way up');
    assert.ok(!server.logs.text.includes('"stack"'), 'no stack in the log');
  });
});
