/**
 * Issue 16, clock skew: two instances behind one load balancer share one
 * PostgreSQL schema, one Redis prefix, one master key and so one keyring;
 * their clocks are 5 minutes apart (A exact, B 5 minutes ahead or behind).
 * Each case asks with real requests whether the skew changes a security
 * decision beyond the tolerance the RFCs allow:
 *
 * - access tokens (RFC 9068 / RFC 7519 section 4.1): the verifier allows
 *   no leeway past `exp` (an instance whose clock is behind accepts a token
 *   for as long as its own clock says it is unexpired: the skew itself, 5
 *   minutes here, "a few minutes" in RFC 7519 section 4.1.4; one ahead
 *   refuses it early, which fails safe), and MAX_INSTANCE_SKEW_SECONDS
 *   (300 s) on `iat`/`nbf` in the future, so that a token one instance has
 *   just issued is not refused by another whose clock is 5 minutes behind;
 *   beyond that, refused;
 * - revocation (RFC 7009 section 2.1) and sign-out: the denylist entry of a
 *   revoked token and the ended-session mark outlive the revoking instance's
 *   view of the tokens' lives by MAX_INSTANCE_SKEW_SECONDS, and an instance
 *   revokes a token it sees as expired by less than that, so that an
 *   instance whose clock is behind does not accept it again once the entry
 *   is gone;
 * - DPoP proofs (RFC 9449 section 11.1): the RFC lets the server pick its
 *   window (seconds to minutes). The authorization server allows its
 *   instances' skew on both sides, `iat` within [now - 300 s - 300 s,
 *   now + 300 s], so a fresh proof from a client with the right time passes
 *   at an instance 5 minutes off either way; the replay cache is shared and
 *   outlives that window at every instance, so the proof passes once across
 *   both; a server nonce one instance minted passes at the other;
 * - authorization codes: one-time values in the hot store, whose TTL
 *   (authorizationCodeTtlSeconds) is Redis' own; no instance clock takes
 *   part, so a code from A is redeemed at B whichever way B is skewed;
 * - sessions: the idle timeout is the hot store's TTL (no instance clock);
 *   the absolute end is stamped by the instance that signed in and checked
 *   against the clock of the instance that resolves the session: it moves by
 *   the skew (5 minutes of a lifetime of hours), an instance ahead ends it
 *   early for everyone (fails safe).
 *
 * Needs PORTCULLIS_TEST_DATABASE_URL and PORTCULLIS_TEST_REDIS_URL.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { loadConfig } from '../../src/config/index.ts';
import { ACCESS_TOKEN_TYPE } from '../../src/oauth/access-tokens.ts';
import { startPortcullis, type RunningPortcullis } from '../../src/server/index.ts';
import { signJwt } from '../../src/tokens/index.ts';
import { freePort } from '../support/process.ts';
import { BrowserlessClient, csrfField } from '../support/browserless-client.ts';
import { completeAuthorization, registerClient, type RegisteredClient } from '../support/oauth-flow.ts';
import { createTestSchema, deleteRedisKeys, redisTestPrefix, testDatabaseUrl, testRedisUrl } from '../support/services.ts';

const skip = testDatabaseUrl && testRedisUrl ? false : 'set PORTCULLIS_TEST_DATABASE_URL and PORTCULLIS_TEST_REDIS_URL';
const ORDERS_API = 'https://api.example.com/orders';
const REDIRECT = 'http://127.0.0.1:8080/callback';
const PASSWORD = 'correct horse battery staple';
const SECOND = 1000;
const MINUTE = 60 * SECOND;
/** The skew between the two instances (issue 16). */
const SKEW = 5 * MINUTE;

const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;
const s256 = (verifier: string) => createHash('sha256').update(verifier).digest('base64url');

