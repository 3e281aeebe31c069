/**
 * What an audit event is, and how it becomes the bytes of a log entry.
 *
 * The entry is the RFC 8785 (JCS) canonical JSON of the event, so that the
 * same event always hashes to the same leaf, whatever produced it, and an
 * offline verifier can check an entry is untouched by re-canonicalising it.
 */
import canonicalize from 'canonicalize';
import type { EventContext } from '../events/index.ts';

/**
 * Event types, a closed list: a type names what happened, dotted from the
 * area to the outcome-neutral action. Modules add their types here.
 */
export const AUDIT_EVENT_TYPES = [
  'audit.entries.read',
  'audit.cosignature.added',
  'audit.subject.forgotten',
  'admin.auth.failed',
  'metrics.auth.failed',
  'client.auth.failed',
  'registration.auth.failed',
  'ca.auth.failed',
  'signals.auth.failed',
  'plugin.installed',
  'plugin.enabled',
  'plugin.disabled',
  'plugin.removed',
  'plugin.failed',
  'plugin.violation',
  'plugin.crashed',
  'plugin.quarantined',
  'plugin.recorded',
  'server.started',
  'auth.login.succeeded',
  'auth.login.failed',
  'auth.logout',
  'session.revoked',
  'token.issued',
  'token.refreshed',
  'token.reuse_detected',
  'token.revoked',
  'key.created',
  'key.revoked',
  'consent.granted',
  'consent.revoked',
  'client.registered',
  'client.updated',
  'client.deleted',
  'resource.created',
  'resource.deleted',
  'user.created',
  'user.updated',
  'user.disabled',
  'user.deleted',
  'privacy.export',
  'privacy.erasure.requested',
  'privacy.erasure.cancelled',
  'privacy.erasure',
  'privacy.recipient.notified',
  'privacy.recipient.overdue',
  'privacy.request.overdue',
  'privacy.opt_out.changed',
  'privacy.consent.changed',
  'privacy.retention.ran',
  'privacy.hold.set',
  'privacy.hold.released',
  'privacy.reapplied',
  'plugin.call',
  'hook.fault',
  'ca.created',
  'ca.rotated',
  'ca.enrolment.created',
  'certificate.issued',
  'certificate.renewed',
  'certificate.revoked',
] as const;

export type AuditEventType = (typeof AUDIT_EVENT_TYPES)[number];

export type AuditOutcome = 'success' | 'failure' | 'denied';

/** A small, flat detail object: no nesting, bounded sizes, no secret-named keys. */
export type AuditDetail = Readonly<Record<string, string | number | boolean | null>>;

/**
 * An event as the ledger records it: the domain event's context (who, on
 * what, from where, when; the ledger pseudonymises the user and truncates,
 * hashes or omits the IP by config) with its audit type, outcome and detail.
 */
export interface AuditEvent extends EventContext {
  readonly type: AuditEventType;
  readonly outcome: AuditOutcome;
  readonly detail?: AuditDetail;
}

/** The JSON object an entry holds (format version 1). */
export interface AuditEntry {
  readonly v: 1;
  readonly type: AuditEventType;
  /** RFC 3339 UTC with milliseconds. */
  readonly time: string;
  readonly outcome: AuditOutcome;
  readonly actor?: string;
  readonly service?: string;
  readonly client?: string;
  readonly requestId?: string;
  readonly traceId?: string;
  readonly ip?: string;
  readonly detail?: AuditDetail;
}

const MAX_DETAIL_KEYS = 16;
const MAX_KEY_LENGTH = 40;
const MAX_STRING_LENGTH = 256;
const MAX_ID_LENGTH = 128;
/**
 * Detail keys that would name a secret. An entry is public to every holder of
 * the log forever and cannot be erased, so a secret must never reach one:
 * refusing such keys at the door turns a careless call into a failing test.
 */
