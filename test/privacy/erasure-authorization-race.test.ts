/**
 * An authorization in flight while the person's account is erased: the
 * request read the session (and the account) before the erasure committed,
 * and writes a consent or a data recipient a moment after. Such a write
 * runs with a read of the account in one transaction
 * (src/oauth/account-writes.ts): it rolls back when the account is gone,
 * and the person gets access_denied ("The account no longer exists."),
 * redirected for an approved client, on an interstitial page otherwise; no
 * code. The read takes a share lock on the account (PostgreSQL FOR SHARE),
 * so no write lands after the erasure read the rows, on either backend;
 * the erasure's last pass (src/privacy/erasure-cleanup.ts) finds nothing
 * late, and every code issued before the erasure is refused at the token
 * endpoint.
 *
 * The first two tests make the erasure commit at one chosen point of a
 * request (after the route read the session and the account, before the
 * write), on the consent page (Authorizer.decide, Consents.grant) and with a
 * remembered consent (#issueCode, DataRecipients.record). The third leaves
 * the session alive (the erasure's steps after its commit fail): a request
 * that starts after the erasure is sent to sign in by the route, which reads
 * the account behind the session, before any write; the privacy job then
 * ends the session. The last races consent answers and remembered-consent
 * authorizations of many browsers against the erasure, started at different
 * points, in several rounds.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import type { ErasureOutcome, ErasureRecord, JobReport } from '../../src/privacy/index.ts';
import { CLEANUP_RETRY_MS } from '../../src/privacy/erasure-cleanup.ts';
import type { RunningPortcullis } from '../../src/server/index.ts';
import type { BrowserlessClient, PageResponse } from '../support/browserless-client.ts';
import { registerClient, type RegisteredClient } from '../support/oauth-flow.ts';
import { clientPost, codeFlow, privacyDeployment, runPrivacyJob, signedInBrowser, type PrivacyDeployment } from '../support/privacy-deployment.ts';
import { testBackends } from '../support/server.ts';

const PASSWORD = 'correct horse battery staple';
const SCOPE = 'openid email';
const SESSION_COOKIE = '__Host-portcullis';
const BROWSERS = 6;
/** When the erasure starts, against the browsers' requests. */
const SCHEDULES = ['together', 'after one answer', 'after two answers', 'erasure first', 'at the first consent write'] as const;
/** Each schedule with an approved client, then with one no operator reviewed. */
const ROUNDS = 2 * SCHEDULES.length;

interface Client extends RegisteredClient {
  readonly redirectUri: string;
  readonly approved: boolean;
}

/** One authorization request of one browser: its PKCE verifier and state. */
interface Flow {
  readonly client: Client;
  readonly path: string;
  readonly verifier: string;
  readonly state: string;
}

/** What the server answered a request of a flow. */
type Answer =
  | { readonly kind: 'code'; readonly code: string }
  /** access_denied, "The account no longer exists.": redirected, or on the interstitial page. */
  | { readonly kind: 'gone'; readonly via: 'redirect' | 'interstitial' }
  /** Sent to sign in: the route found no account (or no session) behind the cookie. */
  | { readonly kind: 'sign-in' }
  /** The consent page: the remembered consent was already deleted. */
  | { readonly kind: 'consent-page' };

function newFlow(client: Client): Flow {
  const verifier = randomBytes(32).toString('base64url');
  const state = randomBytes(8).toString('hex');
  const query = new URLSearchParams({ response_type: 'code', client_id: client.clientId, redirect_uri: client.redirectUri, scope: SCOPE, state, nonce: randomBytes(8).toString('hex'), code_challenge: createHash('sha256').update(verifier).digest('base64url'), code_challenge_method: 'S256' });
  return { client, path: `/authorize?${query.toString()}`, verifier, state };
}

const decodeAttribute = (value: string) => value.replaceAll('&amp;', '&').replaceAll('&#39;', "'").replaceAll('&quot;', '"');

/** The browser on the consent page of a new request for `client`: posting `approve` answers Allow. */
async function onConsentPage(browser: BrowserlessClient, client: Client): Promise<Flow & { readonly approve: () => Promise<PageResponse> }> {
  const flow = newFlow(client);
  const page = await browser.get(flow.path);
  assert.equal(page.status, 200, `the consent page: ${page.status} ${page.location ?? page.body.slice(0, 300)}`);
  assert.ok(page.body.includes('action="/authorize/consent"'), 'the consent page is shown');
  const interaction = decodeAttribute(/name="interaction" value="([^"]+)"/.exec(page.body)![1]!);
  const csrf = decodeAttribute(/name="_csrf" value="([^"]*)"/.exec(page.body)![1]!);
  return { ...flow, approve: () => browser.post('/authorize/consent', { _csrf: csrf, interaction, decision: 'allow' }) };
}

