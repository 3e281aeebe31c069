/**
 * What a newcomer meets in the first hour, and what a crafted link must not
 * break: sign-in from `localhost` (first-hour D4), the root URL and favicon
 * (D10), method and media-type errors (D15), refusals explained in the log
 * (D20), and return addresses that used to crash the sign-in (security
 * review 8).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer, type TestServer } from '../support/server.ts';
import { BrowserlessClient, csrfField } from '../support/browserless-client.ts';

const PASSWORD = 'correct horse battery staple';
const SESSION = '__Host-portcullis';

describe('first hour and crafted links', () => {
  let server: TestServer;
  let users = 0;
  let addresses = 0;

  before(async () => {
    server = await startTestServer({ fixedPort: true, env: { PORTCULLIS_TRUST_PROXY: '127.0.0.1' } });
  });
  after(async () => {
    await server.close();
  });

  const browser = (base = server.url) => new BrowserlessClient(base, { ip: `10.9.${(addresses >> 8) & 255}.${++addresses & 255}` });
  async function newUser(): Promise<string> {
    const email = `newcomer-${++users}@example.org`;
    await server.running.identity.accounts.createUser(email, PASSWORD, { actor: 'test' });
    return email;
  }
  async function signIn(client: BrowserlessClient, email: string, extra: Record<string, string> = {}) {
    const form = await client.get('/login');
    assert.equal(form.status, 200);
    return client.post('/login', { _csrf: csrfField(form.body)!, email, password: PASSWORD, ...extra });
  }
  const refusals = () => server.logs.records().filter((line) => line['msg'] === 'page request refused');

  describe('security review 8: return_to outside printable ASCII', () => {
    it('GET /login?return_to=/%C4%80 when signed in goes to the account page, not a 500', async () => {
      const client = browser();
      assert.equal((await signIn(client, await newUser())).status, 303);
      for (const returnTo of ['/%C4%80', '/%7F', '/%E4%B8%AD', '/a%20b']) {
        const response = await client.get(`/login?return_to=${returnTo}`);
        assert.equal(response.status, 303, returnTo);
        assert.equal(response.location, '/account', returnTo);
        assert.equal(response.headers.get('x-content-type-options'), 'nosniff');
        assert.ok(response.headers.get('x-request-id'));
      }
    });

    it('POST /login with return_to=/中 and the right password signs in (cookie set), no 500', async () => {
      const client = browser();
      const response = await signIn(client, await newUser(), { return_to: '/中' });
      assert.equal(response.status, 303);
      assert.equal(response.location, '/account');
      assert.ok(response.setCookies.some((cookie) => cookie.name === SESSION && cookie.value.length > 0), 'the session cookie is set');
      assert.equal((await client.get('/account')).status, 200);
    });
  });

  describe('first-hour D4: localhost and 127.0.0.1 are one site in development', () => {
    it('sends GET http://localhost:PORT/login to the issuer host before any form, and the sign-in then works', async () => {
      const port = new URL(server.url).port;
      const atLocalhost = browser(`http://localhost:${port}`);
      const first = await atLocalhost.get('/login?return_to=%2Faccount');
      assert.equal(first.status, 303);
      assert.equal(first.location, `http://127.0.0.1:${port}/login?return_to=%2Faccount`);
      assert.equal(first.setCookies.length, 0, 'no form cookie before the redirect');
      assert.ok(!first.body.includes('<form'), 'no form shown');

      const client = browser(`http://127.0.0.1:${port}`);
      const signedIn = await signIn(client, await newUser());
      assert.equal(signedIn.status, 303);
      assert.equal(signedIn.location, '/account');
    });

    it('does not redirect a POST, which the Origin check refuses with a reason in the log', async () => {
      const port = new URL(server.url).port;
      const atLocalhost = browser(`http://localhost:${port}`);
      const response = await atLocalhost.post('/login', { _csrf: 'x', email: 'a@example.org', password: 'y' });
      assert.equal(response.status, 403);
      assert.ok(refusals().some((line) => line['reason'] === 'origin_mismatch'));
    });
  });

  describe('first-hour D20: page refusals are logged with their reason, and nothing secret', () => {
    it('names a missing form cookie, a cross-site Origin and a bad CSRF token', async () => {
      const before = refusals().length;
      const noCookie = browser();
      assert.equal((await noCookie.post('/login', { _csrf: 'anything', email: 'a@example.org', password: PASSWORD })).status, 403);

      const crossSite = browser();
      const form = await crossSite.get('/login');
      const token = csrfField(form.body)!;
      assert.equal((await crossSite.post('/login', { _csrf: token, email: 'a@example.org', password: PASSWORD }, { origin: 'https://evil.example' })).status, 403);
      assert.equal((await crossSite.post('/login', { _csrf: `${token.slice(0, -2)}xx`, email: 'a@example.org', password: PASSWORD })).status, 403);
      assert.equal((await crossSite.post('/login', { email: 'a@example.org', password: PASSWORD })).status, 403);

      const lines = refusals().slice(before);
      assert.deepEqual(lines.map((line) => line['reason']), ['form_cookie_missing', 'origin_mismatch', 'csrf_token_invalid', 'csrf_token_missing']);
      for (const line of lines) {
        assert.equal(line['level'], 'warn');
        assert.equal(line['status'], 403);
        assert.equal(line['route'], '/login');
      }
      const completed = server.logs.records().filter((line) => line['msg'] === 'request completed' && line['status'] === 403 && line['route'] === '/login');
      assert.ok(completed.some((line) => line['reason'] === 'csrf_token_invalid'), 'the request line carries the reason too');
      const text = JSON.stringify(lines);
      for (const secret of [token, PASSWORD, crossSite.cookie('__Host-portcullis-login')!, 'evil.example']) assert.ok(!text.includes(secret), 'no token, cookie, password or Origin value in the line');
    });
  });

  describe('first-hour D20: every refused page request names its reason in its log line', () => {
    const reasonOf = (route: string, status: number) =>
      server.logs
        .records()
        .filter((line) => line['msg'] === 'request completed' && line['route'] === route && line['status'] === status)
        .map((line) => line['reason'])
        .at(-1);

    it('a wrong password, empty fields, an unknown session to revoke and a consent form from elsewhere each say why', async () => {
      const email = await newUser();
      const client = browser();
      const form = await client.get('/login');
      assert.equal((await client.post('/login', { _csrf: csrfField(form.body)!, email, password: 'not the password' })).status, 401);
      assert.equal(reasonOf('/login', 401), 'invalid_credentials');
      assert.equal((await client.post('/login', { _csrf: csrfField(form.body)!, email, password: '' })).status, 400);
      assert.equal(reasonOf('/login', 400), 'sign_in_fields_missing');

      assert.equal((await signIn(client, email)).status, 303);
      const account = await client.get('/account');
      assert.equal((await client.post('/account/sessions/revoke', { _csrf: csrfField(account.body)!, session: 'not-a-session' })).status, 400);
      assert.equal(reasonOf('/account/sessions/revoke', 400), 'unknown_session');

      assert.equal((await client.post('/authorize/consent', { _csrf: 'forged', interaction: 'x', decision: 'allow' }, { origin: 'https://evil.example' })).status, 403);
      assert.equal(reasonOf('/authorize/consent', 403), 'origin_mismatch');
      assert.ok(!JSON.stringify(server.logs.records()).includes('not the password'), 'no password in any line');
    });
  });

  describe('first-hour D10: the root URL and the favicon', () => {
    it('shows a browser a small home page with the way to the account and the discovery document', async () => {
      const response = await fetch(`${server.url}/`, { headers: { accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8' } });
      assert.equal(response.status, 200);
      assert.match(response.headers.get('content-type') ?? '', /^text\/html/);
      assert.match(response.headers.get('content-security-policy') ?? '', /default-src 'none'/);
      assert.equal(response.headers.get('x-content-type-options'), 'nosniff');
      const body = await response.text();
      assert.match(body, /<h1>Portcullis<\/h1>/);
      assert.match(body, /href="\/account"/);
      assert.match(body, /href="\/\.well-known\/openid-configuration"/);
      assert.match(body, /README/);
    });

    it('gives a program the issuer and the discovery URL as JSON', async () => {
      const response = await fetch(`${server.url}/`, { headers: { accept: 'application/json' } });
      assert.equal(response.status, 200);
      assert.match(response.headers.get('content-type') ?? '', /^application\/json/);
      assert.deepEqual(await response.json(), { issuer: server.url, openid_configuration: `${server.url}/.well-known/openid-configuration` });
    });

    it('serves a favicon with a long cache and the security headers', async () => {
      const response = await fetch(`${server.url}/favicon.ico`);
      assert.equal(response.status, 200);
      assert.equal(response.headers.get('content-type'), 'image/svg+xml');
      assert.match(response.headers.get('cache-control') ?? '', /max-age=31536000/);
      assert.equal(response.headers.get('x-content-type-options'), 'nosniff');
      assert.match(response.headers.get('content-security-policy') ?? '', /default-src 'none'/);
      assert.match(await response.text(), /^<svg /);
    });
  });

  describe('first-hour D15: method and media-type errors', () => {
    it('answers GET /token with 405 and an Allow header, not 404', async () => {
      const response = await fetch(`${server.url}/token`);
      assert.equal(response.status, 405);
      assert.match(response.headers.get('allow') ?? '', /\bPOST\b/);
      assert.ok(!(response.headers.get('allow') ?? '').includes('GET'));
      const problem = (await response.json()) as { status: number; request_id: string };
      assert.equal(problem.status, 405);
      assert.ok(problem.request_id);
      for (const [method, path] of [['DELETE', '/login'], ['PUT', '/authorize'], ['POST', '/jwks'], ['PATCH', '/audit/entries']] as const) {
        const other = await fetch(`${server.url}${path}`, { method });
        assert.equal(other.status, 405, `${method} ${path}`);
        assert.ok(other.headers.get('allow'), `${method} ${path}: Allow`);
      }
      assert.equal((await fetch(`${server.url}/no-such-path`)).status, 404, 'an unknown path stays 404');
    });

    it('answers a JSON body to /audit/cosignatures with 415 naming text/plain, broken JSON included', async () => {
      for (const body of ['{"broken', '{"valid":true}']) {
        const response = await fetch(`${server.url}/audit/cosignatures`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
        assert.equal(response.status, 415, body);
        assert.match(((await response.json()) as { detail: string }).detail, /text\/plain/);
      }
    });

    it('names the accepted type in the 415 of an OAuth endpoint', async () => {
      const response = await fetch(`${server.url}/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
      assert.equal(response.status, 415);
      assert.match(((await response.json()) as { error_description: string }).error_description, /application\/x-www-form-urlencoded/);
    });
  });
});
