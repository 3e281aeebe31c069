/**
 * First-hour D8/D9: the systemd unit and the Dockerfile in the repository
 * run node directly on the same entry point the test suite starts
 * (`node --disable-warning=ExperimentalWarning bin/portcullis.js serve`), so
 * a supervisor's SIGTERM reaches the server. No container engine runs here:
 * these tests read both files, run `systemd-analyze verify` when it exists,
 * and start the Dockerfile's CMD and HEALTHCHECK on this machine.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BIN, collectRun, SERVER_NODE_FLAGS, spawnServe } from '../support/process.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const UNIT = readFileSync(join(ROOT, 'deploy', 'portcullis.service'), 'utf8');
const DOCKERFILE = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
/** What test/support/process.ts spawnServe runs after the node binary (package.json's start script), relative to the repository. */
const SUITE_ENTRY = [...SERVER_NODE_FLAGS, relative(ROOT, BIN), 'serve'];
/** V8's young generation, as every launcher sets it (README: "Memory"). */
const SEMI_SPACE_MB = 16;

const dirs: string[] = [];
after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** `Key=value` lines of a unit file (later lines win; a key may repeat, as Environment does). */
function unitValues(key: string): string[] {
  return UNIT.split('\n')
    .filter((line) => line.startsWith(`${key}=`))
    .map((line) => line.slice(key.length + 1).trim());
}

function unitValue(key: string): string {
  const values = unitValues(key);
  assert.ok(values.length > 0, `the unit sets ${key}`);
  return values.at(-1)!;
}

/** Dockerfile instructions with their continuation lines joined. */
function dockerInstructions(): { instruction: string; argument: string }[] {
  return DOCKERFILE.replace(/\\\n/g, ' ')
    .split('\n')
    .filter((line) => line.trim() !== '' && !line.trimStart().startsWith('#'))
    .map((line) => {
      const [instruction, ...rest] = line.trim().split(/\s+/);
      return { instruction: instruction!.toUpperCase(), argument: rest.join(' ') };
    });
}

function dockerArgument(instruction: string): string[] {
  return dockerInstructions()
    .filter((entry) => entry.instruction === instruction)
    .map((entry) => entry.argument);
}

describe('the node flags the server runs with', () => {
  it('fix the young generation: the same semi-space size as its lower and upper bound', () => {
    assert.ok(SERVER_NODE_FLAGS.includes(`--min-semi-space-size=${SEMI_SPACE_MB}`), SERVER_NODE_FLAGS.join(' '));
    assert.ok(SERVER_NODE_FLAGS.includes(`--max-semi-space-size=${SEMI_SPACE_MB}`), SERVER_NODE_FLAGS.join(' '));
  });

  it("bin/portcullis.js's shebang carries them, so `npx portcullis serve` runs as `npm start` does", () => {
    const shebang = readFileSync(BIN, 'utf8').split('\n')[0]!;
    assert.deepEqual(shebang.split(/\s+/), ['#!/usr/bin/env', '-S', 'node', ...SERVER_NODE_FLAGS]);
  });

  it('reach V8: the served process reports 16 MB semi-spaces from its start (in /metrics), where V8 alone starts at about 1 MB', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-node-flags-'));
    dirs.push(dir);
    const serving = await spawnServe(['--port', '0'], { cwd: ROOT, env: { PORTCULLIS_DATA_DIR: join(dir, 'data'), PORTCULLIS_HOST: '127.0.0.1' } });
    try {
      const metrics = await (await fetch(new URL('/metrics', serving.url))).text();
      const newSpace = (name: string) => Number(new RegExp(`^portcullis_nodejs_heap_space_size_${name}_bytes\\{space="new"\\} (\\d+)$`, 'm').exec(metrics)?.[1]);
      // used + available is the semi-space's capacity; V8 keeps a little of it back.
      const capacityMb = (newSpace('used') + newSpace('available')) / 2 ** 20;
      assert.ok(capacityMb > SEMI_SPACE_MB * 0.9 && capacityMb <= SEMI_SPACE_MB, `new space capacity ${capacityMb} MB`);
    } finally {
      assert.equal(await serving.stop(), 0);
    }
  });
});

