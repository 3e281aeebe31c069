/**
 * Which security signals a domain event causes (issue 13): the CAEP 1.0,
 * RISC 1.0 and Portcullis events, each with its subject (SSF 1.0 section
 * 3, RFC 9493) and members. Pure: the subjects' addresses come from a port.
 *
 * A signal is sent only for what succeeded; failures stay in the ledger.
 */
import type { DomainEvent, DomainEventType } from '../events/index.ts';
import type { RecordStore } from '../store/index.ts';
import { SECURITY_EVENT_TYPES, type SecurityEventTypeUri, type SubjectIdentifier } from '../sdk/index.ts';

/** One security event, before it is a SET: what the log keeps and every stream's SET says. */
export interface SignalEvent {
  readonly type: SecurityEventTypeUri;
  readonly subject: SubjectIdentifier;
  /** The event's members (CAEP/RISC fields), `event_timestamp` included. */
  readonly members: Readonly<Record<string, unknown>>;
  /**
   * Other names of the subject a stream's subject filter may use (an
   * `email` subject for an `iss_sub` user): canonical subject keys.
   */
  readonly aliases?: readonly string[];
}

/** What the mapping needs to know about a user beyond their id. */
export interface SubjectDirectory {
  /** The user's email, if the user (still) exists; read through `records` when given (inside a transaction, its own). */
  emailOf(userId: string, records?: RecordStore): Promise<string | undefined>;
}

/** The domain events that cause signals (the recorder ignores the rest without a lookup). */
export const SIGNALLING_EVENT_TYPES: ReadonlySet<DomainEventType> = new Set<DomainEventType>([
  'tokens.revoked',
  'user.updated',
  'user.disabled',
  'user.deleted',
  'key.created',
  'key.revoked',
  'client.deleted',
  'ca.rotated',
  'certificate.revoked',
  'privacy.opt_out.changed',
  'privacy.consent.changed',
]);

/** The stable text a subject is matched by in stream subject filters (SSF 1.0 section 8.1.3). */
export function subjectKey(subject: SubjectIdentifier): string {
  switch (subject.format) {
    case 'iss_sub':
      return `iss_sub:${subject.iss} ${subject.sub}`;
    case 'email':
      // RFC 9493 section 3.2.2: compared case-insensitively in the domain; Portcullis stores emails lower-cased.
      return `email:${subject.email.toLowerCase()}`;
    case 'opaque':
      return `opaque:${subject.id}`;
    case 'jwt_id':
      return `jwt_id:${subject.iss} ${subject.jti}`;
    case 'session_id':
      return `session_id:${subject.iss} ${subject.sid}`;
  }
}

export async function signalsOf(event: DomainEvent, issuer: string, directory: { emailOf(userId: string): Promise<string | undefined> }): Promise<SignalEvent[]> {
  if (!SIGNALLING_EVENT_TYPES.has(event.type)) return [];
  if ('outcome' in event && event.outcome !== 'success') return [];
  const event_timestamp = Math.floor((event.time ?? Date.now()) / 1000);
  const user = async (userId: string): Promise<Pick<SignalEvent, 'subject' | 'aliases'>> => {
    const email = await directory.emailOf(userId);
    return { subject: { format: 'iss_sub', iss: issuer, sub: userId }, ...(email !== undefined && { aliases: [subjectKey({ format: 'email', email })] }) };
  };
  const initiator = (actorService: string | undefined): string => (actorService === undefined ? 'user' : actorService === 'system' ? 'system' : 'admin');
  switch (event.type) {
    case 'tokens.revoked':
      if ('jti' in event) {
        return [{ type: SECURITY_EVENT_TYPES.tokensRevoked, subject: { format: 'jwt_id', iss: issuer, jti: event.jti }, members: { jti: [event.jti], event_timestamp } }];
      }
      // A session ended: CAEP session-revoked for receivers of the standard
      // profile, and Portcullis's tokens-revoked naming the sid its tokens carry.
      return [
        { type: SECURITY_EVENT_TYPES.sessionRevoked, subject: { format: 'session_id', iss: issuer, sid: event.sid }, members: { event_timestamp } },
        { type: SECURITY_EVENT_TYPES.tokensRevoked, subject: { format: 'session_id', iss: issuer, sid: event.sid }, members: { sid: event.sid, event_timestamp } },
      ];
    case 'user.disabled':
      // RISC 1.0 section 2.2.
      return [{ type: SECURITY_EVENT_TYPES.accountDisabled, ...(await user(event.actorUserId)), members: { event_timestamp, initiating_entity: initiator(event.actorService) } }];
    case 'user.deleted':
      // An erasure queues its own account-purged event, whose delivery to each recipient it tracks (src/privacy).
      if (event.detail?.['erasure'] !== undefined) return [];
      // RISC 1.0 section 2.4: the account is gone, so no email alias is left to name.
      return [{ type: SECURITY_EVENT_TYPES.accountPurged, subject: { format: 'iss_sub', iss: issuer, sub: event.actorUserId }, members: { event_timestamp } }];
    case 'user.updated':
      return userUpdated(event, await user(event.actorUserId), event_timestamp, initiator(event.actorService));
    case 'key.created':
    case 'key.revoked':
      return [
        {
          type: SECURITY_EVENT_TYPES.keyRotated,
          subject: { format: 'opaque', id: String(event.detail?.['kid'] ?? '') },
          members: { kid: event.detail?.['kid'], alg: event.detail?.['alg'], state: event.type === 'key.revoked' ? 'revoked' : 'created', event_timestamp },
        },
      ];
    case 'client.deleted':
      return [{ type: SECURITY_EVENT_TYPES.clientDeleted, subject: { format: 'opaque', id: event.clientId }, members: { client_id: event.clientId, event_timestamp } }];
    case 'ca.rotated':
      return [
        {
          type: SECURITY_EVENT_TYPES.trustBundleUpdated,
          subject: { format: 'opaque', id: `${issuer}/ca/bundle` },
          members: { bundle_uri: `${issuer}/ca/bundle`, spiffe_bundle_uri: `${issuer}/ca/spiffe-bundle`, intermediate: event.detail?.['intermediate'], event_timestamp },
        },
      ];
    case 'certificate.revoked': {
      const spiffeId = typeof event.detail?.['spiffeId'] === 'string' ? event.detail['spiffeId'] : undefined;
      const subject: SubjectIdentifier = { format: 'opaque', id: spiffeId ?? event.serial };
      const revoked: SignalEvent = {
        type: SECURITY_EVENT_TYPES.certificateRevoked,
        subject,
        members: { serial: event.serial, ...(spiffeId !== undefined && { spiffe_id: spiffeId }), 'x5t#S256': event.detail?.['sha256'], reason: event.detail?.['reason'], event_timestamp },
      };
      // RISC 1.0 section 2.6 with CAEP's credential type x509: a key the
      // operator says was compromised is more than a routine revocation.
      if (event.detail?.['reason'] !== 'keyCompromise') return [revoked];
      return [revoked, { type: SECURITY_EVENT_TYPES.credentialCompromise, subject, members: { credential_type: 'x509', event_timestamp, reason_admin: { en: 'certificate key compromised' } } }];
    }
    case 'privacy.opt_out.changed':
      // The applications that received the person's data must stop selling or sharing it (CCPA 1798.135(c)(1), regulations section 7026(f)(2)).
      return [{ type: SECURITY_EVENT_TYPES.privacyOptOutChanged, ...(await user(event.actorUserId)), members: { opt_out: event.detail?.['optOut'] === true, event_timestamp, initiating_entity: initiator(event.actorService) } }];
    case 'privacy.consent.changed':
      // GDPR Art. 7(3): a withdrawal applies from then on, to every processor relying on the consent.
      return [
        {
          type: SECURITY_EVENT_TYPES.privacyConsentChanged,
          ...(await user(event.actorUserId)),
          members: { purpose: event.detail?.['purpose'], version: event.detail?.['version'], granted: event.detail?.['granted'] === true, event_timestamp, initiating_entity: initiator(event.actorService) },
        },
      ];
    default:
      return [];
  }
}

