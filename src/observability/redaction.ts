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

  /** Free text: email addresses in it are treated as personal data. */
  text(value: string): string {
    return value.includes('@') ? value.replace(EMAIL_PATTERN, (email) => this.#personal(email, 'email')) : value;
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

/** Replaces the values of secret query parameters (`?code=…&state=…`). */
export function redactUrlQuery(url: string): string {
  const question = url.indexOf('?');
  if (question === -1) return url;
  const params = new URLSearchParams(url.slice(question + 1));
  let changed = false;
  for (const name of new Set(params.keys())) {
    const normalised = normaliseKey(name);
    if (SECRET_KEYS.has(normalised) || EMAIL_KEYS.has(normalised) || PHONE_KEYS.has(normalised)) {
      params.set(name, REDACTED);
      changed = true;
    }
  }
  return changed ? `${url.slice(0, question)}?${params.toString()}` : url;
}
