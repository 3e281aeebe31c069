/**
 * Security review 7: no JWT and no secret reaches the server's log, from
 * real requests to each endpoint that takes one (query, form body, header).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startTestServer, type TestServer } from '../support/server.ts';

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
/** A JWT-shaped value, distinct each time, so a leak names its source. */
const jwt = (purpose: string) => `${b64({ alg: 'EdDSA', typ: 'JWT' })}.${b64({ sub: 'alice', purpose, jti: randomBytes(8).toString('hex') })}.${randomBytes(64).toString('base64url')}`;
const secret = (purpose: string) => `${purpose}-${randomBytes(16).toString('hex')}`;
const ANY_JWT = /eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+/;

describe('security review 7: secrets and JWTs never reach the request log', () => {
  let server: TestServer;
  const secrets: string[] = [];
  const remember = <T extends string>(value: T): T => (secrets.push(value), value);

  before(async () => {
    server = await startTestServer();
  });
  after(async () => {
    await server.close();
  });

  async function send(path: string, init: RequestInit = {}): Promise<number> {
    const response = await fetch(`${server.url}${path}`, { redirect: 'manual', ...init });
    await response.arrayBuffer();
    return response.status;
  }
  const form = (fields: Record<string, string>) => ({ method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(fields).toString() });

  it('redacts id_token_hint, request, login_hint_token, request_uri and nonce at /authorize', async () => {
    const query = new URLSearchParams({
      client_id: 'some-client',
      response_type: 'code',
      scope: 'openid',
      id_token_hint: remember(jwt('id_token_hint')),
      request: remember(jwt('request object')),
      login_hint_token: remember(jwt('login_hint_token')),
      request_uri: remember(`urn:ietf:params:oauth:request_uri:${secret('par')}`),
      nonce: remember(secret('nonce')),
    });
    await send(`/authorize?${query.toString()}`);
    await send('/authorize', form(Object.fromEntries(query)));
  });

  it('redacts id_token_hint at /logout, and a logout_token sent to it', async () => {
    await send(`/logout?${new URLSearchParams({ id_token_hint: remember(jwt('logout hint')), post_logout_redirect_uri: 'https://app.example/bye' }).toString()}`);
    await send(`/logout?${new URLSearchParams({ logout_token: remember(jwt('logout_token')) }).toString()}`, form({ logout_token: remember(jwt('logout_token body')) }));
  });

  it('redacts client_assertion and the DPoP header at /token, and a secret put in its query', async () => {
    const status = await send(`/token?client_secret=${remember(secret('client-secret'))}`, {
      ...form({ grant_type: 'client_credentials', client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: remember(jwt('client_assertion')) }),
      headers: { 'content-type': 'application/x-www-form-urlencoded', dpop: remember(jwt('dpop proof')) },
    });
    assert.ok(status >= 400 && status < 500);
  });

  it('redacts client_assertion and request at /par', async () => {
    await send('/par', form({ client_id: 'x', client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: remember(jwt('par assertion')), request: remember(jwt('par request')) }));
  });

  it('redacts interaction references and any parameter that is not known to be harmless', async () => {
    await send(`/authorize/resume?interaction=${remember(secret('interaction'))}`);
    await send(`/healthz?something_new=${remember(secret('unknown'))}`);
    // Review of the merge: the sign-in page's return address carries the interaction id.
    await send(`/login?return_to=${encodeURIComponent(`/authorize/resume?interaction=${remember(secret('interaction-in-return-to'))}`)}`);
  });

  it('logged every request, with no JWT and no secret value in any line', () => {
    const text = server.logs.text;
    const lines = server.logs.records().filter((line) => line['msg'] === 'request completed');
    for (const path of ['/authorize?', '/logout?', '/token?', '/par', '/authorize/resume?', '/healthz?', '/login?']) {
      assert.ok(lines.some((line) => String(line['url']).startsWith(path)), `a line for ${path}`);
    }
    assert.ok(lines.some((line) => String(line['url']).includes('client_id=some-client')), 'harmless parameters stay readable');
    assert.doesNotMatch(text, ANY_JWT);
    for (const value of secrets) {
      assert.ok(!text.includes(value) && !text.includes(encodeURIComponent(value)), `${value.slice(0, 24)}… is not in the log`);
    }
  });
});