function userUpdated(event: DomainEvent<'user.updated'>, who: Pick<SignalEvent, 'subject' | 'aliases'>, event_timestamp: number, initiating_entity: string): SignalEvent[] {
  const detail = event.detail ?? {};
  const signals: SignalEvent[] = [];
  switch (detail['change']) {
    case 'password':
      // CAEP 1.0 section 3.2.
      signals.push({ type: SECURITY_EVENT_TYPES.credentialChange, ...who, members: { credential_type: 'password', change_type: 'update', event_timestamp, initiating_entity } });
      break;
    case 'mfa_enabled':
    case 'mfa_disabled': {
      const enabled = detail['change'] === 'mfa_enabled';
      signals.push(
        { type: SECURITY_EVENT_TYPES.credentialChange, ...who, members: { credential_type: 'app', change_type: enabled ? 'create' : 'delete', event_timestamp, initiating_entity } },
        // CAEP 1.0 section 3.4: a second factor moves the account between NIST AAL1 and AAL2.
        {
          type: SECURITY_EVENT_TYPES.assuranceLevelChange,
          ...who,
          members: { namespace: 'NIST-AAL', current_level: enabled ? 'nist-aal2' : 'nist-aal1', previous_level: enabled ? 'nist-aal1' : 'nist-aal2', change_direction: enabled ? 'increase' : 'decrease', event_timestamp, initiating_entity },
        },
      );
      break;
    }
    case 'profile': {
      // CAEP 1.0 section 3.3 names the claims that changed; their values stay
      // in UserInfo, where the receiver's own consent applies.
      const fields = typeof detail['fields'] === 'string' ? detail['fields'].split(',').filter((field) => field !== '') : [];
      signals.push({ type: SECURITY_EVENT_TYPES.tokenClaimsChange, ...who, members: { claims: Object.fromEntries(fields.map((field) => [field, null])), event_timestamp, initiating_entity } });
      break;
    }
    case 'email': {
      // RISC 1.0 section 2.5: the subject is the old identifier, `new-value` the new one.
      const previous = event.previousEmail;
      const current = who.aliases?.[0]?.replace(/^email:/, '');
      if (previous === undefined) break;
      signals.push({
        type: SECURITY_EVENT_TYPES.identifierChanged,
        subject: { format: 'email', email: previous },
        aliases: [subjectKey(who.subject), ...(who.aliases ?? [])],
        members: { ...(current !== undefined && { 'new-value': current }), event_timestamp },
      });
      break;
    }
    default:
      if (detail['disabled'] === false) signals.push({ type: SECURITY_EVENT_TYPES.accountEnabled, ...who, members: { event_timestamp, initiating_entity } });
  }
  // RISC 1.0 section 2.7: a change that ended every session says so too.
  if (typeof detail['sessionsEnded'] === 'number' && detail['sessionsEnded'] > 0 && detail['disabled'] === undefined) {
    signals.push({ type: SECURITY_EVENT_TYPES.sessionsRevoked, ...who, members: { event_timestamp, initiating_entity } });
  }
  return signals;
}