/** access_denied for an account that is gone, back to the client with the request's state and the issuer; no code. */
function assertGone(url: URL, flow: Flow, issuer: string): void {
  assert.ok(url.href.startsWith(flow.client.redirectUri), `to the client's redirect URI: ${url.href}`);
  assert.equal(url.searchParams.get('code'), null, `no code: ${url.href}`);
  assert.equal(url.searchParams.get('error'), 'access_denied', url.href);
  assert.equal(url.searchParams.get('error_description'), 'The account no longer exists.', url.href);
  assert.equal(url.searchParams.get('state'), flow.state);
  assert.equal(url.searchParams.get('iss'), issuer);
}

/** Reads an answer; fails on anything but the four outcomes an authorization racing an erasure may have. */
function answerOf(answer: PageResponse, flow: Flow, issuer: string): Answer {
  const location = answer.location ?? '';
  if (answer.status === 303 && location.startsWith(flow.client.redirectUri)) {
    const url = new URL(location);
    const code = url.searchParams.get('code');
    if (code !== null) {
      assert.equal(url.searchParams.get('state'), flow.state);
      return { kind: 'code', code };
    }
    assertGone(url, flow, issuer);
    return { kind: 'gone', via: 'redirect' };
  }
  if (answer.status === 303 && location.startsWith('/login')) return { kind: 'sign-in' };
  if (answer.status === 200) {
    const link = /<a href="([^"]+)" id="continue">/.exec(answer.body)?.[1];
    if (link !== undefined) {
      assertGone(new URL(decodeAttribute(link)), flow, issuer);
      return { kind: 'gone', via: 'interstitial' };
    }
    if (answer.body.includes('action="/authorize/consent"')) return { kind: 'consent-page' };
  }
  assert.fail(`an unexpected answer: ${answer.status} ${location} ${answer.body.replace(/\s+/g, ' ').slice(0, 300)}`);
}

/** The rows about the user that must not outlive the account. */
async function rowsAbout(running: RunningPortcullis, userId: string): Promise<{ consents: number; recipients: number }> {
  const { records } = running.stores.durable;
  return { consents: (await records.findBy('consents', 'user', userId)).length, recipients: (await records.findBy('data_recipients', 'user', userId)).length };
}

/** The code must not be redeemable: the token endpoint refuses a user who is gone. */
async function assertRefused(url: string, flow: Flow, code: string): Promise<void> {
  const redeemed = await clientPost(url, '/token', flow.client, { grant_type: 'authorization_code', code, redirect_uri: flow.client.redirectUri, code_verifier: flow.verifier });
  assert.equal(redeemed.status, 400, `a code of an erased account is refused: ${JSON.stringify(redeemed.body)}`);
  assert.equal(redeemed.body['error'], 'invalid_grant');
}

/**
 * `object[method]` first waits for `first` (the first call only), then does
 * what it does, while `run` runs; restored afterwards. Resolves with what
 * `run` resolved and whether `method` was called.
 */
async function withBefore<R>(object: object, method: string, first: () => Promise<unknown>, run: () => Promise<R>): Promise<{ result: R; called: boolean }> {
  const target = object as Record<string, (...args: unknown[]) => Promise<unknown>>;
  const original = target[method]!;
  const own = Object.hasOwn(object, method);
  let called = false;
  target[method] = async (...args: unknown[]) => {
    if (!called) {
      called = true;
      await first();
    }
    return original.apply(object, args);
  };
  try {
    return { result: await run(), called };
  } finally {
    if (own) target[method] = original;
    else Reflect.deleteProperty(object, method);
    assert.equal(target[method], original, `${method} is restored`);
  }
}

/**
 * The erasures' last pass: not before settleAt (a run of the job just before
 * keeps each clean-up record), then, with the clock past it, the job deletes
 * what was written late and the records go.
 */
