/**
 * Right of access and to data portability over HTTP (GDPR Art. 15, 20):
 * the person downloads their own data from the account page; an
 * administrator fetches anyone's through the admin API (a request made by
 * mail, say); the format is public at /privacy/export-schema.json.
 *
 * Whose data is exported comes from one place only: the signed-in
 * session on the account page, the path's user id on the admin API. No
 * other parameter names a person (query, body fields, headers are never
 * read for it), so no request can ask for someone else's copy (IDOR).
 */
import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import fastifyCookie from '@fastify/cookie';
import fastifyFormbody from '@fastify/formbody';
import type { Identity } from '../identity/index.ts';
import { EXPORT_SCHEMA_PATH, PrivacyExportError, privacyExportJsonSchema, type Privacy, type PrivacyExport } from '../privacy/index.ts';
import type { AdminAuthenticator } from './admin-auth.ts';
import { HttpError } from './errors.ts';
import { endSessionAfterReauthFailures, field, forgeryRefusalReason, refusePage, requestContext, signedInSession, waitInWords, type SignOutHooks } from './identity-routes.ts';
import { dataExportPage, errorPage } from './views/pages.ts';

export interface PrivacyRoutesOptions {
  readonly privacy: Privacy;
  readonly admin: AdminAuthenticator;
  /** The issuer, for the schema's $id. */
  readonly issuer: () => string;
  /** The account page's download: served when identity is. */
  readonly identity?: Identity;
  readonly signOut?: SignOutHooks;
  /** Our own origin, for the Origin check of the form. */
  readonly origin: () => string;
}

/** User ids only in the admin path: an email address in a URL would be written to every request log line. */
const USER_ID = /^u_[A-Za-z0-9_-]{22}$/;

/** The copy as a file to keep (RFC 6266), never cached on the way (it is personal data). */
function sendExport(reply: FastifyReply, document: PrivacyExport): FastifyReply {
  const day = document.generatedAt.slice(0, 10);
  return reply
    .code(200)
    .header('content-type', 'application/json; charset=utf-8')
    .header('content-disposition', `attachment; filename="portcullis-data-${day}.json"`)
    .header('cache-control', 'no-store')
    .send(`${JSON.stringify(document, null, 2)}\n`);
}

export const privacyRoutes: FastifyPluginAsync<PrivacyRoutesOptions> = async (app, { privacy, admin, issuer, identity, signOut, origin }) => {
  // The schema of the export: public, the same for every person.
  app.get(EXPORT_SCHEMA_PATH, async (_request, reply) =>
    reply.type('application/schema+json').header('cache-control', 'public, max-age=3600').send(JSON.stringify(privacyExportJsonSchema(issuer()), null, 2)),
  );

  // An administrator answering a request that came another way (GDPR Art.
  // 12(1): by other means). Not exposed as HEAD: every answer is an
  // audited export and a recorded request.
  app.get('/admin/privacy/users/:id/export', { exposeHeadRoute: false }, async (request, reply) => {
    await admin.authenticate(request);
    const { id } = request.params as { id: string };
    if (!USER_ID.test(id)) throw new HttpError('not_found', 'There is no user with that id.');
    try {
      return sendExport(reply, await privacy.exporter.export(id, { channel: 'admin', requestId: request.id, traceId: request.traceId, ip: request.ip }));
    } catch (error) {
      if (error instanceof PrivacyExportError) throw new HttpError('not_found', 'There is no user with that id.');
      throw error;
    }
  });

  if (identity === undefined) return;
  const { accounts, csrf } = identity;
  await app.register(fastifyCookie);
  await app.register(fastifyFormbody, { bodyLimit: 8 * 1024 });

  // The account page's "Download my data". A copy of everything about the
  // person is worth as much as the account: the session must have signed
  // in within REAUTHENTICATION_MAX_AGE_MS, or the form carries the current
  // password, checked through the sign-in throttle (security review 4), so
  // a browser left signed in (or a cookie jar another person signed in to
  // later) gives nobody the copy without the password.
  app.post('/account/export', async (request, reply) => {
    const current = await signedInSession(accounts, request);
    if (current === null) return reply.redirect(`/login?return_to=${encodeURIComponent('/account')}`, 303);
    const forged = forgeryRefusalReason(request, origin(), csrf, current.session.handle);
    if (forged !== undefined) {
      return refusePage(reply, 403, forged, errorPage({ title: 'Request refused', detail: 'This form was not sent from this site, or it expired. Go back, reload the page and try again.' }));
    }
    const token = csrf.token(current.session.handle);
    if (!accounts.authenticatedRecently(current.session)) {
      const password = field(request.body, 'password');
      // An empty form is asked again, not counted: the page may have been opened while the session was fresh.
      if (password === undefined || password === '') {
        return refusePage(reply, 400, 'reauthentication_required', dataExportPage({ csrf: token, passwordRequired: true, error: 'Enter your current password to download your data.' }));
      }
      const check = await accounts.reauthenticate(current.user.id, password, requestContext(request), current.session.handle);
      if (check.outcome !== 'ok') {
        if (check.endSession) return endSessionAfterReauthFailures({ accounts, signOut }, request, reply, current, check.outcome === 'throttled' ? check.retryAfterSeconds : undefined);
        return refusePage(reply, 400, 'wrong_password', dataExportPage({ csrf: token, passwordRequired: true, error: 'The password is not right.' }));
      }
    }
    // Counted once the person proved who they are: wrong passwords do not use up the day's copies.
    const allowance = await privacy.exportLimit.take(current.user.id);
    if (!allowance.allowed) {
      reply.header('retry-after', String(allowance.retryAfterSeconds));
      return refusePage(reply, 429, 'export_limit', dataExportPage({ csrf: token, passwordRequired: false, error: `You downloaded your data as often as a day allows. Wait ${waitInWords(allowance.retryAfterSeconds)}, then try again.` }));
    }
    return sendExport(reply, await privacy.exporter.export(current.user.id, { channel: 'account', requestId: request.id, traceId: request.traceId, ip: request.ip }));
  });
};
