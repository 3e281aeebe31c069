/**
 * Signing out, as the OpenID Connect logout specifications see it:
 * - RP-Initiated Logout 1.0: a client sends the person to the end-session
 *   endpoint with `id_token_hint` / `client_id` and may ask to be sent back to
 *   a `post_logout_redirect_uri` it registered (exact match, like redirect
 *   URIs), followed at once only when an `id_token_hint` proves the client
 *   sent the request; otherwise the person is shown where it leads;
 * - when the session ends, the tokens it produced end too: access tokens by
 *   their `sid` (a denylist entry that outlives them), refresh token
 *   families bound to it;
 * - Back-Channel Logout 1.0: every client the session signed in to that
 *   registered a `backchannel_logout_uri` gets a signed logout token,
 *   through the outbox (backchannel-logout.ts).
 */
import type { DomainEvents } from '../events/index.ts';
import type { Clock, DurableStore, HotStore } from '../store/index.ts';
import type { Keyring } from '../tokens/index.ts';
import type { AccessTokens } from './access-tokens.ts';
import { isApproved, type ClientRegistry, type OAuthClient } from './clients.ts';
import type { RefreshTokens } from './refresh-tokens.ts';
import { readIdTokenHint } from './id-token-hint.ts';
import { sessionIdClaim } from './user-tokens.ts';
import { BACKCHANNEL_LOGOUT_TOPIC, backchannelLogoutKey, type BackchannelLogoutPayload } from './backchannel-logout.ts';

/** A checked logout request: where to send the person afterwards, if anywhere. */
export interface LogoutRequest {
  readonly client?: { readonly id: string; readonly name: string };
  /**
   * The registered post_logout_redirect_uri, with `state` appended, when an
   * id_token_hint issued to the client confirms the request: the server may
   * redirect there without asking.
   */
  readonly redirectTo?: string;
  /**
   * The same, when only a client_id names the client: anyone can write that
   * link, so the person is shown where it leads and chooses (section 3: "the
   * OP has other means to confirm the legitimacy"; RFC 9700 section 4.11.2).
   */
  readonly unconfirmedRedirect?: string;
  /** The raw parameters, to carry through the confirmation form. */
  readonly params: Readonly<Record<string, string>>;
}

const sessionClientsKey = (handle: string) => `oauth:session-clients:${handle}`;
const MAX_CLIENTS_PER_SESSION = 100;
const LOGOUT_PARAMS = ['id_token_hint', 'client_id', 'post_logout_redirect_uri', 'state'];

export class LogoutRequestError extends Error {
  override readonly name = 'LogoutRequestError';
}

export interface LogoutOptions {
  readonly clients: ClientRegistry;
  readonly keyring: Keyring;
  readonly accessTokens: AccessTokens;
  readonly refreshTokens: RefreshTokens;
  readonly hot: HotStore;
  /** Where the logout messages are committed, in the outbox. */
  readonly durable: Pick<DurableStore, 'transaction'>;
  /** Wakes the outbox worker after a commit (absent where none runs: the next serve delivers). */
  readonly kickOutbox?: () => void;
  readonly events: DomainEvents;
  readonly clock: Clock;
  readonly issuer: string;
  /** How long a session's client list is kept: as long as the longest session. */
  readonly sessionLifetimeMs: number;
}

export class LogoutService {
  readonly #options: LogoutOptions;

  constructor(options: LogoutOptions) {
    this.#options = options;
  }

