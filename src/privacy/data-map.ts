/**
 * The data map: every place Portcullis keeps personal data (GDPR Art. 30,
 * records of processing), in one list. Each place names its store and
 * container, the fields that hold personal data, their category, the
 * purpose they serve and how long they are kept; and how export, erasure
 * and retention find and treat the person's part of it.
 *
 * The list is the contract the workflows run on: export builds its sections
 * from the places marked `export`, erasure visits every place and does what
 * its `erase` says, retention applies the rules of a place's category. A
 * test (test/privacy/data-map.test.ts) seeds a known email address, name
 * and IP address through the real pages and APIs, searches every table,
 * collection and key of each driver, and fails on any hit in a place this
 * list does not name.
 */

/** The kinds of personal data (GDPR Art. 4(1)), coarse enough for an operator's record of processing. */
export type DataCategory =
  /** Email address: the sign-in name and the address applications are given. */
  | 'contact'
  /** Name, picture, locale, time zone (OIDC Core section 5.1). */
  | 'profile'
  /** Password hash, TOTP secret, recovery code hashes: never exported, never logged. */
  | 'credential'
  /** IP addresses (masked, truncated or keyed) and device descriptions. */
  | 'network'
  /** Which applications the person let in, with what scopes, and the tokens' grants. */
  | 'authorisation'
  /** Consents per purpose, the "do not sell or share" choice, legal holds. */
  | 'preference'
  /** Keyed pseudonyms and unkeyed digests that single the person out without naming them. */
  | 'pseudonym'
  /** The person's internal id and timestamps of what they did. */
  | 'activity';

/** Which store holds the place. */
export type DataStore = 'records' | 'hot' | 'audit' | 'outbox';

/**
 * How the person's part of a place is found:
 * - `id`: the record's id is the user id;
 * - `email`: the record's id is the normalised email address;
 * - `index`: the collection's `user` index;
 * - `prefix`: hot keys under the prefix that end in (or hold) the user id, or that a manager reaches from the user (sessions);
 * - `scan`: only by reading the container (the signal log, the outbox);
 * - `none`: not about end users (client developers' contacts).
 */
export type Locator = 'id' | 'email' | 'index' | 'prefix' | 'scan' | 'none';

/**
 * What erasure does to the person's part:
 * - `delete`: removed in the erasure's transaction;
 * - `forget`: the key that links it is destroyed (audit pseudonyms: the entries stay, provable, naming nobody);
 * - `redact`: the personal fields are rewritten, the record stays (it belongs to someone else too);
 * - `end`: ended through its owner (sessions, throttles), right after the transaction;
 * - `expire`: short-lived, unreachable by user, gone within its time to live;
 * - `keep`: kept without personal data (the erasure's own records), or not the person's.
 */
export type Erasure = 'delete' | 'forget' | 'redact' | 'end' | 'expire' | 'keep';

/** The export section a place feeds (the JSON Schema at /privacy/export-schema.json names the same). */
export type ExportSection = 'profile' | 'sessions' | 'consents' | 'applications' | 'grants' | 'secondFactors' | 'preferences' | 'requests' | 'audit';

export interface DataPlace {
  /** Stable name: `<container>` or `<container>.<part>`. */
  readonly id: string;
  readonly store: DataStore;
  /** Records: the collection. Hot: the key prefix. Audit, outbox: the table. */
  readonly container: string;
  /** The fields (JSON paths, or `key` for the key itself) holding personal data. */
  readonly fields: readonly string[];
  readonly category: DataCategory;
  /** Why it is kept (GDPR Art. 5(1)(b)). */
  readonly purpose: string;
  /** How long, in words an operator puts in their record of processing; a config key where one decides it. */
  readonly retention: string;
  readonly locate: Locator;
  readonly erase: Erasure;
  /** The export section that shows it, or null when it is not exported (secrets, others' data). */
  readonly export: ExportSection | null;
}

const whileAccount = 'while the account exists (privacy.retention.inactiveAccountDays ends inactive accounts)';

