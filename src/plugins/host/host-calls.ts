/**
 * The host methods a plugin may call, bound to one plugin's manifest
 * (issue 14, "Protocol"): only the `hostCalls` it declares are bound, so
 * anything else is -32601 from the JSON-RPC peer (reported as a violation,
 * which counts toward quarantine). Every call is audited (`plugin.call`,
 * with the method and outcome; never its arguments, which may carry
 * personal data).
 *
 * - `users.read {userId}`: the user's email and profile claims, or null.
 * - `audit.record {action, detail?}`: an entry `plugin.recorded` in the
 *   ledger, in the plugin's name.
 * - `http.fetch {url, method?, headers?, body?}`: only to the manifest's
 *   origins, every redirect hop re-checked, never to a loopback or private
 *   address (src/net fetchWithPolicy), with the plugin's deadline.
 */
import type { DomainEvents, EventDetail } from '../../events/index.ts';
import { FetchPolicyError, fetchWithPolicy } from '../../net/index.ts';
import type { PluginManifest } from '../manifest.ts';
import { INVALID_PARAMS, RpcError, type RpcMethod } from '../sandbox/json-rpc.ts';

/** The account data users.read reveals: what a claims rule needs, no secret (no hash, no second factor). */
export interface UserDirectory {
  byId(userId: string): Promise<{ readonly id: string; readonly email: string; readonly disabled: boolean; readonly profile?: Readonly<Record<string, string | number>> } | null>;
}

export interface HostCallOptions {
  readonly events: Pick<DomainEvents, 'emit'>;
  readonly users: UserDirectory;
  /** Let http.fetch reach loopback and private addresses (plugins.fetchPrivateNetworks: tests, closed networks). */
  readonly fetchPrivateNetworks: boolean;
  /** Extra trusted CA certificates for http.fetch (plugins.fetchCaFile). */
  readonly fetchCa?: string;
}

/** A plugin's http.fetch answer must fit in one message back (the 1 MiB frame, with JSON's escaping). */
export const MAX_FETCH_RESPONSE_BYTES = 256 * 1024;
const ACTION = /^[a-z][a-z0-9._-]{0,63}$/;
const MAX_DETAIL_BYTES = 4096;
const MAX_USER_ID_LENGTH = 128;

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

function usersRead(users: UserDirectory): RpcMethod {
  return async (params) => {
    const userId = isObject(params) ? params['userId'] : undefined;
    if (typeof userId !== 'string' || userId === '' || userId.length > MAX_USER_ID_LENGTH) throw new RpcError(INVALID_PARAMS, 'users.read needs { userId: string }');
    const user = await users.byId(userId);
    if (user === null) return null;
    const profile = user.profile ?? {};
    const text = (name: string) => (typeof profile[name] === 'string' ? { [name === 'given_name' ? 'givenName' : name === 'family_name' ? 'familyName' : name]: profile[name] } : {});
    // Portcullis does not verify addresses yet (OIDC Core section 5.1: say so).
    return { id: user.id, email: user.email, emailVerified: false, disabled: user.disabled, ...text('name'), ...text('given_name'), ...text('family_name'), ...text('locale') };
  };
}

/** A flat detail the ledger takes (AuditDetail): strings, numbers, booleans, null; bounded. */
function auditDetail(value: unknown): EventDetail {
  if (value === undefined) return {};
  if (!isObject(value)) throw new RpcError(INVALID_PARAMS, 'audit.record: detail must be an object');
  if (Buffer.byteLength(JSON.stringify(value)) > MAX_DETAIL_BYTES) throw new RpcError(INVALID_PARAMS, `audit.record: detail is larger than ${MAX_DETAIL_BYTES} bytes`);
  const detail: Record<string, string | number | boolean | null> = {};
  for (const [key, item] of Object.entries(value)) {
    if (!/^[A-Za-z][A-Za-z0-9_]{0,63}$/.test(key)) throw new RpcError(INVALID_PARAMS, 'audit.record: detail keys are letters, digits and _ (at most 64)');
    if (item !== null && typeof item !== 'string' && typeof item !== 'number' && typeof item !== 'boolean') throw new RpcError(INVALID_PARAMS, 'audit.record: detail values are strings, numbers, booleans or null');
    if (typeof item === 'number' && !Number.isFinite(item)) throw new RpcError(INVALID_PARAMS, 'audit.record: detail numbers must be finite');
    detail[key] = item;
  }
  return detail;
}

function auditRecord(plugin: string, events: Pick<DomainEvents, 'emit'>): RpcMethod {
  return async (params) => {
    const action = isObject(params) ? params['action'] : undefined;
    if (typeof action !== 'string' || !ACTION.test(action)) throw new RpcError(INVALID_PARAMS, 'audit.record needs { action: /^[a-z][a-z0-9._-]{0,63}$/ }');
    const detail = auditDetail((params as Record<string, unknown>)['detail']);
    // The plugin's own keys cannot overwrite who recorded it.
    await events.emit({ type: 'plugin.recorded', outcome: 'success', actorService: `plugin:${plugin}`, detail: { ...detail, plugin, action } });
    return null;
  };
}

function httpFetch(manifest: PluginManifest, origins: readonly string[], options: HostCallOptions): RpcMethod {
  return async (params) => {
    try {
      return await fetchWithPolicy(params, {
        origins,
        publicOnly: !options.fetchPrivateNetworks,
        // Inside the hook's own deadline: the plugin waits for this answer within it.
        timeoutMs: manifest.limits.deadlineMs,
        maxResponseBytes: MAX_FETCH_RESPONSE_BYTES,
        ...(options.fetchCa !== undefined && { ca: options.fetchCa }),
      });
    } catch (error) {
      // The policy's messages are fixed sentences written for the plugin author (no address, no stack).
      if (error instanceof FetchPolicyError) throw new RpcError(-32001, `http.fetch refused: ${error.code}: ${error.message}`);
      throw new RpcError(-32001, 'http.fetch failed');
    }
  };
}

/** Wraps a method so each call leaves a `plugin.call` entry: method and outcome (success, failure; on failure the JSON-RPC error code as `rpcError`). */
function audited(plugin: string, method: string, run: RpcMethod, events: Pick<DomainEvents, 'emit'>): RpcMethod {
  return async (params) => {
    let outcome: 'success' | 'failure' = 'failure';
    let code: number | undefined;
    try {
      const result = await run(params);
      outcome = 'success';
      return result;
    } catch (error) {
      code = error instanceof RpcError ? error.code : -32603;
      throw error;
    } finally {
      // `rpcError`, not `code`: the ledger refuses a detail key named `code` (an
      // OAuth authorization code is a secret, src/audit/events.ts), and that
      // refusal lost every failed call's entry and answered the plugin -32603.
      await events.emit({ type: 'plugin.call', outcome, actorService: `plugin:${plugin}`, detail: { plugin, method, ...(code !== undefined && { rpcError: code }) } });
    }
  };
}

/** The bound, audited host methods of one plugin: exactly those its manifest declares. */
export function hostMethodsFor(manifest: PluginManifest, options: HostCallOptions): Record<string, RpcMethod> {
  const methods: Record<string, RpcMethod> = {};
  for (const call of manifest.hostCalls) {
    const run = call.name === 'users.read' ? usersRead(options.users) : call.name === 'audit.record' ? auditRecord(manifest.name, options.events) : httpFetch(manifest, call.origins, options);
    methods[call.name] = audited(manifest.name, call.name, run, options.events);
  }
  return methods;
}
