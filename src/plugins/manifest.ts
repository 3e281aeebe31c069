/**
 * `portcullis-plugin.json`: what a plugin is and what it asks for, as data
 * (STYLE.md 7: the plugin declares, the host decides). Parsed strictly: an
 * unknown field, or a field out of its range, is refused with a message
 * naming the field, so an operator reviewing a plugin reads the same rules
 * the host enforces.
 */
import { isAbsolute, posix } from 'node:path';
import { HOOK_POINTS, REGISTERED_CLAIMS, isHookPoint, type HookPoint } from '../hooks/index.ts';

export const MANIFEST_FILE = 'portcullis-plugin.json';

/** The host calls a plugin may ask for: a closed list. */
export const HOST_CALLS = ['users.read', 'audit.record', 'http.fetch'] as const;
export type HostCallName = (typeof HOST_CALLS)[number];

export type HostCall = { readonly name: 'users.read' } | { readonly name: 'audit.record' } | { readonly name: 'http.fetch'; readonly origins: readonly string[] };

export type OnFailure = 'deny' | 'skip';

export interface PluginLimits {
  readonly memoryMb: number;
  readonly deadlineMs: number;
  readonly concurrency: number;
}

export interface PluginManifest {
  readonly name: string;
  readonly version: string;
  /** Relative POSIX path inside the package. */
  readonly entry: string;
  readonly hooks: readonly HookPoint[];
  /** A claim-name prefix (`https://example.com/`, `acme_`); present whenever a claims hook is declared. */
  readonly claimsNamespace?: string;
  readonly hostCalls: readonly HostCall[];
  /** Absolute paths the plugin may read beyond its own directory. */
  readonly fs: readonly string[];
  readonly limits: PluginLimits;
  /** One entry per declared hook (`deny` where the manifest names none). */
  readonly onFailure: Readonly<Partial<Record<HookPoint, OnFailure>>>;
}

export class ManifestError extends Error {
  override readonly name = 'ManifestError';
  /** The field at fault (`limits.memoryMb`), or `` for the document itself. */
  readonly field: string;
  constructor(field: string, message: string) {
    super(field === '' ? `${MANIFEST_FILE}: ${message}` : `${MANIFEST_FILE}: ${field}: ${message}`);
    this.field = field;
  }
}

const FIELDS = new Set(['name', 'version', 'entry', 'hooks', 'claimsNamespace', 'hostCalls', 'fs', 'limits', 'onFailure']);
const NAME = /^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$/;
// semver 2.0.0 section 2: MAJOR.MINOR.PATCH, no leading zeros (pre-release and build metadata not accepted).
const SEMVER = /^(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})$/;
// The claim-name characters the chain file accepts (hooks/chain-file.ts), at least 3 so a prefix is not a letter or two.
const NAMESPACE = /^[A-Za-z0-9_.:/-]{3,128}$/;
// A namespace ends where a name's own part begins: `https://acme.example/`, `urn:acme:`, `acme_`, `acme.`, `acme-`.
const NAMESPACE_END = /[/:_.-]$/;
/** Where a plugin may never read: the whole file system, and the kernel's views of processes (their environment, memory), of itself and of devices. */
const FORBIDDEN_FS_ROOTS: ReadonlySet<string> = new Set(['proc', 'sys', 'dev']);
const LIMITS: Readonly<Record<keyof PluginLimits, readonly [min: number, max: number, fallback: number]>> = {
  memoryMb: [16, 1024, 64],
  deadlineMs: [10, 10_000, 1000],
  concurrency: [1, 64, 16],
};

const isObject = (value: unknown): value is Record<string, unknown> => value !== null && typeof value === 'object' && !Array.isArray(value);
const show = (value: string) => JSON.stringify(value.slice(0, 64));

function stringField(document: Record<string, unknown>, field: string): string {
  const value = document[field];
  if (value === undefined) throw new ManifestError(field, 'is required');
  if (typeof value !== 'string') throw new ManifestError(field, 'must be a string');
  return value;
}

function stringList(value: unknown, field: string): string[] {
  if (!Array.isArray(value) || !value.every((item) => typeof item === 'string')) throw new ManifestError(field, 'must be an array of strings');
  if (new Set(value).size !== value.length) throw new ManifestError(field, 'lists an entry twice');
  return value;
}

function parseEntry(value: string): string {
  if (value === '' || isAbsolute(value) || /^[A-Za-z]:/.test(value) || value.includes('\\')) throw new ManifestError('entry', `${show(value)} must be a relative path inside the package`);
  if (value.split('/').some((segment) => segment === '..')) throw new ManifestError('entry', `${show(value)} must not contain ".."`);
   
  if (/[\u0000-\u001f\u007f]/.test(value)) throw new ManifestError('entry', 'must not contain control characters');
  const normal = posix.normalize(value);
  if (normal === '.' || normal.endsWith('/')) throw new ManifestError('entry', `${show(value)} must name a file`);
  return normal;
}