  /**
   * Checks the end-session parameters (section 2 and 3). Throws
   * LogoutRequestError when they cannot be honoured; the person is then
   * shown the plain sign-out page, never redirected.
   */
  async checkRequest(query: unknown): Promise<LogoutRequest> {
    const params: Record<string, string> = {};
    for (const name of LOGOUT_PARAMS) {
      const value = (query as Record<string, unknown> | null)?.[name];
      if (typeof value === 'string' && value !== '' && value.length <= 4096) params[name] = value;
      else if (value !== undefined && value !== '') throw new LogoutRequestError(`The ${name} parameter is malformed.`);
    }
    const hint = params['id_token_hint'] === undefined ? undefined : readIdTokenHint(params['id_token_hint'], { keyring: this.#options.keyring, issuer: this.#options.issuer, now: this.#options.clock() });
    if (hint === null) throw new LogoutRequestError('The id_token_hint is not an ID token from this server.');
    if (params['client_id'] !== undefined && hint !== undefined && !hint.audiences.includes(params['client_id'])) {
      throw new LogoutRequestError('client_id does not match the id_token_hint.');
    }
    const clientId = params['client_id'] ?? hint?.audiences[0];
    const client = clientId === undefined || clientId.length > 256 ? null : await this.#options.clients.get(clientId);
    if (clientId !== undefined && client === null) throw new LogoutRequestError('The application that sent you here is not registered.');
    const redirect = params['post_logout_redirect_uri'];
    if (redirect === undefined) return { params, ...(client !== null && { client: describe(client) }) };
    // Section 3: only a URI registered by the identified client, compared exactly.
    if (client === null) throw new LogoutRequestError('post_logout_redirect_uri needs an id_token_hint or a client_id.');
    if (!client.post_logout_redirect_uris.includes(redirect)) throw new LogoutRequestError('The post_logout_redirect_uri is not one this application registered.');
    const url = new URL(redirect);
    if (params['state'] !== undefined) url.searchParams.append('state', params['state']);
    // Sections 2 and 3: without an id_token_hint issued to this client,
    // nothing shows the client sent the person here. A self-registered client
    // no operator approved can mint its own hint (its owner signs in once), so
    // its URIs are offered on a page, never followed (RFC 9700 section 4.11.2).
    const confirmed = hint !== undefined && hint.audiences.includes(client.client_id) && isApproved(client);
    return { params, client: describe(client), ...(confirmed ? { redirectTo: url.toString() } : { unconfirmedRedirect: url.toString() }) };
  }

  /** Remembers that a session signed in to a client, for back-channel logout. */
  async signedInTo(sessionHandle: string, clientId: string): Promise<void> {
    await this.#options.hot.boundedSetAdd(sessionClientsKey(sessionHandle), clientId, this.#options.clock() + this.#options.sessionLifetimeMs, MAX_CLIENTS_PER_SESSION);
  }

  /**
   * The session ended (sign-out): its access tokens and refresh tokens end
   * with it, and a logout message for each client it signed in to is
   * committed to the outbox before this resolves. The session's client list
   * is dropped only after that commit, so a sign-out retried after a
   * failure queues the same messages again (the same keys: nothing twice).
   * Resolves with how many messages were newly queued.
   */
  async sessionEnded(session: { userId: string; sessionHandle: string }, audit: LogoutAudit, options: { readonly again?: boolean } = {}): Promise<{ queued: number }> {
    const { accessTokens, refreshTokens, hot } = this.#options;
    const sid = sessionIdClaim(session.sessionHandle);
    await accessTokens.revokeSid(sid);
    let families = 0;
    for (const family of await refreshTokens.families(session.userId)) {
      if (family.grant.sessionHandle !== session.sessionHandle) continue;
      const revoked = await refreshTokens.revokeFamily(family.familyId, 'logout');
      for (const token of revoked?.accessTokens ?? []) await accessTokens.revokeJti(token.jti, token.exp);
      if (revoked !== null) families += 1;
    }
    const members = await hot.boundedSetMembers(sessionClientsKey(session.sessionHandle));
    const clients = (await Promise.all(members.map((member) => this.#options.clients.get(member.member)))).filter((client): client is OAuthClient => client?.backchannel_logout_uri !== undefined);
    let queued = 0;
    if (clients.length > 0) {
      queued = await this.#options.durable.transaction(async (tx) => {
        let added = 0;
        for (const client of clients) {
          const payload: BackchannelLogoutPayload = { clientId: client.client_id, sub: session.userId, sid };
          if ((await tx.outbox.add({ topic: BACKCHANNEL_LOGOUT_TOPIC, payload, idempotencyKey: backchannelLogoutKey(sid, client.client_id) })).added) added += 1;
        }
        return added;
      });
      this.#options.kickOutbox?.();
    }
    await hot.delete(sessionClientsKey(session.sessionHandle));
    // `again`: the pass after the session ended (Accounts' OnSessionsEnding);
    // it is recorded only when it caught something the first pass missed.
    if (options.again === true && families === 0 && queued === 0) return { queued };
    await this.#options.events.emit({
      type: 'token.revoked',
      outcome: 'success',
      actorUserId: session.userId,
      ...audit,
      detail: { kind: 'session', reason: 'logout', families, backchannelQueued: queued },
    });
    return { queued };
  }

  /**
   * Several sessions of one user end at once (a password change ends the
   * others; an administrator's disable, delete or password reset ends them
   * all): sessionEnded for each, before the sessions themselves end (the
   * caller ends them after, whatever this did), and `again` once they ended. One that fails does not
   * stop the others, so every session whose store still answers has its
   * tokens ended and its logouts queued (Back-Channel Logout 1.0 section
   * 2.5: each RP the session signed in to is told); the first failure is
   * thrown once each was tried. Resolves with how many messages were
   * newly queued.
   */
  async sessionsEnded(userId: string, sessionHandles: readonly string[], audit: LogoutAudit, options: { readonly again?: boolean } = {}): Promise<{ queued: number }> {
    let queued = 0;
    let failure: { error: unknown } | undefined;
    for (const sessionHandle of sessionHandles) {
      try {
        queued += (await this.sessionEnded({ userId, sessionHandle }, audit, options)).queued;
      } catch (error) {
        failure ??= { error };
      }
    }
    if (failure !== undefined) throw failure.error;
    return { queued };
  }
}

/** Who ended the session, for the `token.revoked` entry: a request (its id and address) or an administrator's command (`actorService`). */
export interface LogoutAudit {
  readonly requestId?: string;
  readonly ip?: string;
  readonly actorService?: string;
}

function describe(client: OAuthClient): { id: string; name: string } {
  return { id: client.client_id, name: client.client_name ?? client.client_id };
}
