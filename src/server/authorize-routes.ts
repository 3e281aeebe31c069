/**
 * HTTP for the browser side of OAuth: the authorization endpoint, the
 * return from sign-in, and the consent form. The decisions are made by
 * src/oauth/authorization/authorizer.ts; this file turns them into
 * redirects and pages.
 */
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import fastifyCookie from '@fastify/cookie';
import fastifyFormbody from '@fastify/formbody';
import type { Identity } from '../identity/index.ts';
import { AuthorizationPageError, ENDPOINT_PATHS, isApproved, type AuthorizationServer, type AuthorizeOutcome, type SignedIn } from '../oauth/index.ts';
import { field, forgeryRefusalReason, page, refusePage, signedInSession } from './identity-routes.ts';
import { consentPage, errorPage, redirectInterstitialPage, type PurposeLine } from './views/pages.ts';

export interface AuthorizeRoutesOptions {
  readonly server: AuthorizationServer;
  readonly identity: Identity;
  readonly origin: () => string;
  /** The purposes of processing (config privacy.purposes): the consent page names those each requested scope serves. */
  readonly purposes?: readonly (PurposeLine & { readonly scopes?: readonly string[] })[];
}

export const authorizeRoutes: FastifyPluginAsync<AuthorizeRoutesOptions> = async (app, { server, identity, origin, purposes = [] }) => {
  const purposesOf = (scope: string): readonly PurposeLine[] => purposes.filter((purpose) => purpose.scopes?.includes(scope) === true);
  const { accounts, csrf } = identity;
  await app.register(fastifyCookie);
  // Forms only: a JSON or text body is refused with 415, never half-read.
  app.removeAllContentTypeParsers();
  await app.register(fastifyFormbody, { bodyLimit: 64 * 1024 });

  async function signedIn(request: FastifyRequest): Promise<(SignedIn & { email: string }) | null> {
    const current = await signedInSession(accounts, request);
    if (current === null) return null;
    const { session, user } = current;
    return { userId: user.id, sessionHandle: session.handle, authTime: session.authTime, amr: session.amr, email: user.email };
  }

  const consentBinding = (sessionHandle: string, interaction: string) => `consent:${sessionHandle}:${interaction}`;

  async function respond(request: FastifyRequest, reply: FastifyReply, decide: (person: (SignedIn & { email: string }) | null) => Promise<AuthorizeOutcome>): Promise<FastifyReply> {
    const person = await signedIn(request);
    let outcome: AuthorizeOutcome;
    try {
      outcome = await decide(person);
    } catch (error) {
      if (error instanceof AuthorizationPageError) return refusePage(reply, 400, 'authorization_request_invalid', errorPage({ title: 'This sign-in link does not work', detail: error.message }));
      throw error;
    }
    switch (outcome.kind) {
      case 'redirect':
        return reply.redirect(outcome.location, 303);
      case 'interstitial':
        // A link, not a form: form-action stays 'self'.
        return page(reply, 200, redirectInterstitialPage({ clientName: outcome.clientName, description: outcome.description, location: outcome.location }));
      case 'login': {
        const returnTo = `${ENDPOINT_PATHS.authorization}/resume?interaction=${outcome.interactionId}`;
        const hint = outcome.loginHint !== undefined ? `&login_hint=${encodeURIComponent(outcome.loginHint)}` : '';
        return reply.redirect(`/login?reauth=1&return_to=${encodeURIComponent(returnTo)}${hint}`, 303);
      }
      case 'consent':
        return page(
          reply,
          200,
          consentPage({
            csrf: csrf.token(consentBinding(person!.sessionHandle, outcome.interactionId)),
            interaction: outcome.interactionId,
            clientName: outcome.client.client_name ?? outcome.client.client_id,
            clientId: outcome.client.client_id,
            scopes: outcome.scopes,
            email: person!.email,
            redirectUri: outcome.redirectUri,
            approved: isApproved(outcome.client),
            purposes: purposesOf,
          }),
          [outcome.redirectUri],
        );
    }
  }

  // OIDC Core section 3.1.2.1: the authorization endpoint takes GET and POST.
  app.get(ENDPOINT_PATHS.authorization, (request, reply) => respond(request, reply, (person) => server.authorizer.begin(request.query, person)));
  app.post(ENDPOINT_PATHS.authorization, (request, reply) => respond(request, reply, (person) => server.authorizer.begin(request.body, person)));

  app.get(`${ENDPOINT_PATHS.authorization}/resume`, (request, reply) => {
    const interaction = (request.query as Record<string, unknown>)['interaction'];
    return respond(request, reply, (person) => server.authorizer.resume(typeof interaction === 'string' ? interaction : '', person));
  });

  app.post(`${ENDPOINT_PATHS.authorization}/consent`, async (request, reply) => {
    const interaction = field(request.body, 'interaction') ?? '';
    const person = await signedIn(request);
    if (person === null) return reply.redirect(`/login?return_to=${encodeURIComponent(`${ENDPOINT_PATHS.authorization}/resume?interaction=${interaction}`)}`, 303);
    // The consent form is a state change: same origin and a token bound to
    // this session and this request, like every other form (CSRF).
    const forged = forgeryRefusalReason(request, origin(), csrf, consentBinding(person.sessionHandle, interaction));
    if (forged !== undefined) {
      return refusePage(reply, 403, forged, errorPage({ title: 'Request refused', detail: 'This form was not sent from this site, or it expired. Start again from the application.' }));
    }
    const decision = field(request.body, 'decision');
    if (decision !== 'allow' && decision !== 'deny') return refusePage(reply, 400, 'consent_decision_missing', errorPage({ title: 'No answer', detail: 'Choose Allow or Deny.' }));
    return respond(request, reply, () => server.authorizer.decide(interaction, person, decision === 'allow', { requestId: request.id, ip: request.ip }));
  });
};
