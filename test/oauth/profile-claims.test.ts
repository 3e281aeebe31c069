/**
 * The `profile` scope releases the user's OIDC Core 5.1 profile claims
 * (first-hour review D13: it released nothing). Driven by openid-client
 * (discovery, code flow, fetchUserInfo) against a real server: userinfo
 * carries exactly the claims that have a value, and only for a token with
 * the scope (OIDC Core 5.4); the ID token carries none (an access token is
 * always issued, so they come from userinfo, like email); discovery lists
 * them in claims_supported.
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
const REDIRECT = 'http://127.0.0.1:8080/callback';
const PROFILE_CLAIMS = ['name', 'given_name', 'family_name', 'locale', 'zoneinfo', 'picture', 'updated_at'];

for (const backend of testBackends) {
  describe(`profile claims by scope (first-hour review D13) (${backend})`, () => {
    let server: TestServer;
    const clock = new ManualClock(Date.now());
    let issuer: string;
    let app: RegisteredClient;

    before(async () => {
      server = await startTestServer({ fixedPort: true, clock: clock.now, backend });
      issuer = server.running.authorizationServer.issuer;
      app = await registerClient(server, { redirect_uris: [REDIRECT], grant_types: ['authorization_code'], scope: 'openid profile email', client_name: 'Profile reader', application_type: 'native', token_endpoint_auth_method: 'none' });
    });
    after(async () => {
      await server.close();
    });

    async function newPerson(): Promise<Person & { id: string }> {
      const email = `profile-${randomBytes(4).toString('hex')}@example.com`;
      const user = await server.running.identity.accounts.createUser(email, PASSWORD, { actor: 'test' });
      return { email, password: PASSWORD, id: user.id };
    }

    /** openid-client runs the code flow for `scope`; returns its configuration and the tokens. */
    async function signInWith(person: Person, scope: string) {
      const config = await client.discovery(new URL(issuer), app.clientId, undefined, client.None(), { execute: [client.allowInsecureRequests] });
      const verifier = client.randomPKCECodeVerifier();
      const state = client.randomState();
      const nonce = client.randomNonce();
      const url = client.buildAuthorizationUrl(config, { redirect_uri: REDIRECT, scope, code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', state, nonce });
      const callback = await completeAuthorization(new BrowserlessClient(server.url), url, person, { redirectUri: REDIRECT });
      const tokens = await client.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce });
      return { config, tokens, sub: tokens.claims()!.sub };
    }

    it('discovery lists every profile claim in claims_supported', async () => {
      const metadata = (await (await fetch(`${issuer}/.well-known/openid-configuration`)).json()) as { claims_supported: string[]; scopes_supported: string[] };
      for (const claim of [...PROFILE_CLAIMS, 'email', 'email_verified', 'sub']) assert.ok(metadata.claims_supported.includes(claim), claim);
      assert.ok(metadata.scopes_supported.includes('profile'));
    });

    it('a token with `profile` gets exactly the claims the user has at /userinfo (openid-client fetchUserInfo), and the ID token none of them', async () => {
      const person = await newPerson();
      await server.running.identity.accounts.updateProfile(person.id, { name: 'Ada Lovelace', given_name: 'Ada', zoneinfo: 'Europe/London', picture: 'https://images.example.net/ada.png' }, { actor: 'test' });
      const { config, tokens, sub } = await signInWith(person, 'openid profile');
      const userinfo = await client.fetchUserInfo(config, tokens.access_token, sub);
      assert.deepEqual(userinfo, { sub, name: 'Ada Lovelace', given_name: 'Ada', zoneinfo: 'Europe/London', picture: 'https://images.example.net/ada.png', updated_at: Math.floor(clock.now() / 1000) });
      const idClaims = tokens.claims()!;
      for (const claim of [...PROFILE_CLAIMS, 'email']) assert.equal(idClaims[claim], undefined, `${claim} is not in the ID token`);
    });

    it('a token without `profile` gets none of them: email only with `email`, just sub with `openid`', async () => {
      const person = await newPerson();
      await server.running.identity.accounts.updateProfile(person.id, { name: 'Grace Hopper', family_name: 'Hopper', locale: 'en-US' }, { actor: 'test' });
      const withEmail = await signInWith(person, 'openid email');
      assert.deepEqual(await client.fetchUserInfo(withEmail.config, withEmail.tokens.access_token, withEmail.sub), { sub: withEmail.sub, email: person.email, email_verified: false });
      const bare = await signInWith(person, 'openid');
      assert.deepEqual(await client.fetchUserInfo(bare.config, bare.tokens.access_token, bare.sub), { sub: bare.sub });
      const both = await signInWith(person, 'openid profile email');
      assert.deepEqual(await client.fetchUserInfo(both.config, both.tokens.access_token, both.sub), {
        sub: both.sub,
        email: person.email,
        email_verified: false,
        name: 'Grace Hopper',
        family_name: 'Hopper',
        locale: 'en-US',
        updated_at: Math.floor(clock.now() / 1000),
      });
    });

    it('a user without a profile gets only sub for `profile`: no empty or null claims', async () => {
      const person = await newPerson();
      const { config, tokens, sub } = await signInWith(person, 'openid profile');
      assert.deepEqual(await client.fetchUserInfo(config, tokens.access_token, sub), { sub });
    });

    it('userinfo follows a later change: new values and a new updated_at', async () => {
      const person = await newPerson();
      await server.running.identity.accounts.updateProfile(person.id, { name: 'Old Name' }, { actor: 'test' });
      const { config, tokens, sub } = await signInWith(person, 'openid profile');
      clock.advance(90_000);
      await server.running.identity.accounts.updateProfile(person.id, { name: 'New Name' }, { actor: 'test' });
      assert.deepEqual(await client.fetchUserInfo(config, tokens.access_token, sub), { sub, name: 'New Name', updated_at: Math.floor(clock.now() / 1000) });
    });
  });
}
