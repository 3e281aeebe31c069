/**
 * The `portcullis` command as a user runs it: bin/portcullis.js in a child
 * process, in a fresh working directory (so ./data lands there), with an
 * environment that holds no PORTCULLIS_* variable unless a test sets one.
 * docs/architecture.md (Conventions): every command has --help, exits non-zero with one clear line on
 * bad input (no stack, no secret), and `serve` stops cleanly on SIGTERM.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { migrations } from '../../src/store/migrations/index.ts';
import { createTestSchema, testDatabaseUrl } from '../support/services.ts';
import { collectRun, freePort, within } from '../support/process.ts';

const BIN = fileURLToPath(new URL('../../bin/portcullis.js', import.meta.url));
const PACKAGE_VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
const LATEST_VERSION = migrations.at(-1)!.version;
/** Bound on one CLI run (a command that should fail fast but hangs is killed and fails the test). */
const RUN_TIMEOUT_MS = 30_000;
const START_TIMEOUT_MS = 20_000;

const children: ChildProcessWithoutNullStreams[] = [];
const dirs: string[] = [];

after(() => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-cli-'));
  dirs.push(dir);
  return dir;
}

function spawnCli(args: readonly string[], cwd: string, env: Record<string, string>): ChildProcessWithoutNullStreams {
  const child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', BIN, ...args], {
    cwd,
    env: { PATH: process.env['PATH'] ?? '', HOME: cwd, ...env },
  });
  children.push(child);
  return child;
}

interface RunResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs one command to completion (at most RUN_TIMEOUT_MS). */
function runCli(args: readonly string[], options: { cwd?: string; env?: Record<string, string> } = {}): Promise<RunResult> {
  return collectRun(spawnCli(args, options.cwd ?? tempDir(), options.env ?? {}), args.join(' '), RUN_TIMEOUT_MS);
}

interface Serving {
  readonly child: ChildProcessWithoutNullStreams;
  readonly url: string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr(): string;
}

/** Starts `portcullis serve …` and resolves once its `portcullis listening` log line names the URL. */
async function startServe(args: readonly string[], cwd: string, env: Record<string, string> = {}): Promise<Serving> {
  const child = spawnCli(['serve', ...args], cwd, env);
  let stderr = '';
  const stdoutLines: string[] = [];
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`serve did not log "portcullis listening" within ${START_TIMEOUT_MS} ms; stdout: ${stdoutLines.join('\n')}; stderr: ${stderr}`));
    }, START_TIMEOUT_MS);
    createInterface({ input: child.stdout }).on('line', (line) => {
      stdoutLines.push(line);
      let record: { msg?: unknown; url?: unknown };
      try {
        record = JSON.parse(line) as { msg?: unknown; url?: unknown };
      } catch {
        return;
      }
      if (record.msg === 'portcullis listening' && typeof record.url === 'string') {
        clearTimeout(timer);
        resolve(record.url);
      }
    });
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`serve exited (${code ?? signal}) before listening; stderr: ${stderr}`));
    });
  });
  return { child, url, exited, stderr: () => stderr };
}


function stop(serving: Serving): void {
  if (serving.child.exitCode === null && serving.child.signalCode === null) serving.child.kill('SIGKILL');
}


/**
 * The contract for bad input: a non-zero exit and exactly one line on stderr
 * that names the problem; no stack frame, no source path, no secret.
 */
function assertOneLineError(result: RunResult, names: RegExp, secrets: readonly string[] = []): void {
  const context = `stdout: ${result.stdout}\nstderr: ${result.stderr}`;
  assert.notEqual(result.code, 0, `exits non-zero\n${context}`);
  assert.equal(result.signal, null, `exits by itself, not by a signal\n${context}`);
  const lines = result.stderr.replace(/\n$/, '').split('\n');
  assert.equal(lines.length, 1, `exactly one line on stderr, got ${lines.length}:\n${result.stderr}`);
  assert.match(lines[0]!, names);
  assert.doesNotMatch(result.stderr, /^\s+at /m, 'no stack trace');
  assert.doesNotMatch(result.stderr, /\.ts:\d/, 'no source path');
  for (const secret of secrets) {
    assert.ok(!result.stdout.includes(secret) && !result.stderr.includes(secret), `the secret "${secret}" appears in the output\n${context}`);
  }
}