function parseHooks(value: unknown): HookPoint[] {
  if (value === undefined) throw new ManifestError('hooks', 'is required (the hook points the plugin serves)');
  const hooks = stringList(value, 'hooks');
  if (hooks.length === 0) throw new ManifestError('hooks', 'must name at least one hook point');
  for (const hook of hooks) {
    if (!isHookPoint(hook)) throw new ManifestError('hooks', `unknown hook point ${show(hook)} (known: ${Object.keys(HOOK_POINTS).join(', ')})`);
  }
  return hooks as HookPoint[];
}

/**
 * A prefix of claim names, ending in a separator. It may not be, or cover, a
 * registered claim (hooks' REGISTERED_CLAIMS: the protocol's, OIDC Core's
 * standard claims, the IANA registry's): `em` would reach `email_verified`,
 * `may_` `may_act`, `authorization_` `authorization_details`.
 */
function parseNamespace(value: unknown): string {
  if (typeof value !== 'string') throw new ManifestError('claimsNamespace', 'must be a string');
  if (!NAMESPACE.test(value)) throw new ManifestError('claimsNamespace', `${show(value)} is not a claim-name prefix (3 to 128 of A-Z a-z 0-9 _ . : / -)`);
  const reached = [...REGISTERED_CLAIMS].find((claim) => claim.startsWith(value));
  if (reached !== undefined) throw new ManifestError('claimsNamespace', `${show(value)} covers the registered claim "${reached}" (a protocol, OIDC standard or IANA-registered claim)`);
  if (!NAMESPACE_END.test(value)) throw new ManifestError('claimsNamespace', `${show(value)} must end in a separator (/ : _ . -), as "https://acme.example/", "urn:acme:" or "acme_"`);
  return value;
}

function parseOrigin(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ManifestError('hostCalls', `http.fetch origin ${show(value)} is not a URL`);
  }
  if (url.protocol !== 'https:') throw new ManifestError('hostCalls', `http.fetch origin ${show(value)} must be https`);
  if (url.origin !== value) throw new ManifestError('hostCalls', `http.fetch origin ${show(value)} must be an origin only (scheme, host, port), as ${show(url.origin)}`);
  return value;
}

function parseHostCalls(value: unknown): HostCall[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw new ManifestError('hostCalls', 'must be an array');
  const calls: HostCall[] = [];
  for (const item of value as unknown[]) {
    const name = typeof item === 'string' ? item : isObject(item) ? item['name'] : undefined;
    if (typeof name !== 'string' || !(HOST_CALLS as readonly string[]).includes(name)) {
      throw new ManifestError('hostCalls', `unknown host call ${show(typeof name === 'string' ? name : JSON.stringify(item) ?? '')} (known: ${HOST_CALLS.join(', ')})`);
    }
    if (calls.some((call) => call.name === name)) throw new ManifestError('hostCalls', `"${name}" is listed twice`);
    if (name === 'http.fetch') {
      if (!isObject(item)) throw new ManifestError('hostCalls', 'http.fetch needs its origins: { "name": "http.fetch", "origins": ["https://..."] }');
      const extra = Object.keys(item).find((key) => key !== 'name' && key !== 'origins');
      if (extra !== undefined) throw new ManifestError('hostCalls', `http.fetch: unknown field ${show(extra)}`);
      const origins = stringList(item['origins'], 'hostCalls');
      if (origins.length === 0) throw new ManifestError('hostCalls', 'http.fetch needs at least one origin');
      calls.push({ name, origins: origins.map(parseOrigin) });
    } else {
      if (isObject(item) && Object.keys(item).some((key) => key !== 'name')) throw new ManifestError('hostCalls', `${name} takes no options`);
      calls.push({ name: name as 'users.read' | 'audit.record' });
    }
  }
  return calls;
}

function parseFs(value: unknown): string[] {
  const paths = stringList(value ?? [], 'fs');
  for (const path of paths) {
    if (!path.startsWith('/')) throw new ManifestError('fs', `${show(path)} must be an absolute path`);
    if (path.split('/').some((segment) => segment === '..' || segment === '.')) throw new ManifestError('fs', `${show(path)} must not contain "." or ".." segments`);
     
    if (/[\u0000-\u001f\u007f]/.test(path)) throw new ManifestError('fs', 'a path must not contain control characters');
    // Segments, not string prefixes: `/proc/1/environ`, `//proc/`, `/proc` are refused, `/procfoo` is not.
    const segments = posix.normalize(path).split('/').filter((segment) => segment !== '');
    if (segments.length === 0) throw new ManifestError('fs', `${show(path)} is the root directory: name the files the plugin reads`);
    if (FORBIDDEN_FS_ROOTS.has(segments[0]!)) throw new ManifestError('fs', `${show(path)} is under /${segments[0]!}: process, kernel and device files (another process's environment and memory) are never readable`);
  }
  return paths;
}