async function lastPass(deployment: PrivacyDeployment, erasures: readonly ErasureRecord[]): Promise<JobReport> {
  const { running, clock } = deployment;
  const { records } = running.stores.durable;
  const erasureIds = erasures.map((erasure) => erasure.id);
  let settleAt = 0;
  for (const erasure of erasures) {
    const cleanup = await records.get<{ stage: string; settleAt: number }>('privacy_erasure_cleanups', erasure.id);
    assert.ok(cleanup !== null, `erasure ${erasure.id} keeps a clean-up record`);
    assert.equal(cleanup.data.stage, 'settling', 'its first pass is done');
    assert.ok(cleanup.data.settleAt - erasure.executedAt! >= 10 * 60_000, `the user id is kept at least 10 minutes after the erasure: ${cleanup.data.settleAt - erasure.executedAt!} ms`);
    settleAt = Math.max(settleAt, cleanup.data.settleAt);
  }
  const early = await runPrivacyJob(running);
  assert.equal(early.cleanups.settled, 0, 'no last pass before settleAt');
  for (const id of erasureIds) assert.notEqual(await records.get('privacy_erasure_cleanups', id), null);
  clock.advance(settleAt - clock.now() + 1000);
  const report = await runPrivacyJob(running);
  assert.ok(report.cleanups.settled >= erasureIds.length, `a last pass per erasure: ${report.cleanups.settled}`);
  for (const id of erasureIds) assert.equal(await records.get('privacy_erasure_cleanups', id), null, `erasure ${id}: the clean-up record is gone after the last pass`);
  return report;
}