describe('portcullis --help and --version', () => {
  it('--help lists the commands init, serve, migrate and config', async () => {
    const result = await runCli(['--help']);
    assert.equal(result.code, 0, result.stderr);
    for (const command of ['init', 'serve', 'migrate', 'config']) assert.match(result.stdout, new RegExp(`^\\s+${command}\\b`, 'm'), `lists ${command}`);
  });

  it("--version prints package.json's version", async () => {
    const result = await runCli(['--version']);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout.trim(), PACKAGE_VERSION);
  });

  const helpCases: [string[], string[]][] = [
    [['init'], ['--config', '--data-dir']],
    [['serve'], ['--config', '--port', '--host', '--no-migrate']],
    [['migrate'], ['--config']],
    [['config'], ['check']],
    [['config', 'check'], ['--config']],
  ];
  for (const [command, mentions] of helpCases) {
    it(`${command.join(' ')} --help exits 0 and describes ${mentions.join(', ')}`, async () => {
      const result = await runCli([...command, '--help']);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stderr, '');
      assert.match(result.stdout, new RegExp(`^Usage: portcullis ${command.join(' ')} `, 'm'));
      for (const mention of mentions) assert.ok(result.stdout.includes(mention), `mentions ${mention}:\n${result.stdout}`);
    });
  }
});

describe('bad input: non-zero exit, one line on stderr, no stack, no secret', () => {
  it('an unknown flag', async () => {
    assertOneLineError(await runCli(['--bogus']), /unknown option '--bogus'/);
  });

  it('a mistyped flag (close to a real one)', async () => {
    assertOneLineError(await runCli(['serve', '--prot', '0']), /unknown option '--prot'/);
  });

  it('an unknown command', async () => {
    assertOneLineError(await runCli(['frobnicate']), /unknown command 'frobnicate'/);
  });

  it('a mistyped command (close to a real one)', async () => {
    assertOneLineError(await runCli(['serv']), /unknown command 'serv'/);
  });

  it('a bad --port value', async () => {
    assertOneLineError(await runCli(['serve', '--port', 'abc']), /--port.*'abc'.*integer/);
    assertOneLineError(await runCli(['serve', '--port', '70000']), /--port.*'70000'/);
  });

  it('a bad environment value (PORTCULLIS_PORT=abc)', async () => {
    assertOneLineError(await runCli(['serve'], { env: { PORTCULLIS_PORT: 'abc' } }), /PORTCULLIS_PORT.*integer.*abc/);
  });

  it('an unknown environment variable (PORTCULLIS_DATABSE_URL)', async () => {
    const result = await runCli(['serve'], { env: { PORTCULLIS_DATABSE_URL: 'postgres://user:hunter2@127.0.0.1:1/x' } });
    assertOneLineError(result, /PORTCULLIS_DATABSE_URL.*unknown/, ['hunter2']);
  });

  it('a config file with an unknown key', async () => {
    const cwd = tempDir();
    writeFileSync(join(cwd, 'portcullis.json'), JSON.stringify({ prot: 9100 }));
    assertOneLineError(await runCli(['serve', '--config', 'portcullis.json'], { cwd }), /config file portcullis\.json.*"prot".*unknown key/);
  });

  it('a config file with a misspelt section names the file too', async () => {
    const cwd = tempDir();
    writeFileSync(join(cwd, 'portcullis.json'), JSON.stringify({ databse: { url: 'postgres://x' } }));
    assertOneLineError(await runCli(['serve', '--config', 'portcullis.json'], { cwd }), /config file portcullis\.json.*"databse".*unknown key/);
  });

  it('an unreachable database, without printing its password', async () => {
    const result = await runCli(['migrate'], { env: { PORTCULLIS_DATABASE_URL: 'postgres://user:hunter2@127.0.0.1:1/x' } });
    assertOneLineError(result, /cannot reach PostgreSQL at 127\.0\.0\.1:1/, ['hunter2']);
  });

  it('a malformed database URL, without echoing its password', async () => {
    const result = await runCli(['migrate'], { env: { PORTCULLIS_DATABASE_URL: 'mysql://user:hunter2@127.0.0.1/x' } });
    assertOneLineError(result, /PORTCULLIS_DATABASE_URL/, ['hunter2']);
  });

  it('a config file that is not valid JSON, without echoing the secret next to the mistake', async () => {
    const cwd = tempDir();
    // A forgotten pair of quotes around a secret value.
    writeFileSync(join(cwd, 'portcullis.json'), '{ "masterKey": hunter2hunter2hunter2hunter2hunter2hunter2h }\n');
    const result = await runCli(['config', 'check', '--config', 'portcullis.json'], { cwd });
    assertOneLineError(result, /portcullis\.json.*not valid JSON/, ['hunter2']);
  });
});

