/**
 * HTTP for the person's privacy choices (issue 15): Global Privacy Control
 * on every page, the account page's "Do not sell or share" switch and
 * purposes, the page that asks for consent after sign-in, and the GPC
 * support resource. The decisions and their records are the privacy
 * module's (src/privacy/preferences.ts); this file turns requests into them.
 *
 * Global Privacy Control (the GPC specification; CCPA 1798.135(e) and
 * regulations section 7025(b)): a page request carrying `Sec-GPC: 1` is a
 * valid request to opt out of sale and sharing. A signed-in person's is
 * recorded at once; a visitor's is remembered on their browser (a
 * `__Host-` cookie) and recorded when they sign in (section 7025(c)(1):
 * for a consumer known to the business, the opt-out applies to them).
 */
import type { FastifyPluginAsync, FastifyReply, FastifyRequest, preHandlerAsyncHookHandler } from 'fastify';
import fastifyCookie from '@fastify/cookie';
import fastifyFormbody from '@fastify/formbody';
import { UserError, type Identity, type Session, type User } from '../identity/index.ts';
import { PreferenceError, decisionOf, type PreferenceAudit, type PrivacyPreferences } from '../privacy/index.ts';
import { field, forgeryRefusalReason, page, refusePage, safeReturnTo, signedInSession, type AccountSection, type AfterSignIn } from './identity-routes.ts';
import { errorPage } from './views/pages.ts';
import { optOutHeldPage, privacyErrorPage, privacySection, purposesPromptPage } from './views/privacy.ts';

/** Remembers a visitor's GPC signal until they sign in. `__Host-` (RFC 6265bis 4.1.3.2): Secure, Path=/, no Domain. */
export const GPC_COOKIE = '__Host-portcullis-gpc';
const GPC_COOKIE_MAX_AGE_S = 365 * 24 * 60 * 60;
const GPC_COOKIE_OPTIONS = { path: '/', secure: true, httpOnly: true, sameSite: 'lax' } as const;

/** When this server's GPC support last changed: the `lastUpdate` of /.well-known/gpc.json (an RFC 3339 full-date). */
export const GPC_LAST_UPDATE = '2026-12-05';

/** The HTML pages a person navigates: where a GPC signal counts as theirs. */
const PAGE_PATHS = ['/login', '/account', '/authorize', '/logout', '/privacy'];

/** The GPC specification: the header's only value is "1"; anything else, or none, expresses no preference. */
export function sendsGpc(request: FastifyRequest): boolean {
  return request.headers['sec-gpc'] === '1';
}

function isPageRequest(request: FastifyRequest): boolean {
  if (request.method !== 'GET' && request.method !== 'HEAD' && request.method !== 'POST') return false;
  const url = request.routeOptions.url;
  return url !== undefined && PAGE_PATHS.some((path) => url === path || url.startsWith(`${path}/`));
}

const auditOf = (request: FastifyRequest): PreferenceAudit => ({ requestId: request.id, traceId: request.traceId, ip: request.ip });

/** Records a GPC opt-out; the person may be gone or racing another request, which leaves nothing to do. */
async function recordGpc(preferences: PrivacyPreferences, request: FastifyRequest, user: User): Promise<void> {
  if (preferences.optedOut(user)) return;
  try {
    await preferences.setOptOut(user.id, true, 'gpc', auditOf(request));
  } catch (error) {
    if (!(error instanceof UserError)) throw error;
    request.log.warn({ reason: error.code }, 'Global Privacy Control opt-out not recorded');
  }
}

/**
 * The root preHandler that honours `Sec-GPC: 1` on page requests: for a
 * signed-in person, their opt-out (once: a person already opted out costs
 * one read); for a visitor, the cookie. Runs before the page's own
 * handler, so the page already shows the opt-out.
 */
export function globalPrivacyControl(options: { preferences: PrivacyPreferences; identity: Identity }): preHandlerAsyncHookHandler {
  return async (request, reply) => {
    // A route without the cookie plugin is no page (its context registered none).
    if (!sendsGpc(request) || !isPageRequest(request) || request.cookies === undefined) return;
    const current = await signedInSession(options.identity.accounts, request);
    if (current === null) {
      if (request.cookies[GPC_COOKIE] !== '1') reply.setCookie(GPC_COOKIE, '1', { ...GPC_COOKIE_OPTIONS, maxAge: GPC_COOKIE_MAX_AGE_S });
      return;
    }
    await recordGpc(options.preferences, request, current.user);
  };
}

