/**
 * `portcullis user disable | delete | set-password` end every session of
 * the user, and an application that session signed in to must hear of it
 * (OIDC Back-Channel Logout 1.0 sections 2.3 and 2.5), or it keeps the
 * person signed in locally. Run as an operator would (the real binary, its
 * own process) while the server runs: the command commits one logout
 * message per session and application to the outbox, and ends the
 * session's tokens; the running server's outbox worker, which polls the
 * outbox, finds what the other process committed and delivers the logout
 * token.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { decodeJwt } from 'jose';
import { BACKCHANNEL_LOGOUT_TOPIC, backchannelLogoutKey, sessionIdClaim } from '../../src/oauth/index.ts';
import { RevocationRecords } from '../../src/oauth/revocation-records.ts';
import type { Arrival, DeliveryReceiver } from '../support/delivery-receiver.ts';
import { logoutBed } from '../support/logout-bed.ts';
import type { RegisteredClient } from '../support/oauth-flow.ts';
import { clientPost, codeFlow, signedInBrowser, type PrivacyDeployment } from '../support/privacy-deployment.ts';
import { runBinary, within } from '../support/process.ts';
import { testBackends } from '../support/server.ts';

const PASSWORD = 'correct horse battery staple';
const NEW_PASSWORD = 'an administrator chose this one today';
const REDIRECT = 'http://127.0.0.1:8083/mail/callback';
/** The server's outbox worker looks every second; a loaded machine may take longer. */
const DELIVERY_DEADLINE_MS = 20_000;

for (const backend of testBackends) {
  describe(`portcullis user disable, delete and set-password send back-channel logouts (${backend})`, { timeout: 180_000 }, () => {
    let deployment: PrivacyDeployment;
    let receiver: DeliveryReceiver;
    let app: RegisteredClient;

    const bed = logoutBed(backend, REDIRECT);
    before(() => ({ deployment, receiver, app } = bed()));

    /**
     * A person with one session, signed in to Mail through two code flows:
     * two access tokens of the one session. The first is introspected before
     * the command (active); the second only after, so no answer the server
     * cached for a while (REVOCATION_RECHECK_MS) stands in for the check.
     */
    async function signedInPerson() {
      const email = `admin-${randomBytes(4).toString('hex')}@example.com`;
      const user = await deployment.running.identity.accounts.createUser(email, PASSWORD, { actor: 'test' });
      const browser = await signedInBrowser(deployment.url, email, PASSWORD);
      const first = await codeFlow(deployment.url, browser, { email, password: PASSWORD }, app, REDIRECT, 'openid');
      const second = await codeFlow(deployment.url, browser, { email, password: PASSWORD }, app, REDIRECT, 'openid');
      const sid = decodeJwt(first['id_token'] as string)['sid'] as string;
      assert.equal(decodeJwt(second['id_token'] as string)['sid'], sid, 'one session');
      const session = (await deployment.running.identity.accounts.sessions.list(user.id)).find((candidate) => sessionIdClaim(candidate.handle) === sid);
      assert.ok(session, 'the ID token names the live session');
      return { email, userId: user.id, handle: session.handle, sid, checkedBefore: first['access_token'] as string, checkedAfter: second['access_token'] as string };
    }

    const active = async (token: string) => {
      const answer = await clientPost(deployment.url, '/introspect', app, { token });
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      return answer.body['active'];
    };

    /** Resolves with the logout token for `sid` the receiver accepted (already, or when it arrives). */
    function logoutDelivered(sid: string): Promise<Arrival> {
      return new Promise((resolve) => {
        const arrived = receiver.accepted('/logout').find((arrival) => arrival.claims['sid'] === sid);
        if (arrived !== undefined) return resolve(arrived);
        const previous = receiver.onAccepted;
        receiver.onAccepted = (arrival) => {
          previous?.(arrival);
          if (arrival.path === '/logout' && arrival.claims['sid'] === sid) resolve(arrival);
        };
      });
    }

    const commands: { readonly name: string; readonly args: (email: string) => string[]; readonly stdin?: string; readonly says: RegExp }[] = [
      { name: 'disable', args: (email) => ['user', 'disable', email], says: /is disabled; their sessions have ended\./ },
      { name: 'delete', args: (email) => ['user', 'delete', email], says: /^Deleted / },
      { name: 'set-password', args: (email) => ['user', 'set-password', email, '--password-stdin'], stdin: `${NEW_PASSWORD}\n`, says: /^Password set for .*; 1 session ended\./ },
    ];

    for (const command of commands) {
      it(`user ${command.name}: one logout for the session and Mail is committed to the outbox, the running server delivers it, and the access token is refused`, async () => {
        const person = await signedInPerson();
        assert.equal(await active(person.checkedBefore), true, 'the session\'s access tokens are active before');

        const run = await runBinary([...command.args(person.email), '--config', deployment.configFile], { cwd: deployment.dir, timeoutMs: 60_000, ...(command.stdin !== undefined && { stdin: command.stdin }) });
        assert.equal(run.code, 0, run.stderr);
        assert.match(run.stdout, command.says);

        const messages = (await deployment.outboxMessages()).filter((message) => message.topic === BACKCHANNEL_LOGOUT_TOPIC && (message.payload as { sid?: string }).sid === person.sid);
        assert.equal(messages.length, 1, 'one back-channel logout for the session');
        assert.equal(messages[0]!.key, backchannelLogoutKey(person.sid, app.clientId));
        assert.deepEqual(messages[0]!.payload, { clientId: app.clientId, sub: person.userId, sid: person.sid });

        // Committed by the command's process, delivered by the server's worker.
        const delivered = await within(logoutDelivered(person.sid), DELIVERY_DEADLINE_MS, `the logout of ${person.sid}`);
        assert.equal(delivered.claims['sub'], person.userId);
        assert.deepEqual([delivered.claims['aud']].flat(), [app.clientId]);

        assert.equal(await deployment.running.identity.accounts.sessions.isLive(person.handle), false, 'the session ended');
        assert.equal(await active(person.checkedAfter), false, 'the session\'s access token is refused by introspection');
        // Introspection would refuse it anyway once the person is disabled, deleted or
        // reset (tokensNotBefore): the session's own revocation is what the command added.
        const records = new RevocationRecords({ records: deployment.running.stores.durable.records, clock: Date.now });
        assert.equal(await records.revoked('not-a-token-id', person.sid), true, 'the session\'s sid is recorded as revoked');
      });
    }
  });
}
