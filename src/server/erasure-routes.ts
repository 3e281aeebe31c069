/**
 * Erasure over HTTP: the person's "Delete my account" page (GDPR Art. 17),
 * and the privacy admin API (erasures and their notices, consumer requests,
 * legal holds) behind the admin bearer.
 *
 * The page asks for the current password every time, whatever the
 * session's age, through the same throttle as sign-in; and it acts only on
 * the session's own user. A second person who signs in within the same
 * browser replaces the session (identity-routes startSession), so a form
 * made for the first person carries a CSRF token bound to a session that no
 * longer exists: it is refused, never applied to whoever is signed in now
 * (the Keycloak bug #26925 this guards against).
 */
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import fastifyCookie from '@fastify/cookie';
import fastifyFormbody from '@fastify/formbody';
import { type Identity, type Session, type User } from '../identity/index.ts';
import { ErasureRefusedError, type ConsumerRequests, type ErasureRecord, type ErasureService } from '../privacy/index.ts';
import type { AdminAuthenticator } from './admin-auth.ts';
import { HttpError } from './errors.ts';
import { SESSION_COOKIE, endSessionAfterReauthFailures, field, forgeryRefusalReason, page, refusePage, requestContext, signedInSession, type SignOutHooks } from './identity-routes.ts';
import { deletedPage, deletionPage } from './views/deletion-page.ts';
import { errorPage } from './views/pages.ts';

export interface ErasureRoutesOptions {
  readonly erasure: ErasureService;
  /** Consumer requests, for the admin API's list (the privacy service's). */
  readonly requests?: Pick<ConsumerRequests, 'list'>;
  readonly identity: Identity;
  readonly origin: () => string;
  readonly admin: AdminAuthenticator;
  readonly graceDays: number;
  /** Ends what an ended session holds elsewhere (its tokens, back-channel logout), as the other pages do. */
  readonly signOut?: Pick<SignOutHooks, 'sessionEnded'>;
}

const MAX_FIELD = 1024;

/** An erasure as the admin API shows it: a scheduled one's user id stays inside (the API names users by the path it was asked with). */
function shown(erasure: ErasureRecord): Omit<ErasureRecord, 'userId'> {
  const copy: Partial<ErasureRecord> & Omit<ErasureRecord, 'userId'> = { ...erasure };
  delete copy.userId;
  return copy;
}
const USER_ID = /^u_[A-Za-z0-9_-]{22}$/;
const ERASURE_ID = /^er_[A-Za-z0-9_-]{16}$/;