function parseLimits(value: unknown): PluginLimits {
  if (value === undefined) value = {};
  if (!isObject(value)) throw new ManifestError('limits', 'must be an object');
  const extra = Object.keys(value).find((key) => !Object.hasOwn(LIMITS, key));
  if (extra !== undefined) throw new ManifestError('limits', `unknown field ${show(extra)} (known: ${Object.keys(LIMITS).join(', ')})`);
  const limits: Record<string, number> = {};
  for (const [key, [min, max, fallback]] of Object.entries(LIMITS)) {
    const given = value[key];
    if (given === undefined) {
      limits[key] = fallback;
      continue;
    }
    if (typeof given !== 'number' || !Number.isInteger(given) || given < min || given > max) throw new ManifestError(`limits.${key}`, `must be an integer from ${min} to ${max}`);
    limits[key] = given;
  }
  return limits as unknown as PluginLimits;
}

function parseOnFailure(value: unknown, hooks: readonly HookPoint[]): Partial<Record<HookPoint, OnFailure>> {
  if (value === undefined) value = {};
  if (!isObject(value)) throw new ManifestError('onFailure', 'must be an object of hook point to "deny" or "skip"');
  const result: Partial<Record<HookPoint, OnFailure>> = {};
  for (const [point, choice] of Object.entries(value)) {
    if (!isHookPoint(point) || !hooks.includes(point)) throw new ManifestError('onFailure', `${show(point)} is not one of the declared hooks`);
    if (choice !== 'deny' && choice !== 'skip') throw new ManifestError(`onFailure.${point}`, 'must be "deny" or "skip"');
    // A decision that is skipped on failure would fail open: only claims may.
    if (choice === 'skip' && HOOK_POINTS[point] !== 'claims') throw new ManifestError(`onFailure.${point}`, '"skip" is allowed only for claims hooks (a failed decision denies)');
    result[point] = choice;
  }
  for (const hook of hooks) result[hook] ??= 'deny';
  return result;
}

/** Validates a parsed manifest document. */
export function parseManifest(document: unknown): PluginManifest {
  if (!isObject(document)) throw new ManifestError('', 'must be a JSON object');
  const unknown = Object.keys(document).find((key) => !FIELDS.has(key));
  if (unknown !== undefined) throw new ManifestError('', `unknown field ${show(unknown)}`);
  const name = stringField(document, 'name');
  if (!NAME.test(name)) throw new ManifestError('name', `${show(name)} must be 1 to 64 of a-z, 0-9 and "-", not starting or ending with "-"`);
  const version = stringField(document, 'version');
  if (!SEMVER.test(version)) throw new ManifestError('version', `${show(version)} must be a semantic version MAJOR.MINOR.PATCH`);
  const entry = parseEntry(stringField(document, 'entry'));
  const hooks = parseHooks(document['hooks']);
  const claimsHook = hooks.find((hook) => HOOK_POINTS[hook] === 'claims');
  let claimsNamespace: string | undefined;
  if (document['claimsNamespace'] !== undefined) claimsNamespace = parseNamespace(document['claimsNamespace']);
  else if (claimsHook !== undefined) throw new ManifestError('claimsNamespace', `is required with the claims hook "${claimsHook}"`);
  return {
    name,
    version,
    entry,
    hooks,
    ...(claimsNamespace !== undefined && { claimsNamespace }),
    hostCalls: parseHostCalls(document['hostCalls']),
    fs: parseFs(document['fs']),
    limits: parseLimits(document['limits']),
    onFailure: parseOnFailure(document['onFailure'], hooks),
  };
}

/** Parses the text of `portcullis-plugin.json`. */
export function parseManifestText(text: string): PluginManifest {
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch {
    throw new ManifestError('', 'is not valid JSON');
  }
  return parseManifest(document);
}

/** -1, 0 or 1 as `a` is older than, the same as or newer than `b` (both checked MAJOR.MINOR.PATCH). */
export function compareVersions(a: string, b: string): number {
  const left = a.split('.').map(Number);
  const right = b.split('.').map(Number);
  for (let i = 0; i < 3; i += 1) {
    const difference = left[i]! - right[i]!;
    if (difference !== 0) return Math.sign(difference);
  }
  return 0;
}
