/**
 * First-hour D1: `user create` made an account nobody could sign in to when
 * --password-stdin was forgotten, and echoed what was typed afterwards. It
 * now asks on a terminal with the echo off (twice, compared), refuses
 * without a terminal unless --password-stdin or --no-password says how, and
 * `user set-password` sets a password later (policy, sessions end, audited).
 * The prompt is tried in a real pseudo-terminal (util-linux `script`).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { initDeployment, runCli as run } from '../support/cli.ts';
import { BIN, collectRun, runBinary, type BinaryRun } from '../support/process.ts';
import { loadConfig } from '../../src/config/index.ts';
import { startPortcullis } from '../../src/server/index.ts';
import { decodeEntry } from '../../src/audit/index.ts';

const PASSWORD = 'violet staple horse battery';
const OTHER_PASSWORD = 'amber lantern quiet harbour';
const RUN_TIMEOUT_MS = 60_000;

interface Exchange {
  readonly waitFor: RegExp;
  readonly send: string;
}

/**
 * Runs `portcullis ARGS` on a pseudo-terminal (`script -qfec`), answering each
 * prompt once it appears, and returns everything the terminal showed.
 */
async function runOnTerminal(args: readonly string[], cwd: string, exchanges: readonly Exchange[]): Promise<BinaryRun> {
  const command = [process.execPath, '--disable-warning=ExperimentalWarning', BIN, ...args].join(' ');
  const child = spawn('script', ['-qfec', command, '/dev/null'], { cwd, env: { PATH: process.env['PATH'] ?? '', HOME: cwd, TERM: 'dumb' } });
  const result = collectRun(child, args.join(' '), RUN_TIMEOUT_MS);
  let shown = '';
  let next = 0;
  const answer = () => {
    const exchange = exchanges[next];
    if (exchange !== undefined && exchange.waitFor.test(shown)) {
      next += 1;
      shown = '';
      child.stdin.write(exchange.send);
      answer();
    }
  };
  child.stdout.on('data', (chunk: Buffer) => {
    shown += chunk.toString();
    answer();
  });
  const done = await result;
  child.stdin.end();
  return done;
}