/** The path of the consent questions, continuing to `returnTo`. */
function purposesPath(returnTo: string): string {
  return `/privacy/purposes?return_to=${encodeURIComponent(returnTo)}`;
}

/**
 * After every sign-in: a GPC signal the visitor's browser carried (the
 * cookie, or this request's header) becomes the person's opt-out, and the
 * cookie goes; then, if a purpose based on consent has no decision of
 * theirs at its current version, they are asked before they continue.
 */
export function privacyAfterSignIn(preferences: PrivacyPreferences): AfterSignIn {
  return async (request, reply, user, returnTo) => {
    if (sendsGpc(request) || request.cookies[GPC_COOKIE] === '1') {
      await recordGpc(preferences, request, user);
      reply.clearCookie(GPC_COOKIE, GPC_COOKIE_OPTIONS);
    }
    return preferences.pending(user).length === 0 ? undefined : purposesPath(returnTo ?? '/account');
  };
}

/** The account page's privacy section: the switch and the purposes. */
export function privacyAccountSection(preferences: PrivacyPreferences): AccountSection {
  return (request, current, csrf) =>
    Promise.resolve(
      privacySection({
        csrf,
        ...(current.user.privacy?.optOut !== undefined && { optOut: current.user.privacy.optOut }),
        gpc: sendsGpc(request),
        purposes: preferences.purposesOf(current.user).map(({ purpose, decision }) => ({ ...purpose, ...(decision !== undefined && { decision }) })),
      }),
    );
}

export interface PrivacyPreferenceRoutesOptions {
  readonly preferences: PrivacyPreferences;
  readonly identity: Identity;
  /** Our own origin (scheme://host[:port]), for the Origin check. */
  readonly origin: () => string;
  /** Where a return address will finally redirect (an application's redirect URI), for the page's form-action. */
  readonly returnTargets?: (returnTo: string) => Promise<readonly string[]>;
}

