/**
 * Graceful shutdown of a real process (lifecycle.ts exitGracefullyOnSignals):
 * on a real SIGTERM, requests already in flight finish with their answers,
 * new connections are turned away, and the process exits 0; a request that
 * never finishes cannot keep it alive past the shutdown timeout (exit 1).
 * The server is test/fixtures/slow-server.ts, a child process.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { within } from '../support/process.ts';

const FIXTURE = fileURLToPath(new URL('../fixtures/slow-server.ts', import.meta.url));
const START_TIMEOUT_MS = 20_000;
const STEP_TIMEOUT_MS = 10_000;

type Record_ = { [key: string]: unknown };

interface Fixture {
  readonly child: ChildProcessWithoutNullStreams;
  readonly url: string;
  /** Resolves with the exit code once the child has exited. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr(): string;
  /** Waits, at most `timeoutMs`, for a stdout JSON line matching `predicate`. */
  waitFor(predicate: (record: Record_) => boolean, what: string, timeoutMs?: number): Promise<Record_>;
}

const children: ChildProcessWithoutNullStreams[] = [];
const dirs: string[] = [];

after(() => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

async function startFixture(shutdownTimeoutMs?: number): Promise<Fixture> {
  const dataDir = mkdtempSync(join(tmpdir(), 'portcullis-shutdown-'));
  dirs.push(dataDir);
  const args = ['--disable-warning=ExperimentalWarning', FIXTURE, dataDir, ...(shutdownTimeoutMs === undefined ? [] : [String(shutdownTimeoutMs)])];
  const child = spawn(process.execPath, args, { cwd: dataDir, env: { PATH: process.env['PATH'] ?? '', HOME: dataDir } });
  children.push(child);

  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );

  const records: Record_[] = [];
  const listeners = new Set<() => void>();
  createInterface({ input: child.stdout }).on('line', (line) => {
    try {
      records.push(JSON.parse(line) as Record_);
    } catch {
      records.push({ unparsed: line });
    }
    for (const listener of listeners) listener();
  });

  const waitFor = (predicate: (record: Record_) => boolean, what: string, timeoutMs = STEP_TIMEOUT_MS) =>
    new Promise<Record_>((resolve, reject) => {
      const check = () => {
        const found = records.find(predicate);
        if (found !== undefined) finish(() => resolve(found));
      };
      const timer = setTimeout(() => finish(() => reject(new Error(`no ${what} within ${timeoutMs} ms; stdout: ${JSON.stringify(records)}; stderr: ${stderr}`))), timeoutMs);
      const finish = (settle: () => void) => {
        clearTimeout(timer);
        listeners.delete(check);
        settle();
      };
      listeners.add(check);
      void exited.then(({ code, signal }) => {
        check();
        finish(() => reject(new Error(`the fixture exited (${code ?? signal}) before ${what}; stderr: ${stderr}`)));
      });
      check();
    });

  const { url } = (await waitFor((record) => typeof record['url'] === 'string', 'listening line', START_TIMEOUT_MS)) as { url: string };
  return { child, url, exited, stderr: () => stderr, waitFor };
}

/** One GET on a connection of its own (no keep-alive agent). */
function get(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const outgoing = request(url, { agent: false }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
      response.on('error', reject);
    });
    outgoing.on('error', reject);
    outgoing.end();
  });
}


describe('graceful shutdown on SIGTERM', () => {
  it('finishes all 20 requests in flight when SIGTERM arrives, refuses new connections meanwhile, and exits 0', async () => {
    const server = await startFixture();
    try {
      const count = 20;
      const responses = Promise.allSettled(Array.from({ length: count }, (_, i) => get(`${server.url}/slow?i=${i}`)));
      await server.waitFor((record) => record['inflight'] === count, `${count} requests in flight`);

      server.child.kill('SIGTERM');
      await server.waitFor((record) => record['closing'] === true, 'shutdown to begin');
      const accepting = await server.waitFor((record) => 'accepting' in record, 'the listener to close');
      assert.equal(accepting['accepting'], false, 'the listener closes while requests are still in flight');

      // The 20 requests are still held (the fixture has not been released),
      // so the process is alive: a refusal here is the server's doing.
      const probe = await get(`${server.url}/healthz`).then(
        (response) => response.status,
        (error: NodeJS.ErrnoException) => error.code,
      );
      assert.ok(probe === 'ECONNREFUSED' || probe === 503, `a new connection during shutdown is refused or gets 503, got ${String(probe)}`);

      server.child.stdin.write('release\n');
      const settled = await within(responses, STEP_TIMEOUT_MS, 'the in-flight responses');
      assert.deepEqual(
        settled.map((outcome) => (outcome.status === 'fulfilled' ? { status: outcome.value.status, body: JSON.parse(outcome.value.body) as unknown } : { error: String(outcome.reason) })),
        Array.from({ length: count }, (_, i) => ({ status: 200, body: { done: i } })),
        'every in-flight request got its own complete answer',
      );

      const exit = await within(server.exited, STEP_TIMEOUT_MS, 'exit after the last response');
      assert.deepEqual(exit, { code: 0, signal: null }, `exit code; stderr: ${server.stderr()}`);
    } finally {
      if (server.child.exitCode === null && server.child.signalCode === null) server.child.kill('SIGKILL');
    }
  });

  it('exits 1 once the shutdown timeout has passed when a request never finishes', async () => {
    const shutdownTimeoutMs = 500;
    const server = await startFixture(shutdownTimeoutMs);
    try {
      const stuck = get(`${server.url}/stuck`).then(
        (response) => `answered ${response.status}`,
        (error: NodeJS.ErrnoException) => `failed ${error.code ?? error.message}`,
      );
      await server.waitFor((record) => record['inflight'] === 1, 'the stuck request to arrive');

      const signalledAt = performance.now();
      server.child.kill('SIGTERM');
      const exit = await within(server.exited, STEP_TIMEOUT_MS, 'exit after the shutdown timeout');
      const elapsedMs = performance.now() - signalledAt;

      assert.deepEqual(exit, { code: 1, signal: null }, `exit code; stderr: ${server.stderr()}`);
      // It waited for the request (timer granularity aside) and then gave up.
      assert.ok(elapsedMs >= shutdownTimeoutMs - 10, `exited after ${Math.round(elapsedMs)} ms, before the ${shutdownTimeoutMs} ms timeout`);
      assert.match(server.stderr(), /shutdown timed out/);
      assert.match(await stuck, /^failed /, 'the stuck request never got an answer');
    } finally {
      if (server.child.exitCode === null && server.child.signalCode === null) server.child.kill('SIGKILL');
    }
  });
});
