/**
 * The authorization request (RFC 6749 section 4.1.1, OAuth 2.1, OpenID
 * Connect Core section 3.1.2.1), checked as a pipeline of small steps. Until
 * the client and its redirect URI are known, an error is shown on a page:
 * redirecting it would make the server an open redirector (RFC 6749 section
 * 4.1.2.1, RFC 9700 section 4.11). After that, errors go back to the client.
 */
import type { OAuthClient } from '../clients.ts';
import { OAuthError } from '../errors.ts';
import { checkResources, parseScope, type OAuthParams } from '../params.ts';

/** Errors an authorization response may carry (RFC 6749 section 4.1.2.1, OIDC Core section 3.1.2.6). */
export type AuthorizationErrorCode =
  | 'invalid_request'
  | 'unauthorized_client'
  | 'access_denied'
  | 'unsupported_response_type'
  | 'invalid_scope'
  | 'invalid_target'
  | 'server_error'
  | 'login_required'
  | 'consent_required'
  | 'interaction_required'
  | 'invalid_request_uri'
  | 'request_not_supported';

/** An error that goes back to the client's verified redirect URI. */
export class AuthorizationResponseError extends Error {
  override readonly name = 'AuthorizationResponseError';
  readonly code: AuthorizationErrorCode;
  readonly redirectUri: string;
  readonly state: string | undefined;

  constructor(code: AuthorizationErrorCode, description: string, target: { redirectUri: string; state: string | undefined }) {
    super(description);
    this.code = code;
    this.redirectUri = target.redirectUri;
    this.state = target.state;
  }
}

/** An error shown to the person on a page: there is no safe place to send it. */
export class AuthorizationPageError extends Error {
  override readonly name = 'AuthorizationPageError';
}

export type Prompt = 'none' | 'login' | 'consent';

/** A checked request, ready for sign-in and consent. */
export interface AuthorizationRequest {
  readonly clientId: string;
  /** The redirect URI used: the one the request named (a loopback one with its port), else the one registered. */
  readonly redirectUri: string;
  /** Whether the request named redirect_uri: then the token request must name the same (OAuth 2.1 section 4.1.3). */
  readonly redirectUriGiven: boolean;
  readonly scope: string;
  readonly state?: string;
  readonly nonce?: string;
  readonly codeChallenge: string;
  readonly prompt: readonly Prompt[];
  readonly maxAgeSeconds?: number;
  readonly loginHint?: string;
  readonly resources: readonly string[];
  readonly dpopJkt?: string;
}

const MAX_STATE = 1024;
const MAX_NONCE = 512;
/** RFC 7636 section 4.2: BASE64URL(SHA256(verifier)) is 43 characters. */
const S256_CHALLENGE = /^[A-Za-z0-9_-]{43}$/;

export interface ValidationContext {
  readonly client: OAuthClient | null;
  /** The request came through PAR (RFC 9126), its parameters pushed by an authenticated client. */
  readonly pushed: boolean;
}

/** Step 1 and 2: the client and its redirect URI, or a page. */
export function verifiedRedirect(params: OAuthParams, client: OAuthClient | null): { client: OAuthClient; redirectUri: string; redirectUriGiven: boolean; state: string | undefined } {
  if (params.values['client_id'] === undefined) throw new AuthorizationPageError('The request has no client_id.');
  if (client === null) throw new AuthorizationPageError('The application that sent you here is not registered with this server.');
  const redirectUri = params.values['redirect_uri'];
  // OIDC Core section 3.1.2.1 requires redirect_uri; OAuth 2.1 allows
  // leaving it out only with one registered URI.
  const chosen = redirectUri ?? (client.redirect_uris.length === 1 && !parseScope(params.values['scope']).includes('openid') ? client.redirect_uris[0] : undefined);
  if (chosen === undefined) throw new AuthorizationPageError('The request has no redirect_uri.');
  if (!isRegisteredRedirect(client, chosen)) throw new AuthorizationPageError('The redirect_uri is not one this application registered.');
  const state = params.values['state'];
  return { client, redirectUri: chosen, redirectUriGiven: redirectUri !== undefined, state: state !== undefined && state.length <= MAX_STATE ? state : undefined };
}

