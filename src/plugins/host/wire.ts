/**
 * What crosses the sandbox boundary for a hook call, both ways.
 *
 * Out (`hook.<point>` params): the point's context as plain JSON, only the
 * facts a rule needs, never a function or a store handle: `{ context, claims }`.
 *
 * Back (the result): `{ verdict: 'pass' }`, `{ verdict: 'deny', reason }`,
 * or at a claims point `{ verdict: 'modify', claims }`. Read as untrusted
 * data: anything else is a failure of the plugin, never an exception in the
 * host. A plugin never allows (src/hooks/plugin-slot.ts says why).
 */
import { HOOK_POINTS, MAX_REASON_LENGTH, REGISTERED_CLAIMS, isClaimName, type Claims, type HookContexts, type HookPoint } from '../../hooks/index.ts';

export interface WireParams {
  readonly context: Readonly<Record<string, unknown>>;
  readonly claims: Claims;
}

export type WireAnswer = { readonly verdict: 'pass' } | { readonly verdict: 'deny'; readonly reason: string } | { readonly verdict: 'modify'; readonly claims: Claims };

/** Why a plugin's answer was not taken. */
export type AnswerFault = 'invalid_answer' | 'outside_namespace';

/** The JSON a plugin sees of a hook context (the SDK's HookContext types mirror this). */
export function wireContext<P extends HookPoint>(point: P, context: HookContexts[P]): Record<string, unknown> {
  const c = context as HookContexts[HookPoint] & Record<string, unknown>;
  switch (point) {
    case 'login.before': {
      const x = c as HookContexts['login.before'];
      return { account: x.account, ip: x.ip, throttle: { allowed: x.throttle.allowed } };
    }
    case 'login.after': {
      const x = c as HookContexts['login.after'];
      return { userId: x.userId, amr: [...x.amr], secondFactorEnrolled: x.secondFactorEnrolled, ip: x.ip };
    }
    case 'registration.before': {
      const x = c as HookContexts['registration.before'];
      return { policy: x.policy, initialAccessToken: x.initialAccessToken, metadata: x.metadata, ip: x.ip };
    }
    case 'consent.before': {
      const x = c as HookContexts['consent.before'];
      return { userId: x.userId, clientId: x.clientId, scopes: [...x.scopes], resources: [...x.resources], prompt: [...x.prompt], consented: x.consented };
    }
    case 'token.claims': {
      const x = c as HookContexts['token.claims'];
      return { userId: x.userId, clientId: x.clientId, scopes: [...x.scopes], accessTokenIssued: x.accessTokenIssued };
    }
    case 'access-token.claims': {
      const x = c as HookContexts['access-token.claims'];
      return { userId: x.userId, clientId: x.clientId, grantType: x.grantType, scopes: [...x.scopes], audience: [...x.audience] };
    }
    case 'userinfo.claims': {
      const x = c as HookContexts['userinfo.claims'];
      return { userId: x.userId, clientId: x.clientId, scopes: [...x.scopes] };
    }
    default:
      throw new TypeError(`no wire form for the hook point ${String(point)}`);
  }
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * Whether a plugin whose manifest declares `namespace` may set `claim`: a
 * claim name (the chain file's characters; never `__proto__`,
 * `constructor`, `prototype`) under the namespace, and no registered claim
 * (the manifest's namespace cannot cover one; checked again here).
 */
export function inPluginNamespace(namespace: string | undefined, claim: string): boolean {
  return namespace !== undefined && isClaimName(claim) && claim.startsWith(namespace) && claim.length > namespace.length && !REGISTERED_CLAIMS.has(claim);
}

/** Reads a plugin's answer at `point`; `namespace` is its manifest's claimsNamespace. */
export function readAnswer(point: HookPoint, answer: unknown, namespace: string | undefined): WireAnswer | { readonly fault: AnswerFault } {
  if (!isObject(answer)) return { fault: 'invalid_answer' };
  const verdict = answer['verdict'];
  if (verdict === 'pass') return { verdict };
  if (verdict === 'deny') {
    const reason = answer['reason'];
    // Shown on a page or as an OAuth error_description (RFC 6749 section 5.2: printable ASCII).
    if (typeof reason !== 'string' || reason === '' || reason.length > MAX_REASON_LENGTH || !/^[\x20-\x7e]+$/.test(reason)) return { fault: 'invalid_answer' };
    return { verdict, reason };
  }
  if (verdict === 'modify' && HOOK_POINTS[point] === 'claims') {
    const claims = answer['claims'];
    if (!isObject(claims)) return { fault: 'invalid_answer' };
    if (!Object.keys(claims).every((name) => inPluginNamespace(namespace, name))) return { fault: 'outside_namespace' };
    return { verdict, claims };
  }
  return { fault: 'invalid_answer' };
}
