/**
 * An administrator's password reset (`portcullis user set-password`, the
 * recovery after a compromise) ends what a thief may already hold: not only
 * the sessions but the applications' access and refresh tokens (OWASP ASVS
 * 3.3.3). Found by the review of the merged hardening work: the tokens
 * outlived the reset. Tokens the person gets by signing in afterwards work.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as client from 'openid-client';
import { BrowserlessClient } from '../support/browserless-client.ts';
import { ManualClock } from '../support/clock.ts';
import { completeAuthorization, registerClient, type Person, type RegisteredClient } from '../support/oauth-flow.ts';
import { startTestServer, testBackends, type TestServer } from '../support/server.ts';

const PASSWORD = 'correct horse battery staple';
const NEW_PASSWORD = 'a fresh passphrase after the incident';
const REDIRECT = 'http://127.0.0.1:8080/callback';

for (const backend of testBackends) {
  describe(`an administrator's password reset ends the user's tokens (${backend})`, () => {
    let server: TestServer;
    const clock = new ManualClock(Date.now());
    let app: RegisteredClient;

    before(async () => {
      server = await startTestServer({ fixedPort: true, clock: clock.now, backend });
      app = await registerClient(server, { redirect_uris: [REDIRECT], grant_types: ['authorization_code', 'refresh_token'], scope: 'openid offline_access', client_name: 'Mail', application_type: 'native', token_endpoint_auth_method: 'none' });
    });
    after(async () => {
      await server.close();
    });

    async function signInWith(person: Person) {
      const config = await client.discovery(new URL(server.running.authorizationServer.issuer), app.clientId, undefined, client.None(), { execute: [client.allowInsecureRequests] });
      const verifier = client.randomPKCECodeVerifier();
      const state = client.randomState();
      const url = client.buildAuthorizationUrl(config, { redirect_uri: REDIRECT, scope: 'openid offline_access', code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', state, prompt: 'consent' });
      const callback = await completeAuthorization(new BrowserlessClient(server.url), url, person, { redirectUri: REDIRECT });
      const tokens = await client.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier, expectedState: state });
      return { config, tokens, sub: tokens.claims()!.sub };
    }

    it('after set-password, the old access token is refused at userinfo and the old refresh token at /token; new sign-ins work', async () => {
      const email = `reset-${randomBytes(4).toString('hex')}@example.com`;
      const user = await server.running.identity.accounts.createUser(email, PASSWORD, { actor: 'test' });
      const before = await signInWith({ email, password: PASSWORD });
      assert.equal((await client.fetchUserInfo(before.config, before.tokens.access_token, before.sub)).sub, before.sub, 'works before the reset');

      clock.advance(2_000);
      await server.running.identity.accounts.setPassword(user.id, NEW_PASSWORD, { actor: 'admin-cli' });

      await assert.rejects(client.fetchUserInfo(before.config, before.tokens.access_token, before.sub), 'the access token issued before the reset is refused');
      await assert.rejects(client.refreshTokenGrant(before.config, before.tokens.refresh_token!), (error: unknown) => error instanceof client.ResponseBodyError && error.error === 'invalid_grant');

      clock.advance(2_000);
      const after = await signInWith({ email, password: NEW_PASSWORD });
      assert.equal((await client.fetchUserInfo(after.config, after.tokens.access_token, after.sub)).sub, after.sub, 'a sign-in after the reset gets working tokens');
      const refreshed = await client.refreshTokenGrant(after.config, after.tokens.refresh_token!);
      assert.ok(refreshed.access_token.length > 0);
    });
  });
}
