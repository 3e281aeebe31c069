/**
 * Domain events on the embedded default (SQLite, in-process bus): an event
 * reaches the caches of this process as it is emitted, each reactor once,
 * and the ledger has recorded it before the action returns. The bus reaches
 * no other process (a CLI command writing to the same file), so the caches
 * keep their short poll here.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { decodeEntry } from '../../src/audit/index.ts';
import { validateClientMetadata } from '../../src/oauth/index.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

const PASSWORD = 'correct horse battery staple 42';

describe('domain events on the embedded default', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer();
  });
  after(async () => {
    await server.close();
  });

  it('the bus is in-process, so caches keep polling for changes made by other processes', () => {
    assert.equal(server.running.stores.bus.driver, 'memory');
    assert.equal(server.running.stores.bus.reach, 'process');
    assert.equal(server.running.events.deploymentWide, false);
  });

  it('a user disabled here has their cached access token refused at once, the change told once and recorded before the answer', async () => {
    const { identity, authorizationServer, events, ledger } = server.running;
    const user = await identity.accounts.createUser('events-embedded@example.com', PASSWORD, { actor: 'test' });
    const metadata = validateClientMetadata({ redirect_uris: ['https://app.example.com/cb'] }, { allowedScopes: ['openid'], defaultSigningAlgorithm: 'EdDSA' });
    const registered = await authorizationServer.clients.register(metadata, { actor: 'test' }, { approved: true });
    const issued = await authorizationServer.accessTokens.issue({ clientId: registered.client.client_id, subject: user.id, grant: { type: 'authorization_code', userId: user.id }, scope: 'openid', audience: authorizationServer.issuer });
    // Checked once: the user's status ("active") is now cached.
    assert.notEqual(await authorizationServer.accessTokens.check(issued.token), null);

    const told: string[] = [];
    const off = events.on(['user.disabled', 'user.updated'], (event) => void told.push(`${event.type}:${event.actorUserId === user.id}`));
    try {
      const sizeBefore = await ledger.size();
      await identity.accounts.setDisabled(user.id, true, { actor: 'test' });
      // Durable before the action returned: no flush needed.
      const entries = (await ledger.entries(sizeBefore, await ledger.size())).map((row) => decodeEntry(row.entry));
      assert.deepEqual(entries.map((entry) => entry.type), ['user.disabled']);
      assert.equal(await authorizationServer.accessTokens.check(issued.token), null, 'refused at once, not after the cache expired');
      assert.deepEqual(told, ['user.disabled:true'], 'told once');
    } finally {
      off();
    }
  });
});
