/**
 * `portcullis audit …` as an operator and an auditor use it: help, export
 * to JSONL and verify the file offline, verify a running server over HTTP,
 * and the docs/architecture.md contract for bad input (one line, non-zero exit) and
 * for long work (a progress bar on a terminal).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateSignerKey } from '../../src/audit/checkpoint/index.ts';
import { LATEST_SCHEMA_VERSION } from '../../src/store/index.ts';
import { freePort } from '../support/process.ts';
import { auditDrivers, buildAuditLog, runBinary, runCli, type AuditLogFixture, type CliRun } from '../support/audit-log.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

const dirs: string[] = [];
after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-audit-cli-'));
  dirs.push(dir);
  return dir;
}


/** Bad input: a non-zero exit, nothing on stdout, exactly one line on stderr naming the problem, no stack. */
function assertOneLineError(run: CliRun, names: RegExp): void {
  const context = `stdout:\n${run.stdout}\nstderr:\n${run.stderr}`;
  assert.notEqual(run.code, 0, `exits non-zero\n${context}`);
  assert.deepEqual(run.out, [], `nothing on stdout\n${context}`);
  assert.equal(run.err.length, 1, `one line on stderr\n${context}`);
  assert.doesNotMatch(run.err[0]!, /\n/, `one line on stderr\n${context}`);
  assert.match(run.err[0]!, names);
  assert.doesNotMatch(run.err[0]!, /\bat .*\.ts:\d/, 'no stack');
}

describe('audit --help', () => {
  const cases: [string[], string[]][] = [
    [['audit'], ['verify', 'export', 'checkpoint', 'key']],
    [['audit', 'verify'], ['--config', '--url', '--token', '--file', '--key', '--key-file', '--trusted', '--save-latest', '--json']],
    [['audit', 'export'], ['--config', '--format', '--start', '--end', '--with-checkpoints', '--output']],
    [['audit', 'checkpoint'], ['--config', '--url', '--sign', '--token']],
    [['audit', 'key'], ['--config']],
  ];
  for (const [command, mentions] of cases) {
    it(`${command.join(' ')} --help exits 0 and describes ${mentions.join(', ')}`, async () => {
      const run = await runCli([...command, '--help']);
      assert.equal(run.code, 0, run.stderr);
      assert.deepEqual(run.err, []);
      assert.match(run.stdout, new RegExp(`^Usage: portcullis ${command.join(' ')} `, 'm'));
      for (const mention of mentions) assert.ok(run.stdout.includes(mention), `mentions ${mention}:\n${run.stdout}`);
    });
  }

  it('the top-level --help lists audit', async () => {
    const run = await runCli(['--help']);
    assert.equal(run.code, 0);
    assert.match(run.stdout, /^\s+audit\b/m);
  });
});

