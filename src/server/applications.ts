/**
 * The account page's "Applications" section, from the authorization
 * server's consents: what each application may do, and withdrawing it.
 */
import type { AuthorizationServer } from '../oauth/index.ts';
import { LogoutRequestError } from '../oauth/index.ts';
import type { ApplicationAccess, SignOutHooks } from './identity-routes.ts';

export function applicationAccess(server: AuthorizationServer): ApplicationAccess {
  return {
    async list(userId) {
      const consents = await server.consents.list(userId);
      return Promise.all(
        consents.map(async (consent) => {
          const client = await server.clients.get(consent.clientId);
          return { clientId: consent.clientId, clientName: client?.client_name ?? consent.clientId, scopes: consent.scopes, grantedAt: consent.grantedAt };
        }),
      );
    },
    async revoke(userId, clientId, audit) {
      const withdrawn = await server.consents.revoke(userId, clientId, audit);
      // Withdrawing consent ends the application's standing access: its
      // refresh tokens for this user, and the access tokens issued with them.
      for (const family of await server.refreshTokens.families(userId, clientId)) {
        const revoked = await server.refreshTokens.revokeFamily(family.familyId, 'consent_withdrawn');
        for (const token of revoked?.accessTokens ?? []) await server.accessTokens.revokeJti(token.jti, token.exp);
      }
      return withdrawn;
    },
  };
}

/** Sign-out as OAuth clients see it: RP-initiated logout, and the session's tokens ending with it. */
export function signOutHooks(server: AuthorizationServer): SignOutHooks {
  return {
    checkRequest: (query) => server.logout.checkRequest(query),
    isRequestError: (error): error is Error => error instanceof LogoutRequestError,
    sessionEnded: (session, audit) => server.logout.sessionEnded(session, audit),
    sessionsEnded: (userId, handles, audit, options) => server.logout.sessionsEnded(userId, handles, audit, options),
  };
}

/**
 * A sign-in that returns to an authorization in progress ends in a redirect
 * to the application: the sign-in pages name it in their form-action.
 */
export function returnTargets(server: AuthorizationServer): (returnTo: string) => Promise<readonly string[]> {
  return async (returnTo) => {
    const match = /^\/authorize\/resume\?interaction=([A-Za-z0-9_-]{1,64})$/.exec(returnTo);
    if (match === null) return [];
    const redirect = await server.authorizer.redirectOf(match[1]!);
    return redirect === undefined ? [] : [redirect];
  };
}
