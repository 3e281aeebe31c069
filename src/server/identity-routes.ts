import { randomBytes } from 'node:crypto';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import fastifyCookie from '@fastify/cookie';
import fastifyFormbody from '@fastify/formbody';
import { DEVICE_COOKIE_MAX_AGE_MS, PROFILE_FIELDS, PasswordPolicyError, THROTTLE, UserError, sameOrigin, type Identity, type ProfileField, type RequestContext, type Session, type User } from '../identity/index.ts';
import { accountPage, errorPage, loginPage, logoutPage, recoveryCodesPage, secondFactorPage, type ConsentRow, type SecondFactorState } from './views/pages.ts';
import type { Html } from './views/html.ts';
import { STYLESHEET } from './views/style.ts';
import { StoreUnavailableError } from '../store/index.ts';

/** The applications a user let in (OAuth consents), for the account page. */
export interface ApplicationAccess {
  list(userId: string): Promise<ConsentRow[]>;
  /** Withdraws consent and ends the application's refresh tokens; resolves whether there was any. */
  revoke(userId: string, clientId: string, audit: { requestId: string; ip: string }): Promise<boolean>;
}

/** What an OAuth client asked of a sign-out (OIDC RP-Initiated Logout), and what ends with the session. */
export interface SignOutHooks {
  /** Throws an error whose message is fit for the person when the request cannot be honoured. */
  /** `redirectTo` may be followed at once; `unconfirmedRedirect` only offered as a link (nothing proves the client asked). */
  checkRequest(query: unknown): Promise<{ redirectTo?: string; unconfirmedRedirect?: string; client?: { name: string }; params: Readonly<Record<string, string>> }>;
  isRequestError(error: unknown): error is Error;
  sessionEnded(session: { userId: string; sessionHandle: string }, audit: { requestId: string; ip: string }): Promise<unknown>;
  /** The same for several sessions of one user: one that fails does not stop the others; the first failure is thrown once each was tried. */
  sessionsEnded(userId: string, sessionHandles: readonly string[], audit: { requestId: string; ip: string }, options?: { again?: boolean }): Promise<unknown>;
}

/** A section of the account page owned elsewhere (the privacy choices): rendered for the signed-in person, with the page's CSRF token. */
export type AccountSection = (request: FastifyRequest, current: { session: Session; user: User }, csrf: string) => Promise<Html>;

/**
 * Runs after every successful sign-in, once the session is set, before the
 * browser moves on: may change what the sign-in leaves on the reply, and
 * resolves with a same-site path to go to instead of `returnTo` (a page that
 * asks something first and then continues to `returnTo`), or undefined.
 */
export type AfterSignIn = (request: FastifyRequest, reply: FastifyReply, user: User, returnTo: string | undefined) => Promise<string | undefined>;

export interface IdentityRoutesOptions {
  readonly identity: Identity;
  readonly signOut?: SignOutHooks;
  /** Where a sign-in that returns to `returnTo` will finally be redirected (an application's redirect URI), for the page's form-action. */
  readonly returnTargets?: (returnTo: string) => Promise<readonly string[]>;
  /** Our own origin (scheme://host[:port]), for the Origin check. */
  readonly origin: () => string;
  readonly applications?: ApplicationAccess;
  /** The account page offers "Download my data" (privacy-routes.ts serves it). */
  readonly dataExport?: boolean;
  readonly accountSections?: readonly AccountSection[];
  readonly afterSignIn?: AfterSignIn;
}

/**
 * `__Host-` (RFC 6265bis 4.1.3.2): Secure, Path=/, no Domain, so no sibling
 * subdomain can set or shadow it. Browsers count loopback as secure, so the
 * Secure attribute works on http://127.0.0.1 in development too; production
 * always runs behind TLS.
 */
export const SESSION_COOKIE = '__Host-portcullis';
/** Binds the sign-in form's CSRF token before there is a session (login CSRF). */
const LOGIN_COOKIE = '__Host-portcullis-login';
const LOGIN_COOKIE_MAX_AGE_S = 30 * 60;
/** Carries the single-use challenge between the password and the second factor. */
const MFA_COOKIE = '__Host-portcullis-mfa';
const MFA_COOKIE_MAX_AGE_S = 5 * 60;
const MAX_FIELD = 1024;
/** Marks a browser that signed in to an account before (OWASP device cookies); kept across sign-outs. */
const DEVICE_COOKIE = '__Host-portcullis-device';

/** Pages allow their own stylesheet and forms to themselves, and nothing else: no script at all. */
/**
 * Pages allow their own stylesheet and forms to themselves. `form-action`
 * also governs where a form's redirects may go (CSP3 section 6.4.1), so a
 * page whose form ends in a redirect to an application (sign-in during an
 * authorization, consent, sign-out with a return address) names that
 * application's origin too, and nothing else.
 */
