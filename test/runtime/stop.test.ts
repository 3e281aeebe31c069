/**
 * Stopping a real instance (issue 11 section 3): the services stop in
 * reverse order, and a listener kept open by a request that never ends is
 * abandoned at its timeout (http.shutdownTimeoutMs) while everything below
 * it (OAuth, keyring, ledger, stores) still stops.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { request, type ClientRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyPluginAsync } from 'fastify';
import { loadConfig } from '../../src/config/index.ts';
import { RuntimeStopError, type ServiceStopError } from '../../src/runtime/index.ts';
import { startPortcullis } from '../../src/server/index.ts';
import { CapturedLogs } from '../support/server.ts';

const dirs: string[] = [];
after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function dataDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-stop-'));
  dirs.push(dir);
  return dir;
}

describe('stopping a running instance', () => {
  it('stops every service once and closes the stores; stop() again is the same stop', async () => {
    const dir = dataDir();
    const logs = new CapturedLogs();
    const running = await startPortcullis(loadConfig({ env: {}, overrides: { dataDir: dir, port: 0 } }), { logDestination: logs.stream });
    assert.equal(existsSync(join(dir, 'portcullis.db-wal')), true);
    const stopping = running.stop();
    assert.equal(running.stop(), stopping);
    await stopping;
    assert.equal(running.listener.app.server.listening, false);
    assert.equal(existsSync(join(dir, 'portcullis.db-wal')), false, 'the SQLite connections are closed');
    assert.doesNotMatch(logs.text, /did not stop/);
  });

  it('a request that never ends holds the listener only until the shutdown timeout; the services below it still stop', async () => {
    const dir = dataDir();
    const logs = new CapturedLogs();
    let arrived!: () => void;
    const arrival = new Promise<void>((resolve) => (arrived = resolve));
    const stuck: FastifyPluginAsync = async (app) => {
      app.get('/stuck', async () => {
        arrived();
        await new Promise<never>(() => {});
      });
    };
    const shutdownTimeoutMs = 200;
    const running = await startPortcullis(loadConfig({ env: {}, overrides: { dataDir: dir, port: 0, http: { shutdownTimeoutMs } } }), { logDestination: logs.stream, plugins: [stuck] });
    let outgoing: ClientRequest | undefined;
    try {
      outgoing = request(`${running.url}/stuck`, { agent: false });
      outgoing.on('error', () => {
        // destroyed below
      });
      outgoing.end();
      await arrival;

      const before = performance.now();
      await assert.rejects(running.stop(), (error) => {
        assert.ok(error instanceof RuntimeStopError);
        assert.deepEqual(error.errors.map((each: ServiceStopError) => each.service), ['listener']);
        return true;
      });
      const elapsed = performance.now() - before;
      assert.ok(elapsed >= shutdownTimeoutMs - 5, `gave the request the shutdown timeout: ${elapsed} ms`);
      assert.equal(existsSync(join(dir, 'portcullis.db-wal')), false, 'the stores were still closed');
      const record = logs.records().find((line) => line['msg'] === `listener did not stop within ${shutdownTimeoutMs} ms; abandoned`);
      assert.equal(record?.['level'], 'error', 'the abandoned stop is logged');
      assert.equal(record?.['service'], 'listener');
    } finally {
      outgoing?.destroy();
    }
  });
});
