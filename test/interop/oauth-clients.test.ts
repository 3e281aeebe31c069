/**
 * Portcullis driven only by strict third-party OAuth / OpenID Connect client
 * libraries, each against a real listening server: openid-client v6 (the
 * certified relying-party library) and oauth4webapi v3 (the low-level one it
 * is built on, also used here as an RFC 9068 resource server validator).
 * The libraries build the requests and check the responses; the person's
 * part (sign-in form, consent page) is a scripted browser doing plain HTTP
 * form posts (test/support/oauth-flow.ts).
 *
 * Covered with both libraries: discovery (OIDC and RFC 8414), the code flow
 * with PKCE for a public and a confidential client (RFC 9207 iss, ID token
 * signature against /jwks, nonce, aud, at_hash), userinfo, refresh rotation
 * and reuse detection, DPoP-bound tokens (RFC 9449), PAR (RFC 9126),
 * client_credentials with RFC 9068 access tokens, private_key_jwt,
 * introspection and revocation; and the RFC 9700 refusals as the libraries
 * surface them: forged `alg: none` and HS256 key-confusion tokens, a wrong
 * PKCE verifier, a redirect URI mismatch, a reused code, a refresh token of
 * another client.
 *
 * Server behaviour that does not meet a standard is kept as a test marked
 * `todo` with the reason, so the suite stays green while it is open.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createHmac, createPublicKey, randomBytes, webcrypto } from 'node:crypto';
import * as client from 'openid-client';
import * as oauth from 'oauth4webapi';
import { calculateJwkThumbprint, createLocalJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify, type JWK, type JSONWebKeySet } from 'jose';
import { BrowserlessClient } from '../support/browserless-client.ts';
import { ManualClock } from '../support/clock.ts';
import { AuthorizationPageStop, completeAuthorization, registerClient, type Person, type RegisteredClient } from '../support/oauth-flow.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

const PASSWORD = 'correct horse battery staple';
const REDIRECT = 'http://127.0.0.1:8080/callback';
/** A resource server's identifier (RFC 8707), used as an access token audience. */
const API = 'https://api.example.com/';
const API_SCOPE = 'api:read';
const USER_SCOPE = 'openid email offline_access';

/** oauth4webapi refuses http endpoints unless told; the test server is plain http on loopback. */
const insecure = { [oauth.allowInsecureRequests]: true } as const;

type KeyPair = oauth.CryptoKeyPair;

const userClientMetadata = { redirect_uris: [REDIRECT], grant_types: ['authorization_code', 'refresh_token'], scope: USER_SCOPE };

/** OIDC Core section 3.1.3.6: the left half of the hash of the access token, with the hash of the ID token's alg (SHA-512 for EdDSA/Ed25519). */
function atHash(accessToken: string, alg: string): string {
  const hash = alg === 'EdDSA' || alg === 'Ed25519' || alg.endsWith('512') ? 'sha512' : alg.endsWith('384') ? 'sha384' : 'sha256';
  const digest = createHash(hash).update(accessToken, 'ascii').digest();
  return digest.subarray(0, digest.length / 2).toString('base64url');
}

const base64urlJson = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
const jwtParts = (token: string) => {
  const [header = '', payload = ''] = token.split('.');
  return { header: JSON.parse(Buffer.from(header, 'base64url').toString('utf8')) as Record<string, unknown>, payload: JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Record<string, unknown> };
};

/** The same claims, with `alg: none` and no signature (RFC 7519 section 6, RFC 8725 section 3.1). */
function unsecuredCopy(token: string): string {
  const { header, payload } = jwtParts(token);
  return `${base64urlJson({ ...header, alg: 'none' })}.${base64urlJson(payload)}.`;
}

/** The same claims, "signed" HS256 with the server's public key as the HMAC secret: the classic key-confusion attack (RFC 8725 section 2.1). */
function keyConfusionCopy(token: string, publicKeyBytes: Uint8Array | string): string {
  const { header, payload } = jwtParts(token);
  const input = `${base64urlJson({ ...header, alg: 'HS256' })}.${base64urlJson(payload)}`;
  return `${input}.${createHmac('sha256', publicKeyBytes).update(input).digest('base64url')}`;
}

/** What a library threw, as `code: message (cause)`, for assertion messages. */
function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const code = (error as { code?: unknown }).code;
  const cause = error.cause instanceof Error ? ` (cause: ${describeError(error.cause)})` : '';
  return `${typeof code === 'string' ? `${code}: ` : ''}${error.message}${cause}`;
}

/** Asserts `promise` rejects with an OAuth error response (RFC 6749 section 5.2) carrying `error`. */
async function rejectsWithOAuthError(promise: Promise<unknown>, error: string, status = 400): Promise<oauth.ResponseBodyError> {
  let caught: unknown;
  try {
    await promise;
  } catch (thrown) {
    caught = thrown;
  }
  assert.ok(caught instanceof oauth.ResponseBodyError, `expected an OAuth error response "${error}", got ${caught === undefined ? 'success' : describeError(caught)}`);
  assert.equal(caught.error, error, `error_description: ${caught.error_description ?? ''}`);
  assert.equal(caught.status, status);
  return caught;
}

/** Asserts `promise` rejects with a 401 WWW-Authenticate challenge (RFC 6750 section 3, RFC 9449 section 7.1). */
async function rejectsWithChallenge(promise: Promise<unknown>): Promise<oauth.WWWAuthenticateChallengeError> {
  let caught: unknown;
  try {
    await promise;
  } catch (thrown) {
    caught = thrown;
  }
  assert.ok(caught instanceof oauth.WWWAuthenticateChallengeError, `expected a WWW-Authenticate challenge, got ${caught === undefined ? 'success' : describeError(caught)}`);
  assert.equal(caught.status, 401);
  return caught;
}

/** Asserts `promise` rejects with an error (of the library's own checks) whose message or cause's message matches. */
async function rejectsWithMessage(promise: Promise<unknown>, pattern: RegExp): Promise<void> {
  let caught: unknown;
  try {
    await promise;
  } catch (thrown) {
    caught = thrown;
  }
  assert.ok(caught !== undefined, `expected a refusal matching ${pattern}, got success`);
  assert.match(describeError(caught), pattern);
}

/** The JWK thumbprint (RFC 7638) of a DPoP key pair's public key: what the server puts in cnf.jkt. */
async function thumbprint(keyPair: KeyPair): Promise<string> {
  const jwk = (await webcrypto.subtle.exportKey('jwk', keyPair.publicKey)) as JWK;
  return calculateJwkThumbprint(jwk);
}