describe('portcullis init', () => {
  it('creates ./data (0700) and ./data/master.key (0600) holding a 256-bit base64url key, and a second init keeps it', async () => {
    const cwd = tempDir();
    const first = await runCli(['init'], { cwd });
    assert.equal(first.code, 0, first.stderr);
    const dataDir = join(cwd, 'data');
    const keyFile = join(dataDir, 'master.key');
    assert.equal(statSync(dataDir).mode & 0o777, 0o700, 'data directory mode');
    assert.equal(statSync(keyFile).mode & 0o777, 0o600, 'master key file mode');
    const key = readFileSync(keyFile, 'utf8').trim();
    assert.match(key, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(Buffer.from(key, 'base64url').length, 32);
    assert.ok(first.stdout.includes(keyFile), `names the key file:\n${first.stdout}`);

    const second = await runCli(['init'], { cwd });
    assert.equal(second.code, 0, second.stderr);
    assert.equal(readFileSync(keyFile, 'utf8').trim(), key, 'the key is left unchanged');
    assert.equal(statSync(keyFile).mode & 0o777, 0o600);
    assert.match(second.stdout, /already exists; left unchanged/);
  });

  it('tightens an existing ./data to 0700', async () => {
    const cwd = tempDir();
    mkdirSync(join(cwd, 'data'), { mode: 0o755 });
    const result = await runCli(['init'], { cwd });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(statSync(join(cwd, 'data')).mode & 0o777, 0o700);
  });
});

describe('portcullis migrate', () => {
  it('init creates the database with every migration; migrate then says the schema is current', async () => {
    const cwd = tempDir();
    const first = await runCli(['init'], { cwd });
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, new RegExp(`Database SQLite ${join(cwd, 'data', 'portcullis.db').replace(/[.]/g, '\\.')} is at schema version ${LATEST_VERSION}\\.`));

    const second = await runCli(['migrate'], { cwd });
    assert.equal(second.code, 0, second.stderr);
    assert.doesNotMatch(second.stdout, /applied/);
    assert.match(second.stdout, new RegExp(`Schema is current \\(version ${LATEST_VERSION}\\)`));
  });

  it('does the same on PostgreSQL', { skip: testDatabaseUrl === undefined ? 'PORTCULLIS_TEST_DATABASE_URL is not set' : false }, async () => {
    const { schema, drop } = await createTestSchema(testDatabaseUrl!);
    try {
      const env = { PORTCULLIS_DATABASE_URL: testDatabaseUrl!, PORTCULLIS_DATABASE_SCHEMA: schema };
      const cwd = tempDir();
      const first = await runCli(['migrate'], { cwd, env });
      assert.equal(first.code, 0, first.stderr);
      assert.match(first.stdout, /Migrating PostgreSQL/);
      for (const migration of migrations) assert.ok(first.stdout.includes(`applied ${migration.version} ${migration.name}`), first.stdout);
      const second = await runCli(['migrate'], { cwd, env });
      assert.equal(second.code, 0, second.stderr);
      assert.match(second.stdout, new RegExp(`Schema is current \\(version ${LATEST_VERSION}\\)`));
    } finally {
      await drop();
    }
  });
});

