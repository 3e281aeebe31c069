import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join, resolve } from 'node:path';
import { Value, ValueErrorType, type ValueError } from '@sinclair/typebox/value';
import { ConfigSchema, configLeaves, type Config, type ConfigKeyOptions, type ConfigLeaf } from './schema.ts';
import { redactUrl } from './redact-url.ts';
import { parseDuration } from './duration.ts';

/** A configuration mistake, with a message that names the key and its source. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** Deeply partial input, as a config file or CLI flags give it. */
export type ConfigInput = { [key: string]: unknown };

export interface LoadConfigOptions {
  /** Environment to read PORTCULLIS_* from (default: process.env). */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Config file path; default: PORTCULLIS_CONFIG from `env`. */
  readonly file?: string;
  /** Values from command-line flags: they win over env and file. */
  readonly overrides?: ConfigInput;
}

/** Environment variables with the PORTCULLIS_ prefix that are not config keys. */
const NON_CONFIG_ENV = /^PORTCULLIS_(CONFIG|TEST_.*)$/;

/**
 * Builds the one immutable config: defaults < file < environment < flags,
 * then derived defaults, then validation of the whole. Throws ConfigError.
 */
export function loadConfig(options: LoadConfigOptions = {}): Readonly<Config> {
  const env = options.env ?? process.env;
  const leaves = configLeaves();
  const sources = new Map<string, string>();
  const merged: ConfigInput = {};

  const file = options.file ?? env['PORTCULLIS_CONFIG'];
  if (file !== undefined && file !== '') mergeInto(merged, readConfigFile(file), `config file ${file}`, sources);
  mergeInto(merged, readEnv(env, leaves), 'environment', sources);
  if (options.overrides) mergeInto(merged, options.overrides, 'command line', sources);

  const withDefaults = Value.Default(ConfigSchema, structuredClone(merged)) as ConfigInput;
  applyDerivedDefaults(withDefaults);
  const firstError = Value.Errors(ConfigSchema, withDefaults).First();
  if (firstError !== undefined) {
    const path = firstError.path.slice(1).split('/').join('.');
    const leaf = leaves.find((l) => l.path === path);
    const where = describeSource(path, sources, leaf);
    throw new ConfigError(`${where}: ${describeProblem(firstError)}`);
  }
  const config = withDefaults as Config;
  checkSemantics(config);
  const frozen = deepFreeze(config);
  if (file !== undefined && file !== '') CONFIG_FILES.set(frozen, resolve(file));
  return frozen;
}

/** The file each loaded config was read from (kept beside it, not in it: the config's shape is its schema's). */
const CONFIG_FILES = new WeakMap<object, string>();

/**
 * The absolute path of the file `config` was loaded from, if any. It may
 * hold secrets (the master key, database URLs), so the plugin host keeps
 * plugins away from it. A config copied after loading has none.
 */
export function configFileOf(config: object): string | undefined {
  return CONFIG_FILES.get(config);
}