function pageCsp(formTargets: readonly string[]): string {
  return `default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'${formTargets.map((target) => ` ${target}`).join('')}; frame-ancestors 'none'; base-uri 'none'`;
}

/** The CSP source for a redirect target: its origin, or for a native app's private-use scheme, the scheme. */
export function formActionSource(uri: string): string | undefined {
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    return undefined;
  }
  if (url.protocol === 'https:' || url.protocol === 'http:') return url.origin;
  return /^[a-z][a-z0-9+.-]*:$/.test(url.protocol) ? url.protocol : undefined;
}

/** The log reason of each refused sign-in (first-hour D20), by status. */
const LOGIN_REFUSALS: Readonly<Record<number, string>> = { 400: 'sign_in_fields_missing', 401: 'invalid_credentials', 403: 'sign_in_refused_by_hook', 429: 'sign_in_throttled' };

const NOTICES: Record<string, string> = {
  revoked: 'The session was signed out.',
  others: 'All other sessions were signed out.',
  password: 'Your password was changed. Other sessions were signed out.',
  'mfa-off': 'Two-step verification is off.',
  application: 'The application no longer has access to your account.',
  profile: 'Your profile was saved.',
  'opt-out': 'Your personal information will not be sold or shared.',
  'opt-in': 'You allowed the sale or sharing of your personal information again.',
  consent: 'Your choice was saved.',
};

/** A wait in words a person reads ("about 15 minutes"); Retry-After keeps the seconds. */
export function waitInWords(seconds: number): string {
  if (seconds < 60) return seconds <= 1 ? 'a second' : `${seconds} seconds`;
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return minutes === 1 ? 'about a minute' : `about ${minutes} minutes`;
  const hours = Math.round(minutes / 60);
  if (hours < 48) return hours === 1 ? 'about an hour' : `about ${hours} hours`;
  return `about ${Math.round(hours / 24)} days`;
}

/**
 * Pages send their referrer to themselves only. Not `no-referrer`: under it
 * browsers send `Origin: null` even on same-origin form posts (Fetch
 * standard, "serializing a request origin"), and the Origin check of every
 * form would fail. Nothing still leaves for another origin.
 */
const PAGE_REFERRER_POLICY = 'same-origin';

export function page(reply: FastifyReply, status: number, body: string, redirectTargets: readonly string[] = []): FastifyReply {
  const sources = [...new Set(redirectTargets.map(formActionSource).filter((source): source is string => source !== undefined))];
  return reply.code(status).header('content-security-policy', pageCsp(sources)).header('referrer-policy', PAGE_REFERRER_POLICY).type('text/html; charset=utf-8').send(body);
}

/**
 * A refused page request: the page, and the reason in the request's log
 * line (first-hour D20: an operator must tell an Origin mismatch from an
 * expired form or a wrong code). The reason only; never a token, cookie,
 * Origin or code value.
 */
export function refusePage(reply: FastifyReply, status: number, reason: string, body: string, redirectTargets: readonly string[] = []): FastifyReply {
  reply.request.refusalReason = reason;
  if (status === 403) reply.request.log.warn({ reason, route: reply.request.routeOptions.url, status }, 'page request refused');
  return page(reply, status, body, redirectTargets);
}

/** Why a state-changing form is refused, or undefined when it may proceed. */
export function forgeryRefusalReason(request: FastifyRequest, ownOrigin: string, csrf: Pick<Identity['csrf'], 'verify'>, binding: string | undefined): string | undefined {
  // Fetch Metadata / Origin (OWASP CSRF Prevention Cheat Sheet), then the synchronizer token.
  if (!sameOrigin(request.headers, ownOrigin)) return typeof request.headers['origin'] === 'string' ? 'origin_mismatch' : 'cross_site_fetch';
  if (binding === undefined) return 'form_cookie_missing';
  const token = field(request.body, '_csrf');
  if (token === undefined) return 'csrf_token_missing';
  if (!csrf.verify(binding, token)) return 'csrf_token_invalid';
  return undefined;
}

/** The live session of the request's cookie and its (enabled) user, or null. */
export async function signedInSession(accounts: Identity['accounts'], request: FastifyRequest): Promise<{ session: Session; user: User } | null> {
  const id = request.cookies[SESSION_COOKIE];
  if (id === undefined) return null;
  const session = await accounts.sessions.resolve(id);
  if (session === null) return null;
  const user = await accounts.users.byId(session.userId);
  if (user === null || user.disabled) return null;
  return { session, user };
}

/**
 * A same-site path to go back to after sign-in: never another origin (open
 * redirect). Only printable ASCII (RFC 3986 section 2: a URI is ASCII; other
 * characters arrive percent-encoded): it goes into a Location header, which
 * Node refuses to write with control characters, DEL or anything beyond
 * Latin-1 (security review 8: that was a 500 after the session was made).
 */
