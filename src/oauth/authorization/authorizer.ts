/**
 * The authorization endpoint's decisions, from a checked request to a code:
 * is the person signed in (recently enough), have they consented, then issue
 * the code. The request waits between steps as an "interaction" in the hot
 * store (10 minutes), so the login and consent pages carry only its id.
 *
 * An error goes back to the client's redirect URI at once only when an
 * operator approved the client: a self-registered client's URIs are the
 * registrant's choice, and sending a person there before they did anything
 * would make this server an open redirector (RFC 9700 section 4.11.2). Such
 * an error is an interstitial page naming where it leads instead.
 */
import { randomBytes } from 'node:crypto';
import type { HookChains } from '../../hooks/index.ts';
import type { Clock, HotStore } from '../../store/index.ts';
import type { Keyring } from '../../tokens/index.ts';
import { isApproved, type ClientRegistry, type OAuthClient } from '../clients.ts';
import { readIdTokenHint } from '../id-token-hint.ts';
import type { OAuthParams } from '../params.ts';
import { oauthParams } from '../params.ts';
import type { AuthorizationCodes } from './codes.ts';
import type { Consents } from './consents.ts';
import type { DataRecipients } from '../recipients.ts';
import { AccountGoneError } from '../account-writes.ts';
import type { PushedRequests } from './pushed-requests.ts';
import { OAuthError } from '../errors.ts';
import type { TokenTargets } from '../targets.ts';
import {
  AuthorizationPageError,
  AuthorizationResponseError,
  authorizationResponseUrl,
  checkAuthorizationRequest,
  verifiedRedirect,
  type AuthorizationErrorCode,
  type AuthorizationRequest,
} from './request.ts';

/** The signed-in person, as the routes resolved them from the session cookie. */
export interface SignedIn {
  readonly userId: string;
  readonly sessionHandle: string;
  readonly authTime: number;
  readonly amr: readonly string[];
}

/** Which clients a session signed in to (for back-channel logout). */
export interface SessionClients {
  signedInTo(sessionHandle: string, clientId: string): Promise<void>;
}

export type AuthorizeOutcome =
  | { readonly kind: 'redirect'; readonly location: string }
  /** An error response for a client no operator approved: show where it leads, let the person choose. */
  | { readonly kind: 'interstitial'; readonly location: string; readonly clientName: string; readonly description: string }
  | { readonly kind: 'login'; readonly interactionId: string; readonly loginHint?: string }
  | { readonly kind: 'consent'; readonly interactionId: string; readonly client: OAuthClient; readonly scopes: readonly string[]; readonly redirectUri: string };

interface Interaction {
  readonly request: AuthorizationRequest;
  /** The person must have signed in after this time (prompt=login, max_age): a sign-in that began after the request did. */
  readonly signedInAfter?: number;
}

const INTERACTION_TTL_MS = 10 * 60 * 1000;
const INTERACTION_ID = /^[A-Za-z0-9_-]{32}$/;
const interactionKey = (id: string) => `oauth:interaction:${id}`;

export class Authorizer {
  readonly #clients: ClientRegistry;
  readonly #codes: AuthorizationCodes;
  readonly #consents: Consents;
  readonly #recipients: Pick<DataRecipients, 'record'> | undefined;
  readonly #pushed: PushedRequests;
  readonly #hot: HotStore;
  readonly #clock: Clock;
  readonly #issuer: string;
  readonly #sessions: SessionClients;
  readonly #keyring: Keyring;

  readonly #targets: TokenTargets;
  readonly #hooks: HookChains;

  /** `hooks`: the chains with consent.before, which decide whether a code needs the consent page. */
  constructor(options: { clients: ClientRegistry; codes: AuthorizationCodes; consents: Consents; pushed: PushedRequests; hot: HotStore; clock: Clock; issuer: string; sessions: SessionClients; targets: TokenTargets; keyring: Keyring; hooks: HookChains; recipients?: Pick<DataRecipients, 'record'> }) {
    this.#hooks = options.hooks;
    this.#targets = options.targets;
    this.#sessions = options.sessions;
    this.#keyring = options.keyring;
    this.#clients = options.clients;
    this.#codes = options.codes;
    this.#consents = options.consents;
    this.#recipients = options.recipients;
    this.#pushed = options.pushed;
    this.#hot = options.hot;
    this.#clock = options.clock;
    this.#issuer = options.issuer;
  }