function readConfigFile(path: string): ConfigInput {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new ConfigError(`config file ${path}: cannot read it (${code === 'ENOENT' ? 'no such file' : (code ?? 'unknown error')})`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    // V8's message quotes the file's text, which may hold a secret: keep only the position.
    const where = /\(line \d+ column \d+\)/.exec((error as Error).message)?.[0];
    throw new ConfigError(`config file ${path}: not valid JSON${where ? ` ${where}` : ''}`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new ConfigError(`config file ${path}: must hold a JSON object`);
  }
  return parsed as ConfigInput;
}

/** Turns PORTCULLIS_* variables into a nested object, typed by the schema. */
function readEnv(env: Readonly<Record<string, string | undefined>>, leaves: readonly ConfigLeaf[]): ConfigInput {
  const byName = new Map(leaves.map((leaf) => [leaf.env, leaf]));
  const result: ConfigInput = {};
  for (const [name, raw] of Object.entries(env)) {
    if (!name.startsWith('PORTCULLIS_') || raw === undefined || NON_CONFIG_ENV.test(name)) continue;
    const leaf = byName.get(name);
    if (leaf === undefined) throw new ConfigError(`environment variable ${name}: unknown setting (see the configuration table in the README)`);
    setPath(result, leaf.path, parseEnvValue(leaf, raw));
  }
  return result;
}

function parseEnvValue(leaf: ConfigLeaf, raw: string): unknown {
  const type = leaf.schema['type'] as unknown;
  if (type === 'integer') {
    if (!/^-?\d+$/.test(raw.trim())) throw new ConfigError(`environment variable ${leaf.env}: expected an integer, got "${raw}"`);
    return Number(raw.trim());
  }
  if (type === 'boolean') {
    const value = raw.trim().toLowerCase();
    if (['true', '1', 'yes', 'on'].includes(value)) return true;
    if (['false', '0', 'no', 'off'].includes(value)) return false;
    throw new ConfigError(`environment variable ${leaf.env}: expected true or false, got "${raw}"`);
  }
  if (type === 'array' && (leaf.schema['items'] as { type?: unknown } | undefined)?.type === 'object') {
    // A list of objects (privacy.purposes) cannot be comma-separated text: it is JSON.
    try {
      return JSON.parse(raw) as unknown;
    } catch {
      throw new ConfigError(`environment variable ${leaf.env}: expected a JSON array`);
    }
  }
  if (type === 'array') {
    return raw
      .split(',')
      .map((item) => item.trim())
      .filter((item) => item !== '');
  }
  return raw;
}

function mergeInto(target: ConfigInput, source: ConfigInput, label: string, sources: Map<string, string>, prefix = ''): void {
  for (const [key, value] of Object.entries(source)) {
    const path = prefix ? `${prefix}.${key}` : key;
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
      const existing = target[key];
      const child: ConfigInput = existing !== null && typeof existing === 'object' && !Array.isArray(existing) ? (existing as ConfigInput) : {};
      target[key] = child;
      sources.set(path, label);
      mergeInto(child, value as ConfigInput, label, sources, path);
    } else if (value !== undefined) {
      target[key] = value;
      sources.set(path, label);
    }
  }
}

function setPath(target: ConfigInput, path: string, value: unknown): void {
  const parts = path.split('.');
  let node = target;
  for (const part of parts.slice(0, -1)) {
    node[part] ??= {};
    node = node[part] as ConfigInput;
  }
  node[parts.at(-1)!] = value;
}

function applyDerivedDefaults(config: ConfigInput): void {
  const production = config['mode'] === 'production';
  config['host'] ??= production ? '0.0.0.0' : '127.0.0.1';
  if (config['issuer'] === undefined && !production && typeof config['port'] === 'number') {
    config['issuer'] = `http://127.0.0.1:${config['port']}`;
  }
  const oauth = (config['oauth'] ??= {}) as ConfigInput;
  oauth['registration'] ??= production ? 'token' : 'open';
  oauth['backchannelLogoutPrivateNetworks'] ??= !production;
  if (config['masterKeyFile'] === undefined && typeof config['dataDir'] === 'string') {
    config['masterKeyFile'] = join(config['dataDir'], 'master.key');
  }
  const privacy = (config['privacy'] ??= {}) as ConfigInput;
  if (privacy['tombstoneFile'] === undefined && typeof config['dataDir'] === 'string') {
    privacy['tombstoneFile'] = join(config['dataDir'], 'erasure-tombstones.jsonl');
  }
}

/**
 * TypeBox's error in an operator's words (first-hour D11): what a value must
 * look like, never a lower-cased regular expression, and never the value of
 * a secret.
 */