export function safeReturnTo(value: unknown): string | undefined {
  if (typeof value !== 'string' || value.length > 512 || !value.startsWith('/') || value.startsWith('//') || value.includes('\\') || !/^[\x21-\x7e]+$/.test(value)) return undefined;
  return value;
}

/** A short, non-identifying device name from the User-Agent, for the account page. */
export function describeDevice(userAgent: string | undefined): string {
  if (userAgent === undefined) return 'Unknown device';
  const browser = /Edg\//.test(userAgent) ? 'Edge' : /Firefox\//.test(userAgent) ? 'Firefox' : /Chrom(e|ium)\//.test(userAgent) ? 'Chrome' : /Safari\//.test(userAgent) ? 'Safari' : /curl\//.test(userAgent) ? 'curl' : 'Browser';
  const system = /Android/.test(userAgent) ? 'Android' : /iPhone|iPad/.test(userAgent) ? 'iOS' : /Windows/.test(userAgent) ? 'Windows' : /Mac OS X/.test(userAgent) ? 'macOS' : /Linux/.test(userAgent) ? 'Linux' : 'another system';
  return `${browser} on ${system}`;
}

export function field(body: unknown, name: string): string | undefined {
  const value = (body as Record<string, unknown> | undefined)?.[name];
  return typeof value === 'string' && value.length <= MAX_FIELD && value.isWellFormed() ? value : undefined;
}

/** Who is asking, for the throttles and the audit entry: address, request, device description and device cookie. */
export function requestContext(request: FastifyRequest): RequestContext {
  const deviceCookie = request.cookies[DEVICE_COOKIE];
  return { ip: request.ip, requestId: request.id, traceId: request.traceId, device: describeDevice(request.headers['user-agent']), ...(deviceCookie !== undefined && { deviceCookie }) };
}

/**
 * Ends a session with what it produced: first its tokens and the
 * applications' back-channel logouts (committed to the outbox), then the
 * session itself. In that order, a failure half-way (a store outage) leaves
 * the session live, so the person's retry signs out again and queues what
 * was not queued; the other way round, the retry would find no session and
 * the applications would never hear of it.
 */
async function endSessionWithTokens(
  services: { accounts: Identity['accounts']; signOut?: Pick<SignOutHooks, 'sessionEnded'> | undefined },
  request: FastifyRequest,
  userId: string,
  sessionHandle: string,
  reason: 'logout' | 'revoked',
): Promise<void> {
  await services.signOut?.sessionEnded({ userId, sessionHandle }, { requestId: request.id, ip: request.ip });
  await services.accounts.endSession(userId, sessionHandle, requestContext(request), reason);
}

/**
 * A re-authentication the throttle refused, or the pair's last allowed
 * failure (security review 4): the session ends (and the applications'
 * tokens with it), and the person signs in again, where the same throttle
 * waits for them. Every form that asks for the current password ends here.
 */
export async function endSessionAfterReauthFailures(
  services: { accounts: Identity['accounts']; signOut?: Pick<SignOutHooks, 'sessionEnded'> | undefined },
  request: FastifyRequest,
  reply: FastifyReply,
  current: { session: Session; user: User },
  retryAfterSeconds: number | undefined,
): Promise<FastifyReply> {
  await endSessionWithTokens(services, request, current.user.id, current.session.handle, 'revoked');
  reply.clearCookie(SESSION_COOKIE, { path: '/', secure: true, httpOnly: true, sameSite: 'lax' });
  const wait = retryAfterSeconds ?? Math.ceil(THROTTLE.windowMs / 1000);
  reply.header('retry-after', String(wait));
  return refusePage(reply, 429, 'reauthentication_throttled', errorPage({ title: 'Sign in again', detail: `The password was wrong too many times, so you were signed out. Wait ${waitInWords(wait)}, then sign in again.` }));
}

/**
 * Sign-in, account and sign-out pages. Every state change is a POST that
 * needs the session's CSRF token and a same-origin request; every refusal is
 * a page with a clear message, never a 500.
 */
