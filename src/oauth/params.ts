/**
 * Request parameters of the OAuth endpoints. RFC 6749 section 3.1: a
 * parameter sent without a value is treated as omitted, and none may appear
 * more than once (except `resource`, RFC 8707 section 2).
 */
import { OAuthError } from './errors.ts';

export interface OAuthParams {
  readonly values: Readonly<Record<string, string | undefined>>;
  /** `resource`, which may repeat. */
  readonly resources: readonly string[];
}

const REPEATABLE = new Set(['resource']);
const MAX_VALUE_LENGTH = 8192;

export function oauthParams(body: unknown): OAuthParams {
  if (body === null || typeof body !== 'object') return { values: {}, resources: [] };
  const values: Record<string, string | undefined> = Object.create(null) as Record<string, string | undefined>;
  let resources: string[] = [];
  for (const [name, raw] of Object.entries(body as Record<string, unknown>)) {
    const list = Array.isArray(raw) ? raw : [raw];
    if (list.some((value) => typeof value !== 'string')) throw new OAuthError('invalid_request', `Parameter ${safeName(name)} is malformed.`);
    const strings = (list as string[]).filter((value) => value !== '');
    if (strings.some((value) => value.length > MAX_VALUE_LENGTH)) throw new OAuthError('invalid_request', `Parameter ${safeName(name)} is too long.`);
    if (REPEATABLE.has(name)) {
      resources = strings;
      continue;
    }
    if (strings.length > 1) throw new OAuthError('invalid_request', `Parameter ${safeName(name)} appears more than once.`);
    if (strings.length === 1) values[name] = strings[0];
  }
  return { values, resources };
}

/** A parameter name fit to quote back: short and printable. */
function safeName(name: string): string {
  return /^[\w.-]{1,40}$/.test(name) ? name : 'name';
}

/** RFC 6749 section 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ), space-delimited. */
export function parseScope(scope: string | undefined): string[] {
  if (scope === undefined) return [];
  const tokens = scope.split(' ').filter((token) => token !== '');
  if (tokens.some((token) => !/^[\x21\x23-\x5b\x5d-\x7e]+$/.test(token))) throw new OAuthError('invalid_scope', 'The scope is malformed.');
  return [...new Set(tokens)];
}

/**
 * RFC 8707 section 2: each resource is an absolute URI without a fragment.
 * Refused with invalid_target.
 */
export function checkResources(resources: readonly string[]): string[] {
  if (resources.length > 10) throw new OAuthError('invalid_target', 'Too many resource parameters.');
  for (const resource of resources) {
    let url: URL;
    try {
      url = new URL(resource);
    } catch {
      throw new OAuthError('invalid_target', 'Each resource must be an absolute URI.');
    }
    if (url.hash !== '' || resource.includes('#')) throw new OAuthError('invalid_target', 'A resource must not have a fragment.');
  }
  return [...new Set(resources)];
}