const SECRET_KEY = /pass(word|phrase)?|secret|token|cookie|authori[sz]ation|private|verifier|assertion|otp|^code$|_code$|credential/i;
const EVENT_TYPES = new Set<string>(AUDIT_EVENT_TYPES);
const OUTCOMES = new Set<string>(['success', 'failure', 'denied']);

/** A programming error in a caller of `audit.record`: the event is refused whole. */
export class AuditEventError extends TypeError {
  override readonly name = 'AuditEventError';
}

export function checkDetail(detail: AuditDetail): void {
  const keys = Object.keys(detail);
  if (keys.length > MAX_DETAIL_KEYS) throw new AuditEventError(`audit detail has more than ${MAX_DETAIL_KEYS} keys`);
  for (const key of keys) {
    if (key.length === 0 || key.length > MAX_KEY_LENGTH || !/^[A-Za-z][A-Za-z0-9_]*$/.test(key)) throw new AuditEventError(`audit detail key "${key.slice(0, MAX_KEY_LENGTH)}" is not a short identifier`);
    if (SECRET_KEY.test(key)) throw new AuditEventError(`audit detail key "${key}" names a secret; secrets never enter the audit log`);
    const value = detail[key];
    if (typeof value === 'string') {
      if (value.length > MAX_STRING_LENGTH) throw new AuditEventError(`audit detail "${key}" is longer than ${MAX_STRING_LENGTH} characters`);
      if (!value.isWellFormed()) throw new AuditEventError(`audit detail "${key}" is not well-formed Unicode`);
    } else if (typeof value === 'number') {
      if (!Number.isFinite(value)) throw new AuditEventError(`audit detail "${key}" is not a finite number`);
    } else if (value !== null && typeof value !== 'boolean') {
      throw new AuditEventError(`audit detail "${key}" must be a string, number, boolean or null`);
    }
  }
}

function checkId(name: string, value: string | undefined): void {
  if (value === undefined) return;
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_ID_LENGTH || !value.isWellFormed() || /[\u0000-\u001f]/.test(value)) {
    throw new AuditEventError(`audit event ${name} must be a printable string of 1 to ${MAX_ID_LENGTH} characters`);
  }
}

/** Checks an event before anything is written; throws AuditEventError. */
export function checkEvent(event: AuditEvent): void {
  if (!EVENT_TYPES.has(event.type)) throw new AuditEventError(`unknown audit event type "${String(event.type).slice(0, 64)}"`);
  if (!OUTCOMES.has(event.outcome)) throw new AuditEventError(`audit outcome must be success, failure or denied`);
  checkId('actorUserId', event.actorUserId);
  checkId('actorService', event.actorService);
  checkId('clientId', event.clientId);
  checkId('requestId', event.requestId);
  checkId('traceId', event.traceId);
  if (event.time !== undefined && (!Number.isSafeInteger(event.time) || event.time < 0)) throw new AuditEventError('audit event time must be ms since the epoch');
  if (event.detail !== undefined) checkDetail(event.detail);
}

/** The canonical bytes of an entry (RFC 8785). */
export function encodeEntry(entry: AuditEntry): Uint8Array {
  const text = canonicalize(entry);
  if (text === undefined) throw new AuditEventError('audit entry is not serialisable');
  return new TextEncoder().encode(text);
}

/**
 * The subjects (audit pseudonyms) an entry names: its actor, and the
 * `subject` of its detail (user.created names the new user there). These
 * are the keys the ledger indexes the entry under.
 */
export function subjectsOf(entry: AuditEntry): string[] {
  const subjects: string[] = [];
  if (typeof entry.actor === 'string') subjects.push(entry.actor);
  const subject = entry.detail?.['subject'];
  if (typeof subject === 'string' && subject !== entry.actor) subjects.push(subject);
  return subjects;
}

export function decodeEntry(bytes: Uint8Array): AuditEntry {
  return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes)) as AuditEntry;
}