/** http on a loopback IP literal, with the port apart: `http://127.0.0.1` or `http://[::1]`, then `:port`, then the rest. */
const LOOPBACK_REDIRECT = /^(http:\/\/(?:127\.0\.0\.1|\[::1\]))(?::(\d{1,5}))?(?=[/?]|$)/;

/** The URI with its loopback port taken out, or undefined when it is no loopback IP http URI (or its port is not one). */
function withoutLoopbackPort(uri: string): string | undefined {
  const match = LOOPBACK_REDIRECT.exec(uri);
  if (match === null || (match[2] !== undefined && Number(match[2]) > 65535)) return undefined;
  return match[1]! + uri.slice(match[0].length);
}

/**
 * RFC 9700 sections 2.1 and 4.1.3: exact string comparison, with one
 * exception. A native app listening on a loopback IP address gets a port
 * from the system when it runs, so for native clients the port of a
 * loopback IP redirect URI may be any (RFC 8252 section 7.3, OAuth 2.1
 * section 8.4.2); everything else about it still matches exactly. Not for
 * `localhost`, which is a name that may resolve elsewhere (RFC 8252 section
 * 8.3), and not for web clients, whose URIs are matched exactly.
 */
export function isRegisteredRedirect(client: OAuthClient, uri: string): boolean {
  if (client.redirect_uris.includes(uri)) return true;
  if (client.application_type !== 'native') return false;
  const requested = withoutLoopbackPort(uri);
  return requested !== undefined && client.redirect_uris.some((registered) => withoutLoopbackPort(registered) === requested);
}

/** Every other rule, each failure redirected to the client. */
export function checkAuthorizationRequest(params: OAuthParams, context: { client: OAuthClient; redirectUri: string; redirectUriGiven: boolean; state: string | undefined; pushed: boolean }): AuthorizationRequest {
  const { client, redirectUri, state } = context;
  const fail = (code: AuthorizationErrorCode, description: string) => new AuthorizationResponseError(code, description, { redirectUri, state });
  const values = params.values;
  if (values['state'] !== undefined && values['state'].length > MAX_STATE) throw fail('invalid_request', 'state is too long.');
  if (values['request'] !== undefined) throw fail('request_not_supported', 'Request objects are not supported; use PAR.');
  if (client.require_pushed_authorization_requests && !context.pushed) throw fail('invalid_request', 'This client must push its authorization requests (PAR, RFC 9126).');
  // OAuth 2.1 section 4.1.1: only the code flow; no implicit, no hybrid.
  if (values['response_type'] !== 'code') throw fail('unsupported_response_type', 'Only response_type=code is supported.');
  if (values['response_mode'] !== undefined && values['response_mode'] !== 'query') throw fail('invalid_request', 'Only response_mode=query is supported.');
  if (!client.grant_types.includes('authorization_code')) throw fail('unauthorized_client', 'This client may not use the authorization code flow.');
  const codeChallenge = checkPkce(values, fail);
  const scope = checkScope(values['scope'], client, fail);
  const prompt = checkPrompt(values['prompt'], fail);
  const maxAgeSeconds = checkMaxAge(values['max_age'], fail);
  const nonce = values['nonce'];
  if (nonce !== undefined && nonce.length > MAX_NONCE) throw fail('invalid_request', 'nonce is too long.');
  const loginHint = values['login_hint'];
  let resources: string[];
  try {
    resources = checkResources(params.resources);
  } catch (error) {
    if (error instanceof OAuthError) throw fail('invalid_target', error.message);
    throw error;
  }
  const dpopJkt = values['dpop_jkt'];
  if (dpopJkt !== undefined && !/^[A-Za-z0-9_-]{43}$/.test(dpopJkt)) throw fail('invalid_request', 'dpop_jkt is not a JWK thumbprint.');
  return {
    clientId: client.client_id,
    redirectUri,
    redirectUriGiven: context.redirectUriGiven,
    scope,
    codeChallenge,
    prompt,
    resources,
    ...(state !== undefined && { state }),
    ...(nonce !== undefined && { nonce }),
    ...(maxAgeSeconds !== undefined && { maxAgeSeconds }),
    ...(loginHint !== undefined && loginHint.length <= 256 && { loginHint }),
    ...(dpopJkt !== undefined && { dpopJkt }),
  };
}