export const DATA_MAP: readonly DataPlace[] = [
  // accounts (identity)
  { id: 'users.email', store: 'records', container: 'users', fields: ['email'], category: 'contact', purpose: 'sign-in name; the email claim applications receive', retention: whileAccount, locate: 'id', erase: 'delete', export: 'profile' },
  {
    id: 'users.profile',
    store: 'records',
    container: 'users',
    fields: ['profile.name', 'profile.given_name', 'profile.family_name', 'profile.picture', 'profile.locale', 'profile.zoneinfo'],
    category: 'profile',
    purpose: 'the profile claims applications receive (OIDC Core section 5.1)',
    retention: whileAccount,
    locate: 'id',
    erase: 'delete',
    export: 'profile',
  },
  { id: 'users.credentials', store: 'records', container: 'users', fields: ['passwordHash', 'totpSecret'], category: 'credential', purpose: 'sign-in', retention: whileAccount, locate: 'id', erase: 'delete', export: 'secondFactors' },
  {
    id: 'users.activity',
    store: 'records',
    container: 'users',
    fields: ['createdAt', 'passwordChangedAt', 'lastSignInAt', 'disabled', 'tokensNotBefore'],
    category: 'activity',
    purpose: 'account security (password age, token cut-off) and inactivity retention',
    retention: whileAccount,
    locate: 'id',
    erase: 'delete',
    export: 'profile',
  },
  { id: 'users.privacy', store: 'records', container: 'users', fields: ['privacy.optOut', 'privacy.consents'], category: 'preference', purpose: 'the person\'s current choices, given to applications as claims', retention: whileAccount, locate: 'id', erase: 'delete', export: 'preferences' },
  { id: 'user_emails', store: 'records', container: 'user_emails', fields: ['key'], category: 'contact', purpose: 'one account per address', retention: whileAccount, locate: 'email', erase: 'delete', export: null },
  { id: 'recovery_codes', store: 'records', container: 'recovery_codes', fields: ['hashes'], category: 'credential', purpose: 'second-factor recovery', retention: whileAccount, locate: 'id', erase: 'delete', export: 'secondFactors' },
  // applications (oauth)
  { id: 'consents', store: 'records', container: 'consents', fields: ['userId', 'clientId', 'scopes', 'resources', 'grantedAt'], category: 'authorisation', purpose: 'not asking again for what the person approved (OIDC Core section 3.1.2.4)', retention: 'until withdrawn on the account page, or the account ends', locate: 'index', erase: 'delete', export: 'applications' },
  {
    id: 'refresh-families',
    store: 'records',
    container: 'refresh-families',
    fields: ['grant.userId', 'grant.clientId', 'grant.scope', 'grant.authTime', 'grant.amr'],
    category: 'authorisation',
    purpose: 'refresh tokens and their rotation (RFC 9700 section 4.14)',
    retention: 'until the family expires (tokens.refreshAbsoluteTtl) or is revoked',
    locate: 'index',
    erase: 'delete',
    export: 'grants',
  },
  {
    id: 'oauth_revocations',
    store: 'records',
    container: 'oauth_revocations',
    fields: ['key'],
    category: 'pseudonym',
    purpose: 'revoked access tokens (by jti) and signed-out sessions (by sid, a hash of the session handle), kept beside the hot store\'s marks so a hot store that loses its data does not make them usable again (RFC 7009 section 2); nothing else, nothing that names the person',
    retention: 'until the tokens concerned have expired everywhere (tokens.accessTokenTtlSeconds plus 5 minutes of clock skew between instances), then the hourly housekeeping deletes them',
    locate: 'none',
    erase: 'expire',
    export: null,
  },
  { id: 'data_recipients', store: 'records', container: 'data_recipients', fields: ['userId', 'clientId', 'firstAt', 'lastAt'], category: 'authorisation', purpose: 'who received data about the person, to tell them of an erasure (GDPR Art. 19)', retention: whileAccount, locate: 'index', erase: 'delete', export: 'applications' },
  // privacy's own records
  { id: 'privacy_consent_log', store: 'records', container: 'privacy_consent_log', fields: ['userId', 'purpose', 'version', 'granted', 'at', 'source'], category: 'preference', purpose: 'proof of consent (GDPR Art. 7(1))', retention: whileAccount, locate: 'index', erase: 'delete', export: 'consents' },
  {
    id: 'privacy_retention',
    store: 'records',
    container: 'privacy_retention',
    fields: ['noticedAt', 'sentAt'],
    category: 'activity',
    purpose: 'when an inactive account\'s owner was sent the notice before its erasure (privacy.retention.inactiveAccountDays), so it is sent once and the erasure waits out its period',
    retention: 'until the account is erased, or a sign-in voids the notice (the next privacy job drops it)',
    locate: 'id',
    erase: 'delete',
    export: 'profile',
  },
  { id: 'privacy_holds', store: 'records', container: 'privacy_holds', fields: ['reason', 'at'], category: 'preference', purpose: 'a legal hold stops erasure and retention (GDPR Art. 17(3)(e))', retention: 'until released', locate: 'id', erase: 'keep', export: null },
  {
    id: 'privacy_requests',
    store: 'records',
    container: 'privacy_requests',
    fields: ['subject'],
    category: 'pseudonym',
    purpose: 'consumer requests and their legal deadlines (CCPA regulations section 7021); the subject is a keyed hash',
    retention: '24 months after the answer (CCPA regulations section 7101)',
    locate: 'index',
    erase: 'keep',
    export: 'requests',
  },
  { id: 'privacy_erasures', store: 'records', container: 'privacy_erasures', fields: ['subject', 'recipients.clientId'], category: 'pseudonym', purpose: 'tracking that every recipient was told (GDPR Art. 19); the subject is a keyed hash', retention: '24 months after the last recipient was told', locate: 'none', erase: 'keep', export: null },
  {
    id: 'privacy_erasure_cleanups',
    store: 'records',
    container: 'privacy_erasure_cleanups',
    fields: ['userId', 'addresses', 'heldByOthers', 'sessionHandles', 'pseudonym', 'subjectKey'],
    category: 'contact',
    purpose: 'finishing an erasure after its transaction (ending sessions, cutting the addresses out of shared records) even across a crash (erasure-cleanup.ts)',
    retention: 'the addresses until the shared records are redacted (moments; after a crash or a fault, until the privacy job next runs); the user id, pseudonym and keyed tombstone until the first job run after max(10 minutes, twice http.requestTimeoutMs) (privacy.retention.interval)',
    locate: 'none',
    erase: 'keep',
    export: null,
  },
  { id: 'privacy_tombstones', store: 'records', container: 'privacy_tombstones', fields: ['key', 'user'], category: 'pseudonym', purpose: 'erasing again anyone a restored backup brings back; keyed hashes only', retention: 'for as long as backups made before the erasure are kept', locate: 'none', erase: 'keep', export: null },
  // the audit ledger
  {
    id: 'audit_subject_keys',
    store: 'records',
    container: 'audit_subject_keys',
    fields: ['secret', 'forgottenAt'],
    category: 'pseudonym',
    purpose: 'the key of the person\'s audit pseudonym (GDPR Art. 4(5)); after an erasure only a marker with the time, so no event recorded later can make a new key for them',
    retention: 'the key while the account exists; the marker for ever',
    locate: 'id',
    erase: 'forget',
    export: null,
  },
  { id: 'audit_subjects', store: 'audit', container: 'audit_subjects', fields: ['subject'], category: 'pseudonym', purpose: 'which audit entries are about whom (by pseudonym), so an export finds them without reading the log', retention: 'until the person is erased', locate: 'index', erase: 'forget', export: 'audit' },
  {
    id: 'audit_entries',
    store: 'audit',
    container: 'audit_entries',
    fields: ['actor', 'ip', 'detail.subject'],
    category: 'pseudonym',
    purpose: 'a tamper-evident record of security events (GDPR Art. 32); actors are keyed pseudonyms, IPs are truncated, keyed or left out (audit.ipAddresses)',
    retention: 'for ever (append-only); erasure destroys the pseudonym key, so entries name nobody',
    locate: 'index',
    erase: 'forget',
    export: 'audit',
  },
  // security signals
  {
    id: 'signal_log',
    store: 'records',
    container: 'signal_log',
    fields: ['subject', 'subjectKeys', 'members'],
    category: 'contact',
    purpose: 'security events for receivers (SSF 1.0); email subjects beside the user id',
    retention: 'signals.retention',
    locate: 'scan',
    erase: 'redact',
    export: null,
  },
  { id: 'signal_streams', store: 'records', container: 'signal_streams', fields: ['removedSubjects'], category: 'contact', purpose: 'subjects a receiver asked not to hear about (SSF 1.0 section 8.1.3)', retention: 'while the stream exists', locate: 'scan', erase: 'redact', export: null },
  { id: 'outbox', store: 'outbox', container: 'outbox', fields: ['payload'], category: 'contact', purpose: 'messages committed with the change that caused them, until delivered', retention: 'until delivered, then 7 days (the outbox\'s retention of delivered messages)', locate: 'scan', erase: 'redact', export: null },
  // clients (not end users)
  { id: 'clients.contacts', store: 'records', container: 'clients', fields: ['contacts'], category: 'contact', purpose: 'whom to reach about an application (RFC 7591 section 2)', retention: 'while the client is registered', locate: 'none', erase: 'keep', export: null },
  // the hot store: short-lived
  {
    id: 'session',
    store: 'hot',
    container: 'session:',
    fields: ['userId', 'device', 'ip', 'authTime', 'amr'],
    category: 'network',
    purpose: 'signed-in sessions; the IP masked, the device a short description',
    retention: 'identity.sessionAbsoluteTimeout; ended and dropped after privacy.retention.sessionDays; the IP replaced by a keyed pseudonym after privacy.retention.ipPseudonymiseDays',
    locate: 'prefix',
    erase: 'end',
    export: 'sessions',
  },
  { id: 'user-sessions', store: 'hot', container: 'user-sessions:', fields: ['key'], category: 'activity', purpose: 'the person\'s sessions, to list and end them', retention: 'identity.sessionAbsoluteTimeout', locate: 'prefix', erase: 'end', export: null },
  { id: 'totp-pending', store: 'hot', container: 'totp-pending:', fields: ['key', 'value'], category: 'credential', purpose: 'a second factor being set up', retention: '10 minutes', locate: 'prefix', erase: 'end', export: null },
  { id: 'totp-used', store: 'hot', container: 'totp:used:', fields: ['key'], category: 'activity', purpose: 'one-time codes already used (RFC 6238 section 5.2)', retention: 'two TOTP steps', locate: 'prefix', erase: 'expire', export: null },
  { id: 'mfa', store: 'hot', container: 'mfa:', fields: ['value'], category: 'activity', purpose: 'a sign-in waiting for its second factor', retention: '5 minutes', locate: 'scan', erase: 'expire', export: null },
  { id: 'audit-failures', store: 'hot', container: 'audit:failures:', fields: ['key'], category: 'network', purpose: 'counting refused requests per network before they reach the ledger (security review 11); the IP truncated as the ledger would', retention: 'two aggregation windows', locate: 'none', erase: 'expire', export: null },
  { id: 'throttle', store: 'hot', container: 'throttle:', fields: ['key'], category: 'pseudonym', purpose: 'slowing password and second-factor guessing; keys are digests of the account and IP', retention: 'the throttle windows (at most 30 days)', locate: 'prefix', erase: 'end', export: null },
  { id: 'oauth-code', store: 'hot', container: 'oauth:code:', fields: ['userId', 'nonce'], category: 'authorisation', purpose: 'authorization codes until redeemed (RFC 6749 section 4.1.2)', retention: 'oauth.codeTtlSeconds', locate: 'scan', erase: 'expire', export: null },
  { id: 'oauth-code-spent', store: 'hot', container: 'oauth:code-spent:', fields: ['value'], category: 'authorisation', purpose: 'detecting a replayed code (RFC 6749 section 4.1.2)', retention: '10 minutes', locate: 'scan', erase: 'expire', export: null },
  { id: 'oauth-interaction', store: 'hot', container: 'oauth:interaction:', fields: ['request.loginHint'], category: 'contact', purpose: 'an authorization request waiting for sign-in or consent; a login_hint may be an address', retention: '10 minutes', locate: 'scan', erase: 'expire', export: null },
  { id: 'oauth-par', store: 'hot', container: 'oauth:par:', fields: ['loginHint'], category: 'contact', purpose: 'pushed authorization requests (RFC 9126)', retention: 'oauth.parTtlSeconds', locate: 'scan', erase: 'expire', export: null },
  { id: 'privacy-exports', store: 'hot', container: 'privacy:exports:', fields: ['key'], category: 'activity', purpose: 'limiting the copies of their data a person downloads to privacy.exportsPerDay (GDPR Art. 15(3))', retention: '24 hours from the day\'s first export', locate: 'prefix', erase: 'expire', export: null },
  { id: 'oauth-session-clients', store: 'hot', container: 'oauth:session-clients:', fields: ['value'], category: 'authorisation', purpose: 'the applications a session signed in to, for back-channel logout', retention: 'identity.sessionAbsoluteTimeout', locate: 'prefix', erase: 'end', export: null },
];

/** The places of one store. */
export function placesIn(store: DataStore): DataPlace[] {
  return DATA_MAP.filter((place) => place.store === store);
}

/** The record collections the person's part is deleted from by id, by index or by email, in the erasure's transaction. */
export function deletedCollections(): { readonly container: string; readonly locate: 'id' | 'email' | 'index' }[] {
  const seen = new Map<string, 'id' | 'email' | 'index'>();
  for (const place of DATA_MAP) {
    if (place.store !== 'records' || place.erase !== 'delete') continue;
    if (place.locate !== 'id' && place.locate !== 'email' && place.locate !== 'index') continue;
    seen.set(place.container, place.locate);
  }
  return [...seen].map(([container, locate]) => ({ container, locate }));
}

/**
 * Whether a store location is named by the map: a record collection or
 * table by its name, a hot key by the longest prefix it starts with.
 */
export function placeOf(store: DataStore, location: string): DataPlace | undefined {
  if (store === 'hot') {
    return DATA_MAP.filter((place) => place.store === 'hot' && location.startsWith(place.container)).sort((a, b) => b.container.length - a.container.length)[0];
  }
  return DATA_MAP.find((place) => place.store === store && place.container === location);
}
