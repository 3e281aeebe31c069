/**
 * The sign-in, account and sign-out pages in real Chromium: typing into the
 * labelled fields, with JavaScript off, by keyboard alone, across two
 * "devices", under the pages' CSP, and through axe-core's accessibility rules.
 * Every test leaves a screenshot in test-artifacts/screenshots/.
 */
import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Page } from 'playwright-core';
import type { ImpactValue } from 'axe-core';
import { startTestServer, type TestServer } from '../support/server.ts';
import { TestBrowser, requireChromium, screenshot } from '../support/browser.ts';

// The page's globals, as far as these tests use them inside page.evaluate()
// (the project's tsconfig has no DOM lib, and must not get one for this file).
interface DomElement {
  readonly id: string;
  readonly tagName: string;
  readonly textContent: string | null;
  readonly labels?: ArrayLike<DomElement> | null;
  setAttribute(name: string, value: string): void;
}
declare const document: { readonly activeElement: DomElement | null; querySelector(selector: string): DomElement | null; readonly documentElement: DomElement };
declare function getComputedStyle(element: DomElement): Record<string, string>;
declare const axe: { run(context: unknown, options: unknown): Promise<{ violations: { id: string; impact?: ImpactValue; help: string; nodes: { target: unknown[] }[] }[] }> };

const PASSWORD = 'correct horse battery staple';
const USERS = {
  alice: 'alice@example.com',
  nojs: 'no-script@example.com',
  keyboard: 'keyboard@example.com',
  revoke: 'two-devices@example.com',
  signout: 'signing-out@example.com',
} as const;

const path = (page: Page) => new URL(page.url()).pathname;

/**
 * Wait for a form submission to arrive where it should, or fail at once,
 * with the page's message, when it lands on a refusal ("Request refused") or
 * a form error (role="alert") instead: a clear failure, not a timeout.
 */
async function submitted(page: Page, arrived: Promise<unknown>): Promise<void> {
  const refusal = page.getByRole('heading', { name: 'Request refused' }).or(page.getByRole('alert')).first();
  const refused = refusal.waitFor().then(async () => `${(await refusal.textContent())?.trim()} (${page.url()})`);
  const done = arrived.then(() => undefined);
  // The loser of the race times out or is cut off when the context closes.
  refused.catch(() => undefined);
  done.catch(() => undefined);
  const message = await Promise.race([done, refused]);
  if (message !== undefined) assert.fail(`the form submission was refused: ${message}`);
}

const atAccount = (page: Page, done?: string) => page.waitForURL((url) => url.pathname === '/account' && (done === undefined || url.searchParams.get('done') === done));
const signedOut = (page: Page) => page.getByRole('heading', { name: 'Signed out' }).waitFor();