for (const backend of testBackends) {
  describe(`an authorization in flight while the account is erased (${backend})`, () => {
    let deployment: PrivacyDeployment;
    let approved: Client;
    let unreviewed: Client;
    let approvedRemembered: Client;
    let unreviewedRemembered: Client;
    let addresses = 0;
    /** A new person, signed in in a new browser from an address of its own. */
    const signedInPerson = async (label: string) => {
      const email = `${label}-${randomBytes(4).toString('hex')}@example.test`;
      const user = await deployment.running.identity.accounts.createUser(email, PASSWORD, { actor: 'test' });
      addresses += 1;
      const browser = await signedInBrowser(deployment.url, email, PASSWORD, `203.0.113.${addresses}`);
      return { user, email, browser };
    };
    const erase = (userId: string): Promise<ErasureOutcome> => deployment.running.erasure.erasures.request(userId, { channel: 'admin', actorService: 'admin' }, { grace: false });

    before(async () => {
      deployment = await privacyDeployment(backend);
      await deployment.start();
      const client = async (name: string, path: string, isApproved: boolean): Promise<Client> => {
        const redirectUri = `http://127.0.0.1:8080/${path}`;
        const registered = await registerClient(deployment, { client_name: name, redirect_uris: [redirectUri], grant_types: ['authorization_code'], scope: SCOPE, token_endpoint_auth_method: 'client_secret_basic' }, [], { approved: isApproved });
        return { ...registered, redirectUri, approved: isApproved };
      };
      approved = await client('Approved app', 'approved', true);
      unreviewed = await client('Unreviewed app', 'unreviewed', false);
      approvedRemembered = await client('Approved app, remembered', 'approved-remembered', true);
      unreviewedRemembered = await client('Unreviewed app, remembered', 'unreviewed-remembered', false);
    });
    after(async () => {
      await deployment?.remove();
    });

    it('an approval on the consent page, the erasure committing after the route read the session: access_denied, no code, no consent nor recipient', async () => {
      const { running } = deployment;
      const erasures: ErasureRecord[] = [];
      for (const client of [approved, unreviewed]) {
        const { user, browser } = await signedInPerson('consent-page');
        const page = await onConsentPage(browser, client);
        // The erasure commits (and ends the session) between the route's read of the session and the consent's write.
        let outcome: ErasureOutcome | undefined;
        const { result: answer, called } = await withBefore(running.authorizationServer.consents, 'grant', async () => (outcome = await erase(user.id)), page.approve);
        assert.ok(called, `the approval reached Consents.grant: ${answer.status} ${answer.location ?? ''}`);
        assert.equal(outcome?.kind, 'erased');
        erasures.push(outcome.erasure);
        const read = answerOf(answer, page, deployment.url);
        assert.deepEqual(read, { kind: 'gone', via: client.approved ? 'redirect' : 'interstitial' }, `${client.metadata.client_name}: access_denied, ${client.approved ? 'redirected' : 'on the interstitial page'}`);
        assert.deepEqual(await rowsAbout(running, user.id), { consents: 0, recipients: 0 }, 'no consent, no recipient written');
      }
      const report = await lastPass(deployment, erasures);
      assert.equal(report.cleanups.lateRecords, 0, 'nothing was written late');
    });

    it('a remembered consent, the erasure committing before the recipient is noted: access_denied, no code, no recipient', async () => {
      const { running } = deployment;
      const erasures: ErasureRecord[] = [];
      for (const client of [approvedRemembered, unreviewedRemembered]) {
        const { user, email, browser } = await signedInPerson('remembered');
        // The person used the client before: consent remembered, the client noted as a recipient.
        await codeFlow(deployment.url, browser, { email, password: PASSWORD }, client, client.redirectUri, SCOPE);
        assert.deepEqual(await rowsAbout(running, user.id), { consents: 1, recipients: 1 });
        const flow = newFlow(client);
        // The erasure commits after the consent was found remembered, before DataRecipients.record writes.
        let outcome: ErasureOutcome | undefined;
        const { result: answer, called } = await withBefore(running.authorizationServer.recipients, 'record', async () => (outcome = await erase(user.id)), () => browser.get(flow.path));
        assert.ok(called, `the authorization reached DataRecipients.record: ${answer.status} ${answer.location ?? ''}`);
        assert.equal(outcome?.kind, 'erased');
        erasures.push(outcome.erasure);
        const read = answerOf(answer, flow, deployment.url);
        assert.deepEqual(read, { kind: 'gone', via: client.approved ? 'redirect' : 'interstitial' }, `${client.metadata.client_name}: access_denied, ${client.approved ? 'redirected' : 'on the interstitial page'}`);
        assert.deepEqual(await rowsAbout(running, user.id), { consents: 0, recipients: 0 }, 'the erasure deleted both; nothing written after it');
      }
      const report = await lastPass(deployment, erasures);
      assert.equal(report.cleanups.lateRecords, 0, 'nothing was written late');
    });

    it('an erasure whose clean-up failed leaves the session alive: the consent page and a remembered consent send the browser to sign in, with no code and nothing written', async () => {
      const { running, clock } = deployment;
      const { sessions } = running.identity.accounts;
      const { user, email, browser } = await signedInPerson('session-alive');
      await codeFlow(deployment.url, browser, { email, password: PASSWORD }, approvedRemembered, approvedRemembered.redirectUri, SCOPE);
      const page = await onConsentPage(browser, approved);
      const remembered = newFlow(approvedRemembered);

      // The steps after the commit fail where they end the sessions: the erasure is done, its clean-up pending.
      const { result: outcome } = await withBefore(sessions, 'revoke', () => Promise.reject(new Error('the hot store is down')), () => erase(user.id));
      assert.equal(outcome.kind, 'erased');
      assert.equal(outcome.cleanup, 'pending');
      const cookie = browser.cookie(SESSION_COOKIE)!;
      assert.notEqual(await sessions.resolve(cookie), null, 'the session is still there');

      const approval = answerOf(await page.approve(), page, deployment.url);
      assert.deepEqual(approval, { kind: 'sign-in' }, 'the approval: no account behind the session, sign in');
      const again = answerOf(await browser.get(remembered.path), remembered, deployment.url);
      assert.deepEqual(again, { kind: 'sign-in' }, 'the remembered consent: sign in');
      assert.deepEqual(await rowsAbout(running, user.id), { consents: 0, recipients: 0 });

      // The job takes the clean-up over once it is older than any live pass could be, and ends the session.
      clock.advance(CLEANUP_RETRY_MS + 1000);
      const resumed = await runPrivacyJob(running);
      assert.equal(resumed.cleanups.resumed, 1);
      assert.equal(await sessions.resolve(cookie), null, 'the job ended the session');
      const report = await lastPass(deployment, [outcome.erasure]);
      assert.equal(report.cleanups.lateRecords, 0);
      assert.deepEqual(await rowsAbout(running, user.id), { consents: 0, recipients: 0 });
    });

    it(`consent answers and remembered consents of ${BROWSERS} browsers racing the erasure, ${ROUNDS} rounds: no code is redeemable, and no consent nor recipient outlives the last pass`, async (t) => {
      const { running } = deployment;
      const { sessions } = running.identity.accounts;
      const tally = new Map<string, Map<string, number>>();
      let lateRecords = 0;
      for (let round = 0; round < ROUNDS; round++) {
        const schedule = SCHEDULES[round % SCHEDULES.length]!;
        // Half the rounds, an application no operator reviewed: its errors are interstitial pages.
        const onPage = round < ROUNDS / 2 ? approved : unreviewed;
        const email = `race-${round}-${randomBytes(4).toString('hex')}@example.test`;
        const user = await running.identity.accounts.createUser(email, PASSWORD, { actor: 'test' });
        // Consent for another application remembered, with no recipient noted yet: its code writes one.
        await running.authorizationServer.consents.grant(user.id, approvedRemembered.clientId, SCOPE.split(' '), {});
        // Each browser signs in from its own address (the throttle counts per network) and stands on the consent page.
        const browsers = await Promise.all(
          Array.from({ length: BROWSERS }, async (_, index) => {
            const browser = await signedInBrowser(deployment.url, email, PASSWORD, `198.51.100.${BROWSERS * round + index + 1}`);
            return { browser, page: await onConsentPage(browser, onPage), remembered: newFlow(approvedRemembered) };
          }),
        );

        // Each browser approves on its consent page and follows a link to the application it consented to before,
        // all at once. The erasure starts with them, or after one or two answers came back, or as the first
        // request reaches Consents.grant; or it starts first and the requests are sent once it listed the
        // sessions (right before its transaction).
        let answered = 0;
        let startErasure: () => void = () => undefined;
        const erasureMayStart = new Promise<void>((resolve) => (startErasure = resolve));
        let sendRequests: () => void = () => undefined;
        const requestsMayStart = new Promise<void>((resolve) => (sendRequests = resolve));
        const waitFor = schedule === 'after one answer' ? 1 : schedule === 'after two answers' ? 2 : 0;
        if (schedule !== 'erasure first') sendRequests();
        if (waitFor === 0 && schedule !== 'at the first consent write') startErasure();
        const requests = browsers.flatMap(({ browser, page, remembered }) =>
          [
            { flow: page as Flow, send: page.approve },
            { flow: remembered, send: () => browser.get(remembered.path) },
          ].map(async ({ flow, send }) => {
            await requestsMayStart;
            const answer = await send();
            answered += 1;
            if (answered === waitFor) startErasure();
            return { flow, answer };
          }),
        );
        const erasure = erasureMayStart.then(async () =>
          schedule === 'erasure first' ? (await withBefore(sessions, 'list', async () => sendRequests(), () => erase(user.id))).result : erase(user.id),
        );
        const all = () => Promise.all([Promise.all(requests), erasure]);
        const [answers, outcome] = schedule === 'at the first consent write' ? (await withBefore(running.authorizationServer.consents, 'grant', async () => startErasure(), all)).result : await all();
        assert.equal(outcome.kind, 'erased');

        const counts = tally.get(schedule) ?? new Map<string, number>();
        tally.set(schedule, counts);
        for (const { flow, answer } of answers) {
          const read = answerOf(answer, flow, deployment.url);
          if (read.kind === 'gone') assert.equal(read.via, flow.client.approved ? 'redirect' : 'interstitial', `round ${round}: redirected only for an approved client`);
          if (read.kind === 'code') await assertRefused(deployment.url, flow, read.code);
          const kind = read.kind === 'gone' ? `access_denied (${read.via})` : read.kind;
          counts.set(kind, (counts.get(kind) ?? 0) + 1);
        }
        const rows = await rowsAbout(running, user.id);
        // The guard's share lock orders every write before the erasure's DELETE or after its commit, on both backends.
        assert.deepEqual(rows, { consents: 0, recipients: 0 }, `round ${round} (${schedule}): nothing lands after the erasure`);

        const report = await lastPass(deployment, [outcome.erasure]);
        assert.equal(report.cleanups.lateRecords, 0, `round ${round} (${schedule}): no late record`);
        lateRecords += report.cleanups.lateRecords;
        assert.deepEqual(await rowsAbout(running, user.id), { consents: 0, recipients: 0 }, `round ${round} (${schedule}): none after the last pass`);
      }
      for (const [schedule, counts] of tally) t.diagnostic(`${schedule}: ${[...counts].map(([kind, count]) => `${kind} ${count}`).join(', ')}`);
      t.diagnostic(`late records the last passes removed: ${lateRecords}`);
    });
  });
}
