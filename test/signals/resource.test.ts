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

  it('an instance that finds the scope claimed for the resource by another one still writing it waits for it, rather than fail its start', async () => {
    const { resources } = server.running.authorizationServer;
    const uri = `${server.url}/signals`;
    await ensureSignalsResource(resources, server.url);
    assert.equal(await resources.delete(uri, { actor: 'test' }), true);
    const records = server.running.stores.durable.records;
    // A claims the scope, then is held before it writes the resource record ...
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    let claimed!: () => void;
    const scopeClaimed = new Promise<void>((resolve) => (claimed = resolve));
    const slowRecords = new Proxy(records, {
      get: (target, name, receiver) =>
        name === 'create'
          ? async (collection: string, ...rest: [string, unknown]) => {
              if (collection === 'oauth_resources') {
                claimed();
                await released;
              }
              return target.create(collection, ...rest);
            }
          : (Reflect.get(target, name, receiver) as unknown),
    });
    const a = new ResourceRegistry({ records: slowRecords, events: server.running.events, clock: Date.now, cacheMs: 0 });
    const making = ensureSignalsResource(a, server.url);
    await scopeClaimed;
    // ... B finds the scope claimed for the same URI and no resource yet; A is let go once B is waiting for it.
    const b = new ResourceRegistry({ records, events: server.running.events, clock: Date.now, cacheMs: 0 });
    let reads = 0;
    const waiting = new Proxy(b, {
      get: (target, name) => {
        const value = Reflect.get(target, name, target) as unknown;
        if (name !== 'get') return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
        return async (uri: string) => {
          reads += 1;
          // B's first read finds nothing, its create fails on the claim, and its next reads wait for A.
          if (reads === 3) release();
          return target.get(uri);
        };
      },
    });
    await Promise.all([making, ensureSignalsResource(waiting, server.url)]);
    assert.ok(reads >= 3, 'B waited');
    assert.equal((await resources.get(uri))?.uri, uri);
    assert.equal(await resources.ownerOf('ssf:stream'), uri);
  });
});
