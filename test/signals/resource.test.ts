/**
 * The transmitter's own resource (`<issuer>/signals`, scope `ssf:stream`):
 * made once, by any instance, and moved when the issuer changes, so a
 * restart under a new issuer does not fail on the scope's old owner.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ResourceRegistry } from '../../src/oauth/index.ts';
import { ensureSignalsResource } from '../../src/runtime/index.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

describe('the signals resource', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ fixedPort: true });
  });
  after(async () => {
    await server.close();
  });

  it('exists after start, survives concurrent ensures, and follows an issuer change', async () => {
    const { resources } = server.running.authorizationServer;
    assert.equal(await resources.ownerOf('ssf:stream'), `${server.url}/signals`);
    await Promise.all([1, 2, 3].map(() => ensureSignalsResource(resources, server.url)));
    assert.equal(await resources.ownerOf('ssf:stream'), `${server.url}/signals`);
    await ensureSignalsResource(resources, 'https://id.example.com');
    assert.equal(await resources.ownerOf('ssf:stream'), 'https://id.example.com/signals');
    assert.equal(await resources.get(`${server.url}/signals`), null);
  });
  it('survives instances making it at the same moment (two servers starting on one fresh database)', async () => {
    const { resources } = server.running.authorizationServer;
    const uri = `${server.url}/signals`;
    await ensureSignalsResource(resources, server.url);
    assert.equal(await resources.delete(uri, { actor: 'test' }), true);
    // Five instances, each with its own cached registry that has just read "no such resource".
    const instances = Array.from({ length: 5 }, () => new ResourceRegistry({ records: server.running.stores.durable.records, events: server.running.events, clock: Date.now, cacheMs: 60_000 }));
    for (const registry of instances) assert.equal(await registry.get(uri), null);
    await Promise.all(instances.map((registry) => ensureSignalsResource(registry, server.url)));
    assert.equal(await resources.ownerOf('ssf:stream'), uri);
  });
});