describe('portcullis user create and set-password: the password (first-hour D1)', { timeout: 180_000 }, () => {
  let dir: string;
  let configFile: string;

  before(async () => {
    ({ dir, configFile } = await initDeployment('portcullis-user-password-'));
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  async function signIn(email: string, password: string): Promise<string> {
    const running = await startPortcullis(loadConfig({ env: {}, file: configFile, overrides: { port: 0 } }));
    try {
      return (await running.identity.accounts.login(email, password, { ip: '198.51.100.9' })).outcome;
    } finally {
      await running.stop();
    }
  }

  it('on a terminal, asks twice without showing what is typed, and the user can sign in with it', async () => {
    const shown = await runOnTerminal(['user', 'create', '--config', configFile, '--email', 'dana@example.com'], dir, [
      { waitFor: /New password for dana@example\.com: $/, send: `${PASSWORD}\r` },
      { waitFor: /Type it again: $/, send: `${PASSWORD}\r` },
    ]);
    assert.equal(shown.code, 0, shown.stdout);
    assert.match(shown.stdout, /Created dana@example\.com \(u_[A-Za-z0-9_-]{22}\)\./);
    assert.ok(!shown.stdout.includes(PASSWORD) && !shown.stdout.includes('violet'), `the password was echoed:\n${shown.stdout}`);
    assert.equal(await signIn('dana@example.com', PASSWORD), 'ok');
  });

  it('on a terminal, two different answers create nothing', async () => {
    const shown = await runOnTerminal(['user', 'create', '--config', configFile, '--email', 'eve@example.com'], dir, [
      { waitFor: /New password for eve@example\.com: $/, send: `${PASSWORD}\r` },
      { waitFor: /Type it again: $/, send: `${OTHER_PASSWORD}\r` },
    ]);
    assert.equal(shown.code, 1, shown.stdout);
    assert.match(shown.stdout, /the two passwords differ; nothing was changed/);
    assert.ok(!(await run(['user', 'list', '--config', configFile])).out.some((line) => line.includes('eve@example.com')));
  });

  it('without a terminal and without --password-stdin, refuses in one line and creates nothing', async () => {
    const refused: BinaryRun = await runBinary(['user', 'create', '--config', configFile, '--email', 'frank@example.com'], { cwd: dir });
    assert.equal(refused.code, 1);
    assert.equal(refused.stderr, 'portcullis: no password: standard input is not a terminal to type it on; pipe it in with --password-stdin\n');
    assert.ok(!(await run(['user', 'list', '--config', configFile])).out.some((line) => line.includes('frank@example.com')));
  });

  it('--no-password creates an account without one, on purpose; --no-password with --password-stdin is refused', async () => {
    const created = await runBinary(['user', 'create', '--config', configFile, '--email', 'grace@example.com', '--no-password'], { cwd: dir });
    assert.equal(created.code, 0, created.stderr);
    assert.match(created.stdout, /Created grace@example\.com .* without a password: nobody can sign in until `portcullis user set-password` sets one\./);
    const both = await run(['user', 'create', '--config', configFile, '--email', 'heidi@example.com', '--no-password', '--password-stdin'], `${PASSWORD}\n`);
    assert.equal(both.code, 1);
    assert.match(both.err[0]!, /contradict/);
  });

  it('set-password on a terminal gives an account without a password one to sign in with', async () => {
    assert.equal(await signIn('grace@example.com', PASSWORD), 'invalid');
    const shown = await runOnTerminal(['user', 'set-password', 'grace@example.com', '--config', configFile], dir, [
      { waitFor: /New password for grace@example\.com: $/, send: `${PASSWORD}\r` },
      { waitFor: /Type it again: $/, send: `${PASSWORD}\r` },
    ]);
    assert.equal(shown.code, 0, shown.stdout);
    assert.match(shown.stdout, /Password set for grace@example\.com; 0 sessions ended\./);
    assert.ok(!shown.stdout.includes(PASSWORD), 'not echoed');
    assert.equal(await signIn('grace@example.com', PASSWORD), 'ok');
  });

  it('set-password --password-stdin ends the sessions the user held, applies the password policy, and is audited', async () => {
    const config = loadConfig({ env: {}, file: configFile, overrides: { port: 0 } });
    let running = await startPortcullis(config);
    const login = await running.identity.accounts.login('dana@example.com', PASSWORD, { ip: '198.51.100.10' });
    assert.equal(login.outcome, 'ok');
    const sessionId = login.outcome === 'ok' ? login.session.id : '';
    await running.stop();

    const weak = await run(['user', 'set-password', 'dana@example.com', '--password-stdin', '--config', configFile], 'password123\n');
    assert.equal(weak.code, 1);
    assert.match(weak.err[0]!, /^portcullis: password refused: /);
    assert.equal(await signIn('dana@example.com', PASSWORD), 'ok', 'a refused password changes nothing');

    const unknown = await run(['user', 'set-password', 'nobody@example.com', '--password-stdin', '--config', configFile], `${OTHER_PASSWORD}\n`);
    assert.equal(unknown.code, 1);
    assert.match(unknown.err[0]!, /no user nobody@example\.com/);

    const set = await run(['user', 'set-password', 'dana@example.com', '--password-stdin', '--config', configFile], `${OTHER_PASSWORD}\n`);
    assert.equal(set.code, 0, set.err.join('\n'));
    assert.match(set.out[0]!, /^Password set for dana@example\.com; [1-9]\d* sessions? ended\.$/);

    running = await startPortcullis(config);
    try {
      assert.equal(await running.identity.accounts.sessions.resolve(sessionId), null, 'her session ended');
      assert.equal((await running.identity.accounts.login('dana@example.com', PASSWORD, { ip: '198.51.100.11' })).outcome, 'invalid', 'the old password no longer works');
      assert.equal((await running.identity.accounts.login('dana@example.com', OTHER_PASSWORD, { ip: '198.51.100.11' })).outcome, 'ok');
      const size = await running.ledger.size();
      const entries = (await running.stores.durable.auditLog.entries(0, size)).map((row) => decodeEntry(row.entry));
      const changed = entries.filter((entry) => entry.type === 'user.updated' && entry.service === 'admin-cli');
      assert.ok(changed.some((entry) => (entry.detail as { change?: string }).change === 'password'), 'the change is in the audit ledger');
      assert.ok(!JSON.stringify(entries).includes(OTHER_PASSWORD), 'no password in the ledger');
    } finally {
      await running.stop();
    }
  });
});
