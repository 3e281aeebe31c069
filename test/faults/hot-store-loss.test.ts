/**
 * The hot store comes back empty (issue 16; RFC 7009 section 2: a revoked
 * token must not be usable afterwards). A Redis of the test's own, without
 * persistence, is killed (SIGKILL) and started again on the same port, as
 * a crash or a failover to an empty replica would leave it: every key is
 * gone, the revocation marks included.
 *
 * Before it: an access token revoked by its client (POST /revoke) and one
 * whose session signed out. After it: both are still inactive at
 * introspection (the revocations are kept in the durable store too, and the
 * lost marks are noticed and put back), and a token never revoked is still
 * active.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { decodeJwt } from 'jose';
import { BrowserlessClient, csrfField } from '../support/browserless-client.ts';
import { registerClient, type RegisteredClient } from '../support/oauth-flow.ts';
import { clientPost, codeFlow } from '../support/privacy-deployment.ts';
import { startOwnRedis, type OwnRedis } from '../support/redis-server.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

const PASSWORD = 'correct horse battery staple';
const REDIRECT = 'https://app.example/cb';

describe('the hot store (Redis) restarted empty: revocations survive it', () => {
  let redis: OwnRedis;
  let server: TestServer;
  let client: RegisteredClient;

  before(async () => {
    redis = await startOwnRedis();
    server = await startTestServer({ fixedPort: true, env: { PORTCULLIS_REDIS_URL: redis.url, PORTCULLIS_REDIS_KEY_PREFIX: 'loss:', PORTCULLIS_TRUST_PROXY: '127.0.0.1' } });
    client = await registerClient(server, { client_name: 'Loss probe', grant_types: ['authorization_code', 'client_credentials'], redirect_uris: [REDIRECT], token_endpoint_auth_method: 'client_secret_basic', scope: 'openid' });
  });
  after(async () => {
    await server?.close();
    await redis?.remove();
  });

  const introspect = async (token: string) => {
    const answer = await clientPost(server.url, '/introspect', client, { token });
    return { status: answer.status, active: answer.body['active'] };
  };
  const ccToken = async () => {
    const issued = await clientPost(server.url, '/token', client, { grant_type: 'client_credentials' });
    assert.equal(issued.status, 200, JSON.stringify(issued.body));
    return issued.body['access_token'] as string;
  };

  it('a revoked token and a signed-out session\'s token stay inactive; a live token stays active', async () => {
    const revoked = await ccToken();
    const live = await ccToken();
    const person = { email: 'loss@example.com', password: PASSWORD };
    await server.running.identity.accounts.createUser(person.email, PASSWORD, { actor: 'test' });
    const browser = new BrowserlessClient(server.url);
    const signedOut = (await codeFlow(server.url, browser, person, client, REDIRECT, 'openid'))['access_token'] as string;
    assert.equal(typeof decodeJwt(signedOut)['sid'], 'string', 'the session\'s token names its session');
    for (const token of [revoked, live, signedOut]) assert.deepEqual(await introspect(token), { status: 200, active: true });

    assert.equal((await clientPost(server.url, '/revoke', client, { token: revoked, token_type_hint: 'access_token' })).status, 200);
    const confirm = await browser.get('/logout');
    const done = await browser.post('/logout', { _csrf: csrfField(confirm.body)! });
    assert.equal(done.status, 200, `signed out: ${done.status}`);
    assert.deepEqual(await introspect(revoked), { status: 200, active: false });
    assert.deepEqual(await introspect(signedOut), { status: 200, active: false });

    await redis.kill();
    await redis.start();
    // Back once a request gets through: the client reconnects by itself, its breaker (if it opened) closes.
    const deadline = Date.now() + 30_000;
    let answer = await introspect(live).catch(() => ({ status: 0, active: undefined }));
    while (answer.status !== 200 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      answer = await introspect(live).catch(() => ({ status: 0, active: undefined }));
    }
    assert.deepEqual(answer, { status: 200, active: true }, 'the token never revoked is active again');

    assert.deepEqual(await introspect(revoked), { status: 200, active: false }, 'the token its client revoked stays revoked');
    assert.deepEqual(await introspect(signedOut), { status: 200, active: false }, 'the signed-out session\'s token stays revoked');
    assert.deepEqual(await introspect(live), { status: 200, active: true });

    // The checks above found the sentinel gone and started the copy back: it ends with the sentinel, and the marks answer again.
    const { hot } = server.running.stores;
    let generation = await hot.get('oauth:revocations-generation');
    for (let waited = 0; (generation === null || generation === 'copying') && waited < 100; waited++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      generation = await hot.get('oauth:revocations-generation');
    }
    assert.match(generation ?? '', /^\d+$/, 'the sentinel is back');
    assert.equal(await hot.get(`oauth:revoked-at:${decodeJwt(revoked)['jti'] as string}`), '1', 'the revoked token\'s mark is back');
    assert.equal(await hot.get(`oauth:revoked-sid:${decodeJwt(signedOut)['sid'] as string}`), '1', 'the ended session\'s mark is back');
    assert.deepEqual(await introspect(revoked), { status: 200, active: false });
    assert.deepEqual(await introspect(signedOut), { status: 200, active: false });
  });
});