for (const driver of auditDrivers) {
  describe(`audit export and verify --file (${driver})`, () => {
    let log: AuditLogFixture;
    let exported: string;
    before(async () => {
      log = await buildAuditLog(driver);
      exported = join(log.dir, 'audit.jsonl');
    });
    after(async () => {
      await log.close();
    });

    it('export --format jsonl --with-checkpoints -o FILE writes every entry and checkpoint; verify --file --key passes on it', async () => {
      const run = await runCli(['audit', 'export', '--config', log.configFile, '--format', 'jsonl', '--with-checkpoints', '-o', exported]);
      assert.equal(run.code, 0, run.stderr);
      assert.deepEqual(run.out, [], 'the lines go to the file, not stdout');
      assert.equal(statSync(exported).mode & 0o777, 0o600, 'an export holds pseudonymous records: owner-only');
      const lines = readFileSync(exported, 'utf8').trimEnd().split('\n');
      assert.equal(lines.length, 43, '40 entries and 3 checkpoints');
      const parsed = lines.map((line) => JSON.parse(line) as { index?: number; entry?: { type: string }; checkpoint?: string });
      assert.deepEqual(parsed.slice(0, 40).map((line) => line.index), Array.from({ length: 40 }, (_, i) => i));
      assert.equal(parsed[0]!.entry!.type, 'auth.login.succeeded');
      assert.deepEqual(parsed.slice(40).map((line) => line.checkpoint!.split('\n')[1]), ['10', '25', '40']);

      const verified = await runCli(['audit', 'verify', '--file', exported, '--key', log.verifierKey]);
      assert.equal(verified.code, 0, verified.stdout + verified.stderr);
      assert.equal(verified.out[0], 'OK: 40 entries and 3 checkpoints verified.');
      assert.deepEqual(verified.err, []);
    });

    it('a one-character edit of an entry inside the export makes verify --file fail', async () => {
      const lines = readFileSync(exported, 'utf8').split('\n');
      assert.ok(lines[17]!.startsWith('{"index":17,'));
      const edited = lines[17]!.replace('"outcome":"success"', '"outcome":"Success"');
      assert.equal(edited.length, lines[17]!.length);
      assert.equal([...edited].filter((char, i) => char !== lines[17]![i]).length, 1, 'exactly one character differs');
      const tamperedFile = join(log.dir, 'audit-edited.jsonl');
      writeFileSync(tamperedFile, [...lines.slice(0, 17), edited, ...lines.slice(18)].join('\n'));
      const run = await runCli(['audit', 'verify', '--file', tamperedFile, '--key', log.verifierKey]);
      assert.equal(run.code, 1, run.stdout);
      assert.match(run.out[0]!, /^TAMPERED: 2 problem\(s\) found\.$/);
      // An export carries no stored leaf hashes: the range after the last good checkpoint (10) is named.
      assert.equal(run.out[1], 'First bad index: 10');
      assert.match(run.out[2]!, /^ {2}root_mismatch: the stored checkpoint of size 25 does not match the entries: a bad entry lies in \[10, 25\)/);
    });

    it('export to stdout honours --start and --end; without --with-checkpoints only entries', async () => {
      const run = await runCli(['audit', 'export', '--config', log.configFile, '--start', '5', '--end', '8']);
      assert.equal(run.code, 0, run.stderr);
      assert.deepEqual(run.out.map((line) => (JSON.parse(line) as { index: number }).index), [5, 6, 7]);
    });
  });
}

