import { createHmac } from 'node:crypto';
import { isIP } from 'node:net';
import { expandIpv6 } from './ip.ts';

/**
 * What must never reach a log, and how personal data is shown when it does.
 * Applied at the logger to every log object, so no call site can forget it.
 */

export type PersonalDataMode = 'mask' | 'hash' | 'redact';

export const REDACTED = '[REDACTED]';

/** Keys whose values are secrets, compared lower-case with `-` and `_` removed. */
const SECRET_KEYS = new Set(
  [
    'authorization',
    'proxy-authorization',
    'cookie',
    'set-cookie',
    'password',
    'passwd',
    'new_password',
    'current_password',
    'secret',
    'client_secret',
    'token',
    'access_token',
    'refresh_token',
    'id_token',
    'registration_access_token',
    'initial_access_token',
    'code',
    'code_verifier',
    'client_assertion',
    'assertion',
    // JWTs that name a user or act for a client (security review 7):
    'id_token_hint',
    'logout_token',
    'login_hint_token',
    'request',
    // One-time references: short-lived, but whoever reads them may use them.
    'request_uri',
    'interaction',
    'nonce',
    'private_key',
    'privatekey',
    'master_key',
    'api_key',
    'otp',
    'totp',
    'recovery_code',
    'dpop',
    'session',
    'session_id',
    'csrf_token',
  ].map(normaliseKey),
);

/** Keys whose values are personal data. */
const EMAIL_KEYS = new Set(['email', 'email_address', 'login_hint', 'username'].map(normaliseKey));
const PHONE_KEYS = new Set(['phone', 'phone_number', 'mobile'].map(normaliseKey));
const IP_KEYS = new Set(['ip', 'ips', 'remote_address', 'client_ip', 'x-forwarded-for', 'x-real-ip', 'forwarded'].map(normaliseKey));

/**
 * Query parameters whose values may be logged: a request URL's other
 * parameter values are replaced (an allow-list, security review 7: a
 * deny-list missed `id_token_hint`, and the next new parameter would be
 * missed too). Names are compared as SECRET_KEYS are.
 */
const LOGGABLE_QUERY_PARAMETERS = new Set(
  [
    // RFC 6749 / OIDC Core authorization and logout requests: routing and display, no credential.
    'response_type',
    'response_mode',
    'client_id',
    'redirect_uri',
    'post_logout_redirect_uri',
    'scope',
    'state',
    'prompt',
    'max_age',
    'display',
    'ui_locales',
    'claims_locales',
    'acr_values',
    'code_challenge_method',
    'grant_type',
    'token_type_hint',
    'resource',
    'error',
    'error_description',
    'iss',
    // Our own pages and APIs. Not return_to: it can carry an authorization
    // interaction id (/authorize/resume?interaction=…), a live one-time reference.
    'reauth',
    'done',
    'size',
    'start',
    'end',
    'count',
    'limit',
  ].map(normaliseKey),
);

/**
 * A JWS or JWE in compact form (RFC 7515 section 7.1, RFC 7516 section 7.1):
 * its header is base64url JSON, so it starts with `eyJ`. Redacted wherever
 * it appears in free text, whatever carried it.
 */
const COMPACT_JWT_PATTERN = /eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*)?/g;

const EMAIL_PATTERN = /[\p{L}\p{N}._%+-]+@[\p{L}\p{N}.-]+\.[\p{L}]{2,}/gu;

function normaliseKey(key: string): string {
  return key.toLowerCase().replace(/[-_]/g, '');
}

export interface RedactorOptions {
  readonly personalData: PersonalDataMode;
  /** Key for `hash` mode pseudonyms; stable keys make them correlatable across restarts. */
  readonly pseudonymKey: Uint8Array;
}

export class Redactor {
  readonly #mode: PersonalDataMode;
  readonly #key: Uint8Array;

  constructor(options: RedactorOptions) {
    this.#mode = options.personalData;
    this.#key = options.pseudonymKey;
  }