/** Sign in through the form, typing into the fields found by their labels. */
async function signIn(page: Page, email: string): Promise<void> {
  await page.goto('/login');
  await page.getByLabel('Email address').pressSequentially(email);
  await page.getByLabel('Password').pressSequentially(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await submitted(page, atAccount(page));
}

async function signedInAs(page: Page): Promise<string> {
  const line = page.getByText('Signed in as');
  await line.waitFor();
  return (await line.textContent()) ?? '';
}

/** What has the keyboard focus: its id, its label (or text), and its computed outline. */
async function focused(page: Page): Promise<{ id: string; tag: string; label: string; outlineStyle: string; outlineWidth: string }> {
  return page.evaluate(() => {
    const element = document.activeElement;
    if (element === null) return { id: '', tag: '', label: '', outlineStyle: '', outlineWidth: '' };
    const label = element.labels?.[0]?.textContent ?? element.textContent ?? '';
    const style = getComputedStyle(element);
    return { id: element.id, tag: element.tagName.toLowerCase(), label: label.trim(), outlineStyle: style['outlineStyle']!, outlineWidth: style['outlineWidth']! };
  });
}

describe('identity pages in Chromium', { timeout: 90_000 }, () => {
  let server: TestServer | undefined;
  let browser: TestBrowser | undefined;
  const chrome = () => browser!;

  before(async () => {
    requireChromium();
    server = await startTestServer();
    for (const email of Object.values(USERS)) await server.running.identity.accounts.createUser(email, PASSWORD, { actor: 'test' });
    browser = await TestBrowser.launch(server.url);
  });
  afterEach(async () => {
    await browser?.closeContexts();
  });
  after(async () => {
    try {
      await browser?.close();
    } finally {
      await server?.close();
    }
  });

  it('signs in by typing into the labelled fields and shows the account', async () => {
    const { page } = await chrome().newPage();
    await page.goto('/account');
    assert.equal(path(page), '/login', 'no session: /account sends to the sign-in page');
    await screenshot(page, 'login');

    await page.getByLabel('Email address').pressSequentially(USERS.alice);
    await page.getByLabel('Password').pressSequentially(PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await submitted(page, atAccount(page));

    assert.equal(await page.getByRole('heading', { level: 1 }).textContent(), 'Your account');
    assert.match(await signedInAs(page), new RegExp(`Signed in as ${USERS.alice.replace('.', '\\.')}`));
    assert.equal(await page.locator('tbody tr').count(), 1, 'one active session');
    assert.match((await page.locator('tbody tr').textContent()) ?? '', /Chrome on Linux \(this session\)/);
    const cookies = await page.context().cookies();
    const session = cookies.find((cookie) => cookie.name === '__Host-portcullis');
    assert.ok(session, 'the session cookie was stored');
    assert.equal(session.secure, true);
    assert.equal(session.httpOnly, true);
    assert.equal(session.sameSite, 'Lax');
    assert.equal(session.path, '/');
    await screenshot(page, 'account');
    assert.deepEqual(chrome().cspViolations(), []);
  });

  it('works with JavaScript disabled: sign in, account, sign out', async () => {
    const { page } = await chrome().newPage({ javaScriptEnabled: false });
    await signIn(page, USERS.nojs);
    assert.match(await signedInAs(page), /no-script@example\.com/);

    await page.goto('/logout');
    await page.getByText('Do you want to sign out').waitFor();
    await page.getByRole('button', { name: 'Sign out', exact: true }).click();
    await submitted(page, signedOut(page));
    await screenshot(page, 'no-javascript-signed-out');

    await page.goto('/account');
    assert.equal(path(page), '/login', 'signed out: /account sends to the sign-in page');
    assert.deepEqual(chrome().cspViolations(), []);
  });

  it('is usable by keyboard alone, in order, with a visible focus', async () => {
    const { page } = await chrome().newPage();
    await page.goto('/login');

    // The email field has autofocus; Tab then walks the form in reading order.
    let now = await focused(page);
    assert.deepEqual([now.id, now.label], ['email', 'Email address'], 'the email field has the focus first');
    assert.notEqual(now.outlineStyle, 'none', 'the focused email field shows its focus');
    await page.keyboard.press('Tab');
    now = await focused(page);
    assert.deepEqual([now.id, now.label], ['password', 'Password']);
    assert.notEqual(now.outlineStyle, 'none', 'the focused password field shows its focus');
    assert.notEqual(now.outlineWidth, '0px');
    await page.keyboard.press('Tab');
    now = await focused(page);
    assert.deepEqual([now.tag, now.label], ['button', 'Sign in']);
    assert.notEqual(now.outlineStyle, 'none', 'the focused button shows its focus');
    await screenshot(page, 'keyboard-focus');

    // Back to the top by Shift+Tab, type, and submit with Enter.
    await page.keyboard.press('Shift+Tab');
    await page.keyboard.press('Shift+Tab');
    assert.equal((await focused(page)).id, 'email');
    await page.keyboard.type(USERS.keyboard);
    await page.keyboard.press('Tab');
    await page.keyboard.type(PASSWORD);
    await page.keyboard.press('Enter');
    await submitted(page, atAccount(page));
    assert.match(await signedInAs(page), /keyboard@example\.com/);
    assert.deepEqual(chrome().cspViolations(), []);
  });

  it('signs out another device from the account page', async () => {
    const deviceA = (await chrome().newPage()).page;
    const deviceB = (await chrome().newPage()).page;
    await signIn(deviceB, USERS.revoke);
    await signIn(deviceA, USERS.revoke);
    await deviceA.reload();

    const rows = deviceA.locator('tbody tr');
    assert.equal(await rows.count(), 2, 'both devices are listed');
    const other = rows.filter({ hasNotText: '(this session)' });
    assert.equal(await other.count(), 1);
    await other.getByRole('button', { name: 'Sign out' }).click();
    await submitted(deviceA, atAccount(deviceA, 'revoked'));
    assert.equal(await deviceA.getByRole('status').textContent(), 'The session was signed out.');
    assert.equal(await rows.count(), 1, 'only this device is left');
    assert.equal(await deviceA.getByText('No other sessions.').count(), 1);
    await screenshot(deviceA, 'revoked-account');

    await deviceB.goto('/account');
    assert.equal(path(deviceB), '/login', 'the revoked device is sent to sign in again');
    assert.equal(new URL(deviceB.url()).searchParams.get('return_to'), '/account');
    await deviceB.getByRole('heading', { name: 'Sign in' }).waitFor();
    await screenshot(deviceB, 'revoked');

    await deviceA.goto('/account');
    assert.equal(path(deviceA), '/account', 'the device that revoked stays signed in');
    assert.deepEqual(chrome().cspViolations(), []);
  });

  it('signs out with the Sign out button', async () => {
    const { page, context } = await chrome().newPage();
    await signIn(page, USERS.signout);
    await page.getByRole('button', { name: 'Sign out', exact: true }).click();
    await submitted(page, signedOut(page));
    assert.equal(path(page), '/logout');
    assert.equal((await context.cookies()).find((cookie) => cookie.name === '__Host-portcullis'), undefined, 'the session cookie is gone');
    await screenshot(page, 'signed-out');

    await page.goto('/account');
    assert.equal(path(page), '/login', 'signed out: /account sends to the sign-in page');
    assert.deepEqual(chrome().cspViolations(), []);
  });

  it('holds its CSP: the stylesheet loads, nothing is refused, and inline style is', async () => {
    const { page } = await chrome().newPage();
    const response = await page.goto('/login');
    assert.match(response?.headers()['content-security-policy'] ?? '', /default-src 'none'.*style-src 'self'/);
    const styles = async () =>
      page.evaluate(() => {
        const main = getComputedStyle(document.querySelector('main')!);
        return { border: `${main['borderTopWidth']} ${main['borderTopStyle']} ${main['borderTopColor']}`, background: main['backgroundColor'], page: getComputedStyle(document.documentElement)['backgroundColor'] };
      });
    const expected = { border: '1px solid rgb(208, 212, 218)', background: 'rgb(255, 255, 255)', page: 'rgb(244, 245, 247)' };
    assert.deepEqual(await styles(), expected, '/assets/portcullis.css applies on /login');
    await signIn(page, USERS.alice);
    assert.deepEqual(await styles(), expected, '/assets/portcullis.css applies on /account');
    await page.goto('/logout');
    assert.deepEqual(await styles(), expected, '/assets/portcullis.css applies on /logout');
    await screenshot(page, 'logout-confirm');
    assert.deepEqual(chrome().cspViolations(), [], 'no CSP violation during the flows');

    // Control: the console watch does see a violation when there is one.
    const refused = page.waitForEvent('console', { predicate: (message) => /Content Security Policy/.test(message.text()) });
    await page.evaluate(() => document.querySelector('main')!.setAttribute('style', 'border-color: red'));
    await refused;
    assert.equal((await styles()).border, expected.border, 'an inline style attribute is refused');
    assert.equal(chrome().cspViolations().length, 1);
  });

  it('has no serious or critical axe-core violations on /login and /account', async () => {
    // Only this context bypasses the CSP, so that axe's script can be injected.
    const { page } = await chrome().newPage({ bypassCSP: true });
    const source = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
    const audit = async () => {
      await page.addScriptTag({ content: source });
      const { violations } = await page.evaluate(() => axe.run(document, { resultTypes: ['violations'] }));
      return violations.filter((violation) => violation.impact === 'serious' || violation.impact === 'critical').map((violation) => `${violation.impact} ${violation.id}: ${violation.help} (${violation.nodes.map((node) => JSON.stringify(node.target)).join(', ')})`);
    };
    await page.goto('/login');
    assert.deepEqual(await audit(), [], '/login');
    await signIn(page, USERS.alice);
    assert.deepEqual(await audit(), [], '/account');
    await screenshot(page, 'accessibility-account');
  });
});