describe('portcullis config check', () => {
  it('prints the configuration as JSON with every secret masked', async () => {
    const masterKey = randomBytes(32).toString('base64url');
    const databasePassword = `db-${randomBytes(8).toString('hex')}`;
    const redisPasswords = [`redis-${randomBytes(8).toString('hex')}`, `redis-${randomBytes(8).toString('hex')}`];
    const result = await runCli(['config', 'check'], {
      env: {
        PORTCULLIS_MASTER_KEY: masterKey,
        PORTCULLIS_DATABASE_URL: `postgres://portcullis:${databasePassword}@db.internal:5432/portcullis`,
        PORTCULLIS_REDIS_CLUSTER: 'true',
        PORTCULLIS_REDIS_URL: `redis://:${redisPasswords[0]}@cache-a.internal:7000,redis://:${redisPasswords[1]}@cache-b.internal:7001`,
        PORTCULLIS_PORT: '9123',
      },
    });
    assert.equal(result.code, 0, result.stderr);
    const printed = JSON.parse(result.stdout) as {
      port: number;
      masterKey: string;
      database: { url: string };
      redis: { url: string };
    };
    assert.equal(printed.port, 9123, 'shows the effective values');
    assert.equal(printed.masterKey, '****');
    assert.equal(printed.database.url, 'postgres://portcullis:****@db.internal:5432/portcullis');
    assert.equal(printed.redis.url, 'redis://:****@cache-a.internal:7000,redis://:****@cache-b.internal:7001');
    for (const secret of [masterKey, databasePassword, ...redisPasswords]) {
      assert.ok(!result.stdout.includes(secret) && !result.stderr.includes(secret), `the secret ${secret} is printed`);
    }
  });
});

describe('portcullis serve', () => {
  it('--no-migrate on a fresh data directory refuses with one line telling to run `portcullis migrate`', async () => {
    const result = await runCli(['serve', '--no-migrate', '--port', '0']);
    assertOneLineError(result, /portcullis migrate/);
  });

  it('--no-migrate starts once `portcullis init` has made the database', async () => {
    const cwd = tempDir();
    const migrated = await runCli(['init'], { cwd });
    assert.equal(migrated.code, 0, migrated.stderr);
    const serving = await startServe(['--no-migrate', '--port', '0'], cwd);
    try {
      assert.equal((await fetch(`${serving.url}/healthz`)).status, 200);
      serving.child.kill('SIGTERM');
      assert.deepEqual(await within(serving.exited, RUN_TIMEOUT_MS, 'exit on SIGTERM'), { code: 0, signal: null });
    } finally {
      stop(serving);
    }
  });

  it('--port 0 listens on a free port, answers /healthz, and exits 0 on SIGTERM', async () => {
    const serving = await startServe(['--port', '0'], tempDir());
    try {
      const url = new URL(serving.url);
      assert.equal(url.hostname, '127.0.0.1', 'development mode binds loopback');
      assert.notEqual(url.port, '0');
      const response = await fetch(`${serving.url}/healthz`);
      assert.equal(response.status, 200);
      assert.deepEqual(await response.json(), { status: 'ok' });

      serving.child.kill('SIGTERM');
      assert.deepEqual(await within(serving.exited, RUN_TIMEOUT_MS, 'exit on SIGTERM'), { code: 0, signal: null });
      assert.equal(serving.stderr(), '', 'nothing on stderr');
    } finally {
      stop(serving);
    }
  });

  it('a second serve on the same port exits non-zero with one line naming the host and port in use (first-hour D14)', async () => {
    const port = String(await freePort());
    const first = await startServe(['--port', port], tempDir());
    try {
      const second = await runCli(['serve', '--port', port]);
      assertOneLineError(second, new RegExp(`^portcullis: 127\\.0\\.0\\.1:${port} is already in use: another server listens on that port`));
      assert.equal((await fetch(`${first.url}/healthz`)).status, 200, 'the first server is unaffected');
      first.child.kill('SIGTERM');
      assert.deepEqual(await within(first.exited, RUN_TIMEOUT_MS, 'exit on SIGTERM'), { code: 0, signal: null });
    } finally {
      stop(first);
    }
  });
});