  /** A redacted deep copy of a log object (depth-limited: logs are small). */
  redact(value: unknown, key = '', depth = 0): unknown {
    const normalised = normaliseKey(key);
    if (SECRET_KEYS.has(normalised)) return value === undefined ? value : REDACTED;
    if (typeof value === 'string') {
      if (EMAIL_KEYS.has(normalised)) return this.#personal(value, 'email');
      if (PHONE_KEYS.has(normalised)) return this.#personal(value, 'phone');
      if (IP_KEYS.has(normalised)) return this.ipList(value);
      if (normalised === 'url') return this.text(redactUrlQuery(value));
      return this.text(value);
    }
    if (value === null || typeof value !== 'object') return value;
    if (depth > 8) return '[too deep]';
    if (Array.isArray(value)) return value.map((item) => this.redact(item, key, depth + 1));
    if (value instanceof Error) return this.redact({ type: value.name, message: value.message }, key, depth + 1);
    const copy: Record<string, unknown> = {};
    for (const [childKey, child] of Object.entries(value)) copy[childKey] = this.redact(child, childKey, depth + 1);
    return copy;
  }

  /** Free text: email addresses in it are treated as personal data, and any compact JWT as a secret. */
  text(value: string): string {
    const withoutJwts = value.includes('eyJ') ? value.replace(COMPACT_JWT_PATTERN, REDACTED) : value;
    return withoutJwts.includes('@') ? withoutJwts.replace(EMAIL_PATTERN, (email) => this.#personal(email, 'email')) : withoutJwts;
  }

  /** One address or a comma-separated list (X-Forwarded-For). */
  ipList(value: string): string {
    return value
      .split(',')
      .map((part) => this.#personal(part.trim(), 'ip'))
      .join(', ');
  }

  #personal(value: string, kind: 'email' | 'phone' | 'ip'): string {
    switch (this.#mode) {
      case 'redact':
        return REDACTED;
      case 'hash':
        return `${kind}:${createHmac('sha256', this.#key).update(value).digest('base64url').slice(0, 16)}`;
      case 'mask':
        return kind === 'email' ? maskEmail(value) : kind === 'phone' ? maskPhone(value) : maskIp(value);
    }
  }
}

/** `alice@example.com` → `a***@example.com`: the domain helps operators, the person stays hidden. */
export function maskEmail(email: string): string {
  const at = email.lastIndexOf('@');
  if (at <= 0) return REDACTED;
  return `${email.slice(0, 1)}***${email.slice(at)}`;
}

/** Keeps the last two digits only. */
export function maskPhone(phone: string): string {
  const digits = phone.replace(/\D/g, '');
  return digits.length < 4 ? REDACTED : `***${digits.slice(-2)}`;
}

/** IPv4 to its /24, IPv6 to its /48: enough to see a network, not a person. */
export function maskIp(address: string): string {
  const plain = address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
  switch (isIP(plain)) {
    case 4:
      return `${plain.split('.').slice(0, 3).join('.')}.0`;
    case 6:
      // The first three groups of the expanded address: "2001:db8::1" is
      // 2001:db8:0:..., so its /48 is 2001:db8:0::.
      return `${expandIpv6(plain).slice(0, 3).map((group) => group.toString(16)).join(':')}::`;
    default:
      return REDACTED;
  }
}

/**
 * Keeps the values of the query parameters on the allow-list
 * (LOGGABLE_QUERY_PARAMETERS) and replaces every other value
 * (`?code=…&state=…` → `?code=[REDACTED]&state=…`).
 */
export function redactUrlQuery(url: string): string {
  const question = url.indexOf('?');
  if (question === -1) return url;
  const params = new URLSearchParams(url.slice(question + 1));
  let changed = false;
  for (const name of new Set(params.keys())) {
    if (!LOGGABLE_QUERY_PARAMETERS.has(normaliseKey(name))) {
      params.set(name, REDACTED);
      changed = true;
    }
  }
  return changed ? `${url.slice(0, question)}?${params.toString()}` : url;
}
