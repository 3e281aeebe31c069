/**
 * Which security events each domain event causes (src/signals/mapping.ts):
 * every CAEP, RISC and Portcullis event type of issue 13, with its subject
 * format and members, and nothing for failures or for events that signal
 * nothing.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { DomainEvent } from '../../src/events/index.ts';
import { SECURITY_EVENT_TYPES as T } from '../../src/sdk/index.ts';
import { signalsOf, subjectKey } from '../../src/signals/index.ts';

const ISS = 'https://id.example.com';
const directory = { emailOf: async (userId: string) => (userId === 'u1' ? 'ada@example.com' : undefined) };
const time = Date.UTC(2026, 11, 4, 12, 0, 0);

async function of(event: DomainEvent) {
  return signalsOf({ ...event, time }, ISS, directory);
}

describe('domain events to security events', () => {
  it('tokens.revoked: Portcullis tokens-revoked by jti; a session: CAEP session-revoked and tokens-revoked by sid', async () => {
    const [byJti] = await of({ type: 'tokens.revoked', jti: 'j1' });
    assert.deepEqual(byJti, { type: T.tokensRevoked, subject: { format: 'jwt_id', iss: ISS, jti: 'j1' }, members: { jti: ['j1'], event_timestamp: time / 1000 } });
    const bySid = await of({ type: 'tokens.revoked', sid: 's1' });
    assert.deepEqual(bySid.map((signal) => [signal.type, signal.subject]), [
      [T.sessionRevoked, { format: 'session_id', iss: ISS, sid: 's1' }],
      [T.tokensRevoked, { format: 'session_id', iss: ISS, sid: 's1' }],
    ]);
    assert.equal(bySid[1]!.members['sid'], 's1');
  });

  it('account changes: RISC account-disabled, account-enabled, account-purged, sessions-revoked; users are iss_sub with their email as an alias', async () => {
    const [disabled] = await of({ type: 'user.disabled', outcome: 'success', actorUserId: 'u1', actorService: 'admin', detail: { disabled: true, sessionsEnded: 2 } });
    assert.equal(disabled!.type, T.accountDisabled);
    assert.deepEqual(disabled!.subject, { format: 'iss_sub', iss: ISS, sub: 'u1' });
    assert.deepEqual(disabled!.aliases, [subjectKey({ format: 'email', email: 'ada@example.com' })]);
    assert.equal(disabled!.members['initiating_entity'], 'admin');
    const enabled = await of({ type: 'user.updated', outcome: 'success', actorUserId: 'u1', actorService: 'admin', detail: { disabled: false, sessionsEnded: 0 } });
    assert.deepEqual(enabled.map((signal) => signal.type), [T.accountEnabled]);
    const [purged] = await of({ type: 'user.deleted', outcome: 'success', actorUserId: 'u1', actorService: 'admin', detail: { sessionsEnded: 0 } });
    assert.equal(purged!.type, T.accountPurged);
    assert.equal(purged!.aliases, undefined, 'a purged account is named by its id only');
  });

  it('credentials: CAEP credential-change (password; second factor with assurance-level-change), RISC sessions-revoked when sessions ended', async () => {
    const password = await of({ type: 'user.updated', outcome: 'success', actorUserId: 'u1', detail: { change: 'password', sessionsEnded: 3 } });
    assert.deepEqual(password.map((signal) => signal.type), [T.credentialChange, T.sessionsRevoked]);
    assert.deepEqual(password[0]!.members, { credential_type: 'password', change_type: 'update', event_timestamp: time / 1000, initiating_entity: 'user' });
    const mfa = await of({ type: 'user.updated', outcome: 'success', actorUserId: 'u1', detail: { change: 'mfa_enabled', method: 'totp' } });
    assert.deepEqual(mfa.map((signal) => signal.type), [T.credentialChange, T.assuranceLevelChange]);
    assert.deepEqual(mfa[1]!.members, { namespace: 'NIST-AAL', current_level: 'nist-aal2', previous_level: 'nist-aal1', change_direction: 'increase', event_timestamp: time / 1000, initiating_entity: 'user' });
    const off = await of({ type: 'user.updated', outcome: 'success', actorUserId: 'u1', detail: { change: 'mfa_disabled' } });
    assert.equal(off[1]!.members['change_direction'], 'decrease');
  });

  it('profile and identifier changes: CAEP token-claims-change (names only) and RISC identifier-changed (old address as subject)', async () => {
    const [claims] = await of({ type: 'user.updated', outcome: 'success', actorUserId: 'u1', detail: { change: 'profile', fields: 'name,locale' } });
    assert.equal(claims!.type, T.tokenClaimsChange);
    assert.deepEqual(claims!.members['claims'], { name: null, locale: null });
    const [changed] = await of({ type: 'user.updated', outcome: 'success', actorUserId: 'u1', previousEmail: 'old@example.com', detail: { change: 'email' } });
    assert.equal(changed!.type, T.identifierChanged);
    assert.deepEqual(changed!.subject, { format: 'email', email: 'old@example.com' });
    assert.equal(changed!.members['new-value'], 'ada@example.com');
  });

  it('keys, CA, certificates and clients: Portcullis key-rotated, trust-bundle-updated, certificate-revoked (+ RISC credential-compromise on keyCompromise), client-deleted', async () => {
    const [created] = await of({ type: 'key.created', outcome: 'success', actorService: 'system', detail: { kid: 'k1', alg: 'ES256' } });
    assert.deepEqual([created!.type, created!.members['state']], [T.keyRotated, 'created']);
    const [revokedKey] = await of({ type: 'key.revoked', outcome: 'success', actorService: 'admin', detail: { kid: 'k1', alg: 'ES256' } });
    assert.deepEqual([revokedKey!.type, revokedKey!.members['state'], revokedKey!.members['kid']], [T.keyRotated, 'revoked', 'k1']);
    const [bundle] = await of({ type: 'ca.rotated', outcome: 'success', actorService: 'admin', detail: { intermediate: 'i2', retired: 'i1', retiredServedUntil: 'x' } });
    assert.equal(bundle!.type, T.trustBundleUpdated);
    const routine = await of({ type: 'certificate.revoked', outcome: 'success', actorService: 'admin', serial: 'ab', detail: { serial: 'ab', spiffeId: 'spiffe://t/x', sha256: 'ff', reason: 'superseded' } });
    assert.deepEqual(routine.map((signal) => signal.type), [T.certificateRevoked]);
    assert.deepEqual(routine[0]!.subject, { format: 'opaque', id: 'spiffe://t/x' });
    const compromised = await of({ type: 'certificate.revoked', outcome: 'success', actorService: 'admin', serial: 'ab', detail: { serial: 'ab', spiffeId: 'spiffe://t/x', sha256: 'ff', reason: 'keyCompromise' } });
    assert.deepEqual(compromised.map((signal) => signal.type), [T.certificateRevoked, T.credentialCompromise]);
    assert.equal(compromised[1]!.members['credential_type'], 'x509');
    const [client] = await of({ type: 'client.deleted', outcome: 'success', clientId: 'c1', detail: { authMethod: 'x', reason: 'deleted' } });
    assert.deepEqual([client!.type, client!.subject, client!.members['client_id']], [T.clientDeleted, { format: 'opaque', id: 'c1' }, 'c1']);
  });

  it('privacy choices: Portcullis privacy-opt-out-changed and privacy-consent-changed, about the user (iss_sub), with who acted', async () => {
    const [optOut] = await of({ type: 'privacy.opt_out.changed', outcome: 'success', actorUserId: 'u1', detail: { optOut: true, source: 'gpc', request: 'pr_1' } });
    assert.deepEqual(optOut, {
      type: 'urn:portcullis:secevent:event-type:privacy-opt-out-changed',
      subject: { format: 'iss_sub', iss: ISS, sub: 'u1' },
      aliases: [subjectKey({ format: 'email', email: 'ada@example.com' })],
      members: { opt_out: true, event_timestamp: time / 1000, initiating_entity: 'user' },
    });
    const [optIn] = await of({ type: 'privacy.opt_out.changed', outcome: 'success', actorUserId: 'u1', actorService: 'admin', detail: { optOut: false, source: 'admin' } });
    assert.deepEqual(optIn!.members, { opt_out: false, event_timestamp: time / 1000, initiating_entity: 'admin' });
    const [withdrawn] = await of({ type: 'privacy.consent.changed', outcome: 'success', actorUserId: 'u1', detail: { purpose: 'marketing', version: 3, granted: false, source: 'account' } });
    assert.deepEqual(withdrawn, {
      type: 'urn:portcullis:secevent:event-type:privacy-consent-changed',
      subject: { format: 'iss_sub', iss: ISS, sub: 'u1' },
      aliases: [subjectKey({ format: 'email', email: 'ada@example.com' })],
      members: { purpose: 'marketing', version: 3, granted: false, event_timestamp: time / 1000, initiating_entity: 'user' },
    });
    assert.deepEqual(await of({ type: 'privacy.consent.changed', outcome: 'failure', actorUserId: 'u1', detail: { purpose: 'marketing' } }), [], 'a failure signals nothing');
  });

  it('sends nothing for failures and for events that are not security signals', async () => {
    assert.deepEqual(await of({ type: 'user.updated', outcome: 'failure', actorUserId: 'u1', detail: { change: 'password', reason: 'breached' } }), []);
    assert.deepEqual(await of({ type: 'auth.login.failed', outcome: 'failure', detail: { reason: 'wrong_password' } }), []);
    assert.deepEqual(await of({ type: 'token.issued', outcome: 'success', clientId: 'c1' }), []);
    assert.deepEqual(await of({ type: 'signals.appended', seq: 3 }), []);
  });
});
