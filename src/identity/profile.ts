/**
 * The standard profile claims a user carries (OpenID Connect Core 1.0
 * section 5.1), checked before they are stored: what an application reads
 * at /userinfo is well-formed text, a real time zone, a real language tag
 * and a picture it can fetch safely.
 */
import { UserError } from './user-error.ts';

/** OIDC Core section 5.1 names; `updated_at` is kept by the server, never set. */
export const PROFILE_FIELDS = ['name', 'given_name', 'family_name', 'locale', 'zoneinfo', 'picture'] as const;
export type ProfileField = (typeof PROFILE_FIELDS)[number];

export type Profile = { readonly [field in ProfileField]?: string } & {
  /** OIDC Core section 5.1: seconds since the epoch of the last change to a profile claim. */
  readonly updated_at?: number;
};

/** A requested change: a value sets the field, '' clears it, absent leaves it alone. */
export type ProfileChange = { readonly [field in ProfileField]?: string };

const MAX_NAME_LENGTH = 200;
const MAX_PICTURE_LENGTH = 2048;
/** C0, DEL, C1, and the bidi overrides/isolates that make text read differently than it is stored. */
const CONTROL = /[\p{Cc}\u200E\u200F\u202A-\u202E\u2066-\u2069]/u;

function refuse(field: ProfileField, why: string): never {
  throw new UserError('invalid_profile', `${field}: ${why}`);
}

function text(field: ProfileField, value: string, maxLength: number): string {
  if (!value.isWellFormed()) refuse(field, 'is not well-formed Unicode');
  const normalised = value.normalize('NFC').trim();
  if (CONTROL.test(normalised)) refuse(field, 'must not contain control characters');
  if ([...normalised].length > maxLength) refuse(field, `must be at most ${maxLength} characters`);
  return normalised;
}

/** OIDC Core section 5.1: locale is a BCP 47 language tag (RFC 5646), e.g. en-GB or fr-CA. */
function locale(value: string): string {
  try {
    const [canonical] = Intl.getCanonicalLocales(value);
    if (canonical !== undefined) return canonical;
  } catch {
    // RangeError: not a structurally valid tag.
  }
  return refuse('locale', 'is not a BCP 47 language tag (for example en-GB)');
}

/** OIDC Core section 5.1: zoneinfo is a zone of the IANA time zone database, e.g. Europe/Paris. */
function zoneinfo(value: string): string {
  // Offsets such as "+01:00" are accepted by Intl but are not IANA zone names.
  if (!/^[A-Za-z][A-Za-z0-9_+\-/]*$/.test(value)) refuse('zoneinfo', 'is not an IANA time zone name (for example Europe/Paris)');
  try {
    return new Intl.DateTimeFormat('en', { timeZone: value }).resolvedOptions().timeZone;
  } catch {
    return refuse('zoneinfo', 'is not an IANA time zone name (for example Europe/Paris)');
  }
}

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

/**
 * OIDC Core section 5.1: picture is a URL of an image. Applications fetch it
 * and show it, so it must be https (plain http would let anyone on the path
 * swap the image); loopback http only while developing.
 */
function picture(value: string, allowLoopbackHttp: boolean): string {
  if (value.length > MAX_PICTURE_LENGTH) refuse('picture', `must be at most ${MAX_PICTURE_LENGTH} characters`);
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return refuse('picture', 'is not a URL');
  }
  const loopbackHttp = allowLoopbackHttp && url.protocol === 'http:' && LOOPBACK_HOSTS.has(url.hostname);
  if (url.protocol !== 'https:' && !loopbackHttp) refuse('picture', 'must be an https URL');
  if (url.username !== '' || url.password !== '') refuse('picture', 'must not contain a user name or password');
  return url.href;
}

/**
 * Checks every field of a change (all or nothing: one bad value refuses the
 * whole change) and returns the normalised values, '' meaning "clear".
 */
export function checkProfileChange(change: ProfileChange, options: { allowLoopbackHttp: boolean }): ProfileChange {
  const checked: { [field in ProfileField]?: string } = {};
  for (const field of PROFILE_FIELDS) {
    const raw = change[field];
    if (raw === undefined) continue;
    if (typeof raw !== 'string') refuse(field, 'must be text');
    const value = text(field, raw, field === 'picture' ? MAX_PICTURE_LENGTH : MAX_NAME_LENGTH);
    if (value === '') checked[field] = '';
    else if (field === 'locale') checked[field] = locale(value);
    else if (field === 'zoneinfo') checked[field] = zoneinfo(value);
    else if (field === 'picture') checked[field] = picture(value, options.allowLoopbackHttp);
    else checked[field] = value;
  }
  return checked;
}

/** The profile after a checked change, and the names of the fields it really changed. */
export function applyProfileChange(current: Profile, change: ProfileChange, nowSeconds: number): { profile: Profile; changed: ProfileField[] } {
  const next: { [field in ProfileField]?: string } = {};
  const changed: ProfileField[] = [];
  for (const field of PROFILE_FIELDS) {
    const before = current[field];
    const requested = change[field];
    const after = requested === undefined ? before : requested === '' ? undefined : requested;
    if (after !== undefined) next[field] = after;
    if (after !== before) changed.push(field);
  }
  const updatedAt = changed.length > 0 ? nowSeconds : current.updated_at;
  return { profile: { ...next, ...(updatedAt !== undefined && { updated_at: updatedAt }) }, changed };
}