function describeProblem(error: ValueError): string {
  const schema = error.schema as ValueError['schema'] & ConfigKeyOptions;
  const got = schema.secret === true ? '' : ` (got ${JSON.stringify(error.value)})`;
  const literals = (schema['anyOf'] as { const?: unknown }[] | undefined)?.map((option) => option.const);
  if (literals?.every((literal) => typeof literal === 'string')) {
    return `must be one of ${literals.join(', ')} (got ${JSON.stringify(error.value)})`;
  }
  switch (error.type) {
    case ValueErrorType.ObjectAdditionalProperties:
      return 'unknown key';
    case ValueErrorType.ObjectRequiredProperty:
      return 'is required';
    case ValueErrorType.StringPattern:
      return `expected ${schema.expected ?? `text of the form ${String(schema['pattern'])}`}${got}`;
    case ValueErrorType.StringMinLength:
      return `expected at least ${String(schema['minLength'])} characters`;
    case ValueErrorType.StringMaxLength:
      return `expected at most ${String(schema['maxLength'])} characters`;
    case ValueErrorType.IntegerMinimum:
    case ValueErrorType.NumberMinimum:
      return `expected at least ${String(schema['minimum'])}${got}`;
    case ValueErrorType.IntegerMaximum:
    case ValueErrorType.NumberMaximum:
      return `expected at most ${String(schema['maximum'])}${got}`;
    case ValueErrorType.ArrayMaxItems:
      return `expected at most ${String(schema['maxItems'])} items`;
    case ValueErrorType.ArrayMinItems:
      return `expected at least ${String(schema['minItems'])} items`;
    case ValueErrorType.Integer:
      return `expected an integer${got}`;
    case ValueErrorType.Number:
      return `expected a number${got}`;
    case ValueErrorType.Boolean:
      return `expected true or false${got}`;
    case ValueErrorType.String:
      return `expected text${got}`;
    case ValueErrorType.Array:
      return `expected a list${got}`;
    case ValueErrorType.Object:
      return 'expected an object of keys';
    default:
      // Keep the rest as TypeBox words it, only the first letter lowered to fit after the colon.
      return `${error.message.charAt(0).toLowerCase()}${error.message.slice(1)}`;
  }
}

function describeSource(path: string, sources: Map<string, string>, leaf: ConfigLeaf | undefined): string {
  const source = sources.get(path);
  if (source === 'environment' && leaf) return `environment variable ${leaf.env}`;
  if (source !== undefined) return `${source}: key "${path}"`;
  if (leaf) return `key "${path}" (${leaf.env})`;
  return `key "${path}"`;
}

/** Rules that span keys, or that a JSON schema cannot say clearly. */
function checkSemantics(config: Config): void {
  let issuer: URL;
  try {
    issuer = new URL(config.issuer);
  } catch {
    throw new ConfigError(`key "issuer": not a URL: "${config.issuer}"`);
  }
  // OIDC Discovery 1.0 section 3 and RFC 8414 section 2: the issuer is an
  // https URL with no query or fragment.
  if (issuer.search !== '' || issuer.hash !== '') throw new ConfigError('key "issuer": must have no query or fragment');
  if ((config.tls.certFile === undefined) !== (config.tls.keyFile === undefined)) {
    throw new ConfigError('keys "tls.certFile" and "tls.keyFile": set both or neither');
  }
  if ((config.tls.mtlsCertFile === undefined) !== (config.tls.mtlsKeyFile === undefined)) {
    throw new ConfigError('keys "tls.mtlsCertFile" and "tls.mtlsKeyFile": set both or neither');
  }
  if (parseDuration(config.pki.defaultTtl) > parseDuration(config.pki.maxTtl)) {
    throw new ConfigError('key "pki.defaultTtl" is longer than "pki.maxTtl"');
  }
  const purposeIds = config.privacy.purposes.map((purpose) => purpose.id);
  const repeated = purposeIds.find((id, i) => purposeIds.indexOf(id) !== i);
  if (repeated !== undefined) throw new ConfigError(`key "privacy.purposes": the id "${repeated}" is used twice`);
  const retention = config.privacy.retention;
  if (retention.inactiveAccountDays > 0 && retention.inactiveAccountDays <= retention.inactiveNoticeDays) {
    // The notice goes out inactiveAccountDays - inactiveNoticeDays days after the last sign-in: that must be later than the sign-in.
    throw new ConfigError('key "privacy.retention.inactiveAccountDays" must be more than "privacy.retention.inactiveNoticeDays" (the notice is sent that many days before the erasure)');
  }
  if (config.mail.smtpUrl !== undefined) {
    let smtp: URL;
    try {
      smtp = new URL(config.mail.smtpUrl);
    } catch {
      throw new ConfigError('key "mail.smtpUrl": not a URL');
    }
    if (smtp.hostname === '') throw new ConfigError('key "mail.smtpUrl": names no host');
  }
  if (config.hotStore === 'redis' && config.redis.url === undefined) {
    throw new ConfigError('key "hotStore" is redis but "redis.url" (PORTCULLIS_REDIS_URL) is not set');
  }
  if (config.mode === 'production') {
    if (issuer.protocol !== 'https:') throw new ConfigError('production mode needs an https issuer (PORTCULLIS_ISSUER)');
    if (config.tls.certFile === undefined && config.trustProxy.length === 0) {
      throw new ConfigError('production mode needs TLS (PORTCULLIS_TLS_CERT_FILE and PORTCULLIS_TLS_KEY_FILE) or a trusted TLS-terminating proxy (PORTCULLIS_TRUST_PROXY)');
    }
  }
}