type Fail = (code: AuthorizationErrorCode, description: string) => AuthorizationResponseError;

/** RFC 7636 and RFC 9700 section 2.1.1: PKCE with S256 for every client; plain and missing are refused. */
function checkPkce(values: OAuthParams['values'], fail: Fail): string {
  const challenge = values['code_challenge'];
  const method = values['code_challenge_method'];
  if (challenge === undefined) throw fail('invalid_request', 'PKCE is required: send code_challenge with code_challenge_method=S256.');
  if (method !== 'S256') throw fail('invalid_request', 'code_challenge_method must be S256.');
  if (!S256_CHALLENGE.test(challenge)) throw fail('invalid_request', 'code_challenge is not a base64url SHA-256 hash.');
  return challenge;
}

/** Scope minimisation: only scopes the client registered (RFC 9700 section 2.3). */
function checkScope(scope: string | undefined, client: OAuthClient, fail: Fail): string {
  let requested: string[];
  try {
    requested = parseScope(scope);
  } catch {
    throw fail('invalid_scope', 'The scope is malformed.');
  }
  const registered = client.scope.split(' ').filter((value) => value !== '');
  if (requested.length === 0) {
    if (!registered.includes('openid')) throw fail('invalid_scope', 'scope is required.');
    requested = ['openid'];
  }
  const refused = requested.filter((value) => !registered.includes(value));
  if (refused.length > 0) throw fail('invalid_scope', `This client is not registered for the scope ${refused[0]!}.`);
  // OIDC Core section 11: offline_access means nothing to a client that cannot refresh.
  return requested.filter((value) => value !== 'offline_access' || client.grant_types.includes('refresh_token')).join(' ');
}

/** OIDC Core section 3.1.2.1: none must stand alone. */
function checkPrompt(prompt: string | undefined, fail: Fail): Prompt[] {
  if (prompt === undefined) return [];
  const values = [...new Set(prompt.split(' ').filter((value) => value !== ''))];
  for (const value of values) {
    if (value !== 'none' && value !== 'login' && value !== 'consent' && value !== 'select_account') throw fail('invalid_request', `prompt=${value.slice(0, 20)} is not supported.`);
  }
  if (values.includes('none') && values.length > 1) throw fail('invalid_request', 'prompt=none cannot be combined with other values.');
  // select_account: there is one account per browser session; signing in again is how to pick another.
  return values.map((value) => (value === 'select_account' ? 'login' : value)) as Prompt[];
}

function checkMaxAge(maxAge: string | undefined, fail: Fail): number | undefined {
  if (maxAge === undefined) return undefined;
  if (!/^\d{1,9}$/.test(maxAge)) throw fail('invalid_request', 'max_age must be a non-negative integer.');
  return Number(maxAge);
}

/** The redirect carrying a response (RFC 6749 section 4.1.2) with `iss` (RFC 9207 section 2). */
export function authorizationResponseUrl(redirectUri: string, issuer: string, values: Readonly<Record<string, string | undefined>>): string {
  const url = new URL(redirectUri);
  for (const [name, value] of Object.entries(values)) if (value !== undefined) url.searchParams.append(name, value);
  url.searchParams.append('iss', issuer);
  return url.toString();
}