export const erasureRoutes: FastifyPluginAsync<ErasureRoutesOptions> = async (app, { erasure: privacy, requests, identity, origin, admin, graceDays, signOut }) => {
  const { accounts, csrf } = identity;
  await app.register(fastifyCookie);
  await app.register(fastifyFormbody, { bodyLimit: 8 * 1024 });
  const cookie = { path: '/', secure: true, httpOnly: true, sameSite: 'lax' } as const;

  const render = async (reply: FastifyReply, current: { session: Session; user: User }, status: number, error?: string) => {
    const scheduled = await privacy.erasures.scheduledFor(current.user.id);
    return page(reply, status, deletionPage({ csrf: csrf.token(current.session.handle), email: current.user.email, graceDays, ...(scheduled !== null && { scheduledFor: scheduled.dueAt }), ...(error !== undefined && { error }) }));
  };

  /** The signed-in session whose same-origin form carries its CSRF token, or the refusal already sent. */
  const signedInForm = async (request: FastifyRequest, reply: FastifyReply): Promise<{ session: Session; user: User } | FastifyReply> => {
    const current = await signedInSession(accounts, request);
    if (current === null) return reply.redirect('/login', 303);
    const reason = forgeryRefusalReason(request, origin(), csrf, current.session.handle);
    if (reason !== undefined) return refusePage(reply, 403, reason, errorPage({ title: 'Request refused', detail: 'This form was not sent from this site, or it expired. Go back, reload the page and try again.' }));
    return current;
  };

  app.get('/account/delete', async (request, reply) => {
    const current = await signedInSession(accounts, request);
    if (current === null) return reply.redirect(`/login?return_to=${encodeURIComponent('/account/delete')}`, 303);
    return render(reply, current, 200);
  });

  app.post('/account/delete', async (request, reply) => {
    const current = await signedInForm(request, reply);
    if (!('user' in current)) return current;
    if (field(request.body, 'confirm') !== 'yes') return render(reply, current, 400, 'Tick the box to confirm that you want your account deleted.');
    const context = requestContext(request);
    // Always the password (NIST SP 800-63B 6.1.2.1 for binding; here for the most lasting change there is), through the sign-in throttle.
    const check = await accounts.reauthenticate(current.user.id, (field(request.body, 'password') ?? '').slice(0, MAX_FIELD), context, current.session.handle);
    if (check.outcome !== 'ok') {
      if (check.endSession) return endSessionAfterReauthFailures({ accounts, signOut }, request, reply, current, check.outcome === 'throttled' ? check.retryAfterSeconds : undefined);
      return render(reply, current, 400, 'The password is not right; nothing was deleted.');
    }
    try {
      const outcome = await privacy.erasures.request(current.user.id, { channel: 'account', ip: context.ip, ...(context.requestId !== undefined && { requestId: context.requestId }), ...(context.traceId !== undefined && { traceId: context.traceId }) }, { grace: true });
      if (outcome.kind === 'scheduled') return reply.redirect('/account/delete', 303);
    } catch (error) {
      if (error instanceof ErasureRefusedError && error.reason === 'legal_hold') {
        return refusePage(reply, 403, 'erasure_legal_hold', errorPage({ title: 'Your account cannot be deleted now', detail: 'A legal obligation requires us to keep your data for now. Contact us to know more.' }));
      }
      // The same form sent twice (a double click): the first erased the account; this one finds nothing left, which is done too.
      if (!(error instanceof ErasureRefusedError && error.reason === 'not_found')) throw error;
    }
    reply.clearCookie(SESSION_COOKIE, cookie);
    return page(reply, 200, deletedPage());
  });

  app.post('/account/delete/cancel', async (request, reply) => {
    const current = await signedInForm(request, reply);
    if (!('user' in current)) return current;
    await privacy.erasures.cancel(current.user.id, { channel: 'account', ip: request.ip, requestId: request.id, traceId: request.traceId });
    return reply.redirect('/account', 303);
  });

  // The admin API (problem+json errors, the admin bearer).
  const pageOptions = (request: FastifyRequest): { after?: string; limit: number } => {
    const query = request.query as Record<string, unknown>;
    const after = query['after'];
    const limit = query['limit'];
    if (after !== undefined && (typeof after !== 'string' || !/^[A-Za-z0-9_-]{1,64}$/.test(after))) throw new HttpError('bad_request', 'Query parameter "after" must be an id from a previous page.');
    if (limit !== undefined && (typeof limit !== 'string' || !/^[1-9][0-9]{0,2}$/.test(limit))) throw new HttpError('bad_request', 'Query parameter "limit" must be an integer from 1 to 999.');
    return { ...(after !== undefined && { after }), limit: limit === undefined ? 100 : Number(limit) };
  };
  const userOf = async (request: FastifyRequest): Promise<User> => {
    const id = (request.params as { id: string }).id;
    const user = USER_ID.test(id) ? await accounts.users.byId(id) : null;
    if (user === null) throw new HttpError('not_found', 'There is no user with this id.');
    return user;
  };

  app.get('/admin/privacy/requests', async (request) => {
    await admin.authenticate(request);
    const options = pageOptions(request);
    const listed = await (requests ?? privacy.requests).list(options);
    return { requests: listed, next: listed.length === options.limit ? listed.at(-1)!.id : null };
  });

  app.get('/admin/privacy/erasures', async (request) => {
    await admin.authenticate(request);
    const options = pageOptions(request);
    const erasures = await privacy.erasures.list(options);
    return { erasures: erasures.map(shown), next: erasures.length === options.limit ? erasures.at(-1)!.id : null };
  });

  app.get('/admin/privacy/erasures/:id', async (request) => {
    await admin.authenticate(request);
    const id = (request.params as { id: string }).id;
    const erasure = ERASURE_ID.test(id) ? await privacy.erasures.get(id) : null;
    if (erasure === null) throw new HttpError('not_found', 'There is no erasure with this id.');
    return shown(erasure);
  });

  // Erase a user now, or after the grace period with {"grace": true}.
  app.post('/admin/privacy/users/:id/erasure', async (request, reply) => {
    await admin.authenticate(request);
    const body = (request.body ?? {}) as Record<string, unknown>;
    if (typeof body !== 'object' || Array.isArray(body) || (body['grace'] !== undefined && typeof body['grace'] !== 'boolean')) throw new HttpError('bad_request', 'The body is a JSON object; "grace", when given, is true or false.');
    const user = await userOf(request);
    try {
      const outcome = await privacy.erasures.request(user.id, { channel: 'admin', actorService: 'admin', requestId: request.id, traceId: request.traceId, ip: request.ip }, { grace: body['grace'] === true });
      return reply.code(outcome.kind === 'scheduled' ? 202 : 200).send({ outcome: outcome.kind, erasure: shown(outcome.erasure), ...(outcome.kind === 'erased' && { cleanup: outcome.cleanup }) });
    } catch (error) {
      if (error instanceof ErasureRefusedError) throw new HttpError(error.reason === 'legal_hold' ? 'forbidden' : 'not_found', error.reason === 'legal_hold' ? 'A legal hold stops the erasure of this user.' : 'There is no user with this id.');
      throw error;
    }
  });

  app.put('/admin/privacy/users/:id/hold', async (request, reply) => {
    await admin.authenticate(request);
    const reason = (request.body as Record<string, unknown> | undefined)?.['reason'];
    if (typeof reason !== 'string' || reason.trim() === '' || reason.length > 200) throw new HttpError('bad_request', '"reason" is required: 1 to 200 characters.');
    const user = await userOf(request);
    const placed = await privacy.holds.set(user.id, reason.trim(), 'admin');
    return reply.code(placed ? 201 : 200).send({ held: true });
  });

  app.delete('/admin/privacy/users/:id/hold', async (request) => {
    await admin.authenticate(request);
    const user = await userOf(request);
    return { released: await privacy.holds.release(user.id, 'admin') };
  });
};