export const privacyPreferenceRoutes: FastifyPluginAsync<PrivacyPreferenceRoutesOptions> = async (app, { preferences, identity, origin, returnTargets }) => {
  const { accounts, csrf } = identity;
  await app.register(fastifyCookie);
  // Forms only: a JSON or text body is refused with 415, never half-read.
  app.removeAllContentTypeParsers();
  await app.register(fastifyFormbody, { bodyLimit: 16 * 1024 });
  const targetsOf = async (returnTo: string): Promise<readonly string[]> => (returnTargets === undefined ? [] : returnTargets(returnTo));

  /** Same origin and the session's CSRF token, like every other account form, or a 403 page. */
  function refuseForgery(request: FastifyRequest, reply: FastifyReply, current: { session: Session }): FastifyReply | undefined {
    const reason = forgeryRefusalReason(request, origin(), csrf, current.session.handle);
    if (reason === undefined) return undefined;
    return refusePage(reply, 403, reason, errorPage({ title: 'Request refused', detail: 'This form was not sent from this site, or it expired. Go back, reload the page and try again.' }));
  }

  // The GPC support resource: this site honours the signal. JSON, an object with `gpc` (required) and `lastUpdate`.
  app.get('/.well-known/gpc.json', async (_request, reply) => reply.type('application/json').header('cache-control', 'public, max-age=86400').send({ gpc: true, lastUpdate: GPC_LAST_UPDATE }));

  // CCPA 1798.135(a)(1): the "Do not sell or share" link's own switch. On is
  // also a consumer request to opt out, answered at once; off is refused
  // while the browser sends GPC (regulations section 7025(c)(3): the signal
  // wins over a setting that conflicts with it).
  app.post('/account/privacy/opt-out', async (request, reply) => {
    const current = await signedInSession(accounts, request);
    if (current === null) return reply.redirect('/login', 303);
    const refused = refuseForgery(request, reply, current);
    if (refused !== undefined) return refused;
    const choice = field(request.body, 'opt_out');
    if (choice !== 'on' && choice !== 'off') return refusePage(reply, 400, 'opt_out_choice_missing', privacyErrorPage({ title: 'No choice', detail: 'Choose whether your personal information may be sold or shared.' }));
    if (choice === 'off' && sendsGpc(request)) return refusePage(reply, 409, 'gpc_holds_opt_out', optOutHeldPage());
    await preferences.setOptOut(current.user.id, choice === 'on', 'account', auditOf(request));
    return reply.redirect(`/account?done=${choice === 'on' ? 'opt-out' : 'opt-in'}`, 303);
  });

  // GDPR Art. 7(3): withdrawing consent is as easy as giving it, one button each.
  app.post('/account/privacy/purposes', async (request, reply) => {
    const current = await signedInSession(accounts, request);
    if (current === null) return reply.redirect('/login', 303);
    const refused = refuseForgery(request, reply, current);
    if (refused !== undefined) return refused;
    const purpose = field(request.body, 'purpose');
    const decision = field(request.body, 'decision');
    if (purpose === undefined || (decision !== 'grant' && decision !== 'withdraw')) {
      return refusePage(reply, 400, 'consent_decision_missing', privacyErrorPage({ title: 'No choice', detail: 'Choose a purpose, and whether you grant or withdraw your consent.' }));
    }
    try {
      await preferences.decide(current.user.id, [{ purpose, granted: decision === 'grant' }], 'account', auditOf(request));
    } catch (error) {
      if (error instanceof PreferenceError) return refusePage(reply, 400, `consent_${error.code}`, privacyErrorPage({ title: 'Not saved', detail: 'That purpose does not exist, or it does not ask for your consent. Nothing was changed.' }));
      throw error;
    }
    return reply.redirect('/account?done=consent', 303);
  });

  // After sign-in: the purposes based on consent that have no decision at
  // their current version (a new version is a new text to consent to), then
  // on to return_to (an authorization in progress continues there).
  app.get('/privacy/purposes', async (request, reply) => {
    const returnTo = safeReturnTo((request.query as Record<string, unknown>)['return_to']) ?? '/account';
    const current = await signedInSession(accounts, request);
    // Signing in asks these anyway, then continues to return_to.
    if (current === null) return reply.redirect(`/login?return_to=${encodeURIComponent(returnTo)}`, 303);
    const pending = preferences.pending(current.user);
    if (pending.length === 0) return reply.redirect(returnTo, 303);
    return page(reply, 200, promptPage(current, returnTo), await targetsOf(returnTo));
  });

  app.post('/privacy/purposes', async (request, reply) => {
    const returnTo = safeReturnTo(field(request.body, 'return_to')) ?? '/account';
    const current = await signedInSession(accounts, request);
    if (current === null) return reply.redirect(`/login?return_to=${encodeURIComponent(returnTo)}`, 303);
    const refused = refuseForgery(request, reply, current);
    if (refused !== undefined) return refused;
    const pending = preferences.pending(current.user);
    const decisions: { purpose: string; granted: boolean }[] = [];
    for (const purpose of pending) {
      const answer = field(request.body, `consent_${purpose.id}`);
      // Every question answered, or nothing recorded: a missing answer is not a refusal (GDPR Art. 4(11): consent is an unambiguous indication).
      if (answer !== 'grant' && answer !== 'decline') return refusePage(reply, 400, 'consent_answer_missing', promptPage(current, returnTo, 'Answer each question: I consent, or I do not consent.'), await targetsOf(returnTo));
      decisions.push({ purpose: purpose.id, granted: answer === 'grant' });
    }
    await preferences.decide(current.user.id, decisions, 'sign-in', auditOf(request));
    return reply.redirect(returnTo, 303);
  });

  function promptPage(current: { session: Session; user: User }, returnTo: string, error?: string): string {
    return purposesPromptPage({
      csrf: csrf.token(current.session.handle),
      returnTo,
      purposes: preferences.pending(current.user).map((purpose) => {
        const previous = decisionOf(current.user.privacy, purpose.id)?.version;
        return { id: purpose.id, description: purpose.description, version: purpose.version, ...(previous !== undefined && { previous }) };
      }),
      ...(error !== undefined && { error }),
    });
  }
};