/** Whether `host` only reaches this machine: localhost, 127.0.0.0/8 or ::1 (RFC 6890 "loopback"). */
export function isLoopbackHost(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return host === '::1' || host === '0:0:0:0:0:0:0:1' || host.toLowerCase().startsWith('::ffff:127.');
}

/** Whether `host` is the wildcard address (every interface). */
function isWildcardHost(host: string): boolean {
  return host === '0.0.0.0' || host === '::' || host === '0:0:0:0:0:0:0:0';
}

function developmentWarning(config: Config): string {
  if (isLoopbackHost(config.host)) return 'development mode: plain HTTP on loopback only; set PORTCULLIS_MODE=production to deploy';
  const where = isWildcardHost(config.host) ? `on all interfaces (${config.host})` : `on ${config.host}, reachable from other machines`;
  return `development mode listening ${where} over plain HTTP, and dynamic client registration is ${config.oauth.registration === 'open' ? 'open to anyone who can reach it' : config.oauth.registration}; set PORTCULLIS_MODE=production to deploy`;
}

/** Settings that are fine to try things with and unsafe to run with. */
export function configWarnings(config: Config): string[] {
  const warnings: string[] = [];
  if (config.mode === 'development') warnings.push(developmentWarning(config));
  if (config.oauth.registration === 'open' && config.mode === 'production') warnings.push('oauth.registration is open: anyone can register OAuth clients');
  if (config.oauth.registration === 'token' && config.oauth.initialAccessToken === undefined) warnings.push('oauth.registration is token but no oauth.initialAccessToken is set: dynamic registration refuses everyone');
  if (config.mode === 'production' && config.hotStore === 'memory') warnings.push('hot store "memory": sessions and replay caches are lost on restart and not shared between instances');
  if (config.privacy.retention.inactiveAccountDays > 0 && config.mail.smtpUrl === undefined) {
    warnings.push('privacy.retention.inactiveAccountDays is set but mail.smtpUrl is not: no inactivity notice can be sent, so no inactive account is erased');
  }
  if (config.database.url !== undefined && config.redis.url === undefined && config.hotStore !== 'memory') {
    warnings.push('PostgreSQL without Redis: the hot store is the local SQLite file, so this instance cannot be scaled out');
  }
  return warnings;
}

/** The config with every secret masked, for `config check` and logs. */
export function maskConfig(config: Readonly<Config>): ConfigInput {
  const copy = structuredClone(config) as ConfigInput;
  for (const leaf of configLeaves()) {
    if (leaf.schema.secret !== true) continue;
    const parts = leaf.path.split('.');
    const parent = parts.slice(0, -1).reduce<ConfigInput | undefined>((node, part) => node?.[part] as ConfigInput | undefined, copy);
    const name = parts.at(-1)!;
    const value = parent?.[name];
    if (parent === undefined || typeof value !== 'string') continue;
    parent[name] = /^[a-z+]+:\/\//.test(value) ? value.split(',').map(redactUrl).join(',') : '****';
  }
  return copy;
}

function deepFreeze<T>(value: T): Readonly<T> {
  if (value !== null && typeof value === 'object') {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}