  /**
   * A new authorization request. Throws AuthorizationPageError when there is
   * no verified redirect URI to report to.
   */
  async begin(query: unknown, signedIn: SignedIn | null): Promise<AuthorizeOutcome> {
    let params: OAuthParams;
    try {
      params = oauthParams(query);
    } catch {
      throw new AuthorizationPageError('The authorization request is malformed.');
    }
    let pushed = false;
    const requestUri = params.values['request_uri'];
    if (requestUri !== undefined) {
      // RFC 9126 section 4: the pushed parameters replace the query's, and
      // the client_id must match the client that pushed them; another
      // client's attempt leaves the request_uri for its own client.
      const stored = await this.#pushed.take(requestUri, params.values['client_id']);
      if (stored === null) throw new AuthorizationPageError('The request_uri is unknown, expired or already used. Start again from the application.');
      params = stored.params;
      pushed = true;
    }
    const clientId = params.values['client_id'];
    const client = clientId === undefined || clientId.length > 256 ? null : await this.#clients.get(clientId);
    const target = verifiedRedirect(params, client);
    let request: AuthorizationRequest;
    try {
      request = checkAuthorizationRequest(params, { ...target, pushed });
      request = { ...request, resources: await resolvedAudience(this.#targets, request, target.client) };
    } catch (error) {
      if (error instanceof AuthorizationResponseError) return this.#errorRedirect(error, target.client);
      throw error;
    }
    const now = this.#clock();
    const needsFreshLogin =
      request.prompt.includes('login') ||
      (signedIn !== null && request.maxAgeSeconds !== undefined && now - signedIn.authTime > request.maxAgeSeconds * 1000) ||
      (signedIn !== null && !this.#hintNames(params.values['id_token_hint'], signedIn.userId, request.clientId));
    return this.#continue({ request, ...(needsFreshLogin && { signedInAfter: now }) }, undefined, signedIn);
  }

  /**
   * OIDC Core section 3.1.2.1: with an id_token_hint, the person signed in
   * must be the one the hint names; if not, they sign in again (and with
   * prompt=none, which shows no page, the answer is login_required). A hint
   * this issuer did not sign for this client confirms nobody. Expiry is not
   * checked: the OP need not (same section).
   */
  #hintNames(hint: string | undefined, userId: string, clientId: string): boolean {
    if (hint === undefined) return true;
    const read = readIdTokenHint(hint, { keyring: this.#keyring, issuer: this.#issuer, now: this.#clock() });
    return read !== null && read.audiences.includes(clientId) && read.subject === userId;
  }

  /** Where the interaction will send the person in the end (its client's redirect URI), if it is live. */
  async redirectOf(interactionId: string): Promise<string | undefined> {
    const stored = INTERACTION_ID.test(interactionId) ? await this.#hot.get(interactionKey(interactionId)) : null;
    return stored === null ? undefined : (JSON.parse(stored) as Interaction).request.redirectUri;
  }

  /** Back from the login page. */
  async resume(interactionId: string, signedIn: SignedIn | null): Promise<AuthorizeOutcome> {
    const interaction = await this.#interaction(interactionId);
    return this.#continue(interaction, interactionId, signedIn);
  }

  /** The person's answer on the consent page. */
  async decide(interactionId: string, signedIn: SignedIn, approved: boolean, audit: { requestId?: string; ip?: string }): Promise<AuthorizeOutcome> {
    const interaction = await this.#interaction(interactionId);
    if (this.#needsLogin(interaction, signedIn)) return this.#continue(interaction, interactionId, signedIn);
    const { request } = interaction;
    // The interaction is spent either way: a consent form cannot be replayed.
    await this.#hot.delete(interactionKey(interactionId));
    // The person chose, on a page that named where it leads: no interstitial.
    if (!approved) return errorResponse(new AuthorizationResponseError('access_denied', 'The user declined.', { redirectUri: request.redirectUri, state: request.state }), this.#issuer);
    try {
      await this.#consents.grant(signedIn.userId, request.clientId, request.scope.split(' '), audit, request.resources);
    } catch (error) {
      if (error instanceof AccountGoneError) return this.#accountGone(request);
      throw error;
    }
    return this.#issueCode(request, signedIn);
  }

  async #continue(interaction: Interaction, interactionId: string | undefined, signedIn: SignedIn | null): Promise<AuthorizeOutcome> {
    const { request } = interaction;
    const fail = async (code: AuthorizationErrorCode, description: string) =>
      this.#errorRedirect(new AuthorizationResponseError(code, description, { redirectUri: request.redirectUri, state: request.state }), await this.#clients.get(request.clientId));
    if (signedIn === null || this.#needsLogin(interaction, signedIn)) {
      // OIDC Core section 3.1.2.6: prompt=none never shows a page.
      if (request.prompt.includes('none')) return fail('login_required', 'The user is not signed in.');
      const id = interactionId ?? (await this.#save(interaction));
      return { kind: 'login', interactionId: id, ...(request.loginHint !== undefined && { loginHint: request.loginHint }) };
    }
    const scopes = request.scope.split(' ');
    const consented = !request.prompt.includes('consent') && (await this.#consents.covers(signedIn.userId, request.clientId, scopes, request.resources));
    // consent.before (oauth.stored-consent last): allow issues the code
    // now; a deny that asks for the consent page shows it; any other deny
    // is a refusal, sent to the client as access_denied (RFC 6749 4.1.2.1).
    const decision = await this.#hooks.decide('consent.before', { userId: signedIn.userId, clientId: request.clientId, scopes, resources: request.resources, prompt: request.prompt, consented });
    if (decision.allowed) {
      if (interactionId !== undefined) await this.#hot.delete(interactionKey(interactionId));
      return this.#issueCode(request, signedIn);
    }
    if (decision.interaction !== 'consent') {
      if (interactionId !== undefined) await this.#hot.delete(interactionKey(interactionId));
      return fail('access_denied', decision.reason);
    }
    if (request.prompt.includes('none')) return fail('consent_required', 'The user has not consented to this request.');
    const client = await this.#clients.get(request.clientId);
    if (client === null) throw new AuthorizationPageError('The application is no longer registered.');
    const id = interactionId ?? (await this.#save(interaction));
    return { kind: 'consent', interactionId: id, client, scopes, redirectUri: request.redirectUri };
  }

  #needsLogin(interaction: Interaction, signedIn: SignedIn): boolean {
    return interaction.signedInAfter !== undefined && signedIn.authTime <= interaction.signedInAfter;
  }

  async #issueCode(request: AuthorizationRequest, signedIn: SignedIn): Promise<AuthorizeOutcome> {
    // The code hands the client data about the person: it is a recipient (GDPR Art. 19). First, so an account
    // erased meanwhile leaves nothing behind, not even the session's list of clients.
    try {
      await this.#recipients?.record(signedIn.userId, request.clientId);
    } catch (error) {
      if (error instanceof AccountGoneError) return this.#accountGone(request);
      throw error;
    }
    await this.#sessions.signedInTo(signedIn.sessionHandle, request.clientId);
    const code = await this.#codes.issue({
      clientId: request.clientId,
      redirectUri: request.redirectUri,
      redirectUriGiven: request.redirectUriGiven !== false,
      scope: request.scope,
      resources: request.resources,
      codeChallenge: request.codeChallenge,
      ...(request.nonce !== undefined && { nonce: request.nonce }),
      ...(request.dpopJkt !== undefined && { dpopJkt: request.dpopJkt }),
      userId: signedIn.userId,
      sessionHandle: signedIn.sessionHandle,
      authTime: signedIn.authTime,
      amr: signedIn.amr,
      issuedAt: this.#clock(),
    });
    return { kind: 'redirect', location: authorizationResponseUrl(request.redirectUri, this.#issuer, { code, state: request.state }) };
  }

  /** The account was erased while this authorization was in flight: no code, access_denied (RFC 6749 section 4.1.2.1). */
  async #accountGone(request: AuthorizationRequest): Promise<AuthorizeOutcome> {
    const error = new AuthorizationResponseError('access_denied', 'The account no longer exists.', { redirectUri: request.redirectUri, state: request.state });
    return this.#errorRedirect(error, await this.#clients.get(request.clientId));
  }

  /** An error response: redirected for an approved client, else an interstitial page (RFC 9700 section 4.11.2). */
  #errorRedirect(error: AuthorizationResponseError, client: OAuthClient | null): AuthorizeOutcome {
    const response = errorResponse(error, this.#issuer);
    if (client !== null && isApproved(client)) return response;
    return { kind: 'interstitial', location: response.location, clientName: client?.client_name ?? client?.client_id ?? 'The application', description: error.message };
  }

  async #save(interaction: Interaction): Promise<string> {
    const id = randomBytes(24).toString('base64url');
    await this.#hot.set(interactionKey(id), JSON.stringify(interaction), INTERACTION_TTL_MS);
    return id;
  }

  async #interaction(id: string): Promise<Interaction> {
    const stored = INTERACTION_ID.test(id) ? await this.#hot.get(interactionKey(id)) : null;
    if (stored === null) throw new AuthorizationPageError('This sign-in request expired or was already completed. Start again from the application.');
    return JSON.parse(stored) as Interaction;
  }
}

/**
 * The request's audience (targets.ts): its registered resources, or those
 * its API scopes belong to; a refusal goes back to the client like any
 * other (RFC 8707 section 2: invalid_target; RFC 6749 4.1.2.1: invalid_scope).
 */
export async function resolvedAudience(targets: TokenTargets, request: AuthorizationRequest, client: OAuthClient): Promise<readonly string[]> {
  try {
    return (await targets.resolve(request.scope.split(' ').filter((scope) => scope !== ''), request.resources, client.scope.split(' '))).audience;
  } catch (error) {
    if (error instanceof OAuthError && (error.code === 'invalid_target' || error.code === 'invalid_scope')) {
      throw new AuthorizationResponseError(error.code, error.message, { redirectUri: request.redirectUri, state: request.state });
    }
    throw error;
  }
}

/** RFC 6749 section 4.1.2.1: the error, its description and state, to the redirect URI (with iss, RFC 9207). */
function errorResponse(error: AuthorizationResponseError, issuer: string): { kind: 'redirect'; location: string } {
  return { kind: 'redirect', location: authorizationResponseUrl(error.redirectUri, issuer, { error: error.code, error_description: error.message, state: error.state }) };
}