describe('third-party OAuth clients against a real Portcullis', () => {
  let server: TestServer;
  let issuer: string;
  let person: Person;
  let browser: BrowserlessClient;
  let jwks: JSONWebKeySet;
  /** oauth4webapi's view of the server, from its own discovery. */
  let as: oauth.AuthorizationServer;
  let spa: RegisteredClient;
  let web: RegisteredClient;
  let other: RegisteredClient;
  let service: RegisteredClient;
  let signed: RegisteredClient;
  let signedKey: oauth.PrivateKey;

  before(async () => {
    server = await startTestServer({ fixedPort: true });
    issuer = server.running.authorizationServer.issuer;
    person = { email: `interop-${randomBytes(4).toString('hex')}@example.com`, password: PASSWORD };
    await server.running.identity.accounts.createUser(person.email, person.password, { actor: 'test' });
    spa = await registerClient(server, { ...userClientMetadata, scope: `${USER_SCOPE} ${API_SCOPE}`, client_name: 'Notes app (public)', application_type: 'native', token_endpoint_auth_method: 'none' }, [API_SCOPE]);
    // Granted a scope of the API, so it may name it as a resource (RFC 8707 section 2).
    web = await registerClient(server, { ...userClientMetadata, scope: `${USER_SCOPE} ${API_SCOPE}`, client_name: 'Web app', token_endpoint_auth_method: 'client_secret_basic' }, [API_SCOPE]);
    other = await registerClient(server, { ...userClientMetadata, client_name: 'Other app', token_endpoint_auth_method: 'client_secret_basic' });
    service = await registerClient(server, { client_name: 'Billing service', grant_types: ['client_credentials'], scope: API_SCOPE }, [API_SCOPE]);
    const keyPair = await oauth.generateKeyPair('ES256', { extractable: true });
    const publicJwk = (await webcrypto.subtle.exportKey('jwk', keyPair.publicKey)) as JWK;
    signedKey = { key: keyPair.privateKey, kid: 'signed-client-key-1' };
    signed = await registerClient(
      server,
      {
        ...userClientMetadata,
        client_name: 'Signed-assertion app',
        grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
        scope: `${USER_SCOPE} ${API_SCOPE}`,
        token_endpoint_auth_method: 'private_key_jwt',
        jwks: { keys: [{ kty: publicJwk.kty, crv: publicJwk.crv, x: publicJwk.x, y: publicJwk.y, kid: signedKey.kid, alg: 'ES256', use: 'sig' }] },
      },
      [API_SCOPE],
    );
    // The API is a registered resource that owns API_SCOPE; the web app's
    // client acts for it, so it may introspect tokens issued for it (RFC 7662 section 4).
    await server.running.authorizationServer.resources.create({ uri: API, scopes: [API_SCOPE], clients: [web.clientId] }, { actor: 'test' });
    browser = new BrowserlessClient(server.url);
    jwks = (await (await fetch(`${server.url}/jwks`)).json()) as JSONWebKeySet;
    as = await oauth.processDiscoveryResponse(new URL(issuer), await oauth.discoveryRequest(new URL(issuer), { algorithm: 'oidc', ...insecure }));
  });
  after(async () => {
    await server.close();
  });

  /** openid-client's Configuration for a client, from discovery of the real server. */
  const configure = (registered: RegisteredClient, auth?: client.ClientAuth) => {
    const authentication = auth ?? (registered === signed ? client.PrivateKeyJwt(signedKey) : registered.clientSecret !== undefined ? client.ClientSecretBasic(registered.clientSecret) : client.None());
    return client.discovery(new URL(issuer), registered.clientId, registered.clientSecret, authentication, { execute: [client.allowInsecureRequests] });
  };
  /** oauth4webapi's client authentication for a registered client. */
  const o4wAuth = (registered: RegisteredClient): oauth.ClientAuth =>
    registered === signed ? oauth.PrivateKeyJwt(signedKey) : registered.clientSecret !== undefined ? oauth.ClientSecretBasic(registered.clientSecret) : oauth.None();

  interface OpenIdClientFlow {
    readonly tokens: Awaited<ReturnType<typeof client.authorizationCodeGrant>>;
    readonly callback: URL;
    readonly nonce: string;
  }

  /** openid-client builds the authorization URL, the browser goes through sign-in and consent, openid-client redeems the code. */
  async function openIdClientCodeFlow(config: client.Configuration, options: { dpop?: client.DPoPHandle; parameters?: Record<string, string>; par?: boolean } = {}): Promise<OpenIdClientFlow> {
    const verifier = client.randomPKCECodeVerifier();
    const state = client.randomState();
    const nonce = client.randomNonce();
    const parameters = { redirect_uri: REDIRECT, scope: USER_SCOPE, code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', state, nonce, ...options.parameters };
    const url = options.par === true ? await client.buildAuthorizationUrlWithPAR(config, parameters, options.dpop !== undefined ? { DPoP: options.dpop } : undefined) : client.buildAuthorizationUrl(config, parameters);
    const callback = await completeAuthorization(browser, url, person, { redirectUri: REDIRECT });
    const tokens = await client.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce }, undefined, options.dpop !== undefined ? { DPoP: options.dpop } : undefined);
    return { tokens, callback, nonce };
  }

  interface O4wFlow {
    readonly result: oauth.TokenEndpointResponse;
    readonly claims: oauth.IDToken;
    readonly callback: URL;
    readonly nonce: string;
  }

  /** The same with oauth4webapi: its PKCE helpers, validateAuthResponse (state, iss), the code grant, ID token checks and signature. */
  async function o4wCodeFlow(registered: RegisteredClient, options: { dpop?: oauth.DPoPHandle; parameters?: Record<string, string>; par?: boolean; client?: Partial<oauth.Client> } = {}): Promise<O4wFlow> {
    const o4wClient: oauth.Client = { ...options.client, client_id: registered.clientId };
    const auth = o4wAuth(registered);
    const verifier = oauth.generateRandomCodeVerifier();
    const state = oauth.generateRandomState();
    const nonce = oauth.generateRandomNonce();
    const parameters = new URLSearchParams({ client_id: registered.clientId, response_type: 'code', redirect_uri: REDIRECT, scope: USER_SCOPE, code_challenge: await oauth.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', state, nonce, ...options.parameters });
    const url = new URL(as.authorization_endpoint!);
    if (options.par === true) {
      const pushed = await oauth.processPushedAuthorizationResponse(as, o4wClient, await oauth.pushedAuthorizationRequest(as, o4wClient, auth, parameters, { ...insecure, ...(options.dpop !== undefined && { DPoP: options.dpop }) }));
      url.searchParams.set('client_id', registered.clientId);
      url.searchParams.set('request_uri', pushed.request_uri);
    } else {
      for (const [name, value] of parameters) url.searchParams.set(name, value);
    }
    const callback = await completeAuthorization(browser, url, person, { redirectUri: REDIRECT });
    const callbackParameters = oauth.validateAuthResponse(as, o4wClient, callback, state);
    const response = await oauth.authorizationCodeGrantRequest(as, o4wClient, auth, callbackParameters, REDIRECT, verifier, { ...insecure, ...(options.dpop !== undefined && { DPoP: options.dpop }) });
    const result = await oauth.processAuthorizationCodeResponse(as, o4wClient, response, { expectedNonce: nonce, requireIdToken: true });
    // OIDC Core section 3.1.3.7 lets a client rely on TLS instead; this checks the signature against /jwks too.
    await oauth.validateApplicationLevelSignature(as, response, insecure);
    return { result, claims: oauth.getValidatedIdTokenClaims(result)!, callback, nonce };
  }

  /** The claims of an access token, verified with jose against the published JWKS (RFC 9068 section 4). */
  const verifyAccessToken = async (token: string, audience = issuer) =>
    (await jwtVerify(token, createLocalJWKSet(jwks), { issuer, audience, typ: 'at+jwt', algorithms: ['EdDSA', 'ES256', 'RS256', 'PS256'] })).payload;

  /** oauth4webapi as a resource server (RFC 9068): validates the token on a request to the API. */
  const resourceServerValidates = (accessToken: string, expectedAudience: string) =>
    oauth.validateJwtAccessToken(as, new Request(`${API}things`, { headers: { authorization: `Bearer ${accessToken}` } }), expectedAudience, insecure);

  const introspectAsWeb = async (token: string) => {
    const o4wClient: oauth.Client = { client_id: web.clientId };
    return oauth.processIntrospectionResponse(as, o4wClient, await oauth.introspectionRequest(as, o4wClient, oauth.ClientSecretBasic(web.clientSecret!), token, insecure));
  };

  describe('discovery', () => {
    it('openid-client discovery() accepts the OpenID and the RFC 8414 metadata', async () => {
      for (const algorithm of ['oidc', 'oauth2'] as const) {
        const config = await client.discovery(new URL(issuer), spa.clientId, undefined, client.None(), { algorithm, execute: [client.allowInsecureRequests] });
        const metadata = config.serverMetadata();
        assert.equal(metadata.issuer, issuer, algorithm);
        assert.ok(metadata.supportsPKCE('S256'), `${algorithm}: PKCE S256 advertised`);
        assert.equal(metadata.authorization_response_iss_parameter_supported, true);
        assert.equal(metadata.token_endpoint, `${issuer}/token`);
        assert.equal(metadata.pushed_authorization_request_endpoint, `${issuer}/par`);
      }
    });

    it('oauth4webapi discoveryRequest + processDiscoveryResponse accept both documents (issuer match)', async () => {
      for (const algorithm of ['oidc', 'oauth2'] as const) {
        const metadata = await oauth.processDiscoveryResponse(new URL(issuer), await oauth.discoveryRequest(new URL(issuer), { algorithm, ...insecure }));
        assert.equal(metadata.issuer, issuer);
        assert.deepEqual(metadata.code_challenge_methods_supported, ['S256']);
        assert.deepEqual(metadata.response_types_supported, ['code']);
        for (const endpoint of ['authorization_endpoint', 'token_endpoint', 'jwks_uri', 'introspection_endpoint', 'revocation_endpoint'] as const) {
          assert.ok(metadata[endpoint]?.startsWith(`${issuer}/`), `${algorithm}: ${endpoint}`);
        }
      }
      await assert.rejects(oauth.processDiscoveryResponse(new URL('http://127.0.0.1:1/'), await oauth.discoveryRequest(new URL(issuer), insecure)), /"issuer" property does not match/, 'an issuer mismatch is caught (the check is live)');
    });

    it('both documents advertise DPoP (RFC 9449 section 5.1) with the algorithms the libraries sign proofs with by default', async () => {
      for (const algorithm of ['oidc', 'oauth2'] as const) {
        const metadata = await oauth.processDiscoveryResponse(new URL(issuer), await oauth.discoveryRequest(new URL(issuer), { algorithm, ...insecure }));
        const algs = metadata.dpop_signing_alg_values_supported;
        assert.ok(Array.isArray(algs), `${algorithm}: dpop_signing_alg_values_supported is listed`);
        for (const alg of ['ES256', 'EdDSA']) assert.ok(algs.includes(alg), `${algorithm}: ${alg}`);
      }
    });
  });

  describe('authorization code flow with PKCE, ID token, userinfo, refresh', () => {
    it('openid-client, public client (none): iss, state, nonce, ID token signature, aud, at_hash; userinfo; refresh rotation', async () => {
      const config = await configure(spa);
      client.enableNonRepudiationChecks(config);
      const { tokens, callback, nonce } = await openIdClientCodeFlow(config);
      assert.equal(callback.searchParams.get('iss'), issuer, 'RFC 9207 iss (openid-client checked it too)');
      assert.equal(tokens.token_type, 'bearer');
      assert.equal(tokens.scope, USER_SCOPE);
      const claims = tokens.claims()!;
      assert.equal(claims.iss, issuer);
      assert.equal(claims.aud, spa.clientId);
      assert.equal(claims.nonce, nonce);
      assert.equal(typeof claims.auth_time, 'number');
      const { alg } = decodeProtectedHeader(tokens.id_token!);
      assert.equal(claims['at_hash'], atHash(tokens.access_token, alg!), 'at_hash binds the access token');
      const access = await verifyAccessToken(tokens.access_token);
      assert.equal(access.sub, claims.sub);
      assert.equal(access['client_id'], spa.clientId);

      const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
      assert.deepEqual(userinfo, { sub: claims.sub, email: person.email, email_verified: false });
      await rejectsWithMessage(client.fetchUserInfo(config, tokens.access_token, 'someone-else'), /unexpected JSON attribute value|"sub"/);

      const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token!);
      assert.ok(refreshed.refresh_token !== undefined && refreshed.refresh_token !== tokens.refresh_token, 'the refresh token rotated');
      assert.notEqual(refreshed.access_token, tokens.access_token);
      // OIDC Core section 12.2: same iss, sub, aud; auth_time of the original sign-in; no nonce (or the same).
      const refreshedClaims = refreshed.claims()!;
      assert.equal(refreshedClaims.sub, claims.sub, 'a refreshed ID token names the same subject');
      assert.equal(refreshedClaims.aud, claims.aud);
      assert.equal(refreshedClaims.auth_time, claims.auth_time, 'auth_time is still the original sign-in');
      assert.ok(refreshedClaims.nonce === undefined || refreshedClaims.nonce === claims.nonce);
      // Two tabs refreshing at once: a repeat within the grace window gets the same successor, not a revocation.
      const repeated = await client.refreshTokenGrant(config, tokens.refresh_token!);
      assert.equal(repeated.refresh_token, refreshed.refresh_token, 'the same successor within the grace window');
      const again = await client.refreshTokenGrant(config, refreshed.refresh_token);
      assert.notEqual(again.refresh_token, refreshed.refresh_token, 'and again');
    });

    it('openid-client, confidential client (client_secret_basic)', async () => {
      const config = await configure(web);
      client.enableNonRepudiationChecks(config);
      const { tokens } = await openIdClientCodeFlow(config);
      const claims = tokens.claims()!;
      assert.equal(claims.aud, web.clientId);
      const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
      assert.equal(userinfo.email, person.email);
      const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token!);
      assert.notEqual(refreshed.refresh_token, tokens.refresh_token);
    });

    it('oauth4webapi, public client (none): validateAuthResponse, code grant, ID token claims and signature; userinfo; refresh rotation', async () => {
      const o4wClient: oauth.Client = { client_id: spa.clientId };
      const { result, claims, callback, nonce } = await o4wCodeFlow(spa);
      assert.equal(callback.searchParams.get('iss'), issuer);
      assert.equal(result.token_type, 'bearer');
      assert.equal(claims.iss, issuer);
      assert.equal(claims.aud, spa.clientId);
      assert.equal(claims.nonce, nonce);
      assert.equal(claims['at_hash'], atHash(result.access_token, decodeProtectedHeader(result.id_token!).alg!));

      const userinfo = await oauth.processUserInfoResponse(as, o4wClient, claims.sub, await oauth.userInfoRequest(as, o4wClient, result.access_token, insecure));
      assert.deepEqual(userinfo, { sub: claims.sub, email: person.email, email_verified: false });

      const refreshResponse = await oauth.refreshTokenGrantRequest(as, o4wClient, oauth.None(), result.refresh_token!, insecure);
      const refreshed = await oauth.processRefreshTokenResponse(as, o4wClient, refreshResponse);
      await oauth.validateApplicationLevelSignature(as, refreshResponse, insecure);
      assert.ok(refreshed.refresh_token !== undefined && refreshed.refresh_token !== result.refresh_token, 'rotated');
      assert.equal(oauth.getValidatedIdTokenClaims(refreshed)?.sub, claims.sub);
    });

    it('oauth4webapi, confidential client (client_secret_basic)', async () => {
      const o4wClient: oauth.Client = { client_id: web.clientId };
      const { result, claims } = await o4wCodeFlow(web);
      assert.equal(claims.aud, web.clientId);
      const userinfo = await oauth.processUserInfoResponse(as, o4wClient, claims.sub, await oauth.userInfoRequest(as, o4wClient, result.access_token, insecure));
      assert.equal(userinfo.sub, claims.sub);
      const refreshed = await oauth.processRefreshTokenResponse(as, o4wClient, await oauth.refreshTokenGrantRequest(as, o4wClient, oauth.ClientSecretBasic(web.clientSecret!), result.refresh_token!, insecure));
      assert.notEqual(refreshed.refresh_token, result.refresh_token);
    });

    it('ID tokens in each signing algorithm a client may register verify in both libraries (key selection from /jwks, at_hash)', async () => {
      for (const alg of ['EdDSA', 'ES256', 'RS256', 'PS256'] as const) {
        const registered = await registerClient(server, { ...userClientMetadata, client_name: `${alg} app`, token_endpoint_auth_method: 'none', application_type: 'native', id_token_signed_response_alg: alg });
        const config = await client.discovery(new URL(issuer), registered.clientId, { id_token_signed_response_alg: alg }, client.None(), { execute: [client.allowInsecureRequests] });
        client.enableNonRepudiationChecks(config);
        const { tokens } = await openIdClientCodeFlow(config);
        assert.equal(decodeProtectedHeader(tokens.id_token!).alg, alg);
        assert.equal(tokens.claims()?.['at_hash'], atHash(tokens.access_token, alg), `${alg}: at_hash`);
        const { result } = await o4wCodeFlow(registered, { client: { id_token_signed_response_alg: alg } });
        assert.equal(decodeProtectedHeader(result.id_token!).alg, alg);
      }
    });

    it('strict relying party: a dynamically registered client that names no algorithm gets RS256 ID tokens, which openid-client validates expecting RS256 only (OIDC Registration section 2, Discovery section 3)', async () => {
      const registration = await fetch(`${server.url}/register`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ client_name: 'Strict RP', redirect_uris: [REDIRECT], grant_types: ['authorization_code', 'refresh_token'], scope: USER_SCOPE, token_endpoint_auth_method: 'none', application_type: 'native' }),
      });
      assert.equal(registration.status, 201);
      const registered = (await registration.json()) as { client_id: string; id_token_signed_response_alg: string };
      assert.equal(registered.id_token_signed_response_alg, 'RS256', 'the registration response names the default');
      const discovered = await client.discovery(new URL(issuer), registered.client_id, undefined, client.None(), { execute: [client.allowInsecureRequests] });
      assert.ok((discovered.serverMetadata().id_token_signing_alg_values_supported ?? []).includes('RS256'), 'Discovery section 3: RS256 MUST be listed');
      // A strict RP takes nothing from the server's list: with neither the client nor the
      // server naming an algorithm, openid-client (oauth4webapi) accepts RS256 only.
      const strictMetadata = { ...discovered.serverMetadata() };
      delete strictMetadata.id_token_signing_alg_values_supported;
      const config = new client.Configuration(strictMetadata, registered.client_id, undefined, client.None());
      client.allowInsecureRequests(config);
      client.enableNonRepudiationChecks(config);
      const { tokens } = await openIdClientCodeFlow(config);
      assert.equal(decodeProtectedHeader(tokens.id_token!).alg, 'RS256');
      assert.equal(tokens.claims()?.aud, registered.client_id);
      assert.equal(tokens.claims()?.['at_hash'], atHash(tokens.access_token, 'RS256'));
      // Access tokens keep the server default.
      assert.equal(decodeProtectedHeader(tokens.access_token).alg, 'EdDSA');
    });

    it('a resource indicator on the authorization request (RFC 8707) sets the access token audience; a resource server validates it', async () => {
      const config = await configure(web);
      const { tokens } = await openIdClientCodeFlow(config, { parameters: { resource: API } });
      const validated = await resourceServerValidates(tokens.access_token, API);
      assert.equal(validated.aud, API);
      assert.equal(validated.sub, tokens.claims()!.sub);
      await rejectsWithMessage(resourceServerValidates(tokens.access_token, issuer), /unexpected JWT "aud"/);
    });

    it('userinfo refuses an access token audience-restricted to another resource server (RFC 9068 section 4, RFC 8707)', async () => {
      const config = await configure(web);
      const { tokens } = await openIdClientCodeFlow(config, { parameters: { resource: API } });
      assert.equal(decodeJwt(tokens.access_token).aud, API);
      await rejectsWithChallenge(client.fetchUserInfo(config, tokens.access_token, tokens.claims()!.sub));
    });

    it('a denied consent reaches both libraries as access_denied, with iss', async () => {
      const config = await configure(spa);
      const state = client.randomState();
      const verifier = client.randomPKCECodeVerifier();
      const url = client.buildAuthorizationUrl(config, { redirect_uri: REDIRECT, scope: USER_SCOPE, state, code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', prompt: 'consent' });
      const callback = await completeAuthorization(browser, url, person, { redirectUri: REDIRECT, consent: 'deny' });
      await assert.rejects(client.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier, expectedState: state }), (error: unknown) => error instanceof client.AuthorizationResponseError && error.error === 'access_denied');
      assert.throws(() => oauth.validateAuthResponse(as, { client_id: spa.clientId }, callback, state), (error: unknown) => error instanceof oauth.AuthorizationResponseError && error.error === 'access_denied');
    });
  });

  describe('DPoP-bound tokens (RFC 9449)', () => {
    it('openid-client getDPoPHandle: token_type DPoP, cnf.jkt, userinfo with DPoP, the token refused as Bearer, DPoP-bound refresh', async () => {
      const config = await configure(spa);
      const keyPair = await client.randomDPoPKeyPair('ES256');
      const dpop = client.getDPoPHandle(config, keyPair);
      const { tokens } = await openIdClientCodeFlow(config, { dpop });
      assert.equal(tokens.token_type, 'dpop');
      const access = await verifyAccessToken(tokens.access_token);
      assert.deepEqual(access['cnf'], { jkt: await thumbprint(keyPair) });
      const sub = tokens.claims()!.sub;
      const userinfo = await client.fetchUserInfo(config, tokens.access_token, sub, { DPoP: dpop });
      assert.equal(userinfo.sub, sub);
      const challenge = await rejectsWithChallenge(client.fetchUserInfo(config, tokens.access_token, sub));
      assert.equal(challenge.cause[0]?.scheme, 'dpop', 'the server answers with a DPoP challenge');
      // A public client's refresh token is bound to the key too.
      await rejectsWithOAuthError(client.refreshTokenGrant(config, tokens.refresh_token!), 'invalid_grant');
      const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token!, undefined, { DPoP: dpop });
      assert.equal(refreshed.token_type, 'dpop');
      const otherKey = client.getDPoPHandle(config, await client.randomDPoPKeyPair('ES256'));
      await rejectsWithChallenge(client.fetchUserInfo(config, refreshed.access_token, sub, { DPoP: otherKey }));
      // RFC 7662 + RFC 9449 section 6.2: introspection reports the binding, to the resource
      // server the token is for (security review 14: the web app's client acts for API).
      const { tokens: forApi } = await openIdClientCodeFlow(config, { dpop, parameters: { resource: API } });
      const introspection = await client.tokenIntrospection(await configure(web), forApi.access_token);
      assert.equal(introspection.active, true);
      assert.equal(introspection.token_type, 'DPoP');
      assert.deepEqual(introspection.cnf, { jkt: await thumbprint(keyPair) });
    });

    it('openid-client with dpop_jkt on the authorization request: the code is redeemed only with that key (RFC 9449 section 10)', async () => {
      const config = await configure(spa);
      const keyPair = await client.randomDPoPKeyPair('ES256');
      const jkt = await thumbprint(keyPair);
      const wrongKey = client.getDPoPHandle(config, await client.randomDPoPKeyPair('ES256'));
      await assert.rejects(openIdClientCodeFlow(config, { dpop: wrongKey, parameters: { dpop_jkt: jkt } }), (error: unknown) => error instanceof client.ResponseBodyError && error.error === 'invalid_grant');
      await assert.rejects(openIdClientCodeFlow(config, { parameters: { dpop_jkt: jkt } }), (error: unknown) => error instanceof client.ResponseBodyError && error.error === 'invalid_grant');
      const { tokens } = await openIdClientCodeFlow(config, { dpop: client.getDPoPHandle(config, keyPair), parameters: { dpop_jkt: jkt } });
      assert.equal(tokens.token_type, 'dpop');
    });

    it('oauth4webapi DPoP(): the same, with an EdDSA key; a resource server validates the bound token with the proof', async () => {
      const o4wClient: oauth.Client = { client_id: spa.clientId };
      const keyPair = await oauth.generateKeyPair('EdDSA');
      const dpop = oauth.DPoP(o4wClient, keyPair);
      const { result, claims } = await o4wCodeFlow(spa, { dpop });
      assert.equal(result.token_type, 'dpop');
      assert.deepEqual(result.cnf ?? (await verifyAccessToken(result.access_token))['cnf'], { jkt: await thumbprint(keyPair) });
      const userinfo = await oauth.processUserInfoResponse(as, o4wClient, claims.sub, await oauth.userInfoRequest(as, o4wClient, result.access_token, { ...insecure, DPoP: dpop }));
      assert.equal(userinfo.sub, claims.sub);
      await rejectsWithChallenge(oauth.processUserInfoResponse(as, o4wClient, claims.sub, await oauth.userInfoRequest(as, o4wClient, result.access_token, insecure)));

      // The resource server's side: a request carrying the token and a proof made by oauth4webapi for it.
      let captured: Headers | undefined;
      await oauth.protectedResourceRequest(result.access_token, 'GET', new URL(`${API}things`), new Headers(), null, {
        DPoP: dpop,
        [oauth.customFetch]: async (_url: string, init: RequestInit) => {
          captured = new Headers(init.headers);
          return new Response(null, { status: 204 });
        },
      });
      const bound = await oauth.validateJwtAccessToken(as, new Request(`${API}things`, { headers: captured! }), issuer, insecure);
      assert.equal(bound.sub, claims.sub);
      await rejectsWithMessage(resourceServerValidates(result.access_token, issuer), /DPoP/i);
    });

    it('client_credentials with DPoP via both libraries gives DPoP-bound tokens', async () => {
      const config = await configure(service);
      const keyPair = await client.randomDPoPKeyPair();
      const tokens = await client.clientCredentialsGrant(config, { scope: API_SCOPE }, { DPoP: client.getDPoPHandle(config, keyPair) });
      assert.equal(tokens.token_type, 'dpop');
      assert.deepEqual((await verifyAccessToken(tokens.access_token, API))['cnf'], { jkt: await thumbprint(keyPair) });
      const o4wClient: oauth.Client = { client_id: service.clientId };
      const o4wKeys = await oauth.generateKeyPair('ES256');
      const response = await oauth.clientCredentialsGrantRequest(as, o4wClient, o4wAuth(service), { scope: API_SCOPE }, { ...insecure, DPoP: oauth.DPoP(o4wClient, o4wKeys) });
      const result = await oauth.processClientCredentialsResponse(as, o4wClient, response);
      assert.equal(result.token_type, 'dpop');
      assert.deepEqual((await verifyAccessToken(result.access_token, API))['cnf'], { jkt: await thumbprint(o4wKeys) });
    });
  });

  describe('pushed authorization requests (RFC 9126)', () => {
    it('openid-client buildAuthorizationUrlWithPAR (client_secret_basic)', async () => {
      const config = await configure(web);
      const { tokens, callback } = await openIdClientCodeFlow(config, { par: true });
      assert.ok(callback.searchParams.get('code'));
      assert.equal(tokens.claims()?.aud, web.clientId);
    });

    it('oauth4webapi pushedAuthorizationRequest (private_key_jwt)', async () => {
      const { claims } = await o4wCodeFlow(signed, { par: true });
      assert.equal(claims.aud, signed.clientId);
    });

    it('a dpop_jkt pushed with the request binds the code to that key (RFC 9449 section 10)', async () => {
      const o4wClient: oauth.Client = { client_id: web.clientId };
      const keyPair = await oauth.generateKeyPair('ES256');
      const jkt = await thumbprint(keyPair);
      await assert.rejects(o4wCodeFlow(web, { par: true, parameters: { dpop_jkt: jkt } }), (error: unknown) => error instanceof oauth.ResponseBodyError && error.error === 'invalid_grant', 'redeemed without the key');
      const { result } = await o4wCodeFlow(web, { par: true, parameters: { dpop_jkt: jkt }, dpop: oauth.DPoP(o4wClient, keyPair) });
      assert.equal(result.token_type, 'dpop');
    });

    it('a DPoP proof sent with the pushed request binds the code to its key (RFC 9449 section 10.1)', async () => {
      const config = await configure(web);
      const dpop = client.getDPoPHandle(config, await client.randomDPoPKeyPair());
      const verifier = client.randomPKCECodeVerifier();
      const state = client.randomState();
      const url = await client.buildAuthorizationUrlWithPAR(config, { redirect_uri: REDIRECT, scope: USER_SCOPE, state, code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256' }, { DPoP: dpop });
      const callback = await completeAuthorization(browser, url, person, { redirectUri: REDIRECT });
      await rejectsWithOAuthError(client.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier, expectedState: state }), 'invalid_grant');
    });
  });

  describe('client_credentials and RFC 9068 access tokens', () => {
    // Security review 2: the audience is the resource that owns the scope, with or without a
    // resource parameter (it was the issuer without one).
    it('openid-client clientCredentialsGrant: jose verifies the JWT (typ at+jwt), oauth4webapi validateJwtAccessToken accepts it for the resource its scope belongs to, with or without a resource parameter', async () => {
      const config = await configure(service);
      const tokens = await client.clientCredentialsGrant(config, { scope: API_SCOPE });
      assert.equal(tokens.token_type, 'bearer');
      assert.equal(tokens.refresh_token, undefined, 'no refresh token for client_credentials (RFC 6749 section 4.4.3)');
      const payload = await verifyAccessToken(tokens.access_token, API);
      assert.equal(payload.sub, service.clientId);
      assert.equal(payload['client_id'], service.clientId);
      assert.equal(payload['scope'], API_SCOPE);
      const validated = await resourceServerValidates(tokens.access_token, API);
      assert.equal(validated.client_id, service.clientId);
      await rejectsWithMessage(resourceServerValidates(tokens.access_token, issuer), /unexpected JWT "aud"/);

      const forApi = await client.clientCredentialsGrant(config, { scope: API_SCOPE, resource: API });
      assert.equal((await verifyAccessToken(forApi.access_token, API)).aud, API);
      assert.equal((await resourceServerValidates(forApi.access_token, API)).aud, API);
      await rejectsWithMessage(resourceServerValidates(forApi.access_token, issuer), /unexpected JWT "aud"/);
    });

    it('client_secret_post via both libraries', async () => {
      const posting = await registerClient(server, { client_name: 'Posting service', grant_types: ['client_credentials'], scope: API_SCOPE, token_endpoint_auth_method: 'client_secret_post' }, [API_SCOPE]);
      const config = await configure(posting, client.ClientSecretPost(posting.clientSecret));
      const tokens = await client.clientCredentialsGrant(config, { scope: API_SCOPE });
      assert.equal((await verifyAccessToken(tokens.access_token, API)).sub, posting.clientId);
      const o4wClient: oauth.Client = { client_id: posting.clientId };
      const result = await oauth.processClientCredentialsResponse(as, o4wClient, await oauth.clientCredentialsGrantRequest(as, o4wClient, oauth.ClientSecretPost(posting.clientSecret!), { scope: API_SCOPE }, insecure));
      assert.equal((await verifyAccessToken(result.access_token, API)).sub, posting.clientId);
      // The registered method only: the same secret in a Basic header is refused (RFC 7591 section 2),
      // with the Basic challenge RFC 6749 section 5.2 asks for, which the library surfaces as such.
      const challenge = await rejectsWithChallenge(client.clientCredentialsGrant(await configure(posting, client.ClientSecretBasic(posting.clientSecret)), { scope: API_SCOPE }));
      assert.equal(challenge.cause[0]?.scheme, 'basic');
    });

    it('a token without the openid scope is refused at userinfo with 403 insufficient_scope (RFC 6750 section 3.1)', async () => {
      // No API scope: the token's audience stays the issuer, so userinfo judges its scope.
      const scopeless = await registerClient(server, { client_name: 'Scopeless service', grant_types: ['client_credentials'] });
      const o4wClient: oauth.Client = { client_id: scopeless.clientId };
      const result = await oauth.processClientCredentialsResponse(as, o4wClient, await oauth.clientCredentialsGrantRequest(as, o4wClient, oauth.ClientSecretBasic(scopeless.clientSecret!), {}, insecure));
      const response = await oauth.userInfoRequest(as, o4wClient, result.access_token, insecure);
      const body = (await response.clone().json()) as { error?: string };
      assert.equal(response.status, 403, `status ${response.status}, WWW-Authenticate: ${response.headers.get('www-authenticate') ?? ''}, body error ${body.error ?? ''}`);
      assert.equal(body.error, 'insufficient_scope');
    });

    it('oauth4webapi clientCredentialsGrantRequest: the same', async () => {
      const o4wClient: oauth.Client = { client_id: service.clientId };
      const result = await oauth.processClientCredentialsResponse(as, o4wClient, await oauth.clientCredentialsGrantRequest(as, o4wClient, o4wAuth(service), { scope: API_SCOPE, resource: API }, insecure));
      assert.equal(result.scope, API_SCOPE);
      const validated = await resourceServerValidates(result.access_token, API);
      assert.equal(validated.sub, service.clientId);
      assert.equal(decodeProtectedHeader(result.access_token).typ, 'at+jwt');
    });
  });

  describe('private_key_jwt client authentication', () => {
    it('openid-client PrivateKeyJwt: client_credentials, code flow and introspection', async () => {
      const config = await configure(signed);
      const tokens = await client.clientCredentialsGrant(config, { scope: API_SCOPE });
      assert.equal((await verifyAccessToken(tokens.access_token, API)).sub, signed.clientId);
      const { tokens: userTokens } = await openIdClientCodeFlow(config);
      assert.equal(userTokens.claims()?.aud, signed.clientId);
      const introspection = await client.tokenIntrospection(config, userTokens.access_token);
      assert.equal(introspection.active, true);
      assert.equal(introspection.client_id, signed.clientId);
    });

    it('oauth4webapi PrivateKeyJwt: client_credentials and introspection; an assertion by an unregistered key is refused', async () => {
      const o4wClient: oauth.Client = { client_id: signed.clientId };
      const result = await oauth.processClientCredentialsResponse(as, o4wClient, await oauth.clientCredentialsGrantRequest(as, o4wClient, oauth.PrivateKeyJwt(signedKey), { scope: API_SCOPE }, insecure));
      const introspection = await oauth.processIntrospectionResponse(as, o4wClient, await oauth.introspectionRequest(as, o4wClient, oauth.PrivateKeyJwt(signedKey), result.access_token, insecure));
      assert.equal(introspection.active, true);
      assert.equal(introspection.sub, signed.clientId);
      const stranger = await oauth.generateKeyPair('ES256');
      const refused = await rejectsWithOAuthError(
        oauth.processClientCredentialsResponse(as, o4wClient, await oauth.clientCredentialsGrantRequest(as, o4wClient, oauth.PrivateKeyJwt({ key: stranger.privateKey, kid: signedKey.kid! }), { scope: API_SCOPE }, insecure)),
        'invalid_client',
        401,
      );
      assert.ok(refused.error_description !== undefined);
    });
  });

  describe('private_key_jwt: forged assertions', () => {
    it('an assertion with alg none, or HS256 keyed with the registered public key (oauth4webapi ClientSecretJwt), is refused: invalid_client', async () => {
      const o4wClient: oauth.Client = { client_id: signed.clientId };
      const unsecured: oauth.ClientAuth = (server, _client, body) => {
        const now = Math.floor(Date.now() / 1000);
        body.set('client_id', signed.clientId);
        body.set('client_assertion_type', 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer');
        body.set('client_assertion', `${base64urlJson({ alg: 'none' })}.${base64urlJson({ iss: signed.clientId, sub: signed.clientId, aud: server.issuer, jti: randomBytes(16).toString('base64url'), iat: now, exp: now + 60 })}.`);
      };
      const registeredJwk = signed.metadata.jwks!.keys[0]!;
      const publicKeyPem = createPublicKey({ key: registeredJwk, format: 'jwk' }).export({ type: 'spki', format: 'pem' }).toString();
      const keyConfused = oauth.ClientSecretJwt(publicKeyPem, {
        [oauth.modifyAssertion]: (header) => {
          header['kid'] = signedKey.kid;
        },
      });
      for (const [name, auth] of [['alg none', unsecured], ['HS256 keyed with the public key', keyConfused]] as const) {
        const refused = await rejectsWithOAuthError(
          oauth.processClientCredentialsResponse(as, o4wClient, await oauth.clientCredentialsGrantRequest(as, o4wClient, auth, { scope: API_SCOPE }, insecure)),
          'invalid_client',
          401,
        ).catch((error: unknown) => {
          throw new Error(`${name}: ${describeError(error)}`);
        });
        assert.ok(refused.error_description !== undefined, name);
      }
    });
  });

  describe('introspection (RFC 7662) and revocation (RFC 7009)', () => {
    it('openid-client tokenIntrospection and tokenRevocation: a revoked access token, then a revoked refresh token, are inactive', async () => {
      const config = await configure(web);
      const { tokens } = await openIdClientCodeFlow(config);
      const active = await client.tokenIntrospection(config, tokens.access_token);
      assert.equal(active.active, true);
      assert.equal(active.client_id, web.clientId);
      assert.equal(active.sub, tokens.claims()!.sub);
      assert.equal(active.scope, USER_SCOPE);
      assert.equal(active.iss, issuer);
      assert.equal((await client.tokenIntrospection(config, tokens.refresh_token!)).active, true);
      await client.tokenRevocation(config, tokens.access_token, { token_type_hint: 'access_token' });
      assert.deepEqual(await client.tokenIntrospection(config, tokens.access_token), { active: false });
      await rejectsWithChallenge(client.fetchUserInfo(config, tokens.access_token, tokens.claims()!.sub));
      await client.tokenRevocation(config, tokens.refresh_token!);
      assert.deepEqual(await client.tokenIntrospection(config, tokens.refresh_token!), { active: false });
      await rejectsWithOAuthError(client.refreshTokenGrant(config, tokens.refresh_token!), 'invalid_grant');
    });

    it('oauth4webapi introspectionRequest and revocationRequest; a public client revokes its own refresh token', async () => {
      // Security review 14: the web app's client acts for API, so it sees tokens issued for API.
      const { result } = await o4wCodeFlow(spa, { parameters: { resource: API } });
      assert.equal((await introspectAsWeb(result.access_token)).active, true, 'the resource server a token is for may introspect it');
      const o4wClient: oauth.Client = { client_id: spa.clientId };
      await oauth.processRevocationResponse(await oauth.revocationRequest(as, o4wClient, oauth.None(), result.refresh_token!, { ...insecure, additionalParameters: { token_type_hint: 'refresh_token' } }));
      assert.equal((await introspectAsWeb(result.access_token)).active, false, 'revoking the refresh token revoked its access token (RFC 7009 section 2.1)');
      await rejectsWithOAuthError(oauth.processRefreshTokenResponse(as, o4wClient, await oauth.refreshTokenGrantRequest(as, o4wClient, oauth.None(), result.refresh_token!, insecure)), 'invalid_grant');
      // Section 2.2: an unknown token is answered 200 too.
      await oauth.processRevocationResponse(await oauth.revocationRequest(as, o4wClient, oauth.None(), 'not-a-token', insecure));
    });

    it('a public client may not introspect (RFC 7662 section 2.1); a client may not revoke another client\'s token (RFC 7009 section 2.1)', async () => {
      const { result } = await o4wCodeFlow(web);
      const o4wSpa: oauth.Client = { client_id: spa.clientId };
      await rejectsWithOAuthError(oauth.processIntrospectionResponse(as, o4wSpa, await oauth.introspectionRequest(as, o4wSpa, oauth.None(), result.access_token, insecure)), 'invalid_client', 401);
      const otherConfig = await configure(other);
      await assert.rejects(client.tokenRevocation(otherConfig, result.access_token), (error: unknown) => error instanceof client.ResponseBodyError && error.status === 400);
      await assert.rejects(client.tokenRevocation(otherConfig, result.refresh_token!), (error: unknown) => error instanceof client.ResponseBodyError && error.status === 400);
      assert.equal((await introspectAsWeb(result.access_token)).active, true, 'still active');
      assert.equal((await introspectAsWeb(result.refresh_token!)).active, true, 'still active');
    });
  });

  describe('refusals (RFC 9700) as the libraries surface them', () => {
    it('oauth4webapi validateJwtAccessToken refuses alg none and an HS256 token keyed with the server public key; so do /userinfo and /introspect', async () => {
      const { result } = await o4wCodeFlow(spa);
      const header = decodeProtectedHeader(result.access_token);
      const signingJwk = jwks.keys.find((key) => key.kid === header.kid)!;
      const rsaJwk = jwks.keys.find((key) => key.kty === 'RSA')!;
      const forgeries = {
        'alg none': unsecuredCopy(result.access_token),
        'HS256 keyed with the signing key (SPKI PEM)': keyConfusionCopy(result.access_token, createPublicKey({ key: signingJwk, format: 'jwk' }).export({ type: 'spki', format: 'pem' }).toString()),
        'HS256 keyed with the signing key (raw bytes)': keyConfusionCopy(result.access_token, Buffer.from((signingJwk.x ?? signingJwk.n)!, 'base64url')),
        'HS256 keyed with the RSA key (SPKI PEM)': keyConfusionCopy(result.access_token, createPublicKey({ key: rsaJwk, format: 'jwk' }).export({ type: 'spki', format: 'pem' }).toString()),
        'HS256 keyed with the RSA key (PKCS#1 PEM)': keyConfusionCopy(result.access_token, createPublicKey({ key: rsaJwk, format: 'jwk' }).export({ type: 'pkcs1', format: 'pem' }).toString()),
      };
      assert.equal((await resourceServerValidates(result.access_token, issuer)).sub, decodeJwt(result.access_token).sub, 'the genuine token is accepted');
      const o4wClient: oauth.Client = { client_id: spa.clientId };
      for (const [name, forged] of Object.entries(forgeries)) {
        await rejectsWithMessage(resourceServerValidates(forged, issuer), /unexpected JWT "alg" header parameter/);
        await rejectsWithChallenge(oauth.processUserInfoResponse(as, o4wClient, oauth.skipSubjectCheck, await oauth.userInfoRequest(as, o4wClient, forged, insecure))).catch((error: unknown) => {
          throw new Error(`${name} at /userinfo: ${describeError(error)}`);
        });
        assert.deepEqual(await introspectAsWeb(forged), { active: false }, `${name} at /introspect`);
      }
    });

    it('openid-client refuses a forged ID token in the token response: alg none, HS256 with the public key, a signature by another key', async () => {
      const forge = async (original: string, kind: 'none' | 'hs256' | 'foreign'): Promise<string> => {
        if (kind === 'none') return unsecuredCopy(original);
        if (kind === 'hs256') {
          const jwk = jwks.keys.find((key) => key.kid === decodeProtectedHeader(original).kid)!;
          return keyConfusionCopy(original, createPublicKey({ key: jwk, format: 'jwk' }).export({ type: 'spki', format: 'pem' }).toString());
        }
        // Right alg and kid, signed by a key the server never published.
        const { header, payload } = jwtParts(original);
        const foreign = await oauth.generateKeyPair('EdDSA');
        const input = `${base64urlJson({ ...header, alg: 'EdDSA' })}.${base64urlJson(payload)}`;
        const signature = await webcrypto.subtle.sign('Ed25519', foreign.privateKey, Buffer.from(input));
        return `${input}.${Buffer.from(signature).toString('base64url')}`;
      };
      const expectations = { none: /unexpected JWT "alg" header parameter/, hs256: /unexpected JWT "alg" header parameter/, foreign: /signature verification failed/i } as const;
      for (const kind of ['none', 'hs256', 'foreign'] as const) {
        const config = await configure(spa);
        client.enableNonRepudiationChecks(config);
        // A man in the middle of the token response (what TLS, or the signature check, must stop).
        config[client.customFetch] = async (url, options) => {
          const response = await fetch(url, options);
          if (new URL(url).pathname !== '/token' || response.status !== 200) return response;
          const body = (await response.json()) as Record<string, unknown>;
          const forged = { ...body, id_token: await forge(body['id_token'] as string, kind) };
          return new Response(JSON.stringify(forged), { status: 200, headers: { 'content-type': 'application/json', 'cache-control': 'no-store' } });
        };
        await rejectsWithMessage(openIdClientCodeFlow(config), expectations[kind]).catch((error: unknown) => {
          throw new Error(`${kind}: ${describeError(error)}`);
        });
      }
    });

    it('oauth4webapi refuses the same forged ID tokens in processAuthorizationCodeResponse / validateApplicationLevelSignature', async () => {
      const { result } = await o4wCodeFlow(spa);
      const o4wClient: oauth.Client = { client_id: spa.clientId };
      const tokenResponse = (idToken: string) => new Response(JSON.stringify({ ...result, token_type: 'Bearer', id_token: idToken }), { status: 200, headers: { 'content-type': 'application/json' } });
      const jwk = jwks.keys.find((key) => key.kid === decodeProtectedHeader(result.id_token!).kid)!;
      const claims = oauth.getValidatedIdTokenClaims(result)!;
      for (const forged of [unsecuredCopy(result.id_token!), keyConfusionCopy(result.id_token!, createPublicKey({ key: jwk, format: 'jwk' }).export({ type: 'spki', format: 'pem' }).toString())]) {
        await rejectsWithMessage(oauth.processAuthorizationCodeResponse(as, o4wClient, tokenResponse(forged), { expectedNonce: claims.nonce! }), /unexpected JWT "alg" header parameter/);
      }
      // Even a client that allowed HS256 would not get past the signature check: it refuses HMAC outright.
      const lenient: oauth.Client = { client_id: spa.clientId, id_token_signed_response_alg: 'HS256' };
      const forged = tokenResponse(keyConfusionCopy(result.id_token!, createPublicKey({ key: jwk, format: 'jwk' }).export({ type: 'spki', format: 'pem' }).toString()));
      await oauth.processAuthorizationCodeResponse(as, lenient, forged, { expectedNonce: claims.nonce! });
      await rejectsWithMessage(oauth.validateApplicationLevelSignature(as, forged, insecure), /unsupported JWS algorithm/);
    });

    it('a wrong PKCE verifier: invalid_grant through both libraries', async () => {
      const config = await configure(spa);
      const state = client.randomState();
      const url = client.buildAuthorizationUrl(config, { redirect_uri: REDIRECT, scope: USER_SCOPE, state, code_challenge: await client.calculatePKCECodeChallenge(client.randomPKCECodeVerifier()), code_challenge_method: 'S256' });
      const callback = await completeAuthorization(browser, url, person, { redirectUri: REDIRECT });
      await rejectsWithOAuthError(client.authorizationCodeGrant(config, callback, { pkceCodeVerifier: client.randomPKCECodeVerifier(), expectedState: state }), 'invalid_grant');

      const o4wClient: oauth.Client = { client_id: spa.clientId };
      const o4wState = oauth.generateRandomState();
      const o4wUrl = new URL(as.authorization_endpoint!);
      o4wUrl.search = new URLSearchParams({ client_id: spa.clientId, response_type: 'code', redirect_uri: REDIRECT, scope: USER_SCOPE, state: o4wState, code_challenge: await oauth.calculatePKCECodeChallenge(oauth.generateRandomCodeVerifier()), code_challenge_method: 'S256' }).toString();
      const o4wCallback = await completeAuthorization(browser, o4wUrl, person, { redirectUri: REDIRECT });
      const parameters = oauth.validateAuthResponse(as, o4wClient, o4wCallback, o4wState);
      await rejectsWithOAuthError(oauth.processAuthorizationCodeResponse(as, o4wClient, await oauth.authorizationCodeGrantRequest(as, o4wClient, oauth.None(), parameters, REDIRECT, oauth.generateRandomCodeVerifier(), insecure)), 'invalid_grant');
    });

    it('a redirect URI that is not registered: a 400 page, never a redirect; PAR answers invalid_request', async () => {
      const config = await configure(spa);
      // (Another port on 127.0.0.1 is this native client's right, RFC 8252 section 7.3; localhost is a name, matched exactly.)
      for (const redirectUri of [`${REDIRECT}x`, `${REDIRECT}/`, 'http://localhost:8080/callback', 'http://127.0.0.1:8081/callbackx', 'https://attacker.example/callback']) {
        const url = client.buildAuthorizationUrl(config, { redirect_uri: redirectUri, scope: USER_SCOPE, state: client.randomState(), code_challenge: await client.calculatePKCECodeChallenge(client.randomPKCECodeVerifier()), code_challenge_method: 'S256' });
        const page = await browser.get(url.toString());
        assert.equal(page.status, 400, redirectUri);
        assert.equal(page.location, null, `${redirectUri}: no redirect`);
        assert.match(page.body, /redirect_uri is not one this application registered/);
        await assert.rejects(completeAuthorization(browser, url, person, { redirectUri }), AuthorizationPageStop);
      }
      const o4wClient: oauth.Client = { client_id: web.clientId };
      const pushed = oauth.pushedAuthorizationRequest(as, o4wClient, o4wAuth(web), { response_type: 'code', redirect_uri: `${REDIRECT}x`, scope: USER_SCOPE, code_challenge: await oauth.calculatePKCECodeChallenge(oauth.generateRandomCodeVerifier()), code_challenge_method: 'S256' }, insecure);
      await rejectsWithOAuthError(oauth.processPushedAuthorizationResponse(as, o4wClient, await pushed), 'invalid_request');
    });

    it('a code redeemed twice: the second redemption is refused and what the first got is revoked (both libraries)', async () => {
      const config = await configure(web);
      const verifier = client.randomPKCECodeVerifier();
      const state = client.randomState();
      const nonce = client.randomNonce();
      const url = client.buildAuthorizationUrl(config, { redirect_uri: REDIRECT, scope: USER_SCOPE, state, nonce, code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256' });
      const callback = await completeAuthorization(browser, url, person, { redirectUri: REDIRECT });
      const checks = { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce };
      const first = await client.authorizationCodeGrant(config, callback, checks);
      await rejectsWithOAuthError(client.authorizationCodeGrant(config, callback, checks), 'invalid_grant');
      assert.equal((await client.tokenIntrospection(config, first.access_token)).active, false, 'the first access token is revoked (RFC 6749 section 10.5)');
      assert.equal((await client.tokenIntrospection(config, first.refresh_token!)).active, false, 'and its refresh token');

      const o4wClient: oauth.Client = { client_id: web.clientId };
      const o4wVerifier = oauth.generateRandomCodeVerifier();
      const o4wState = oauth.generateRandomState();
      const o4wUrl = new URL(as.authorization_endpoint!);
      o4wUrl.search = new URLSearchParams({ client_id: web.clientId, response_type: 'code', redirect_uri: REDIRECT, scope: USER_SCOPE, state: o4wState, code_challenge: await oauth.calculatePKCECodeChallenge(o4wVerifier), code_challenge_method: 'S256' }).toString();
      const parameters = oauth.validateAuthResponse(as, o4wClient, await completeAuthorization(browser, o4wUrl, person, { redirectUri: REDIRECT }), o4wState);
      const redeem = async () => oauth.processAuthorizationCodeResponse(as, o4wClient, await oauth.authorizationCodeGrantRequest(as, o4wClient, o4wAuth(web), parameters, REDIRECT, o4wVerifier, insecure));
      const o4wFirst = await redeem();
      await rejectsWithOAuthError(redeem(), 'invalid_grant');
      assert.equal((await introspectAsWeb(o4wFirst.access_token)).active, false);
    });

    it("another client's refresh token is refused, and the family it belongs to ends (both libraries)", async () => {
      const webConfig = await configure(web);
      const otherConfig = await configure(other);
      const { tokens } = await openIdClientCodeFlow(webConfig);
      await rejectsWithOAuthError(client.refreshTokenGrant(otherConfig, tokens.refresh_token!), 'invalid_grant');
      await rejectsWithOAuthError(client.refreshTokenGrant(webConfig, tokens.refresh_token!), 'invalid_grant');

      const { result } = await o4wCodeFlow(web);
      const o4wOther: oauth.Client = { client_id: other.clientId };
      await rejectsWithOAuthError(oauth.processRefreshTokenResponse(as, o4wOther, await oauth.refreshTokenGrantRequest(as, o4wOther, o4wAuth(other), result.refresh_token!, insecure)), 'invalid_grant');
      const o4wWeb: oauth.Client = { client_id: web.clientId };
      await rejectsWithOAuthError(oauth.processRefreshTokenResponse(as, o4wWeb, await oauth.refreshTokenGrantRequest(as, o4wWeb, o4wAuth(web), result.refresh_token!, insecure)), 'invalid_grant');
    });
  });
});

describe('refresh token reuse detection through both libraries (grace window 0)', () => {
  let server: TestServer;
  let issuer: string;
  let person: Person;
  let spa: RegisteredClient;
  let browser: BrowserlessClient;
  let as: oauth.AuthorizationServer;
  // The server's clock: moved past the rotation so the replay is outside even a zero grace window, without waiting.
  const clock = new ManualClock(Date.now());

  before(async () => {
    server = await startTestServer({ fixedPort: true, clock: clock.now, env: { PORTCULLIS_TOKENS_REFRESH_GRACE_SECONDS: '0' } });
    issuer = server.running.authorizationServer.issuer;
    person = { email: `replay-${randomBytes(4).toString('hex')}@example.com`, password: PASSWORD };
    await server.running.identity.accounts.createUser(person.email, person.password, { actor: 'test' });
    spa = await registerClient(server, { ...userClientMetadata, client_name: 'Replay app', application_type: 'native', token_endpoint_auth_method: 'none' });
    browser = new BrowserlessClient(server.url);
    as = await oauth.processDiscoveryResponse(new URL(issuer), await oauth.discoveryRequest(new URL(issuer), insecure));
  });
  after(async () => {
    await server.close();
  });

  it('openid-client: a replayed rotated refresh token is refused (invalid_grant) and its successor dies with it', async () => {
    const config = await client.discovery(new URL(issuer), spa.clientId, undefined, client.None(), { execute: [client.allowInsecureRequests] });
    const verifier = client.randomPKCECodeVerifier();
    const state = client.randomState();
    const url = client.buildAuthorizationUrl(config, { redirect_uri: REDIRECT, scope: USER_SCOPE, state, code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256' });
    const tokens = await client.authorizationCodeGrant(config, await completeAuthorization(browser, url, person, { redirectUri: REDIRECT }), { pkceCodeVerifier: verifier, expectedState: state });
    const successor = await client.refreshTokenGrant(config, tokens.refresh_token!);
    assert.notEqual(successor.refresh_token, tokens.refresh_token);
    clock.advance(1000);
    await rejectsWithOAuthError(client.refreshTokenGrant(config, tokens.refresh_token!), 'invalid_grant');
    await rejectsWithOAuthError(client.refreshTokenGrant(config, successor.refresh_token!), 'invalid_grant');
    await rejectsWithChallenge(client.fetchUserInfo(config, successor.access_token, client.skipSubjectCheck));
  });

  it('oauth4webapi: the same', async () => {
    const o4wClient: oauth.Client = { client_id: spa.clientId };
    const verifier = oauth.generateRandomCodeVerifier();
    const state = oauth.generateRandomState();
    const url = new URL(as.authorization_endpoint!);
    url.search = new URLSearchParams({ client_id: spa.clientId, response_type: 'code', redirect_uri: REDIRECT, scope: USER_SCOPE, state, code_challenge: await oauth.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256' }).toString();
    const parameters = oauth.validateAuthResponse(as, o4wClient, await completeAuthorization(browser, url, person, { redirectUri: REDIRECT }), state);
    const tokens = await oauth.processAuthorizationCodeResponse(as, o4wClient, await oauth.authorizationCodeGrantRequest(as, o4wClient, oauth.None(), parameters, REDIRECT, verifier, insecure));
    const refresh = async (token: string) => oauth.processRefreshTokenResponse(as, o4wClient, await oauth.refreshTokenGrantRequest(as, o4wClient, oauth.None(), token, insecure));
    const successor = await refresh(tokens.refresh_token!);
    assert.notEqual(successor.refresh_token, tokens.refresh_token);
    clock.advance(1000);
    await rejectsWithOAuthError(refresh(tokens.refresh_token!), 'invalid_grant');
    await rejectsWithOAuthError(refresh(successor.refresh_token!), 'invalid_grant');
    await rejectsWithChallenge(oauth.processUserInfoResponse(as, o4wClient, oauth.skipSubjectCheck, await oauth.userInfoRequest(as, o4wClient, successor.access_token, insecure)));
  });
});