describe('audit verify on a local store: --save-latest, progress, and an empty or missing store', () => {
  let log: AuditLogFixture;
  before(async () => {
    log = await buildAuditLog('sqlite');
  });
  after(async () => {
    await log.close();
  });

  it('with a progress callback (a terminal), writes a progress bar with a percentage and the final count', async () => {
    const run = await runCli(['audit', 'verify', '--config', log.configFile, '--key', log.verifierKey], { progress: true });
    assert.equal(run.code, 0, run.stderr);
    assert.ok(run.progress.includes('%'), `a percentage: ${JSON.stringify(run.progress)}`);
    assert.ok(run.progress.includes('100%'), JSON.stringify(run.progress));
    assert.ok(run.progress.includes('40/40'), `the final count: ${JSON.stringify(run.progress)}`);
    assert.match(run.progress, /^\rverifying .*\n$/s, 'redraws one line and ends it');
    assert.deepEqual(run.err, [], 'the bar goes to progress, not to the error lines');

    const quiet = await runCli(['audit', 'verify', '--config', log.configFile, '--key', log.verifierKey]);
    assert.equal(quiet.progress, '', 'no bar without a terminal');
  });

  it('--save-latest writes the latest verified checkpoint, which is what `audit checkpoint` prints and verifies as --trusted', async () => {
    const saved = join(log.dir, 'latest.txt');
    const run = await runCli(['audit', 'verify', '--config', log.configFile, '--key', log.verifierKey, '--save-latest', saved]);
    assert.equal(run.code, 0, run.stderr);
    const checkpoint = await runCli(['audit', 'checkpoint', '--config', log.configFile]);
    assert.equal(readFileSync(saved, 'utf8'), `${checkpoint.stdout}\n`);
    const again = await runCli(['audit', 'verify', '--config', log.configFile, '--key', log.verifierKey, '--trusted', saved]);
    assert.equal(again.code, 0, again.stdout);
    assert.equal(again.out[0], 'OK: 40 entries and 4 checkpoints verified.');
  });

  it('without --key, uses the store’s key and says so on stderr', async () => {
    const run = await runCli(['audit', 'verify', '--config', log.configFile]);
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(run.err, [`warning: using the log key the source itself provides (${log.verifierKey}); pin it with --key so a replaced key is caught`]);
  });

  it('checkpoint --sign signs a new checkpoint of the log as it is now (with the master key from the data directory)', async () => {
    const before = await runCli(['audit', 'checkpoint', '--config', log.configFile]);
    const signed = await runCli(['audit', 'checkpoint', '--sign', '--config', log.configFile]);
    assert.equal(signed.code, 0, signed.stderr);
    assert.notEqual(signed.stdout, before.stdout, 'a new note (a later timestamp)');
    assert.equal(signed.stdout.split('\n')[1], '40');
    const run = await runCli(['audit', 'verify', '--config', log.configFile, '--key', log.verifierKey]);
    assert.equal(run.out[0], 'OK: 40 entries and 4 checkpoints verified.');
  });

  it('on a data directory with no database, every audit command says so in one line and creates nothing', async () => {
    const dir = tempDir();
    const config = join(dir, 'portcullis.json');
    writeFileSync(config, JSON.stringify({ dataDir: join(dir, 'data') }));
    for (const command of [['verify', '--key', log.verifierKey], ['verify'], ['export'], ['checkpoint'], ['key']]) {
      const run = await runCli(['audit', ...command, '--config', config]);
      // First-hour D7: it names the absolute data directory and says to run init.
      assertOneLineError(run, /no Portcullis data/);
      assert.equal(run.err[0], `portcullis: there is no Portcullis data at ${join(dir, 'data')} (no portcullis.db): run \`portcullis init\` there, or point --config or PORTCULLIS_DATA_DIR at your data directory`);
    }
    assert.equal(existsSync(join(dir, 'data')), false, 'a read-only command made no directory or file');
  });

  it('on a database without the audit tables, every audit command gives the one-line schema message', async () => {
    const dir = tempDir();
    const config = join(dir, 'portcullis.json');
    writeFileSync(config, JSON.stringify({ dataDir: join(dir, 'data') }));
    mkdirSync(join(dir, 'data'));
    writeFileSync(join(dir, 'data', 'portcullis.db'), '');
    // First-hour D7: every data error names the absolute path.
    const schemaMessage = `portcullis: ${join(dir, 'data', 'portcullis.db')}: database schema is at version 0, this build needs ${LATEST_SCHEMA_VERSION}: run \`portcullis migrate\``;
    for (const command of [['verify', '--key', log.verifierKey], ['verify'], ['export'], ['checkpoint'], ['key']]) {
      const run = await runCli(['audit', ...command, '--config', config]);
      assertOneLineError(run, /schema/);
      assert.equal(run.err[0], schemaMessage, command.join(' '));
    }
  });

  it('on a migrated but empty store, each command says what is missing in one line', async () => {
    const dir = tempDir();
    const config = join(dir, 'portcullis.json');
    writeFileSync(config, JSON.stringify({ dataDir: join(dir, 'data') }));
    assert.equal((await runCli(['init', '--config', config])).code, 0);
    assertOneLineError(await runCli(['audit', 'key', '--config', config]), /^portcullis: the log has no key yet/);
    assertOneLineError(await runCli(['audit', 'checkpoint', '--config', config]), /^portcullis: the log has no checkpoint yet/);
    assertOneLineError(await runCli(['audit', 'verify', '--config', config]), /^portcullis: no log key: pass --key/);
    const empty = await runCli(['audit', 'verify', '--config', config, '--key', log.verifierKey]);
    assert.equal(empty.code, 0, empty.stderr);
    assert.deepEqual(empty.out, ['OK: 0 entries and 0 checkpoints verified.']);
  });
});

describe('bad input to audit commands: one line, non-zero exit', () => {
  it('an unknown flag', async () => {
    assertOneLineError(await runCli(['audit', 'verify', '--bogus']), /^error: unknown option '--bogus'/);
    assertOneLineError(await runCli(['audit', 'export', '--with-checkpoint']), /^error: unknown option '--with-checkpoint'.*--with-checkpoints/);
  });

  it('a bad --start or --end value', async () => {
    for (const value of ['abc', '1.5', '-1', '01', '99999999999999999']) {
      assertOneLineError(await runCli(['audit', 'export', '--start', value]), /--start.*must be a non-negative integer|unknown option '-1'/);
    }
    assertOneLineError(await runCli(['audit', 'export', '--end', 'x']), /--end.*must be a non-negative integer/);
  });

  it('an unsupported --format', async () => {
    assertOneLineError(await runCli(['audit', 'export', '--format', 'csv']), /--format.*'csv'.*jsonl/);
  });

  it('--url together with --file', async () => {
    assertOneLineError(await runCli(['audit', 'verify', '--url', 'http://127.0.0.1:1', '--file', 'x.jsonl']), /--url.*cannot be used with.*--file/);
  });

  it('a --key that is not a verifier key, a missing --file, a file that is not JSONL', async () => {
    const dir = tempDir();
    const file = join(dir, 'export.jsonl');
    writeFileSync(file, '{"index":0,"entry":{"v":1}}\n');
    assertOneLineError(await runCli(['audit', 'verify', '--file', file, '--key', 'not-a-key']), /^portcullis: --key is not a signed-note verifier key/);
    const { verifierKey } = generateSignerKey('example.com/log');
    assertOneLineError(await runCli(['audit', 'verify', '--file', join(dir, 'missing.jsonl'), '--key', verifierKey]), /^portcullis: cannot read .*missing\.jsonl \(ENOENT\)$/);
    writeFileSync(file, '{"index":0,"entry":{"v":1}}\nthis is not json\n');
    assertOneLineError(await runCli(['audit', 'verify', '--file', file, '--key', verifierKey]), /^portcullis: .*export\.jsonl:2: not a JSON line$/);
  });
});