export const identityRoutes: FastifyPluginAsync<IdentityRoutesOptions> = async (app, { identity, origin, applications, signOut, returnTargets, accountSections = [], afterSignIn, dataExport }) => {
  const targetsOf = async (returnTo: string | undefined): Promise<readonly string[]> => (returnTo === undefined || returnTargets === undefined ? [] : returnTargets(returnTo));
  const { accounts, csrf, secondFactor } = identity;
  const cookieOptions = { path: '/', secure: true, httpOnly: true, sameSite: 'lax' } as const;
  await app.register(fastifyCookie);
  await app.register(fastifyFormbody, { bodyLimit: 8 * 1024 });

  const context = requestContext;

  const setSessionCookie = (reply: FastifyReply, id: string) =>
    reply.setCookie(SESSION_COOKIE, id, { path: '/', secure: true, httpOnly: true, sameSite: 'lax', maxAge: Math.floor(accounts.sessions.policy.absoluteTimeoutMs / 1000) });
  const clearSessionCookie = (reply: FastifyReply) => reply.clearCookie(SESSION_COOKIE, { path: '/', secure: true, httpOnly: true, sameSite: 'lax' });

  const currentSession = (request: FastifyRequest) => signedInSession(accounts, request);

  /**
   * Every sign-in path ends here (password alone, password + second factor;
   * security review 10): a new session id (no fixation), and a session this
   * browser still held is ended, not orphaned.
   */
  async function startSession(request: FastifyRequest, reply: FastifyReply, signedIn: { session: { id: string }; deviceCookie: string }): Promise<void> {
    const previous = await currentSession(request);
    if (previous !== null) await accounts.sessions.revoke(previous.user.id, previous.session.handle);
    setSessionCookie(reply, signedIn.session.id);
    // OWASP device cookies: this browser has now signed in to the account (security review 3).
    reply.setCookie(DEVICE_COOKIE, signedIn.deviceCookie, { path: '/', secure: true, httpOnly: true, sameSite: 'lax', maxAge: Math.floor(DEVICE_COOKIE_MAX_AGE_MS / 1000) });
  }

  const endAfterReauthFailures = (request: FastifyRequest, reply: FastifyReply, current: { session: Session; user: User }, retryAfterSeconds: number | undefined) =>
    endSessionAfterReauthFailures({ accounts, signOut }, request, reply, current, retryAfterSeconds);

  /** Same-origin and a valid token for the binding, or a 403 page. */
  function refuseForgery(request: FastifyRequest, reply: FastifyReply, binding: string | undefined): FastifyReply | undefined {
    const reason = forgeryRefusalReason(request, origin(), csrf, binding);
    if (reason !== undefined) {
      return refusePage(reply, 403, reason, errorPage({ title: 'Request refused', detail: 'This form was not sent from this site, or it expired. Go back, reload the page and try again.' }));
    }
    return undefined;
  }

  app.get('/assets/portcullis.css', async (_request, reply) => reply.type('text/css; charset=utf-8').header('cache-control', 'public, max-age=3600').send(STYLESHEET));

  app.get('/login', async (request, reply) => {
    const query = request.query as Record<string, unknown>;
    const returnTo = safeReturnTo(query['return_to']);
    // `reauth=1`: an application asked for a fresh sign-in (OIDC prompt=login, max_age).
    if (query['reauth'] !== '1' && (await currentSession(request)) !== null) return reply.redirect(returnTo ?? '/account', 303);
    const hint = query['login_hint'];
    const email = typeof hint === 'string' && hint.length <= 254 && hint.isWellFormed() ? hint : undefined;
    const nonce = randomBytes(18).toString('base64url');
    reply.setCookie(LOGIN_COOKIE, nonce, { path: '/', secure: true, httpOnly: true, sameSite: 'lax', maxAge: LOGIN_COOKIE_MAX_AGE_S });
    return page(reply, 200, loginPage({ csrf: csrf.token(`login:${nonce}`), ...(returnTo !== undefined && { returnTo }), ...(email !== undefined && { email }) }), await targetsOf(returnTo));
  });

  app.post('/login', async (request, reply) => {
    const nonce = request.cookies[LOGIN_COOKIE];
    const refused = refuseForgery(request, reply, nonce === undefined ? undefined : `login:${nonce}`);
    if (refused !== undefined) return refused;
    const email = field(request.body, 'email');
    const password = field(request.body, 'password');
    const returnTo = safeReturnTo(field(request.body, 'return_to'));
    const targets = await targetsOf(returnTo);
    const again = (status: number, error: string) => refusePage(reply, status, LOGIN_REFUSALS[status] ?? 'sign_in_refused', loginPage({ csrf: csrf.token(`login:${nonce!}`), error, ...(email !== undefined && { email }), ...(returnTo !== undefined && { returnTo }) }), targets);
    if (email === undefined || password === undefined || email.trim() === '' || password === '') return again(400, 'Enter your email address and your password.');
    const result = await accounts.login(email, password, context(request));
    if (result.outcome === 'throttled') {
      reply.header('retry-after', String(result.retryAfterSeconds));
      return again(429, `Too many attempts. Wait ${waitInWords(result.retryAfterSeconds)}, then try again.`);
    }
    if (result.outcome === 'invalid') return again(401, 'The email address or the password is not right.');
    // A sign-in hook said no: its reason, as a page (never a 5xx).
    if (result.outcome === 'refused') return again(403, `Sign-in refused: ${result.reason}`);
    if (result.outcome === 'second_factor') {
      reply.setCookie(MFA_COOKIE, await secondFactor.challenge(result.user.id), { ...cookieOptions, maxAge: MFA_COOKIE_MAX_AGE_S });
      reply.clearCookie(LOGIN_COOKIE, cookieOptions);
      return reply.redirect(`/login/totp${returnTo !== undefined ? `?return_to=${encodeURIComponent(returnTo)}` : ''}`, 303);
    }
    await startSession(request, reply, result);
    reply.clearCookie(LOGIN_COOKIE, { path: '/', secure: true, httpOnly: true, sameSite: 'lax' });
    return reply.redirect((await afterSignIn?.(request, reply, result.user, returnTo)) ?? returnTo ?? '/account', 303);
  });

  app.get('/login/totp', async (request, reply) => {
    const token = request.cookies[MFA_COOKIE];
    if (token === undefined) return reply.redirect('/login', 303);
    const returnTo = safeReturnTo((request.query as Record<string, unknown>)['return_to']);
    return page(reply, 200, secondFactorPage({ csrf: csrf.token(`mfa:${token}`), ...(returnTo !== undefined && { returnTo }) }), await targetsOf(returnTo));
  });

  app.post('/login/totp', async (request, reply) => {
    const token = request.cookies[MFA_COOKIE];
    const refused = refuseForgery(request, reply, token === undefined ? undefined : `mfa:${token}`);
    if (refused !== undefined) return refused;
    const returnTo = safeReturnTo(field(request.body, 'return_to'));
    const code = field(request.body, 'code') ?? '';
    const answer = await secondFactor.answer(token!, code.slice(0, 64));
    if (answer.outcome === 'expired') {
      reply.clearCookie(MFA_COOKIE, cookieOptions);
      return refusePage(reply, 401, 'second_factor_challenge_expired', errorPage({ title: 'Sign in again', detail: 'The sign-in took too long or had too many wrong codes. Start again with your password.' }));
    }
    if (answer.outcome === 'throttled') {
      await accounts.secondFactorFailed(answer.userId, context(request), 'throttled');
      reply.header('retry-after', String(answer.retryAfterSeconds));
      return refusePage(
        reply,
        429,
        'second_factor_throttled',
        secondFactorPage({ csrf: csrf.token(`mfa:${token!}`), error: `Too many wrong codes for this account. Wait ${waitInWords(answer.retryAfterSeconds)}, then try again.`, ...(returnTo !== undefined && { returnTo }) }),
        await targetsOf(returnTo),
      );
    }
    if (answer.outcome === 'invalid') {
      await accounts.secondFactorFailed(answer.userId, context(request));
      return refusePage(reply, 401, 'wrong_second_factor', secondFactorPage({ csrf: csrf.token(`mfa:${token!}`), error: `That code is not right. ${answer.attemptsLeft} attempts left.`, ...(returnTo !== undefined && { returnTo }) }), await targetsOf(returnTo));
    }
    const result = await accounts.completeSecondFactor(answer.userId, answer.method, context(request));
    if (result.outcome === 'refused') {
      reply.clearCookie(MFA_COOKIE, cookieOptions);
      return refusePage(reply, 403, 'sign_in_refused_by_hook', errorPage({ title: 'Sign-in refused', detail: result.reason }));
    }
    if (result.outcome !== 'ok') return refusePage(reply, 401, 'account_cannot_sign_in', errorPage({ title: 'Sign in again', detail: 'This account cannot sign in.' }));
    await startSession(request, reply, result);
    reply.clearCookie(MFA_COOKIE, cookieOptions);
    return reply.redirect((await afterSignIn?.(request, reply, result.user, returnTo)) ?? returnTo ?? '/account', 303);
  });

  async function secondFactorState(current: { session: Session; user: User }): Promise<SecondFactorState> {
    const { user } = current;
    if (user.totpSecret !== null && user.totpSecret !== undefined) return { state: 'on', recoveryCodesLeft: await secondFactor.remainingRecoveryCodes(user.id) };
    // An old session sees no pending secret (it could bind it, security review 9): the password starts setup again.
    if (!accounts.authenticatedRecently(current.session)) return { state: 'off', passwordRequired: true };
    const pending = await secondFactor.pendingEnrolment(user.id, user.email);
    return pending === null ? { state: 'off' } : { state: 'pending', ...pending };
  }

  /** A new session id after a privilege change (OWASP session management); after a re-authentication its auth time is now. */
  async function renewSession(reply: FastifyReply, current: { session: Session; user: User }, reauthenticated: boolean): Promise<void> {
    // The renewed session is a new OP session with a new sid, so the old one
    // ends like any other, and first: its applications know the person by
    // the old sid, so its tokens end and they are sent back-channel logouts
    // (Back-Channel Logout 1.0 section 2.5); they sign in again silently on
    // the renewed session. Without this, signing out later would never reach
    // them, and tokens bearing the old sid would outlive it. If it fails (a
    // store not answering), nothing else has changed: the old session goes on.
    await signOut?.sessionEnded({ userId: current.user.id, sessionHandle: current.session.handle }, { requestId: reply.request.id, ip: reply.request.ip });
    // Without an authTime the session manager stamps its clock's now.
    const renewed = await accounts.sessions.create(current.user.id, { amr: current.session.amr, device: current.session.device, ip: current.session.ip, ...(!reauthenticated && { authTime: current.session.authTime }) });
    await accounts.sessions.revoke(current.user.id, current.session.handle);
    setSessionCookie(reply, renewed.id);
  }

  async function renderAccount(reply: FastifyReply, current: { session: Session; user: User }, status: number, extra: { error?: string; notice?: string } = {}) {
    const sessions = await accounts.sessions.list(current.user.id);
    const token = csrf.token(current.session.handle);
    return page(
      reply,
      status,
      accountPage({
        email: current.user.email,
        csrf: token,
        sessions: sessions.map((session) => ({ ...session, current: session.handle === current.session.handle })),
        consents: applications === undefined ? [] : await applications.list(current.user.id),
        secondFactor: await secondFactorState(current),
        ...(current.user.profile !== undefined && { profile: current.user.profile }),
        ...(dataExport === true && { dataExport: { passwordRequired: !accounts.authenticatedRecently(current.session) } }),
        sections: await Promise.all(accountSections.map((section) => section(reply.request, current, token))),
        ...extra,
      }),
    );
  }

  app.post('/account/totp/begin', async (request, reply) => {
    const current = await currentSession(request);
    if (current === null) return reply.redirect('/login', 303);
    const refused = refuseForgery(request, reply, current.session.handle);
    if (refused !== undefined) return refused;
    if (current.user.totpSecret !== null && current.user.totpSecret !== undefined) return reply.redirect('/account', 303);
    // NIST SP 800-63B 6.1.2.1: a new authenticator only after a recent authentication (security review 9).
    if (!accounts.authenticatedRecently(current.session)) {
      const check = await accounts.reauthenticate(current.user.id, (field(request.body, 'password') ?? '').slice(0, MAX_FIELD), context(request), current.session.handle);
      if (check.outcome !== 'ok') {
        if (check.endSession) return endAfterReauthFailures(request, reply, current, check.outcome === 'throttled' ? check.retryAfterSeconds : undefined);
        return renderAccount(reply, current, 400, { error: 'Enter your current password to set up two-step verification.' });
      }
      await renewSession(reply, current, true);
    }
    await secondFactor.beginEnrolment(current.user.id, current.user.email);
    return reply.redirect('/account', 303);
  });

  app.post('/account/totp/confirm', async (request, reply) => {
    const current = await currentSession(request);
    if (current === null) return reply.redirect('/login', 303);
    const refused = refuseForgery(request, reply, current.session.handle);
    if (refused !== undefined) return refused;
    if (!accounts.authenticatedRecently(current.session)) {
      return renderAccount(reply, current, 400, { error: 'Setting up took too long since you signed in. Enter your password and start again.' });
    }
    const codes = await secondFactor.confirmEnrolment(current.user.id, field(request.body, 'code') ?? '', { requestId: request.id, ip: request.ip });
    if (codes === null) return renderAccount(reply, current, 400, { error: 'That code is not right, or the setup expired. Try the current code from your app.' });
    return page(reply, 200, recoveryCodesPage({ codes }));
  });

  app.post('/account/totp/disable', async (request, reply) => {
    const current = await currentSession(request);
    if (current === null) return reply.redirect('/login', 303);
    const refused = refuseForgery(request, reply, current.session.handle);
    if (refused !== undefined) return refused;
    const check = await accounts.reauthenticate(current.user.id, (field(request.body, 'password') ?? '').slice(0, MAX_FIELD), context(request), current.session.handle);
    if (check.outcome !== 'ok') {
      if (check.endSession) return endAfterReauthFailures(request, reply, current, check.outcome === 'throttled' ? check.retryAfterSeconds : undefined);
      return renderAccount(reply, current, 400, { error: 'The password is not right; two-step verification stays on.' });
    }
    await secondFactor.disable(current.user.id, { requestId: request.id, ip: request.ip });
    return reply.redirect('/account?done=mfa-off', 303);
  });

  app.get('/account', async (request, reply) => {
    const current = await currentSession(request);
    if (current === null) return reply.redirect(`/login?return_to=${encodeURIComponent('/account')}`, 303);
    const done = (request.query as Record<string, unknown>)['done'];
    const notice = typeof done === 'string' && Object.hasOwn(NOTICES, done) ? NOTICES[done] : undefined;
    return renderAccount(reply, current, 200, notice !== undefined ? { notice } : {});
  });

  // A small JSON view of the session, for scripts and the authenticated-request benchmark.
  app.get('/account/session.json', async (request, reply) => {
    const current = await currentSession(request);
    if (current === null) return reply.code(401).header('www-authenticate', 'Cookie realm="portcullis"').send({ authenticated: false });
    return { authenticated: true, email: current.user.email, authTime: Math.floor(current.session.authTime / 1000), amr: current.session.amr, expiresAt: Math.floor(current.session.absoluteExpiresAt / 1000) };
  });

  app.post('/account/sessions/revoke', async (request, reply) => {
    const current = await currentSession(request);
    if (current === null) return reply.redirect('/login', 303);
    const refused = refuseForgery(request, reply, current.session.handle);
    if (refused !== undefined) return refused;
    const handle = field(request.body, 'session');
    // Only one of the user's own sessions: a handle is checked against their list, never trusted.
    const own = handle === undefined ? undefined : (await accounts.sessions.list(current.user.id)).find((session) => session.handle === handle);
    if (own === undefined) return refusePage(reply, 400, 'unknown_session', errorPage({ title: 'No such session', detail: 'That session has already ended, or it is not yours.' }));
    await endSessionWithTokens({ accounts, signOut }, request, current.user.id, own.handle, 'revoked');
    return reply.redirect(own.handle === current.session.handle ? '/login' : '/account?done=revoked', 303);
  });

  app.post('/account/applications/revoke', async (request, reply) => {
    const current = await currentSession(request);
    if (current === null) return reply.redirect('/login', 303);
    const refused = refuseForgery(request, reply, current.session.handle);
    if (refused !== undefined) return refused;
    const clientId = field(request.body, 'client');
    if (applications === undefined || clientId === undefined || !(await applications.revoke(current.user.id, clientId, { requestId: request.id, ip: request.ip }))) {
      return refusePage(reply, 400, 'unknown_application', errorPage({ title: 'No such application', detail: 'That application has no access to your account.' }));
    }
    return reply.redirect('/account?done=application', 303);
  });

  app.post('/account/sessions/revoke-others', async (request, reply) => {
    const current = await currentSession(request);
    if (current === null) return reply.redirect('/login', 303);
    const refused = refuseForgery(request, reply, current.session.handle);
    if (refused !== undefined) return refused;
    for (const session of await accounts.sessions.list(current.user.id)) {
      if (session.handle === current.session.handle) continue;
      // The applications those sessions signed in to lose their tokens too.
      await endSessionWithTokens({ accounts, signOut }, request, current.user.id, session.handle, 'revoked');
    }
    return reply.redirect('/account?done=others', 303);
  });

  // OIDC Core section 5.1 profile claims, edited by their owner. A field
  // left out is unchanged, an empty one is removed; one bad value refuses
  // the whole form and changes nothing.
  app.post('/account/profile', async (request, reply) => {
    const current = await currentSession(request);
    if (current === null) return reply.redirect('/login', 303);
    const refused = refuseForgery(request, reply, current.session.handle);
    if (refused !== undefined) return refused;
    const body = (request.body ?? {}) as Record<string, unknown>;
    const change: { [field in ProfileField]?: string } = {};
    for (const name of PROFILE_FIELDS) {
      const value = body[name];
      if (value === undefined) continue;
      // A repeated field arrives as an array: ambiguous, so refused.
      if (typeof value !== 'string') return renderAccount(reply, current, 400, { error: `Your profile was not saved: ${name} was sent more than once.` });
      change[name] = value;
    }
    try {
      await accounts.updateProfile(current.user.id, change, { requestId: request.id, traceId: request.traceId, ip: request.ip });
    } catch (error) {
      if (error instanceof UserError && error.code === 'invalid_profile') return renderAccount(reply, current, 400, { error: `Your profile was not saved: ${error.message}.` });
      throw error;
    }
    return reply.redirect('/account?done=profile', 303);
  });

  app.post('/account/password', async (request, reply) => {
    const current = await currentSession(request);
    if (current === null) return reply.redirect('/login', 303);
    const refused = refuseForgery(request, reply, current.session.handle);
    if (refused !== undefined) return refused;
    const currentPassword = field(request.body, 'current_password');
    const newPassword = field(request.body, 'new_password');
    const again = (error: string) => renderAccount(reply, current, 400, { error });
    if (currentPassword === undefined || newPassword === undefined) return again('Enter your current password and a new one.');
    // The other sessions end with the old password, and their applications'
    // tokens and back-channel logouts with them: queued while those sessions
    // still name their clients, before they end, and again after (Accounts'
    // OnSessionsEnding; Back-Channel Logout 1.0 sections 2.3 and 2.5).
    let logoutsFailed = false;
    const onSessionsEnding =
      signOut === undefined
        ? undefined
        : async (handles: readonly string[], pass: { readonly ended: boolean }) => {
            try {
              await signOut.sessionsEnded(current.user.id, handles, { requestId: request.id, ip: request.ip }, { again: pass.ended });
            } catch (error) {
              logoutsFailed = true;
              throw error;
            }
          };
    // Changed, but not every application told (a store is not answering):
    // not a success, and nothing to send again (no Retry-After), since the
    // old password is no longer current. The server's fault, so a 503 (as
    // for any store outage) that says what happened.
    const notAllTold = () =>
      refusePage(reply, 503, 'backchannel_logout_not_queued', errorPage({ title: 'Password changed', detail: 'Your password was changed and your other sessions were signed out, but not every application you signed in to could be told to sign you out: a store is not answering. Use your new password from now on.' }));
    try {
      const outcome = await accounts.changePassword(current.user.id, currentPassword, newPassword, current.session.handle, context(request), { ...(onSessionsEnding !== undefined && { onSessionsEnding }) });
      if (outcome !== 'changed') {
        if (outcome.endSession) return await endAfterReauthFailures(request, reply, current, outcome.outcome === 'throttled' ? outcome.retryAfterSeconds : undefined);
        return await again('The current password is not right.');
      }
    } catch (error) {
      if (error instanceof PasswordPolicyError) return again(`The new password was refused: ${error.message}`);
      // The other sessions ended all the same (changePassword); this one is
      // not renewed, since its own applications could not be told either.
      if (logoutsFailed && error instanceof StoreUnavailableError) return notAllTold();
      throw error;
    }
    // A privilege change gets a new session id too (OWASP session management).
    try {
      await renewSession(reply, current, false);
    } catch (error) {
      // This session's applications could not be told: it goes on unrenewed.
      if (error instanceof StoreUnavailableError) return notAllTold();
      throw error;
    }
    return reply.redirect('/account?done=password', 303);
  });

  /** The client's sign-out request, checked; a request that cannot be honoured is shown, never followed. */
  async function signOutRequest(query: unknown): Promise<{ redirectTo?: string; unconfirmedRedirect?: string; clientName?: string; params: Readonly<Record<string, string>>; error?: string }> {
    if (signOut === undefined) return { params: {} };
    try {
      const checked = await signOut.checkRequest(query);
      return {
        params: checked.params,
        ...(checked.redirectTo !== undefined && { redirectTo: checked.redirectTo }),
        ...(checked.unconfirmedRedirect !== undefined && { unconfirmedRedirect: checked.unconfirmedRedirect }),
        ...(checked.client !== undefined && { clientName: checked.client.name }),
      };
    } catch (error) {
      if (signOut.isRequestError(error)) return { params: {}, error: `${error.message} You can still sign out here.` };
      throw error;
    }
  }

  /**
   * The page after signing out (or for someone not signed in): a return
   * address confirmed by an id_token_hint is followed; one named only by
   * client_id is offered as a link naming its host (RP-Initiated Logout
   * sections 2 and 3, RFC 9700 section 4.11.2: no open redirector).
   */
  function signedOut(reply: FastifyReply, asked: Awaited<ReturnType<typeof signOutRequest>>, showError: boolean): FastifyReply {
    if (asked.redirectTo !== undefined) return reply.redirect(asked.redirectTo, 303);
    const error = showError ? asked.error : undefined;
    return page(
      reply,
      error !== undefined ? 400 : 200,
      logoutPage({
        csrf: '',
        signedIn: false,
        ...(asked.clientName !== undefined && { clientName: asked.clientName }),
        ...(asked.unconfirmedRedirect !== undefined && { continueTo: asked.unconfirmedRedirect }),
        ...(error !== undefined && { error }),
      }),
    );
  }

  // OIDC RP-Initiated Logout section 2: the end-session endpoint. Signing
  // out is a state change, so GET only asks; the form's POST signs out.
  app.get('/logout', async (request, reply) => {
    const current = await currentSession(request);
    const asked = await signOutRequest(request.query);
    if (current === null) return signedOut(reply, asked, true);
    return page(
      reply,
      asked.error !== undefined ? 400 : 200,
      logoutPage({
        csrf: csrf.token(current.session.handle),
        signedIn: true,
        params: asked.params,
        ...(asked.clientName !== undefined && { clientName: asked.clientName }),
        ...(asked.unconfirmedRedirect !== undefined && { continueTo: asked.unconfirmedRedirect }),
        ...(asked.error !== undefined && { error: asked.error }),
      }),
      // The form's POST ends in a redirect only to a confirmed address.
      asked.redirectTo !== undefined ? [asked.redirectTo] : [],
    );
  });

  app.post('/logout', async (request, reply) => {
    const current = await currentSession(request);
    const asked = await signOutRequest(request.body);
    if (current === null) {
      clearSessionCookie(reply);
      return signedOut(reply, asked, false);
    }
    const refused = refuseForgery(request, reply, current.session.handle);
    if (refused !== undefined) return refused;
    await endSessionWithTokens({ accounts, signOut }, request, current.user.id, current.session.handle, 'logout');
    clearSessionCookie(reply);
    return signedOut(reply, asked, false);
  });
};