describe('clock skew: two instances 5 minutes apart on one deployment', { skip, timeout: 60_000 }, () => {
  const keyPrefix = redisTestPrefix();
  const dirs: string[] = [];
  let schema: { schema: string; drop: () => Promise<void> };
  let a: RunningPortcullis;
  let b: RunningPortcullis;
  let service: { id: string; secret: string };
  let app: RegisteredClient;
  /** A's URL: browsers sign in there, and its sign-in form checks the origin against the issuer. */
  let issuer: string;
  /**
   * Each instance's clock: the real time, plus time the test lets pass
   * (`elapsed`, for both), plus the instance's own skew. Hot-store TTLs
   * stay real: Redis keeps its own time.
   */
  const time = { elapsed: 0, a: 0, b: 0 };
  const clockA = () => Date.now() + time.elapsed + time.a;
  const clockB = () => Date.now() + time.elapsed + time.b;
  const skewed = (bSkew: number) => {
    time.elapsed = 0;
    time.a = 0;
    time.b = bSkew;
  };

  const start = (env: Record<string, string>, clock: () => number, port = 0) => {
    const dataDir = mkdtempSync(join(tmpdir(), 'portcullis-skew-'));
    dirs.push(dataDir);
    // One issuer for both, as behind one load balancer.
    const config = loadConfig({ env, overrides: { port, dataDir, issuer: issuer, log: { level: 'warn' } } });
    return startPortcullis(config, { clock, logDestination: new Writable({ write: (_chunk, _encoding, done) => done() }) });
  };
  const form = (server: RunningPortcullis, path: string, params: Record<string, string>, headers: Record<string, string> = { authorization: basic(service.id, service.secret) }) =>
    fetch(`${server.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body: new URLSearchParams(params) });
  const accessTokenFrom = async (server: RunningPortcullis) => {
    const response = await form(server, '/token', { grant_type: 'client_credentials', scope: 'orders:read' });
    assert.equal(response.status, 200);
    return ((await response.json()) as { access_token: string }).access_token;
  };
  const activeOn = async (server: RunningPortcullis, token: string) => {
    const response = await form(server, '/introspect', { token });
    assert.equal(response.status, 200);
    return ((await response.json()) as { active: boolean }).active;
  };
  /** A hot-store key's remaining life in Redis (ms), or -2 when there is none. */
  const remainingLife = async (key: string) => {
    const { Redis } = await import('ioredis');
    const redis = new Redis(testRedisUrl!, { lazyConnect: true });
    try {
      await redis.connect();
      return await redis.pttl(`${keyPrefix}${key}`);
    } finally {
      redis.disconnect();
    }
  };
  const denylistTtl = (jti: string) => remainingLife(`oauth:revoked-at:${jti}`);
  const claimsOf = (token: string) => JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as { iat: number; exp: number; jti: string; sid?: string };

  before(async () => {
    schema = await createTestSchema(testDatabaseUrl!);
    const env = {
      PORTCULLIS_DATABASE_URL: testDatabaseUrl!,
      PORTCULLIS_DATABASE_SCHEMA: schema.schema,
      PORTCULLIS_REDIS_URL: testRedisUrl!,
      PORTCULLIS_REDIS_KEY_PREFIX: keyPrefix,
      PORTCULLIS_MASTER_KEY: randomBytes(32).toString('base64url'),
    };
    const port = await freePort();
    issuer = `http://127.0.0.1:${port}`;
    a = await start(env, clockA, port);
    b = await start(env, clockB);
    const registered = await registerClient({ running: a }, { grant_types: ['client_credentials'], redirect_uris: [], scope: 'orders:read' }, ['orders:read']);
    service = { id: registered.clientId, secret: registered.clientSecret! };
    // The client acts for the API, so it may introspect the API's tokens (RFC 7662 section 4).
    await a.authorizationServer.resources.create({ uri: ORDERS_API, scopes: ['orders:read'], clients: [service.id] }, { actor: 'test' });
    app = await registerClient({ running: a }, { redirect_uris: [REDIRECT], grant_types: ['authorization_code'], scope: 'openid', client_name: 'Mail', application_type: 'native', token_endpoint_auth_method: 'none' });
  });
  after(async () => {
    await a?.stop();
    await b?.stop();
    await schema?.drop();
    await deleteRedisKeys(testRedisUrl!, keyPrefix);
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  describe('access tokens: iat, nbf and exp', () => {
    it('a token A issued is active at B 5 minutes behind (iat 5 minutes in its future: within the tolerance), and one B issued is active at A', async () => {
      skewed(-SKEW);
      const fromA = await accessTokenFrom(a);
      assert.equal(await activeOn(b, fromA), true, "B, 5 minutes behind, accepts A's fresh token");
      assert.equal(await activeOn(a, fromA), true);
      const fromB = await accessTokenFrom(b);
      assert.ok(claimsOf(fromA).iat - claimsOf(fromB).iat >= 299, "B's iat is 5 minutes before A's");
      assert.equal(await activeOn(a, fromB), true, "A accepts B's token (iat in A's past, exp 5 minutes sooner by A's clock)");
    });

    it('B 5 minutes ahead: both tokens active at both', async () => {
      skewed(SKEW);
      const fromA = await accessTokenFrom(a);
      const fromB = await accessTokenFrom(b);
      for (const server of [a, b]) for (const token of [fromA, fromB]) assert.equal(await activeOn(server, token), true);
    });

    it("expiry: past exp by A's clock, A refuses; B behind accepts until its own clock passes exp (the 5 minute skew, no further leeway); past exp + 5 minutes both refuse", async () => {
      skewed(-SKEW);
      const token = await accessTokenFrom(a);
      const { exp } = claimsOf(token);
      // Just past exp, as A sees it.
      time.elapsed = exp * SECOND - clockA() + SECOND;
      assert.equal(await activeOn(a, token), false, 'A: expired (no leeway past exp)');
      assert.equal(await activeOn(b, token), true, "B: its clock, 5 minutes behind, is still before exp");
      // Past exp + the skew: B's own clock is past exp too.
      time.elapsed += SKEW;
      assert.equal(await activeOn(b, token), false, 'B: expired by its own clock, no leeway added');
      assert.equal(await activeOn(a, token), false);
    });

    it('expiry with B ahead: B refuses 5 minutes before exp (fails safe), A until exp', async () => {
      skewed(SKEW);
      const token = await accessTokenFrom(a);
      const { exp } = claimsOf(token);
      time.elapsed = exp * SECOND - clockA() - 2 * MINUTE;
      assert.equal(await activeOn(a, token), true, 'A: 2 minutes before exp');
      assert.equal(await activeOn(b, token), false, 'B: its clock is 3 minutes past exp');
    });

    it('a token whose iat or nbf is further in B\'s future than the tolerance (300 s) is refused; within it, accepted', async () => {
      skewed(0);
      const key = a.authorizationServer.keyring.signingKey('EdDSA');
      const now = Math.floor(clockB() / SECOND);
      const mint = (claims: Record<string, number>) =>
        signJwt(key, { iss: issuer, sub: service.id, aud: ORDERS_API, client_id: service.id, scope: 'orders:read', jti: randomBytes(16).toString('hex'), exp: now + 900, iat: now, ...claims }, { typ: ACCESS_TOKEN_TYPE });
      assert.equal(await activeOn(b, mint({ iat: now + 290 })), true, 'iat 290 s ahead');
      assert.equal(await activeOn(b, mint({ iat: now + 330 })), false, 'iat 330 s ahead');
      assert.equal(await activeOn(b, mint({ nbf: now + 290 })), true, 'nbf 290 s ahead');
      assert.equal(await activeOn(b, mint({ nbf: now + 330 })), false, 'nbf 330 s ahead');
    });
  });

  describe('revocation (RFC 7009) across the skew', () => {
    it("a token with 4 minutes left by A's clock, revoked at B 5 minutes ahead (for which it expired a minute ago), is refused by A, and stays denied for as long as A could accept it", async () => {
      skewed(SKEW);
      const token = await accessTokenFrom(a);
      const { exp, jti } = claimsOf(token);
      time.elapsed = exp * SECOND - clockA() - 4 * MINUTE;
      assert.equal(await activeOn(a, token), true, 'A: 4 minutes left');
      assert.equal(await activeOn(b, token), false, 'B: expired a minute ago by its clock');
      const revocation = await form(b, '/revoke', { token });
      assert.equal(revocation.status, 200);
      assert.equal(await activeOn(a, token), false, 'A refuses the revoked token');
      assert.ok((await denylistTtl(jti)) >= exp * SECOND - clockA() - SECOND, 'the denylist entry outlives the token at A');
    });

    it('a token revoked at B 5 minutes ahead with 9 minutes left by its clock stays denied until it expires at A (14 minutes later)', async () => {
      skewed(SKEW);
      const token = await accessTokenFrom(a);
      const { exp, jti } = claimsOf(token);
      time.elapsed = exp * SECOND - clockB() - 9 * MINUTE;
      const revocation = await form(b, '/revoke', { token });
      assert.equal(revocation.status, 200);
      assert.equal(await activeOn(a, token), false);
      assert.ok((await denylistTtl(jti)) >= exp * SECOND - clockA() - SECOND, 'at least until exp by A (9 + 5 minutes)');
    });
  });

  describe('DPoP proofs (RFC 9449 section 11.1)', () => {
    let keys: Awaited<ReturnType<typeof generateKeyPair>>;
    let jwk: Awaited<ReturnType<typeof exportJWK>>;
    before(async () => {
      keys = await generateKeyPair('ES256');
      jwk = await exportJWK(keys.publicKey);
    });
    const proof = (iatMs: number) =>
      new SignJWT({ htm: 'POST', htu: `${issuer}/token`, jti: randomBytes(12).toString('base64url'), iat: Math.floor(iatMs / SECOND) }).setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk }).sign(keys.privateKey);
    const tokenWithProof = async (server: RunningPortcullis, iatMs: number) => {
      const response = await form(server, '/token', { grant_type: 'client_credentials', scope: 'orders:read' }, { authorization: basic(service.id, service.secret), dpop: await proof(iatMs) });
      if (response.status === 200) return { status: 200, token_type: ((await response.json()) as { token_type: string }).token_type };
      const body = (await response.json()) as { error: string; error_description: string };
      return { status: response.status, error: body.error, description: body.error_description };
    };

    it("the window is the instance's [now - 10 min, now + 5 min]: older, or further ahead, is refused", async () => {
      skewed(0);
      assert.deepEqual(await tokenWithProof(a, clockA() - 9 * MINUTE), { status: 200, token_type: 'DPoP' });
      assert.deepEqual(await tokenWithProof(a, clockA() + 4 * MINUTE), { status: 200, token_type: 'DPoP' });
      const old = await tokenWithProof(a, clockA() - 2 * SKEW - 10 * SECOND);
      assert.equal(old.error, 'invalid_dpop_proof');
      assert.match(old.description, /too old/);
      const ahead = await tokenWithProof(a, clockA() + SKEW + 10 * SECOND);
      assert.equal(ahead.error, 'invalid_dpop_proof');
      assert.match(ahead.description, /in the future/);
    });

    it('a fresh proof from a client with the right time passes at A (exact) and at B 5 minutes behind or ahead, once across both', async () => {
      for (const bSkew of [-SKEW, SKEW]) {
        skewed(bSkew);
        assert.deepEqual(await tokenWithProof(a, Date.now()), { status: 200, token_type: 'DPoP' });
        assert.deepEqual(await tokenWithProof(b, Date.now()), { status: 200, token_type: 'DPoP' }, `B ${bSkew / MINUTE} min`);
        // Replayed at the other instance: the shared replay cache refuses it whichever clock checks it.
        const once = await proof(Date.now());
        const request = (server: RunningPortcullis) => form(server, '/token', { grant_type: 'client_credentials', scope: 'orders:read' }, { authorization: basic(service.id, service.secret), dpop: once });
        assert.equal((await request(b)).status, 200);
        const replayed = (await (await request(a)).json()) as { error: string; error_description: string };
        assert.equal(replayed.error, 'invalid_dpop_proof');
        assert.match(replayed.error_description, /already been used/);
      }
    });

    it("a server nonce minted by one instance passes at the other, 5 minutes off either way; a forged one does not", async () => {
      const withNonce = async (server: RunningPortcullis, nonce: string) => {
        const signed = await new SignJWT({ htm: 'POST', htu: `${issuer}/token`, jti: randomBytes(12).toString('base64url'), iat: Math.floor(Date.now() / SECOND), nonce })
          .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk })
          .sign(keys.privateKey);
        return form(server, '/token', { grant_type: 'client_credentials', scope: 'orders:read' }, { authorization: basic(service.id, service.secret), dpop: signed });
      };
      for (const bSkew of [-SKEW, SKEW]) {
        skewed(bSkew);
        // A client sent a nonce it was not given: refused with a fresh one (RFC 9449 section 8), as from either instance.
        for (const [minter, checker] of [[a, b], [b, a]] as const) {
          const refused = await withNonce(minter, 'not-a-nonce-of-ours');
          assert.equal(refused.status, 400);
          assert.equal(((await refused.json()) as { error: string }).error, 'use_dpop_nonce');
          const nonce = refused.headers.get('dpop-nonce');
          assert.ok(nonce);
          assert.equal((await withNonce(checker, nonce)).status, 200, `a nonce from ${minter === a ? 'A' : 'B'} at the other, B ${bSkew / MINUTE} min`);
        }
      }
    });
  });

  describe('authorization codes and sessions', () => {
    const email = `skew-${randomBytes(4).toString('hex')}@example.com`;
    let browserA: BrowserlessClient;
    before(async () => {
      await a.identity.accounts.createUser(email, PASSWORD, { actor: 'test' });
    });
    const authorizeUrl = (server: RunningPortcullis, verifier: string, extra: Record<string, string> = {}) =>
      `${server.url}/authorize?${new URLSearchParams({ response_type: 'code', client_id: app.clientId, redirect_uri: REDIRECT, scope: 'openid', state: randomBytes(8).toString('hex'), code_challenge: s256(verifier), code_challenge_method: 'S256', ...extra }).toString()}`;
    const redeem = async (server: RunningPortcullis, callback: URL, verifier: string) => {
      const response = await form(server, '/token', { grant_type: 'authorization_code', code: callback.searchParams.get('code')!, redirect_uri: REDIRECT, client_id: app.clientId, code_verifier: verifier }, {});
      return { status: response.status, body: (await response.json()) as { access_token?: string; error?: string } };
    };
    /** The browser's session cookie, carried to B (the load balancer sent the next request there). */
    const browserAtB = () => {
      const browser = new BrowserlessClient(b.url);
      browser.setCookie('__Host-portcullis', browserA.cookie('__Host-portcullis')!);
      return browser;
    };
    /** prompt=none at B: a code when B takes the session as live, login_required when not. */
    const sessionLiveAtB = async () => {
      const verifier = randomBytes(32).toString('base64url');
      const response = await browserAtB().get(authorizeUrl(b, verifier, { prompt: 'none' }));
      assert.ok(response.status === 302 || response.status === 303, `${response.status}`);
      const location = new URL(response.location!);
      assert.ok(location.href.startsWith(REDIRECT), location.href);
      return location.searchParams.has('code') ? 'live' : location.searchParams.get('error');
    };

    it('a code issued at A is redeemed at B, 5 minutes ahead or behind (its lifetime is the hot store TTL); once only', async () => {
      for (const bSkew of [-SKEW, SKEW]) {
        skewed(bSkew);
        browserA = new BrowserlessClient(a.url);
        const verifier = randomBytes(32).toString('base64url');
        const callback = await completeAuthorization(browserA, authorizeUrl(a, verifier), { email, password: PASSWORD }, { redirectUri: REDIRECT });
        const first = await redeem(b, callback, verifier);
        assert.equal(first.status, 200, JSON.stringify(first.body));
        assert.ok(first.body.access_token !== undefined);
        const second = await redeem(a, callback, verifier);
        assert.equal(second.body.error, 'invalid_grant', 'a code is used once, across instances');
      }
    });

    it("signing out at A ends the session's access tokens, one issued by B 5 minutes ahead included, for as long as A could accept them", async () => {
      skewed(SKEW);
      browserA = new BrowserlessClient(a.url);
      const verifier = randomBytes(32).toString('base64url');
      const callback = await completeAuthorization(browserA, authorizeUrl(a, verifier), { email, password: PASSWORD }, { redirectUri: REDIRECT });
      const token = (await redeem(b, callback, verifier)).body.access_token!;
      const { exp, sid } = claimsOf(token);
      assert.ok(sid !== undefined, 'the token names its session');
      const userinfo = () => fetch(`${a.url}/userinfo`, { headers: { authorization: `Bearer ${token}` } });
      assert.equal((await userinfo()).status, 200);
      const confirm = await browserA.get('/logout');
      const signedOut = await browserA.post('/logout', { _csrf: csrfField(confirm.body)! });
      assert.ok(signedOut.status < 400, `${signedOut.status}`);
      assert.equal((await userinfo()).status, 401, 'refused at once');
      assert.ok((await remainingLife(`oauth:revoked-sid:${sid}`)) >= exp * SECOND - clockA(), 'the ended-session mark outlives the token at A (15 minutes)');
    });

    it("a session signed in at A is live at B either way; its absolute end is A's stamp read by B's clock: B ahead ends it 5 minutes early (for A too), B behind keeps it 5 minutes longer", async () => {
      const absoluteMs = a.identity.accounts.sessions.policy.absoluteTimeoutMs;
      skewed(-SKEW);
      browserA = new BrowserlessClient(a.url);
      const verifier = randomBytes(32).toString('base64url');
      await completeAuthorization(browserA, authorizeUrl(a, verifier), { email, password: PASSWORD }, { redirectUri: REDIRECT });
      assert.equal(await sessionLiveAtB(), 'live', 'B behind');
      // 2 minutes past the absolute end by A's clock: B, 5 minutes behind, still has 3 minutes.
      time.elapsed = absoluteMs + 2 * MINUTE;
      assert.equal(await sessionLiveAtB(), 'live', 'B behind, past the end by A: the skew, no more');
      time.elapsed = absoluteMs + SKEW + SECOND;
      assert.equal(await sessionLiveAtB(), 'login_required', 'B behind, past the end by its own clock');

      skewed(SKEW);
      browserA = new BrowserlessClient(a.url);
      await completeAuthorization(browserA, authorizeUrl(a, verifier), { email, password: PASSWORD }, { redirectUri: REDIRECT });
      assert.equal(await sessionLiveAtB(), 'live', 'B ahead');
      // 2 minutes before the end by A's clock: B, 5 minutes ahead, is 3 minutes past it, and ends the session.
      time.elapsed = absoluteMs - 2 * MINUTE;
      assert.equal(await sessionLiveAtB(), 'login_required', 'B ahead, 3 minutes past the end by its clock');
      const atA = await browserA.get(authorizeUrl(a, verifier, { prompt: 'none' }));
      assert.equal(new URL(atA.location!).searchParams.get('error'), 'login_required', 'B ended it for A too');
    });
  });
});