describe('audit verify --url against a running server', () => {
  const token = randomBytes(24).toString('base64url');
  let server: TestServer;
  let verifierKey: string;
  before(async () => {
    server = await startTestServer({ env: { PORTCULLIS_ADMIN_TOKEN: token } });
    // Some entries (failed admin calls are audited), then a checkpoint over them.
    for (let i = 0; i < 3; i++) assert.equal((await fetch(`${server.url}/audit/entries?start=0&end=0`)).status, 401);
    assert.equal((await fetch(`${server.url}/audit/checkpoint`, { method: 'POST', headers: { authorization: `Bearer ${token}` } })).status, 201);
    verifierKey = (await (await fetch(`${server.url}/audit/key`)).text()).trim();
  });
  after(async () => {
    await server.close();
  });

  it('passes with --token and a pinned --key', async () => {
    const run = await runCli(['audit', 'verify', '--url', server.url, '--token', token, '--key', verifierKey]);
    assert.equal(run.code, 0, run.stdout + run.stderr);
    assert.match(run.out[0]!, /^OK: \d+ entries and [2-9] checkpoints verified\.$/);
    assert.match(run.out[1]!, /^Latest verified checkpoint: size [3-9],/);
    assert.deepEqual(run.err, []);
  });

  it('without a token, the real binary exits 1 with one line naming the 401 and how to pass the token', async () => {
    const run = await runBinary(['audit', 'verify', '--url', server.url, '--key', verifierKey], { cwd: tempDir() });
    assert.equal(run.code, 1, run.stdout + run.stderr);
    assert.equal(run.stdout, '');
    assert.equal(run.stderr, `portcullis: ${server.url}/audit/entries answered 401 (pass the admin token with --token or $PORTCULLIS_ADMIN_TOKEN)\n`);
  });

  it('a wrong token, and a server that is not there, are one line and exit 1', async () => {
    assertOneLineError(await runCli(['audit', 'verify', '--url', server.url, '--token', `${token}x`, '--key', verifierKey]), /answered 401/);
    const nobody = `http://127.0.0.1:${await freePort()}`;
    for (const command of [['verify', '--token', token, '--key', verifierKey], ['checkpoint']]) {
      const run = await runCli(['audit', command[0]!, '--url', nobody, ...command.slice(1)]);
      assertOneLineError(run, new RegExp(`^portcullis: cannot reach ${nobody}: ECONNREFUSED$`));
    }
    // Port 1 is one fetch refuses to dial (WHATWG fetch "bad port"): the reason, not undici's "fetch failed".
    assertOneLineError(await runCli(['audit', 'verify', '--url', 'http://127.0.0.1:1', '--key', verifierKey]), /^portcullis: cannot reach http:\/\/127\.0\.0\.1:1: bad port$/);
  });

  it('audit checkpoint --url prints the server’s latest checkpoint, which then verifies as --trusted', async () => {
    const checkpoint = await runCli(['audit', 'checkpoint', '--url', server.url]);
    assert.equal(checkpoint.code, 0, checkpoint.stderr);
    const dir = tempDir();
    writeFileSync(join(dir, 'trusted.txt'), `${checkpoint.stdout}\n`);
    const run = await runCli(['audit', 'verify', '--url', server.url, '--token', token, '--key', verifierKey, '--trusted', join(dir, 'trusted.txt')]);
    assert.equal(run.code, 0, run.stdout + run.stderr);
  });
});
