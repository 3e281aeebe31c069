/**
 * The right to erasure (issue 15, GDPR Art. 17 and 19), end to end: a
 * person seeded through the real pages and APIs (test/support/privacy-probe.ts:
 * two addresses, a name, a sign-in from a known IP, two-step verification,
 * a code flow with consent and a refresh token) who also uses application A
 * (a confidential client with an erasure_notification_uri on a local
 * receiver) and application B (a client with an SSF poll stream), is erased
 * by `portcullis user erase` while the server runs, or on the Delete my
 * account page. Afterwards: no sign-in, no session, no token; each
 * recipient told once and the erasure's record says so; the ledger records
 * it, verifies, and names the person by their old pseudonym nowhere after
 * it; and, the server stopped, neither address nor the name is in any byte
 * of the data directory (database, WAL, shared memory), any PostgreSQL
 * table or any Redis key.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createLocalJWKSet, decodeJwt, jwtVerify, type JSONWebKeySet } from 'jose';
import type { ErasureRecord } from '../../src/privacy/index.ts';
import { SECURITY_EVENT_TYPES, SET_MEDIA_TYPE, SET_TYP } from '../../src/sdk/index.ts';
import { BrowserlessClient, csrfField } from '../support/browserless-client.ts';
import { registerClient, type RegisteredClient } from '../support/oauth-flow.ts';
import { clientPost, codeFlow, describeHits, ledgerEntries, privacyDeployment, startNoticeReceiver, type NoticeReceiver, type PrivacyDeployment } from '../support/privacy-deployment.ts';
import { api, newProbe, passwordSignIn, REDIRECT, SCOPE, seed, type Probe, type Seeded } from '../support/privacy-probe.ts';
import { testBackends } from '../support/server.ts';

const REDIRECT_B = 'http://127.0.0.1:8081/b/callback';

/** Application B: signs the person in (so it is a recipient) and reads security events on a poll stream. */
interface StreamApp {
  readonly client: RegisteredClient;
  token: string;
  streamId: string;
}

async function streamToken(url: string, client: RegisteredClient): Promise<string> {
  const issued = await clientPost(url, '/token', client, { grant_type: 'client_credentials', scope: 'ssf:stream' });
  assert.equal(issued.status, 200, JSON.stringify(issued.body));
  return issued.body['access_token'] as string;
}

/** One poll of the stream without waiting: the SETs, acknowledging `ack`. */
async function pollSets(server: { url: string }, app: StreamApp, ack: string[] = []): Promise<Record<string, string>> {
  const response = await api(server, `/signals/poll/${app.streamId}`, { token: app.token, body: { ack, maxEvents: 50, returnImmediately: true } });
  assert.equal(response.status, 200, await response.clone().text());
  return ((await response.json()) as { sets: Record<string, string> }).sets;
}

async function introspect(url: string, client: RegisteredClient, token: string): Promise<boolean> {
  const answer = await clientPost(url, '/introspect', client, { token });
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  return answer.body['active'] === true;
}

