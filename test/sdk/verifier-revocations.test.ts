/**
 * The RevocationList, fed verified SETs directly: Portcullis's
 * tokens-revoked (jti list, sid), CAEP session-revoked, the RISC account
 * events with their time cut-off (account-enabled lets newer tokens through,
 * never the older ones), events of another issuer ignored, expiry after the
 * TTL, the size bound; Portcullis client-deleted (a deleted client's
 * tokens, by client_id and time); and through createVerifier's `signals`
 * source, a revoked token answered 401 invalid_token.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createVerifier, RevocationList, SECURITY_EVENT_TYPES, type SecurityEventToken, type SubjectIdentifier } from '../../src/sdk/index.ts';
import { ManualClock } from '../support/clock.ts';
import { AUDIENCE, ISSUER, TokenIssuer } from '../support/token-issuer.ts';

const T = 1_780_000_000;

function set(type: string, members: Record<string, unknown> = {}, subject?: SubjectIdentifier, iss = ISSUER, iat = T): SecurityEventToken {
  return { iss, jti: randomUUID(), iat, aud: AUDIENCE, ...(subject !== undefined && { sub_id: subject }), events: { [type]: members } };
}

const token = (overrides: Partial<{ jti: string; sub: string; iat: number; sid: string }> = {}) => ({ jti: 'jti-1', sub: 'user-1', iat: T - 10, ...overrides });
const issSub = (sub: string, iss = ISSUER): SubjectIdentifier => ({ format: 'iss_sub', iss, sub });

function list(options: { ttlSeconds?: number; maxEntries?: number } = {}) {
  const clock = new ManualClock(T * 1000);
  return { clock, revocations: new RevocationList({ issuer: ISSUER, clock: clock.now, ...options }) };
}

describe('RevocationList', () => {
  it('tokens-revoked with a jti list refuses exactly those tokens', () => {
    const { revocations } = list();
    assert.ok(revocations.apply(set(SECURITY_EVENT_TYPES.tokensRevoked, { jti: ['jti-1', 'jti-2'] })));
    assert.ok(revocations.isRevoked(token()));
    assert.ok(revocations.isRevoked(token({ jti: 'jti-2' })));
    assert.ok(!revocations.isRevoked(token({ jti: 'jti-3' })));
  });

  it('tokens-revoked with a sid, and CAEP session-revoked, refuse that session\'s tokens', () => {
    const { revocations } = list();
    revocations.apply(set(SECURITY_EVENT_TYPES.tokensRevoked, { sid: 'session-a' }));
    revocations.apply(set(SECURITY_EVENT_TYPES.sessionRevoked, {}, { format: 'session_id', iss: ISSUER, sid: 'session-b' }));
    assert.ok(revocations.isRevoked(token({ sid: 'session-a' })));
    assert.ok(revocations.isRevoked(token({ sid: 'session-b' })));
    assert.ok(!revocations.isRevoked(token({ sid: 'session-c' })));
    assert.ok(!revocations.isRevoked(token()), 'a token without sid');
  });

  for (const name of ['accountDisabled', 'accountPurged', 'sessionsRevoked', 'credentialCompromise'] as const) {
    it(`RISC ${name} refuses the subject's tokens issued at or before event_timestamp`, () => {
      const { revocations } = list();
      revocations.apply(set(SECURITY_EVENT_TYPES[name], { event_timestamp: T - 5 }, issSub('user-1'), ISSUER, T));
      assert.ok(revocations.isRevoked(token({ iat: T - 10 })));
      assert.ok(revocations.isRevoked(token({ iat: T - 5 })));
      assert.ok(!revocations.isRevoked(token({ sub: 'user-2', iat: T - 10 })), 'another subject');
      if (name !== 'accountDisabled') assert.ok(!revocations.isRevoked(token({ iat: T - 4 })), 'issued after the event');
    });
  }

  it('without event_timestamp the SET\'s iat is the cut-off', () => {
    const { revocations } = list();
    revocations.apply(set(SECURITY_EVENT_TYPES.sessionsRevoked, {}, issSub('user-1'), ISSUER, T - 20));
    assert.ok(revocations.isRevoked(token({ iat: T - 20 })));
    assert.ok(!revocations.isRevoked(token({ iat: T - 19 })));
  });

  it('a disabled account is refused whatever the iat until account-enabled; then newer tokens pass, older stay refused', () => {
    const { revocations } = list();
    revocations.apply(set(SECURITY_EVENT_TYPES.accountDisabled, { event_timestamp: T - 100 }, issSub('user-1')));
    assert.ok(revocations.isRevoked(token({ iat: T - 50 })), 'issued while disabled');
    revocations.apply(set(SECURITY_EVENT_TYPES.accountEnabled, { event_timestamp: T - 10 }, issSub('user-1')));
    assert.ok(revocations.isRevoked(token({ iat: T - 150 })), 'before the disable');
    assert.ok(revocations.isRevoked(token({ iat: T - 50 })), 'while disabled');
    assert.ok(!revocations.isRevoked(token({ iat: T - 9 })), 'after the enable');
  });

  it('account-enabled arriving before the older account-disabled still leaves the older tokens refused', () => {
    const { revocations } = list();
    revocations.apply(set(SECURITY_EVENT_TYPES.accountEnabled, { event_timestamp: T - 10 }, issSub('user-1')));
    revocations.apply(set(SECURITY_EVENT_TYPES.accountDisabled, { event_timestamp: T - 100 }, issSub('user-1')));
    assert.ok(revocations.isRevoked(token({ iat: T - 50 })));
    assert.ok(!revocations.isRevoked(token({ iat: T - 9 })));
  });

  it('account-enabled alone revokes nothing', () => {
    const { revocations } = list();
    revocations.apply(set(SECURITY_EVENT_TYPES.accountEnabled, { event_timestamp: T - 10 }, issSub('user-1')));
    assert.ok(!revocations.isRevoked(token({ iat: T - 50 })));
  });

  it('security: client-deleted refuses that client\'s tokens issued at or before event_timestamp, whoever their subject', () => {
    const { revocations } = list();
    const deleted = (members: Record<string, unknown>, subject?: SubjectIdentifier, iss = ISSUER) => revocations.apply(set(SECURITY_EVENT_TYPES.clientDeleted, members, subject, iss));
    assert.ok(deleted({ client_id: 'app-1', event_timestamp: T - 5 }, { format: 'opaque', id: 'app-1' }));
    assert.ok(revocations.isRevoked({ ...token({ iat: T - 10 }), client_id: 'app-1' }));
    assert.ok(revocations.isRevoked({ ...token({ iat: T - 5, sub: 'user-2' }), client_id: 'app-1' }));
    assert.ok(!revocations.isRevoked({ ...token({ iat: T - 4 }), client_id: 'app-1' }), 'issued after the deletion (a new client under the same id)');
    assert.ok(!revocations.isRevoked({ ...token({ iat: T - 10 }), client_id: 'app-2' }), 'another client');
    assert.ok(!revocations.isRevoked(token({ iat: T - 10 })), 'a token without client_id');
    // Without event_timestamp the SET's iat is the cut-off; a later event only moves it forward.
    assert.ok(deleted({ client_id: 'app-3' }));
    assert.ok(revocations.isRevoked({ ...token({ iat: T }), client_id: 'app-3' }));
    assert.ok(deleted({ client_id: 'app-1', event_timestamp: T - 100 }));
    assert.ok(revocations.isRevoked({ ...token({ iat: T - 5 }), client_id: 'app-1' }));
    // Another issuer's, a subject naming another client, or no client_id: ignored.
    assert.equal(deleted({ client_id: 'app-9' }, undefined, 'https://evil.example'), false);
    assert.equal(deleted({ client_id: 'app-9' }, { format: 'opaque', id: 'app-8' }), false);
    assert.equal(deleted({ client_id: 'app-9' }, issSub('app-9')), false);
    assert.equal(deleted({}, { format: 'opaque', id: 'app-9' }), false);
    assert.ok(!revocations.isRevoked({ ...token({ iat: T - 10 }), client_id: 'app-9' }));
  });

  it('client-deleted entries expire after the TTL and are bounded by maxEntries', () => {
    const { clock, revocations } = list({ ttlSeconds: 3600, maxEntries: 10 });
    for (let i = 0; i < 25; i++) revocations.apply(set(SECURITY_EVENT_TYPES.clientDeleted, { client_id: `c${i}` }));
    assert.equal(revocations.size, 10);
    assert.ok(!revocations.isRevoked({ ...token(), client_id: 'c0' }));
    assert.ok(revocations.isRevoked({ ...token(), client_id: 'c24' }));
    clock.advance(3_600_000);
    assert.ok(!revocations.isRevoked({ ...token(), client_id: 'c24' }));
  });

  it('security: events of another issuer, or naming a subject of another issuer, are ignored', () => {
    const { revocations } = list();
    assert.equal(revocations.apply(set(SECURITY_EVENT_TYPES.tokensRevoked, { jti: ['jti-1'] }, undefined, 'https://evil.example')), false);
    assert.equal(revocations.apply(set(SECURITY_EVENT_TYPES.accountDisabled, {}, issSub('user-1', 'https://evil.example'))), false);
    assert.equal(revocations.apply(set(SECURITY_EVENT_TYPES.sessionRevoked, {}, { format: 'session_id', iss: 'https://evil.example', sid: 's' })), false);
    assert.equal(revocations.apply(set(SECURITY_EVENT_TYPES.accountDisabled, {}, { format: 'email', email: 'user-1@example.com' })), false);
    assert.equal(revocations.apply(set(SECURITY_EVENT_TYPES.credentialChange, {}, issSub('user-1'))), false, 'not a revocation');
    assert.ok(!revocations.isRevoked(token({ sid: 's' })));
    assert.equal(revocations.size, 0);
  });

  it('entries expire after the TTL', () => {
    const { clock, revocations } = list({ ttlSeconds: 3600 });
    revocations.apply(set(SECURITY_EVENT_TYPES.tokensRevoked, { jti: ['jti-1'], sid: 's' }));
    revocations.apply(set(SECURITY_EVENT_TYPES.accountDisabled, {}, issSub('user-1')));
    clock.advance(3_599_000);
    assert.ok(revocations.isRevoked(token({ sub: 'x' })) && revocations.isRevoked(token({ jti: 'y', sid: 's', sub: 'x' })) && revocations.isRevoked(token({ jti: 'y' })));
    clock.advance(1000);
    assert.ok(!revocations.isRevoked(token({ sub: 'x' })) && !revocations.isRevoked(token({ jti: 'y', sid: 's', sub: 'x' })) && !revocations.isRevoked(token({ jti: 'y' })));
  });

  it('is bounded: past maxEntries per table the oldest entry goes', () => {
    const { revocations } = list({ maxEntries: 100 });
    revocations.apply(set(SECURITY_EVENT_TYPES.tokensRevoked, { jti: Array.from({ length: 250 }, (_, i) => `j${i}`) }));
    assert.equal(revocations.size, 100);
    assert.ok(!revocations.isRevoked(token({ jti: 'j0' })));
    assert.ok(revocations.isRevoked(token({ jti: 'j249' })));
    assert.equal(revocations.apply(set(SECURITY_EVENT_TYPES.tokensRevoked, { jti: Array.from({ length: 5000 }, (_, i) => `k${i}`) })), false, 'an oversized list is not ours');
  });
});

describe('createVerifier with a signals source', () => {
  it('a token revoked by a SET is 401 invalid_token; close() stops listening', async () => {
    const issuer = await TokenIssuer.create();
    const listeners = new Set<(set: SecurityEventToken) => void>();
    const signals = {
      onEvent(listener: (set: SecurityEventToken) => void) {
        listeners.add(listener);
        return () => listeners.delete(listener);
      },
    };
    const verifier = createVerifier({ issuer: ISSUER, audience: AUDIENCE, fetch: issuer.fetch, clock: issuer.clock.now, signals });
    const jti = randomUUID();
    const bearer = await issuer.token({ jti, sid: 'sess-9' });
    const request = (value: string) => ({ method: 'GET', url: `${AUDIENCE}/x`, headers: { authorization: `Bearer ${value}` } });
    assert.ok((await verifier.verify(request(bearer))).ok);
    for (const listener of listeners) listener(set(SECURITY_EVENT_TYPES.tokensRevoked, { jti: [jti] }));
    const result = await verifier.verify(request(bearer));
    assert.equal(result.ok, false);
    if (!result.ok) {
      assert.equal(result.status, 401);
      assert.equal(result.code, 'invalid_token');
      assert.match(result.headers['WWW-Authenticate']!, /error="invalid_token", error_description="the token has been revoked"/);
    }
    // A deleted client's tokens stop passing; those of other clients and those issued after it do not.
    const deletedClient = await issuer.token({ client_id: 'app-gone' });
    const otherClient = await issuer.token({ client_id: 'app-kept' });
    for (const listener of listeners) listener(set(SECURITY_EVENT_TYPES.clientDeleted, { client_id: 'app-gone', event_timestamp: issuer.nowSeconds() }, { format: 'opaque', id: 'app-gone' }));
    const refused = await verifier.verify(request(deletedClient));
    assert.deepEqual(refused.ok ? 'ok' : [refused.status, refused.code, refused.description], [401, 'invalid_token', 'the token has been revoked']);
    assert.ok((await verifier.verify(request(otherClient))).ok);
    issuer.clock.advance(1000);
    assert.ok((await verifier.verify(request(await issuer.token({ client_id: 'app-gone' })))).ok, 'a client registered again under the id later');
    const sessionToken = await issuer.token({ sid: 'sess-10' });
    for (const listener of listeners) listener(set(SECURITY_EVENT_TYPES.sessionRevoked, {}, { format: 'session_id', iss: ISSUER, sid: 'sess-10' }));
    assert.equal((await verifier.verify(request(sessionToken))).ok, false);
    verifier.close();
    assert.equal(listeners.size, 0);
  });
});
