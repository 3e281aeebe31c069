/**
 * The data directory as a newcomer meets it (first-hour D7, D12, D17): a
 * command run in the wrong directory or with a mistyped PORTCULLIS_DATA_DIR
 * creates nothing and names the absolute path it looked at; a data directory
 * that is a file is said to be one; development mode does not listen beyond
 * loopback unless asked to, and then says plainly what that means.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runBinary, spawnServe } from '../support/process.ts';

const dirs: string[] = [];
after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function emptyDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-data-dir-'));
  dirs.push(dir);
  return dir;
}

describe('commands in a directory with no Portcullis data (first-hour D7)', () => {
  const commands = [['user', 'list'], ['migrate'], ['audit', 'verify'], ['client', 'list'], ['keys', 'list'], ['user', 'create', '--email', 'a@example.com', '--password-stdin']];
  for (const command of commands) {
    it(`\`portcullis ${command.join(' ')}\` exits non-zero naming the absolute data directory, and creates no file or directory`, async () => {
      const cwd = emptyDir();
      const result = await runBinary(command, { cwd });
      assert.equal(result.code, 1, result.stdout);
      assert.equal(
        result.stderr,
        `portcullis: there is no Portcullis data at ${join(cwd, 'data')} (no portcullis.db): run \`portcullis init\` there, or point --config or PORTCULLIS_DATA_DIR at your data directory\n`,
      );
      assert.deepEqual(readdirSync(cwd), [], 'nothing was created');
    });
  }

  it('a mistyped PORTCULLIS_DATA_DIR is named as given, made absolute, and not created', async () => {
    const cwd = emptyDir();
    const result = await runBinary(['user', 'list'], { cwd, env: { PORTCULLIS_DATA_DIR: 'dtaa' } });
    assert.equal(result.code, 1);
    assert.match(result.stderr, new RegExp(`no Portcullis data at ${join(cwd, 'dtaa')} `));
    assert.deepEqual(readdirSync(cwd), []);
  });

  it('after `portcullis init`, the same commands work there', async () => {
    const cwd = emptyDir();
    assert.equal((await runBinary(['init'], { cwd })).code, 0);
    const listed = await runBinary(['user', 'list'], { cwd });
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, /^No users yet/);
  });
});

describe('a data directory that is a file (first-hour D12)', () => {
  for (const command of [['serve', '--port', '0'], ['init'], ['user', 'list']]) {
    it(`\`portcullis ${command.join(' ')}\` says the data directory is a file, in one line`, async () => {
      const cwd = emptyDir();
      const file = join(cwd, 'not-a-directory');
      writeFileSync(file, 'x');
      const result = await runBinary(command, { cwd, env: { PORTCULLIS_DATA_DIR: file } });
      assert.equal(result.code, 1);
      assert.equal(result.stderr, `portcullis: the data directory ${file} is a file, not a directory\n`);
      assert.doesNotMatch(result.stderr, /EEXIST|unexpected/);
    });
  }

  it('below a file, it names the file in the way', async () => {
    const cwd = emptyDir();
    const file = join(cwd, 'not-a-directory');
    writeFileSync(file, 'x');
    const result = await runBinary(['serve', '--port', '0'], { cwd, env: { PORTCULLIS_DATA_DIR: join(file, 'data') } });
    assert.equal(result.code, 1);
    assert.equal(result.stderr, `portcullis: the data directory ${join(file, 'data')} cannot be made: ${file} is a file, not a directory\n`);
  });
});

describe('development mode beyond loopback (first-hour D17)', () => {
  it('serve --host 0.0.0.0 in development refuses in one line, and listens nowhere', async () => {
    const cwd = emptyDir();
    const result = await runBinary(['serve', '--host', '0.0.0.0', '--port', '0'], { cwd });
    assert.equal(result.code, 1);
    assert.match(result.stderr, /^portcullis: development mode on host 0\.0\.0\.0: it would serve plain HTTP beyond this machine, with dynamic client registration open to anyone who reaches it; .*--allow-remote-development/);
    assert.equal(result.stderr.split('\n').length, 2, 'one line');
    const fromEnv = await runBinary(['serve', '--port', '0'], { cwd, env: { PORTCULLIS_HOST: '192.0.2.1' } });
    assert.equal(fromEnv.code, 1);
    assert.match(fromEnv.stderr, /development mode on host 192\.0\.2\.1/);
  });

  it('with --allow-remote-development it starts, and its warning says all interfaces, plain HTTP, open registration', async () => {
    const cwd = emptyDir();
    const serving = await spawnServe(['--host', '0.0.0.0', '--port', '0', '--allow-remote-development'], { cwd, env: {} });
    try {
      const warning = serving.output.map((line) => JSON.parse(line) as { level?: string; msg?: string }).find((record) => record.msg?.startsWith('development mode'));
      assert.equal(
        warning?.msg,
        'development mode listening on all interfaces (0.0.0.0) over plain HTTP, and dynamic client registration is open to anyone who can reach it; set PORTCULLIS_MODE=production to deploy',
      );
    } finally {
      assert.equal(await serving.stop(), 0);
    }
  });

  it('on loopback it starts as before and says loopback only', async () => {
    const cwd = emptyDir();
    const serving = await spawnServe(['--port', '0'], { cwd, env: {} });
    try {
      assert.ok(serving.output.some((line) => line.includes('development mode: plain HTTP on loopback only')));
    } finally {
      assert.equal(await serving.stop(), 0);
    }
  });
});