/** Polls `check` until it holds (the CLI's erasure reaches the server's caches within their freshness, 1 s). */
async function eventually(check: () => Promise<boolean>, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    assert.ok(Date.now() < deadline, `${what} within ${timeoutMs} ms`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

for (const backend of testBackends) {
  for (const via of ['cli', 'page'] as const) {
    describe(`erasure of a seeded person by ${via === 'cli' ? '`portcullis user erase` while the server runs' : 'the Delete my account page'} (${backend})`, () => {
      let deployment: PrivacyDeployment;
      let receiver: NoticeReceiver;
      const probe: Probe = newProbe('erasure-probe');
      let seeded: Seeded;
      let appA: RegisteredClient;
      const appB = {} as StreamApp;
      let tokens: { access: string; refresh: string };
      let oldPseudonym: string;
      let erasure: ErasureRecord;
      let issuer: string;

      before(async () => {
        receiver = await startNoticeReceiver();
        deployment = await privacyDeployment(backend);
        const running = await deployment.start();
        issuer = running.authorizationServer.issuer;
        seeded = await seed(deployment, probe, {
          loginHints: false,
          app: { client_name: 'Application A', token_endpoint_auth_method: 'client_secret_basic', erasure_notification_uri: receiver.url },
          whileSignedIn: async (browser, person) => {
            const client = await registerClient(deployment, { client_name: 'Application B', redirect_uris: [REDIRECT_B], grant_types: ['authorization_code', 'client_credentials'], scope: 'openid ssf:stream', token_endpoint_auth_method: 'client_secret_basic' }, ['ssf:stream']);
            Object.assign(appB, { client });
            await codeFlow(deployment.url, browser, person, client, REDIRECT_B, 'openid');
          },
        });
        appA = seeded.app;
        appB.token = await streamToken(deployment.url, appB.client);
        const created = await api(deployment, '/signals/stream', { token: appB.token, body: { delivery: { method: 'urn:ietf:rfc:8936' }, events_requested: [SECURITY_EVENT_TYPES.accountPurged] } });
        assert.equal(created.status, 201, await created.clone().text());
        appB.streamId = ((await created.json()) as { stream_id: string }).stream_id;

        // A's tokens of the session that outlived the password change (which ended the seed's flow and its tokens).
        const issued = await codeFlow(deployment.url, seeded.browser, { email: probe.email, password: seeded.password }, appA, REDIRECT, SCOPE);
        assert.ok(issued['refresh_token'], 'a refresh token');

        // Before: the tokens work (the refresh rotates them), the person has a session and an audit pseudonym, and the search finds them.
        const refreshed = await clientPost(deployment.url, '/token', appA, { grant_type: 'refresh_token', refresh_token: issued['refresh_token'] as string });
        assert.equal(refreshed.status, 200, JSON.stringify(refreshed.body));
        tokens = { access: refreshed.body['access_token'] as string, refresh: refreshed.body['refresh_token'] as string };
        assert.equal(await introspect(deployment.url, appA, tokens.access), true, 'the access token is active before');
        assert.ok((await running.identity.accounts.sessions.list(seeded.userId)).length > 0, 'a live session before');
        assert.equal((await seeded.browser.get('/account/session.json')).status, 200);
        oldPseudonym = (await running.ledger.pseudonyms.existingPseudonym(seeded.userId))!;
        assert.ok(oldPseudonym, 'the person has an audit pseudonym');
        assert.ok((await deployment.traces(probe)).length > 0, 'the search finds the person before the erasure');

        if (via === 'cli') {
          const erased = await deployment.cli(['user', 'erase', probe.email]);
          assert.equal(erased.code, 0, erased.err.join('\n'));
          const id = /\((er_[A-Za-z0-9_-]{16})\)/.exec(erased.out.join('\n'))?.[1];
          assert.ok(id, erased.out.join('\n'));
          assert.match(erased.out.join('\n'), /Recipients to tell: 2\./);
          erasure = (await running.erasure.erasures.get(id))!;
        } else {
          const form = await seeded.browser.get('/account/delete');
          assert.equal(form.status, 200);
          assert.ok(form.body.includes(probe.email), 'the page names the account');
          const deleted = await seeded.browser.post('/account/delete', { _csrf: csrfField(form.body)!, password: seeded.password, confirm: 'yes' });
          assert.equal(deleted.status, 200, deleted.body.slice(0, 300));
          assert.match(deleted.body, /Your account was deleted/);
          assert.equal(seeded.browser.cookie('__Host-portcullis'), undefined, 'the session cookie is cleared');
          const all = await running.erasure.erasures.list();
          assert.equal(all.length, 1);
          erasure = all[0]!;
        }
        assert.equal(erasure.state, 'executed');
      });
      after(async () => {
        await deployment?.remove();
        await receiver?.close();
      });

      it('the person cannot sign in; their sessions, refresh token and access token are gone', async () => {
        const { running } = deployment;
        assert.equal(await running.identity.accounts.users.byId(seeded.userId), null);
        assert.equal(await running.identity.accounts.users.byEmail(probe.email), null);
        assert.deepEqual(await passwordSignIn(new BrowserlessClient(deployment.url), probe.email, seeded.password), { status: 401, location: null });
        assert.deepEqual(await running.identity.accounts.sessions.list(seeded.userId), []);
        assert.deepEqual(await running.stores.hot.boundedSetMembers(`user-sessions:${seeded.userId}`), []);
        assert.equal((await seeded.browser.get('/account/session.json')).status, 401);
        const refreshed = await clientPost(deployment.url, '/token', appA, { grant_type: 'refresh_token', refresh_token: tokens.refresh });
        assert.equal(refreshed.status, 400, JSON.stringify(refreshed.body));
        assert.equal(refreshed.body['error'], 'invalid_grant');
        await eventually(async () => !(await introspect(deployment.url, appA, tokens.access)), 'the access token inactive at introspection');
      });

      it('tells each recipient once: a signed account-purged SET to A, account-purged on B\'s stream; both recorded delivered', async () => {
        const { running } = deployment;
        const byId = (a: { clientId: string }, b: { clientId: string }) => (a.clientId < b.clientId ? -1 : a.clientId > b.clientId ? 1 : 0);
        assert.deepEqual(
          erasure.recipients.map(({ clientId, channel }) => ({ clientId, channel })),
          [
            { clientId: appA.clientId, channel: 'uri' },
            { clientId: appB.client.clientId, channel: 'ssf' },
          ].sort(byId),
          'the two applications the person used are the recipients, and no other client',
        );
        // Read right after the erasure (the page's kick may have told A already); B cannot have acknowledged yet.
        for (const recipient of erasure.recipients) assert.ok(recipient.channel === 'ssf' ? recipient.state === 'pending' : ['pending', 'delivered'].includes(recipient.state), JSON.stringify(recipient));
        // The server's outbox worker delivers: A's notice at once; B's once B's stream acknowledged the event.
        await deployment.outbox().runOnce();
        let purged: Record<string, unknown> | undefined;
        for (let round = 0; round < 10 && purged === undefined; round++) {
          const sets = await pollSets(deployment, appB);
          for (const set of Object.values(sets)) {
            const claims = decodeJwt(set);
            if (SECURITY_EVENT_TYPES.accountPurged in (claims['events'] as object)) purged = claims;
          }
          if (Object.keys(sets).length > 0) await pollSets(deployment, appB, Object.keys(sets));
          if (purged === undefined) await deployment.outbox().runOnce();
        }
        assert.ok(purged, 'B\'s stream received account-purged');
        assert.deepEqual(purged['sub_id'], { format: 'iss_sub', iss: issuer, sub: seeded.userId });
        let current = (await running.erasure.erasures.get(erasure.id))!;
        for (let round = 0; round < 10 && current.recipients.some((recipient) => recipient.state !== 'delivered'); round++) {
          // Past the outbox's backoff (it is at most an hour).
          deployment.clock.advance(60 * 60_000);
          await deployment.outbox().runOnce();
          current = (await running.erasure.erasures.get(erasure.id))!;
        }
        assert.deepEqual(current.recipients.map((recipient) => recipient.state), ['delivered', 'delivered'], JSON.stringify(current.recipients));
        // Nothing more goes out once delivered.
        deployment.clock.advance(60 * 60_000);
        await deployment.outbox().runOnce();

        assert.equal(receiver.received.length, 1, `one SET at A's erasure_notification_uri (${receiver.attempts} requests)`);
        const [notice] = receiver.received;
        assert.equal(notice!.contentType, SET_MEDIA_TYPE);
        const jwks = (await (await fetch(`${deployment.url}/jwks`)).json()) as JSONWebKeySet;
        const { payload, protectedHeader } = await jwtVerify(notice!.body, createLocalJWKSet(jwks), { issuer, audience: appA.clientId, typ: SET_TYP, currentDate: new Date(deployment.clock.now()) });
        assert.equal(protectedHeader.typ, SET_TYP);
        assert.deepEqual(Object.keys(payload['events'] as object), [SECURITY_EVENT_TYPES.accountPurged]);
        assert.deepEqual(payload['sub_id'], { format: 'iss_sub', iss: issuer, sub: seeded.userId });
        assert.ok(!notice!.body.includes(probe.email) && !JSON.stringify(payload).includes(probe.email), 'the notice names the person by id only');

        const listed = await deployment.cli(['privacy', 'erasures', '--json']);
        assert.equal(listed.code, 0, listed.err.join('\n'));
        const shown = (JSON.parse(listed.out.join('\n')) as ErasureRecord[]).find((record) => record.id === erasure.id);
        assert.deepEqual(shown?.recipients.map((recipient) => recipient.state), ['delivered', 'delivered']);
        const viaApi = await deployment.admin(`/admin/privacy/erasures/${erasure.id}`);
        assert.equal(viaApi.status, 200);
        const body = (await viaApi.json()) as ErasureRecord;
        assert.deepEqual(body.recipients.map((recipient) => [recipient.clientId, recipient.state]).sort(), [[appA.clientId, 'delivered'], [appB.client.clientId, 'delivered']].sort());
        assert.equal(body.state, 'executed');
        assert.ok(!('userId' in body), 'an executed erasure keeps no user id');
      });

      it('the ledger records the erasure and both notices, verifies, and names nobody by the old pseudonym after the erasure', async () => {
        const { running } = deployment;
        const entries = await ledgerEntries(running);
        const erased = entries.find((entry) => entry.type === 'privacy.erasure' && entry.detail?.['erasure'] === erasure.id);
        assert.ok(erased, 'a privacy.erasure entry');
        assert.equal(erased.detail?.['recipients'], 2);
        const notified = entries.filter((entry) => entry.type === 'privacy.recipient.notified' && entry.detail?.['erasure'] === erasure.id);
        assert.deepEqual(notified.map((entry) => [entry.client, entry.detail?.['result'], entry.detail?.['late']]).sort(), [[appA.clientId, 'delivered', false], [appB.client.clientId, 'delivered', false]].sort());
        const deleted = entries.find((entry) => entry.type === 'user.deleted' && entry.detail?.['erasure'] === erasure.id);
        assert.ok(deleted, 'a user.deleted entry');
        assert.ok(entries.some((entry) => entry.index < deleted.index && entry.actor === oldPseudonym), 'the person acted under the pseudonym before');
        const named = entries.filter((entry) => entry.index >= deleted.index && entry.actor === oldPseudonym);
        assert.deepEqual(named.map((entry) => `${entry.index} ${entry.type}`), [], 'no entry from the erasure on names the old pseudonym');
        // The pseudonym's key is gone, and no new one links the erased id to later entries.
        assert.equal(await running.ledger.pseudonyms.existingPseudonym(seeded.userId), null, 'no audit pseudonym key for the erased person');
        const verified = await deployment.cli(['audit', 'verify']);
        assert.equal(verified.code, 0, [...verified.out, ...verified.err].join('\n'));
      });

      it('leaves neither address nor the name in any byte of the data directory, any table or any key (server stopped)', async () => {
        await deployment.stop();
        const hits = await deployment.traces(probe);
        assert.deepEqual(hits.map((hit) => `${hit.source} ${hit.table}`), [], `the erased person is still found:\n  ${describeHits(hits)}`);
      });
    });
  }
}
