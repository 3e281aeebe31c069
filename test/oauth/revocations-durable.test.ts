/**
 * Revocations outlive the hot store's data (RFC 7009 section 2): every
 * revoked token and every ended session is kept in the durable store too,
 * until its mark lapses. A hot store that lost its marks (its sentinel is
 * gone with them) is not trusted: checks read the durable records, and one
 * copy puts the marks back, with the sentinel last. On the embedded default
 * (SQLite), the loss made by deleting the keys, and by a fresh in-memory hot
 * store over the same durable records.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AccessTokens } from '../../src/oauth/access-tokens.ts';
import { RevocationRecords } from '../../src/oauth/revocation-records.ts';
import { openMemoryHotStore } from '../../src/store/memory/hot-store.ts';
import type { HotStore } from '../../src/store/index.ts';
import { registerClient } from '../support/oauth-flow.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

const GENERATION = 'oauth:revocations-generation';
const denylisted = (jti: string) => `oauth:revoked-at:${jti}`;
const ended = (sid: string) => `oauth:revoked-sid:${sid}`;

describe('revocations kept durably, put back in a hot store that lost them', () => {
  let server: TestServer;
  let clientId: string;

  before(async () => {
    server = await startTestServer();
    clientId = (await registerClient(server, { client_name: 'Durable revocations', grant_types: ['client_credentials'], redirect_uris: [], token_endpoint_auth_method: 'client_secret_basic', scope: 'openid' })).clientId;
  });
  after(async () => {
    await server.close();
  });

  /** A client_credentials-like token (the client is its subject), with a `sid` when given. */
  const issue = async (sid?: string) => {
    const issued = await server.running.authorizationServer.accessTokens.issue({
      clientId,
      subject: clientId,
      grant: { type: 'client_credentials', userId: null },
      scope: 'openid',
      audience: server.running.authorizationServer.issuer,
      ...(sid !== undefined && { claims: { sid } }),
    });
    return issued;
  };
  const records = () => new RevocationRecords({ records: server.running.stores.durable.records, clock: Date.now });
  /** This server's keyring and durable records, over another hot store. */
  const tokensOver = (hot: HotStore) =>
    new AccessTokens({ keyring: server.running.authorizationServer.keyring, hot, clock: Date.now, issuer: server.running.authorizationServer.issuer, ttlSeconds: 600, defaultAlgorithm: 'EdDSA', revocations: records() });

  it('the sentinel is written at start', async () => {
    let generation = await server.running.stores.hot.get(GENERATION);
    for (let waited = 0; generation === null && waited < 100; waited++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      generation = await server.running.stores.hot.get(GENERATION);
    }
    assert.ok(generation !== null && /^\d+$/.test(generation), `the sentinel holds when the marks were copied: ${generation}`);
  });

  it('a revoked token and an ended session stay revoked when their marks and the sentinel are deleted; the marks come back', async () => {
    const { accessTokens } = server.running.authorizationServer;
    const { hot, durable } = server.running.stores;
    const revoked = await issue();
    const sid = `sid-${revoked.jti}`.slice(0, 22);
    const ofSession = await issue(sid);
    const live = await issue();
    assert.equal(await accessTokens.revokeJti(revoked.jti, revoked.expiresAt), true, 'the first revocation');
    await accessTokens.revokeSid(sid);
    assert.notEqual(await durable.records.get('oauth_revocations', `jti:${revoked.jti}`), null, 'kept durably');
    assert.notEqual(await durable.records.get('oauth_revocations', `sid:${sid}`), null);

    for (const key of [denylisted(revoked.jti), ended(sid), GENERATION]) assert.equal(await hot.delete(key), true, key);
    assert.equal(await accessTokens.check(revoked.token), null, 'the revoked token is not active');
    assert.equal(await accessTokens.check(ofSession.token), null, 'nor the ended session\'s');
    assert.notEqual(await accessTokens.check(live.token), null, 'a token never revoked is');
    await accessTokens.restoreRevocations();
    assert.equal(await hot.get(denylisted(revoked.jti)), '1', 'the mark is back');
    assert.equal(await hot.get(ended(sid)), '1');
    assert.notEqual(await hot.get(GENERATION), null, 'and the sentinel, last');
    assert.equal(await accessTokens.revokeJti(revoked.jti, revoked.expiresAt), false, 'revoking it again is not the first revocation');
    assert.equal(await accessTokens.check(revoked.token), null);
  });

  it('a fresh hot store over the same durable records: inactive at once, marks restored by one copy', async () => {
    const revoked = await issue();
    const sid = `fresh-${revoked.jti}`.slice(0, 22);
    const ofSession = await issue(sid);
    const live = await issue();
    await server.running.authorizationServer.accessTokens.revoke((await server.running.authorizationServer.accessTokens.decode(revoked.token))!);
    await server.running.authorizationServer.accessTokens.revokeSid(sid);

    const hot = openMemoryHotStore();
    const tokens = tokensOver(hot);
    try {
      const answers = await Promise.all([tokens.check(revoked.token), tokens.check(ofSession.token), tokens.check(live.token)]);
      assert.deepEqual(
        answers.map((claims) => claims?.jti ?? null),
        [null, null, live.jti],
      );
      await tokens.restoreRevocations();
      assert.equal(await hot.get(denylisted(revoked.jti)), '1');
      assert.equal(await hot.get(ended(sid)), '1');
      assert.notEqual(await hot.get(GENERATION), null);
      assert.equal(await tokens.check(revoked.token), null, 'the restored mark answers');
    } finally {
      await hot.close();
    }
  });

  it('a hot store that loses its data again during the copy gets no sentinel over the partial copy', async () => {
    const revoked = await issue();
    await server.running.authorizationServer.accessTokens.revokeJti(revoked.jti, revoked.expiresAt);
    const inner = openMemoryHotStore();
    let lost = false;
    // The first mark written by the copy wipes the store (the sentinel's COPYING state with it), as a second restart would.
    const set = async (key: string, value: string, ttlMs: number) => {
      if (!lost) {
        lost = true;
        await inner.delete(GENERATION);
        return;
      }
      return inner.set(key, value, ttlMs);
    };
    const flaky = new Proxy(inner, {
      get: (target, property) => {
        if (property === 'set') return set;
        const value: unknown = Reflect.get(target, property);
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      },
    });
    const tokens = tokensOver(flaky);
    try {
      await tokens.restoreRevocations();
      assert.ok(lost);
      assert.equal(await inner.get(GENERATION), null, 'no sentinel: the copy was cut short');
      assert.equal(await tokens.check(revoked.token), null, 'checks still read the durable records');
      await tokens.restoreRevocations();
      assert.notEqual(await inner.get(GENERATION), null, 'the next copy completes');
      assert.equal(await inner.get(denylisted(revoked.jti)), '1');
    } finally {
      await inner.close();
    }
  });

  it('the housekeeping sweep deletes lapsed records and keeps the rest', async () => {
    const kept = records();
    await kept.remember('jti', 'lapsed-token', Date.now() - 1000);
    await kept.remember('jti', 'live-token', Date.now() + 60_000);
    await kept.remember('sid', 'live-token', Date.now() + 1000);
    await kept.remember('sid', 'live-token', Date.now() + 60_000);
    assert.ok((await kept.sweep()) >= 1);
    const { durable } = server.running.stores;
    assert.equal(await durable.records.get('oauth_revocations', 'jti:lapsed-token'), null);
    assert.notEqual(await durable.records.get('oauth_revocations', 'jti:live-token'), null);
    const extended = await durable.records.get<{ until: number }>('oauth_revocations', 'sid:live-token');
    assert.ok(extended !== null && extended.data.until > Date.now() + 50_000, 'a session ended twice is kept until the later end');
  });
});
