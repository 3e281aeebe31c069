/**
 * The transmitter's own resource (`<issuer>/signals`, scope `ssf:stream`):
 * made once, by any instance, and moved when the issuer changes, so a
 * restart under a new issuer does not fail on the scope's old owner.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
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
});
