/**
 * First-hour D19: setting up two-step verification shows a QR code the
 * authenticator app can scan, drawn on the server as inline SVG (the page
 * keeps its script-free CSP), naming the configured issuer.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import qrcode from 'qrcode-generator';
import { BrowserlessClient, csrfField } from '../support/browserless-client.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

const PASSWORD = 'correct horse battery staple';

describe('TOTP enrolment page', () => {
  let server: TestServer;

  before(async () => {
    server = await startTestServer({ overrides: { identity: { totpIssuer: 'Example Corp' } } });
    await server.running.identity.accounts.createUser('qr@example.com', PASSWORD, { actor: 'test' });
  });
  after(async () => {
    await server.close();
  });

  it('first-hour D19: shows a server-made SVG QR code of the otpauth URI, with the configured issuer label, and no script', async () => {
    const browser = new BrowserlessClient(server.url);
    const login = csrfField((await browser.get('/login')).body)!;
    assert.equal((await browser.post('/login', { _csrf: login, email: 'qr@example.com', password: PASSWORD })).location, '/account');
    const csrf = csrfField((await browser.get('/account')).body)!;
    assert.equal((await browser.post('/account/totp/begin', { _csrf: csrf })).status, 303);
    const page = await browser.get('/account');

    const uri = /href="(otpauth:\/\/totp\/[^"]+)"/.exec(page.body)?.[1]?.replaceAll('&amp;', '&');
    assert.ok(uri);
    const parsed = new URL(uri);
    assert.equal(parsed.searchParams.get('issuer'), 'Example Corp');
    assert.match(decodeURIComponent(parsed.pathname), /^\/\/?Example Corp:qr@example\.com$/);

    const svg = /<svg[\s\S]*?<\/svg>/.exec(page.body)?.[0];
    assert.ok(svg, 'an inline SVG');
    assert.doesNotMatch(svg, /<script|on[a-z]+=|href=|<foreignObject/i);
    assert.doesNotMatch(page.body, /<script/i);
    assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'none'/);
    assert.doesNotMatch(page.headers.get('content-security-policy') ?? '', /script-src|unsafe-inline/);

    // The SVG's dark modules are exactly those of a QR code of that URI (4-module quiet zone).
    const expected = qrcode(0, 'M');
    expected.addData(uri, 'Byte');
    expected.make();
    const dark = new Set<string>();
    for (let row = 0; row < expected.getModuleCount(); row++) for (let col = 0; col < expected.getModuleCount(); col++) if (expected.isDark(row, col)) dark.add(`${col + 4},${row + 4}`);
    const drawn = new Set([...svg.matchAll(/M(\d+) (\d+)h1v1h-1z/g)].map((match) => `${match[1]},${match[2]}`));
    assert.deepEqual(drawn, dark);
  });

  it('refuses an issuer label with a colon at startup (it separates issuer and account)', async () => {
    await assert.rejects(startTestServer({ overrides: { identity: { totpIssuer: 'Bad: Label' } } }));
  });
});
