/**
 * The client registry on every durable driver: secrets made by the server,
 * shown once and stored only as their HMAC; constant-time verification;
 * registration access tokens; updates as one compare-and-set (a race of 20
 * from one version has exactly one winner, also across two connections);
 * secret rotation; deletion; and an audit entry for every change that names
 * no secret.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { auditedEvents, decodeEntry, openLedger, type Ledger } from '../../src/audit/index.ts';
import { validateClientMetadata, type ClientMetadata } from '../../src/oauth/client-metadata.ts';
import { ClientRegistry, ClientRegistryError, type OAuthClient } from '../../src/oauth/clients.ts';
import type { DurableStore } from '../../src/store/index.ts';
import { KeyVault } from '../../src/crypto/index.ts';
import { ManualClock } from '../support/clock.ts';
import { durableDrivers, type DurableFixture } from '../store/drivers.ts';

const vault = KeyVault.generate();
const secretKey = vault.derive('client-secrets');
const allowedScopes = ['openid', 'profile', 'email', 'offline_access', 'orders:read'];
const metadata = (input: Record<string, unknown>): ClientMetadata => validateClientMetadata(input, { allowedScopes, defaultSigningAlgorithm: 'EdDSA' });

const WEB = metadata({ client_name: 'Orders', redirect_uris: ['https://app.example.com/cb'], grant_types: ['authorization_code', 'refresh_token'], scope: 'openid orders:read' });
const PUBLIC = metadata({ redirect_uris: ['http://127.0.0.1:8080/cb'], token_endpoint_auth_method: 'none' });
const CONTEXT = { actor: 'test-suite', requestId: 'req-1' };
const BASE64URL_256_BITS = /^[A-Za-z0-9_-]{43}$/;

async function ledgerOn(store: DurableStore, clock: ManualClock): Promise<Ledger> {
  return openLedger({
    log: store.auditLog,
    records: store.records,
    vault,
    issuer: 'https://id.example.com',
    clock: clock.now,
    audit: { ipAddresses: 'truncate', witnesses: [], maxPendingEntries: 10_000 },
  });
}

async function entriesOf(store: DurableStore) {
  const size = await store.auditLog.size();
  const rows = [];
  for (let start = 0; start < size; start += 1000) rows.push(...(await store.auditLog.entries(start, Math.min(size, start + 1000))));
  return rows.map((row) => ({ text: new TextDecoder().decode(row.entry), entry: decodeEntry(row.entry) }));
}

for (const driver of durableDrivers) {
  describe(`client registry on ${driver.name}`, () => {
    let fixture: DurableFixture;
    let ledgers: Ledger[];
    let registry: ClientRegistry;
    /** A second registry on its own connection, as another instance would hold. */
    let peer: ClientRegistry;
    const clock = new ManualClock(Date.UTC(2026, 4, 1, 12, 0, 0));
    /** Every secret and token handed out, to prove none reaches the audit log. */
    const issued: string[] = [];

    before(async () => {
      fixture = await driver.open(2);
      ledgers = [await ledgerOn(fixture.stores[0]!, clock), await ledgerOn(fixture.stores[1]!, clock)];
      registry = new ClientRegistry({ records: fixture.stores[0]!.records, secretKey, events: auditedEvents(ledgers[0]!), clock: clock.now });
      peer = new ClientRegistry({ records: fixture.stores[1]!.records, secretKey, events: auditedEvents(ledgers[1]!), clock: clock.now });
    });
    after(async () => {
      for (const ledger of ledgers) await ledger.close();
      await fixture.close();
    });

    it('registers a confidential client: a 256-bit secret shown once, only its HMAC stored', async () => {
      const { client, clientSecret, registrationAccessToken } = await registry.register(WEB, CONTEXT);
      assert.match(client.client_id, /^c_[A-Za-z0-9_-]{22}$/);
      assert.match(clientSecret!, BASE64URL_256_BITS);
      issued.push(clientSecret!);
      assert.equal(registrationAccessToken, undefined);
      assert.equal(client.client_id_issued_at, Math.floor(clock.now() / 1000));
      assert.equal(client.client_name, 'Orders');
      assert.deepEqual(client.grant_types, ['authorization_code', 'refresh_token']);

      const stored = await fixture.store.records.get<Record<string, unknown>>('oauth_clients', client.client_id);
      const storedText = JSON.stringify(stored);
      assert.ok(!storedText.includes(clientSecret!), 'the secret itself is not stored');
      assert.ok(!storedText.includes(Buffer.from(clientSecret!, 'base64url').toString('hex')), 'nor its raw bytes');
      assert.equal(stored!.data['secretHash'], createHmac('sha256', secretKey).update(clientSecret!).digest('hex'));

      const read = await registry.get(client.client_id);
      assert.deepEqual(read, client);
      assert.ok(!JSON.stringify(read).includes(clientSecret!), 'get never returns the secret');
    });

    it('verifySecret: true for the secret, false for anything else', async () => {
      const { client, clientSecret } = await registry.register(WEB, CONTEXT);
      issued.push(clientSecret!);
      assert.equal(registry.verifySecret(client, clientSecret!), true);
      assert.equal(peer.verifySecret((await peer.get(client.client_id))!, clientSecret!), true, 'another instance with the same master key verifies it');
      const flipped = `${clientSecret!.slice(0, -1)}${clientSecret!.endsWith('A') ? 'B' : 'A'}`;
      for (const wrong of [flipped, '', `${clientSecret!}x`, clientSecret!.slice(0, 42), clientSecret!.toUpperCase(), 'x'.repeat(5000)]) {
        assert.equal(registry.verifySecret(client, wrong), false, JSON.stringify(wrong.slice(0, 50)));
      }
      const other = new ClientRegistry({ records: fixture.store.records, secretKey: KeyVault.generate().derive('client-secrets'), events: auditedEvents(ledgers[0]!), clock: clock.now });
      assert.equal(other.verifySecret(client, clientSecret!), false, 'a different master key does not verify it');
      const { client: publicClient } = await registry.register(PUBLIC, CONTEXT);
      assert.equal(registry.verifySecret(publicClient, clientSecret!), false, 'a public client has no secret to match');
    });

    it('public and private_key_jwt clients get no secret', async () => {
      const publicClient = await registry.register(PUBLIC, CONTEXT);
      assert.equal(publicClient.clientSecret, undefined);
      assert.equal(publicClient.client.secretHash, undefined);
      assert.deepEqual(publicClient.client.response_types, ['code']);

      const { generateKeyPairSync } = await import('node:crypto');
      const jwk = generateKeyPairSync('ed25519').publicKey.export({ format: 'jwk' });
      const jwtClient = await registry.register(metadata({ grant_types: ['client_credentials'], token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [jwk] } }), CONTEXT);
      assert.equal(jwtClient.clientSecret, undefined);
      assert.equal(jwtClient.client.secretHash, undefined);
      assert.deepEqual(jwtClient.client.jwks, { keys: [jwk] });
    });

    it('issues a registration access token when asked (RFC 7592), stored hashed, not interchangeable with the secret', async () => {
      const { client, clientSecret, registrationAccessToken } = await registry.register(WEB, CONTEXT, { withRegistrationToken: true });
      issued.push(clientSecret!, registrationAccessToken!);
      assert.match(registrationAccessToken!, BASE64URL_256_BITS);
      assert.notEqual(registrationAccessToken, clientSecret);
      const storedText = JSON.stringify(await fixture.store.records.get('oauth_clients', client.client_id));
      assert.ok(!storedText.includes(registrationAccessToken!));
      assert.equal(registry.verifyRegistrationToken(client, registrationAccessToken!), true);
      assert.equal(registry.verifyRegistrationToken(client, clientSecret!), false);
      assert.equal(registry.verifySecret(client, registrationAccessToken!), false);
      const { client: without } = await registry.register(WEB, CONTEXT);
      assert.equal(registry.verifyRegistrationToken(without, registrationAccessToken!), false);
    });

    it('stores only the metadata fields, whatever object it is handed', async () => {
      const sneaky = { ...WEB, logo_uri: 'https://evil.example/x.png', secretHash: 'chosen', client_id: 'chosen', version: 99 } as unknown as ClientMetadata;
      const { client, clientSecret } = await registry.register(sneaky, CONTEXT);
      issued.push(clientSecret!);
      assert.notEqual(client.client_id, 'chosen');
      assert.equal(client.version, 1);
      const stored = await fixture.store.records.get<Record<string, unknown>>('oauth_clients', client.client_id);
      assert.equal(stored!.data['logo_uri'], undefined);
      assert.notEqual(stored!.data['secretHash'], 'chosen');
      assert.equal(registry.verifySecret(client, clientSecret!), true);
    });

    it('lists clients in id order with keyset pagination', async () => {
      const all = await registry.list();
      assert.ok(all.length >= 5);
      assert.deepEqual(all.map((c) => c.client_id), all.map((c) => c.client_id).sort());
      const firstTwo = await registry.list({ limit: 2 });
      const next = await registry.list({ after: firstTwo[1]!.client_id, limit: 2 });
      assert.deepEqual([...firstTwo, ...next].map((c) => c.client_id), all.slice(0, 4).map((c) => c.client_id));
      assert.equal(await registry.get('c_nonexistent'), null);
      assert.equal(await registry.get(''), null);
      assert.equal(await registry.get('x'.repeat(10_000)), null);
    });

    it('update replaces the metadata and keeps id, issue time, secret and registration token', async () => {
      const { client, clientSecret, registrationAccessToken } = await registry.register(WEB, CONTEXT, { withRegistrationToken: true });
      issued.push(clientSecret!, registrationAccessToken!);
      clock.advance(60_000);
      const changed = metadata({ client_name: 'Orders v2', redirect_uris: ['https://app.example.com/cb2'], token_endpoint_auth_method: 'client_secret_post' });
      const { client: updated, clientSecret: newSecret } = await registry.update(client.client_id, changed, CONTEXT);
      assert.equal(newSecret, undefined, 'moving between secret methods keeps the secret');
      assert.equal(updated.client_id, client.client_id);
      assert.equal(updated.client_id_issued_at, client.client_id_issued_at);
      assert.equal(updated.version, client.version + 1);
      assert.equal(updated.client_name, 'Orders v2');
      assert.deepEqual(updated.redirect_uris, ['https://app.example.com/cb2']);
      assert.deepEqual(updated.grant_types, ['authorization_code']);
      assert.equal(registry.verifySecret(updated, clientSecret!), true);
      assert.equal(registry.verifyRegistrationToken(updated, registrationAccessToken!), true);
      assert.deepEqual(await registry.get(client.client_id), updated);
    });

    it('update to and from a public client drops the secret, then issues a new one', async () => {
      const { client, clientSecret } = await registry.register(WEB, CONTEXT);
      issued.push(clientSecret!);
      const { client: publicNow, clientSecret: none } = await registry.update(client.client_id, PUBLIC, CONTEXT);
      assert.equal(none, undefined);
      assert.equal(publicNow.secretHash, undefined);
      assert.equal(registry.verifySecret(publicNow, clientSecret!), false);
      const stored = await fixture.store.records.get<Record<string, unknown>>('oauth_clients', client.client_id);
      assert.equal(Object.hasOwn(stored!.data as object, 'secretHash'), false);

      const { client: confidential, clientSecret: fresh } = await registry.update(client.client_id, WEB, CONTEXT);
      assert.match(fresh!, BASE64URL_256_BITS);
      issued.push(fresh!);
      assert.notEqual(fresh, clientSecret);
      assert.equal(registry.verifySecret(confidential, fresh!), true);
      assert.equal(registry.verifySecret(confidential, clientSecret!), false, 'the old secret does not come back');
    });

    it('update of an unknown client is not_found; with a stale expectedVersion it is a conflict', async () => {
      await assert.rejects(registry.update('c_missing', WEB, CONTEXT), (error: unknown) => error instanceof ClientRegistryError && error.code === 'not_found');
      const { client, clientSecret } = await registry.register(WEB, CONTEXT);
      issued.push(clientSecret!);
      await registry.update(client.client_id, WEB, CONTEXT, { expectedVersion: client.version });
      await assert.rejects(registry.update(client.client_id, PUBLIC, CONTEXT, { expectedVersion: client.version }), (error: unknown) => {
        assert.ok(error instanceof ClientRegistryError);
        assert.equal(error.code, 'conflict');
        assert.match(error.message, /changed concurrently; read it again and retry/);
        return true;
      });
      assert.equal((await registry.get(client.client_id))!.token_endpoint_auth_method, 'client_secret_basic', 'the stale update changed nothing');
    });

    it('20 concurrent updates from one version, over two connections: exactly one wins, the others get a conflict', async () => {
      const { client, clientSecret } = await registry.register(WEB, CONTEXT);
      issued.push(clientSecret!);
      const results = await Promise.allSettled(
        Array.from({ length: 20 }, (_, i) =>
          (i % 2 === 0 ? registry : peer).update(client.client_id, metadata({ client_name: `racer ${i}`, redirect_uris: ['https://app.example.com/cb'] }), { actor: `racer-${i}` }, { expectedVersion: client.version }),
        ),
      );
      const winners = results.filter((result) => result.status === 'fulfilled');
      const losers = results.filter((result) => result.status === 'rejected');
      assert.equal(winners.length, 1);
      assert.equal(losers.length, 19);
      for (const loser of losers) assert.ok(loser.reason instanceof ClientRegistryError && loser.reason.code === 'conflict', String(loser.reason));
      const final = (await registry.get(client.client_id))!;
      assert.equal(final.version, client.version + 1);
      assert.equal(final.client_name, (winners[0] as PromiseFulfilledResult<{ client: OAuthClient }>).value.client.client_name);
      const updates = (await entriesOf(fixture.store)).filter(({ entry }) => entry.type === 'client.updated' && entry.client === client.client_id);
      assert.equal(updates.length, 1, 'only the winner is audited');
    });

    it('20 concurrent updates without an expected version: each winner wrote over the version it read, the rest get a conflict', async () => {
      const { client, clientSecret } = await registry.register(WEB, CONTEXT);
      issued.push(clientSecret!);
      const results = await Promise.allSettled(
        Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? registry : peer).update(client.client_id, metadata({ client_name: `racer ${i}`, redirect_uris: ['https://app.example.com/cb'] }), CONTEXT)),
      );
      const winners = results.filter((result) => result.status === 'fulfilled') as PromiseFulfilledResult<{ client: OAuthClient }>[];
      assert.ok(winners.length >= 1);
      // A caller that read after another's write updates that newer version
      // (there was no race for it); what never happens is two writes over one version.
      assert.deepEqual(winners.map((winner) => winner.value.client.version).sort((a, b) => a - b), Array.from({ length: winners.length }, (_, i) => client.version + 1 + i));
      assert.equal((await registry.get(client.client_id))!.version, client.version + winners.length);
      for (const result of results) if (result.status === 'rejected') assert.ok(result.reason instanceof ClientRegistryError && result.reason.code === 'conflict');
    });

    it('rotateSecret: a new secret once, the old one dead at once; refused for a public client', async () => {
      const { client, clientSecret } = await registry.register(WEB, CONTEXT);
      const rotated = await registry.rotateSecret(client.client_id, CONTEXT);
      issued.push(clientSecret!, rotated);
      assert.match(rotated, BASE64URL_256_BITS);
      assert.notEqual(rotated, clientSecret);
      const after = (await registry.get(client.client_id))!;
      assert.equal(registry.verifySecret(after, rotated), true);
      assert.equal(registry.verifySecret(after, clientSecret!), false);
      assert.ok(!JSON.stringify(await fixture.store.records.get('oauth_clients', client.client_id)).includes(rotated));

      const { client: publicClient } = await registry.register(PUBLIC, CONTEXT);
      await assert.rejects(registry.rotateSecret(publicClient.client_id, CONTEXT), (error: unknown) => error instanceof ClientRegistryError && error.code === 'no_secret' && /has no secret/.test(error.message));
      await assert.rejects(registry.rotateSecret('c_missing', CONTEXT), (error: unknown) => error instanceof ClientRegistryError && error.code === 'not_found');
    });

    it('delete removes the client once', async () => {
      const { client, clientSecret } = await registry.register(WEB, CONTEXT);
      issued.push(clientSecret!);
      assert.equal(await registry.delete(client.client_id, CONTEXT), true);
      assert.equal(await registry.get(client.client_id), null);
      assert.equal(await registry.delete(client.client_id, CONTEXT), false);
      assert.equal(await registry.delete('c_missing', CONTEXT), false);
    });

    it('audits every register, update, rotation and deletion, with the actor and no secret', async () => {
      const { client, clientSecret, registrationAccessToken } = await registry.register(WEB, { actor: 'admin-cli', requestId: 'req-audit' }, { withRegistrationToken: true });
      await registry.update(client.client_id, PUBLIC, { actor: 'admin-cli' });
      const { clientSecret: reissued } = await registry.update(client.client_id, WEB, { actor: 'admin-cli' });
      const rotated = await registry.rotateSecret(client.client_id, { actor: 'admin-cli' });
      await registry.delete(client.client_id, { actor: 'admin-cli' });
      issued.push(clientSecret!, registrationAccessToken!, reissued!, rotated);
      await ledgers[0]!.flush();

      const entries = await entriesOf(fixture.store);
      const mine = entries.filter(({ entry }) => entry.client === client.client_id).map(({ entry }) => entry);
      assert.deepEqual(mine.map((entry) => [entry.type, entry.detail?.['reason']]), [
        ['client.registered', undefined],
        ['client.updated', 'metadata_changed_secret_removed'],
        ['client.updated', 'metadata_changed_secret_issued'],
        ['client.updated', 'secret_rotated'],
        ['client.deleted', 'deleted'],
      ]);
      for (const entry of mine) {
        assert.equal(entry.service, 'admin-cli');
        assert.equal(entry.outcome, 'success');
        assert.equal(typeof entry.detail?.['authMethod'], 'string');
      }
      assert.equal(mine[0]!.requestId, 'req-audit');
      assert.deepEqual(mine[0]!.detail, { authMethod: 'client_secret_basic', grantTypes: 2, redirectUris: 1, applicationType: 'web', selfManaged: true });
      assert.equal(mine[1]!.detail?.['previousAuthMethod'], 'client_secret_basic');

      // No secret, token or hash of one in any entry this suite wrote.
      const hashes = issued.map((value) => createHmac('sha256', secretKey).update(value).digest('hex'));
      for (const { text } of entries) {
        for (const secret of [...issued, ...hashes]) assert.ok(!text.includes(secret), 'an audit entry carries a secret or its hash');
      }
      assert.ok(issued.length >= 15);
    });
  });
}

describe('ClientRegistry construction', () => {
  it('refuses a secret key shorter than 32 bytes', () => {
    assert.throws(() => new ClientRegistry({ records: {} as never, secretKey: new Uint8Array(16), events: {} as never, clock: () => 0 }), TypeError);
  });
});
