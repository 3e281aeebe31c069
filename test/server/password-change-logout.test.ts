/**
 * A password change on the account page ends the person's other sessions,
 * and with them their applications' tokens and back-channel logouts (OIDC
 * Back-Channel Logout 1.0 sections 2.3 and 2.5). The logouts are queued
 * while those sessions are still live, before they end: a session that is
 * gone can no longer be signed out again, so a failure or a crash between
 * the two used to leave the applications never told. And when queueing
 * fails (a store not answering), the sessions end all the same, the other
 * sessions' logouts are still queued, and the page says what happened: a
 * 503, never a success.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { decodeJwt } from 'jose';
import { BACKCHANNEL_LOGOUT_TOPIC, backchannelLogoutKey, sessionIdClaim, type LogoutService } from '../../src/oauth/index.ts';
import { StoreUnavailableError } from '../../src/store/index.ts';
import { BrowserlessClient } from '../support/browserless-client.ts';
import type { DeliveryReceiver } from '../support/delivery-receiver.ts';
import { logoutBed } from '../support/logout-bed.ts';
import { registerClient, type RegisteredClient } from '../support/oauth-flow.ts';
import { clientPost, codeFlow, signedInBrowser, type PrivacyDeployment } from '../support/privacy-deployment.ts';
import { accountCsrf, passwordSignIn } from '../support/privacy-probe.ts';
import { testBackends } from '../support/server.ts';

const PASSWORD = 'correct horse battery staple';
const NEW_PASSWORD = 'a lighthouse keeper counts the gulls';
const REDIRECT = 'http://127.0.0.1:8082/mail/callback';

for (const backend of testBackends) {
  describe(`a password change tells the applications of the sessions it ends (${backend})`, () => {
    let deployment: PrivacyDeployment;
    let receiver: DeliveryReceiver;
    let app: RegisteredClient;

    const bed = logoutBed(backend, REDIRECT);
    before(() => ({ deployment, receiver, app } = bed()));

    /** A person signed in twice or more: `here` (who changes the password), and each of `elsewhere` signed in to Mail. */
    async function person(elsewhereCount: number) {
      const email = `change-${randomBytes(4).toString('hex')}@example.com`;
      const user = await deployment.running.identity.accounts.createUser(email, PASSWORD, { actor: 'test' });
      const here = await signedInBrowser(deployment.url, email, PASSWORD);
      const elsewhere: { browser: BrowserlessClient; handle: string; sid: string; accessToken: string }[] = [];
      for (let index = 0; index < elsewhereCount; index++) {
        const browser = await signedInBrowser(deployment.url, email, PASSWORD);
        const tokens = await codeFlow(deployment.url, browser, { email, password: PASSWORD }, app, REDIRECT, 'openid');
        const sid = decodeJwt(tokens['id_token'] as string)['sid'] as string;
        const session = (await deployment.running.identity.accounts.sessions.list(user.id)).find((candidate) => sessionIdClaim(candidate.handle) === sid);
        assert.ok(session, 'the ID token names a live session of the person');
        elsewhere.push({ browser, handle: session.handle, sid, accessToken: tokens['access_token'] as string });
      }
      return { email, userId: user.id, here, elsewhere };
    }

    const changePassword = async (browser: BrowserlessClient) => browser.post('/account/password', { _csrf: await accountCsrf(browser), current_password: PASSWORD, new_password: NEW_PASSWORD });
    const logoutMessages = async (sid: string) => (await deployment.outboxMessages()).filter((message) => message.topic === BACKCHANNEL_LOGOUT_TOPIC && message.key === backchannelLogoutKey(sid, app.clientId));
    const isLive = (handle: string) => deployment.running.identity.accounts.sessions.isLive(handle);

    it('queues the other session\'s logout while that session is still live, then ends it', async (t) => {
      const { userId, here, elsewhere } = await person(1);
      const other = elsewhere[0]!;
      const logout = deployment.running.authorizationServer.logout;
      const original = logout.sessionEnded.bind(logout);
      const liveWhenEnded = new Map<string, boolean>();
      t.mock.method(logout, 'sessionEnded', async (...args: Parameters<LogoutService['sessionEnded']>) => {
        // The first pass; the second comes once the sessions ended.
        if (!liveWhenEnded.has(args[0].sessionHandle)) liveWhenEnded.set(args[0].sessionHandle, await isLive(args[0].sessionHandle));
        return original(...args);
      });

      const answer = await changePassword(here);
      assert.equal(answer.status, 303, answer.body.slice(0, 300));
      assert.equal(answer.location, '/account?done=password');
      assert.equal(liveWhenEnded.get(other.handle), true, 'the logout was queued before the session ended (a retry could still find it)');
      assert.equal(await isLive(other.handle), false, 'the other session ended');
      assert.equal((await other.browser.get('/account')).status, 303, 'its browser is signed out');
      const messages = await logoutMessages(other.sid);
      assert.equal(messages.length, 1, 'one back-channel logout for the session and Mail, in the outbox');
      assert.deepEqual(messages[0]!.payload, { clientId: app.clientId, sub: userId, sid: other.sid });
      const introspected = await clientPost(deployment.url, '/introspect', app, { token: other.accessToken });
      assert.equal(introspected.body['active'], false, 'the other session\'s access token ended with it');
      assert.equal((await here.get('/account')).status, 200, 'the session that changed the password goes on');
    });

    it('what another session does while its logout is being queued (a code flow with offline_access) ends with it too', async (t) => {
      const sync = await registerClient(deployment, {
        client_name: `Sync ${randomBytes(3).toString('hex')}`,
        redirect_uris: [REDIRECT],
        grant_types: ['authorization_code', 'refresh_token'],
        scope: 'openid offline_access',
        token_endpoint_auth_method: 'client_secret_basic',
        backchannel_logout_uri: `${receiver.base}/logout`,
      });
      const { email, here, elsewhere } = await person(1);
      const other = elsewhere[0]!;
      const logout = deployment.running.authorizationServer.logout;
      const original = logout.sessionEnded.bind(logout);
      let raced: Record<string, unknown> | undefined;
      t.mock.method(logout, 'sessionEnded', async (...args: Parameters<LogoutService['sessionEnded']>) => {
        const result = await original(...args);
        // Right after the other session's first pass, while it is still live: a stolen cookie's holder races the change.
        if (args[0].sessionHandle === other.handle && raced === undefined) raced = await codeFlow(deployment.url, other.browser, { email, password: PASSWORD }, sync, REDIRECT, 'openid offline_access');
        return result;
      });

      const answer = await changePassword(here);
      assert.equal(answer.status, 303, answer.body.slice(0, 300));
      assert.ok(raced !== undefined && typeof raced['refresh_token'] === 'string', 'the racing flow got a refresh token');
      const refreshed = await clientPost(deployment.url, '/token', sync, { grant_type: 'refresh_token', refresh_token: raced['refresh_token'] });
      assert.equal(refreshed.status, 400, `the refresh token from the race is refused: ${JSON.stringify(refreshed.body)}`);
      assert.equal(refreshed.body['error'], 'invalid_grant');
      const introspected = await clientPost(deployment.url, '/introspect', sync, { token: raced['access_token'] as string });
      assert.equal(introspected.body['active'], false);
      const messages = (await deployment.outboxMessages()).filter((message) => message.topic === BACKCHANNEL_LOGOUT_TOPIC && message.key === backchannelLogoutKey(other.sid, sync.clientId));
      assert.equal(messages.length, 1, 'the application signed in to during the race is told too');
    });

    it('when no logout can be queued (the outbox\'s store down): the 503 page, the other sessions end, this one goes on unrenewed, and no session is left behind', async (t) => {
      const { userId, here, elsewhere } = await person(1);
      const other = elsewhere[0]!;
      // This browser signed in to Mail too, so its own renewal has a logout to queue.
      await codeFlow(deployment.url, here, { email: (await deployment.running.identity.accounts.users.byId(userId))!.email, password: PASSWORD }, app, REDIRECT, 'openid');
      const logout = deployment.running.authorizationServer.logout;
      t.mock.method(logout, 'sessionEnded', async () => {
        throw new StoreUnavailableError('test', 'the outbox is unavailable');
      });

      const answer = await changePassword(here);
      assert.equal(answer.status, 503, answer.body.slice(0, 300));
      assert.match(answer.body, /Your password was changed/);
      assert.equal(answer.headers.get('retry-after'), null);
      assert.equal(await isLive(other.handle), false, 'the other session ended');
      assert.equal((await here.get('/account')).status, 200, 'this one goes on');
      assert.equal((await deployment.running.identity.accounts.sessions.list(userId)).length, 1, 'one session: no renewed one left without its cookie');
    });

    it('the session that changed the password is renewed: the applications it signed in to are told and its tokens end (the renewed session has a new sid)', async () => {
      const { email, userId, here } = await person(0);
      const tokens = await codeFlow(deployment.url, here, { email, password: PASSWORD }, app, REDIRECT, 'openid');
      const sid = decodeJwt(tokens['id_token'] as string)['sid'] as string;

      const answer = await changePassword(here);
      assert.equal(answer.status, 303, answer.body.slice(0, 300));
      assert.equal((await here.get('/account')).status, 200, 'the browser that changed the password stays signed in (renewed)');
      const live = await deployment.running.identity.accounts.sessions.list(userId);
      assert.equal(live.length, 1);
      assert.notEqual(sessionIdClaim(live[0]!.handle), sid, 'a new session, with a new sid');
      const messages = await logoutMessages(sid);
      assert.equal(messages.length, 1, 'one back-channel logout for the old session and Mail, in the outbox');
      assert.deepEqual(messages[0]!.payload, { clientId: app.clientId, sub: userId, sid });
      const introspected = await clientPost(deployment.url, '/introspect', app, { token: tokens['access_token'] as string });
      assert.equal(introspected.body['active'], false, 'the old session\'s access token ended with it');
    });

    it('when a logout cannot be queued: the other sessions end anyway, the rest are queued, and the answer is a 503 that says the password changed', async (t) => {
      const { email, here, elsewhere } = await person(2);
      // The newer session comes first (sessions are listed newest first): its failure must not stop the other's logout.
      const [queued, failing] = [elsewhere[0]!, elsewhere[1]!];
      const logout = deployment.running.authorizationServer.logout;
      const original = logout.sessionEnded.bind(logout);
      const calls: string[] = [];
      t.mock.method(logout, 'sessionEnded', async (...args: Parameters<LogoutService['sessionEnded']>) => {
        calls.push(args[0].sessionHandle);
        // The outbox commit of this session's logout fails, as it would with the durable store down.
        if (args[0].sessionHandle === failing.handle) throw new StoreUnavailableError('test', 'the outbox is unavailable');
        return original(...args);
      });

      const answer = await changePassword(here);
      assert.equal(answer.status, 503, answer.body.slice(0, 300));
      assert.deepEqual(calls.slice(0, 2), [failing.handle, queued.handle], 'the failing session was tried first, then the other');
      assert.deepEqual(calls.slice(2), [failing.handle, queued.handle], 'both again once they ended; the session that changed the password is not renewed, its own logouts could not be queued either');
      assert.equal(answer.headers.get('retry-after'), null, 'nothing to send again: the password is changed');
      assert.match(answer.body, /Your password was changed and your other sessions were signed out, but not every application you signed in to could be told/);
      assert.doesNotMatch(answer.body, /StoreUnavailableError|at .*\.ts:\d+/, 'no stack or internal name');
      assert.equal(await isLive(failing.handle), false, 'the session whose logout failed ended all the same');
      assert.equal(await isLive(queued.handle), false);
      assert.equal((await logoutMessages(queued.sid)).length, 1, 'the other session\'s logout was still queued');
      assert.equal((await logoutMessages(failing.sid)).length, 0);
      assert.equal((await here.get('/account')).status, 200, 'the session that changed the password goes on');
      assert.deepEqual(await passwordSignIn(new BrowserlessClient(deployment.url), email, NEW_PASSWORD), { status: 303, location: '/account' }, 'the new password is the one that works');
    });
  });
}