describe('deploy/portcullis.service (systemd)', () => {
  it('ExecStart runs node directly on bin/portcullis.js serve, as the test suite does', () => {
    const [node, ...args] = unitValue('ExecStart').split(/\s+/);
    assert.match(node!, /^\/usr\/bin\/node$/, 'node itself, not npm or a shell');
    const installRoot = unitValue('WorkingDirectory');
    const entry = args.map((arg) => (arg.startsWith(`${installRoot}/`) ? arg.slice(installRoot.length + 1) : arg));
    assert.deepEqual(entry, SUITE_ENTRY);
    assert.ok(existsSync(join(ROOT, entry.at(-2)!)), `${entry.at(-2)} exists in the repository`);
  });

  it('runs as a dedicated user, in its own state directory, hardened, restarted on failure', () => {
    assert.equal(unitValue('User'), 'portcullis');
    assert.equal(unitValue('StateDirectory'), 'portcullis');
    assert.equal(unitValue('StateDirectoryMode'), '0700');
    assert.ok(unitValues('Environment').includes('PORTCULLIS_DATA_DIR=/var/lib/portcullis'), 'the data directory is the state directory');
    assert.ok(unitValues('Environment').includes('PORTCULLIS_MODE=production'));
    assert.equal(unitValue('NoNewPrivileges'), 'yes');
    assert.equal(unitValue('ProtectSystem'), 'strict');
    assert.equal(unitValue('ReadWritePaths'), '/var/lib/portcullis');
    assert.equal(unitValue('Restart'), 'on-failure');
    assert.equal(unitValue('CapabilityBoundingSet'), '', 'no capabilities');
  });

  it('TimeoutStopSec leaves the server its whole http.shutdownTimeoutMs', () => {
    const shutdownMs = Number(unitValues('Environment').find((value) => value.startsWith('PORTCULLIS_HTTP_SHUTDOWN_TIMEOUT_MS='))?.split('=')[1]);
    assert.ok(Number.isInteger(shutdownMs), 'the unit pins http.shutdownTimeoutMs');
    const stopSeconds = Number(/^(\d+)s?$/.exec(unitValue('TimeoutStopSec'))?.[1]);
    assert.ok(stopSeconds * 1000 > shutdownMs, `TimeoutStopSec ${stopSeconds}s must exceed ${shutdownMs} ms`);
    assert.equal(unitValue('KillSignal'), 'SIGTERM');
  });

  it('systemd-analyze verify accepts it', { skip: spawnSync('systemd-analyze', ['--version']).status !== 0 ? 'systemd-analyze is not installed' : false }, () => {
    const result = spawnSync('systemd-analyze', ['verify', join(ROOT, 'deploy', 'portcullis.service')], { encoding: 'utf8' });
    assert.equal(result.status, 0, result.stderr);
    assert.doesNotMatch(result.stderr, /portcullis\.service.*(Unknown|invalid|Failed)/i, result.stderr);
  });
});

describe('Dockerfile', () => {
  it('is multi-stage on the Debian slim Node 26 image, installs production dependencies only, runs as a non-root user', () => {
    const from = dockerArgument('FROM');
    assert.ok(from.length >= 2, 'multi-stage');
    for (const image of from) assert.match(image, /^node:26-trixie-slim\b/);
    assert.ok(dockerArgument('RUN').some((run) => /npm ci --omit=dev/.test(run)));
    const user = dockerArgument('USER').at(-1);
    assert.ok(user !== undefined && user !== 'root' && user !== '0', 'not root');
    assert.deepEqual(dockerArgument('EXPOSE'), ['9000']);
    assert.deepEqual(dockerArgument('VOLUME'), ['["/var/lib/portcullis"]']);
    for (const copied of dockerArgument('COPY').filter((argument) => !argument.startsWith('--from'))) {
      for (const source of copied.split(/\s+/).slice(0, -1)) assert.ok(existsSync(join(ROOT, source)), `COPY ${source} exists in the repository`);
    }
  });

  it("the package's engines accept the image's Node (the pinned dev Node is not installed there)", () => {
    const engines = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { engines: { node: string } }).engines.node;
    const minimum = /^>=(\d+)(\.\d+)*$/.exec(engines);
    assert.ok(minimum, `engines.node is a lower bound: ${engines}`);
    const imageMajor = Number(/^node:(\d+)-/.exec(dockerArgument('FROM').at(-1)!)![1]);
    assert.ok(Number(minimum[1]) <= imageMajor, `engines ${engines} accept the image's Node ${imageMajor}`);
  });

  it('CMD is exec form running node directly on the suite entry point; started here, it serves, HEALTHCHECK passes, SIGTERM stops it', async () => {
    const cmd = JSON.parse(dockerArgument('CMD').at(-1)!) as string[];
    assert.equal(cmd[0], 'node', 'node itself, not npm or a shell');
    assert.deepEqual(cmd.slice(1), SUITE_ENTRY);
    const healthcheck = dockerArgument('HEALTHCHECK').at(-1)!;
    assert.match(healthcheck, /\/healthz/);
    const probe = JSON.parse(healthcheck.slice(healthcheck.indexOf('CMD ') + 4)) as string[];
    assert.equal(probe[0], 'node');

    // What the container does, on this machine: the image's ENV, production mode behind a proxy.
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-docker-cmd-'));
    dirs.push(dir);
    const env = { PORTCULLIS_MODE: 'production', PORTCULLIS_DATA_DIR: join(dir, 'data'), PORTCULLIS_ISSUER: 'https://id.example.test', PORTCULLIS_TRUST_PROXY: '127.0.0.1', PORTCULLIS_HOST: '127.0.0.1' };
    const serving = await spawnServe(['--port', '0'], { cwd: ROOT, env });
    try {
      const port = new URL(serving.url).port;
      const check = await collectRun(spawn(process.execPath, probe.slice(1), { env: { PATH: process.env['PATH'] ?? '', PORTCULLIS_PORT: port } }), 'HEALTHCHECK', 30_000);
      assert.equal(check.code, 0, `HEALTHCHECK passes: ${check.stderr}`);
    } finally {
      assert.equal(await serving.stop(), 0, 'SIGTERM: a clean stop');
    }
    const failing = await collectRun(spawn(process.execPath, probe.slice(1), { env: { PATH: process.env['PATH'] ?? '', PORTCULLIS_PORT: new URL(serving.url).port } }), 'HEALTHCHECK', 30_000);
    assert.equal(failing.code, 1, 'HEALTHCHECK fails once the server is gone');
  });
});
