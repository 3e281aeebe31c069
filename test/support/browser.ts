import { existsSync, mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { chromium, type Browser, type BrowserContext, type BrowserContextOptions, type ConsoleMessage, type Page } from 'playwright-core';

/**
 * Real Chromium for interop tests, driven through playwright-core. The
 * browser is Debian's package (.ci/run installs it); playwright's own browser
 * downloads are never used (the machine's network is closed).
 * PORTCULLIS_TEST_CHROMIUM points at another executable (the test of the
 * missing-Chromium message points it at a path that does not exist).
 */
export const CHROMIUM_PATH = process.env['PORTCULLIS_TEST_CHROMIUM'] || '/usr/bin/chromium';

/** The one line a browser test file fails with when Chromium is not installed. */
export const CHROMIUM_MISSING = `Chromium is missing: apt-get install -y chromium (the browser tests need it at ${CHROMIUM_PATH})`;

/**
 * Call first in a browser test file's before(), before any server starts:
 * without Chromium the file fails at once with one clear message (first-hour
 * D2). It fails rather than skips: CI needs these tests to run.
 */
export function requireChromium(): void {
  if (!existsSync(CHROMIUM_PATH)) throw new Error(CHROMIUM_MISSING);
}

/**
 * Headless, and nothing that phones home: with the network closed, Chromium's
 * background connections (component updates, sync, QUIC probes) are refused
 * and only add noise and delay.
 */
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** Where screenshots go: test-artifacts/ at the repository root (git-ignored). */
export const SCREENSHOT_DIR = resolve(import.meta.dirname, '..', '..', 'test-artifacts', 'screenshots');

/** A console message Chromium writes when the page's Content Security Policy refuses something. */
export function isCspViolation(message: { type: string; text: string }): boolean {
  return message.type === 'error' && /Content Security Policy/i.test(message.text);
}

/**
 * One Chromium per test file; each test opens fresh contexts (own cookie
 * jar, own settings) through it and closes them when it ends. Every console
 * message of every context is recorded so a test can assert none was a CSP
 * violation.
 */
export class TestBrowser {
  readonly browser: Browser;
  readonly #baseURL: string;
  readonly #contexts = new Set<BrowserContext>();
  /** Console messages of the contexts opened since the last closeContexts(). */
  readonly console: { type: string; text: string; url: string }[] = [];

  private constructor(browser: Browser, baseURL: string) {
    this.browser = browser;
    this.#baseURL = baseURL;
  }

  /** Launch Chromium, or fail at once with what to do when it is not installed. */
  static async launch(baseURL: string): Promise<TestBrowser> {
    requireChromium();
    const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS, headless: true, timeout: 30_000 });
    return new TestBrowser(browser, baseURL);
  }

  /** A fresh context (a new "device": no cookies) with one page, based at the server's URL. */
  async newPage(options: BrowserContextOptions = {}): Promise<{ context: BrowserContext; page: Page }> {
    const context = await this.browser.newContext({ baseURL: this.#baseURL, viewport: { width: 1000, height: 800 }, ...options });
    this.#contexts.add(context);
    context.setDefaultTimeout(10_000);
    context.setDefaultNavigationTimeout(10_000);
    context.on('console', (message: ConsoleMessage) => this.console.push({ type: message.type(), text: message.text(), url: message.location().url }));
    const page = await context.newPage();
    return { context, page };
  }

  /** Console messages that report a CSP violation, for `assert.deepEqual(browser.cspViolations(), [])`. */
  cspViolations(): string[] {
    return this.console.filter(isCspViolation).map((message) => `${message.url}: ${message.text}`);
  }

  /** Close every context this test opened (call from afterEach); never throws. */
  async closeContexts(): Promise<void> {
    const contexts = [...this.#contexts];
    this.#contexts.clear();
    this.console.length = 0;
    await Promise.allSettled(contexts.map((context) => context.close()));
  }

  async close(): Promise<void> {
    await this.closeContexts();
    await this.browser.close();
  }
}

/** Save a full-page PNG as test-artifacts/screenshots/<name>.png and return its path. */
export async function screenshot(page: Page, name: string): Promise<string> {
  if (!/^[a-z0-9][a-z0-9-]*$/.test(name)) throw new Error(`screenshot name must be lower-case words and dashes: ${name}`);
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  const path = resolve(SCREENSHOT_DIR, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}
