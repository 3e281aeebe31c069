/**
 * The sign-in, account and sign-out pages: server-rendered, no script at
 * all, labelled fields in a natural focus order, one h1 per page, errors
 * announced (role="alert") and tied to their form.
 */
import { qrCodeSvg } from './qr-code.ts';
import { html, type Html } from './html.ts';

export interface SessionRow {
  readonly handle: string;
  readonly device: string;
  readonly ip: string;
  readonly lastSeenAt: number;
  readonly createdAt: number;
  readonly current: boolean;
}

export function layout(title: string, body: Html): string {
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="same-origin">
<title>${title} · Portcullis</title>
<link rel="stylesheet" href="/assets/portcullis.css">
</head>
<body>
<main>
${body}
</main>
</body>
</html>
`.text;
}

const message = (error: string | undefined, notice?: string) => html`${error !== undefined ? html`<p class="error" role="alert" id="form-error">${error}</p>` : ''}${notice !== undefined ? html`<p class="notice" role="status">${notice}</p>` : ''}`;

export function loginPage(options: { csrf: string; email?: string; error?: string; returnTo?: string }): string {
  return layout(
    'Sign in',
    html`<h1>Sign in</h1>
${message(options.error)}
<form method="post" action="/login"${options.error !== undefined ? html` aria-describedby="form-error"` : ''}>
<input type="hidden" name="_csrf" value="${options.csrf}">
${options.returnTo !== undefined ? html`<input type="hidden" name="return_to" value="${options.returnTo}">` : ''}
<label for="email">Email address</label>
<input type="email" id="email" name="email" autocomplete="username" required maxlength="254" value="${options.email ?? ''}"${options.email === undefined ? ' autofocus' : ''}>
<label for="password">Password</label>
<input type="password" id="password" name="password" autocomplete="current-password" required maxlength="1024"${options.email !== undefined ? ' autofocus' : ''}>
<button type="submit">Sign in</button>
</form>`,
  );
}

function formatTime(ms: number): string {
  return new Date(ms).toISOString().replace('T', ' ').slice(0, 16) + ' UTC';
}

export type SecondFactorState =
  /** `passwordRequired`: the session signed in too long ago to add an authenticator without the password. */
  | { readonly state: 'off'; readonly passwordRequired?: boolean }
  | { readonly state: 'pending'; readonly secret: string; readonly uri: string }
  | { readonly state: 'on'; readonly recoveryCodesLeft: number };

function secondFactorSection(csrf: string, factor: SecondFactorState): Html {
  if (factor.state === 'on') {
    return html`<p>Two-step verification is <strong>on</strong>. ${factor.recoveryCodesLeft} recovery codes left.</p>
<form method="post" action="/account/totp/disable">
<input type="hidden" name="_csrf" value="${csrf}">
<label for="disable-password">Current password, to turn it off</label>
<input type="password" id="disable-password" name="password" autocomplete="current-password" required maxlength="1024">
<button type="submit" class="secondary">Turn off two-step verification</button>
</form>`;
  }
  if (factor.state === 'pending') {
    const grouped = factor.secret.match(/.{1,4}/g)?.join(' ') ?? factor.secret;
    return html`<p>Scan this code with your authenticator app, or add the key below to it (or <a href="${factor.uri}">open it in the app</a>), then enter the 6-digit code it shows.</p>
<p class="qr-code">${qrCodeSvg(factor.uri, 'QR code for your authenticator app')}</p>
<p><code id="totp-secret">${grouped}</code></p>
<form method="post" action="/account/totp/confirm">
<input type="hidden" name="_csrf" value="${csrf}">
<label for="totp-code">Code from the app</label>
<input type="text" id="totp-code" name="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9 ]{6,7}" required maxlength="7">
<button type="submit">Turn on two-step verification</button>
</form>`;
  }
  return html`<p>Two-step verification is off. With it on, signing in also needs a code from an authenticator app.</p>
<form method="post" action="/account/totp/begin"><input type="hidden" name="_csrf" value="${csrf}">${
    factor.passwordRequired === true
      ? html`
<label for="begin-password">Current password, to set it up</label>
<input type="password" id="begin-password" name="password" autocomplete="current-password" required maxlength="1024">
`
      : ''
  }<button type="submit" class="secondary">Set up two-step verification</button></form>`;
}

/** An application the user let in, for the account page. */
export interface ConsentRow {
  readonly clientId: string;
  readonly clientName: string;
  readonly scopes: readonly string[];
  readonly grantedAt: number;
}

/** What each scope lets an application do, in words a person reads (OIDC Core section 5.4). */
const SCOPE_DESCRIPTIONS: Readonly<Record<string, string>> = {
  openid: 'Know who you are when you sign in',
  profile: 'See your basic profile',
  email: 'See your email address',
  offline_access: 'Stay connected when you are not using it',
  privacy: 'Know your privacy choices ("do not sell or share", and the purposes you consented to)',
};

export function describeScope(scope: string): string {
  return Object.hasOwn(SCOPE_DESCRIPTIONS, scope) ? SCOPE_DESCRIPTIONS[scope]! : `Use the API permission "${scope}"`;
}

/** GDPR Art. 6(1): the lawful bases of processing, in words a person reads. */
const LEGAL_BASES: Readonly<Record<string, string>> = {
  consent: 'your consent (GDPR Art. 6(1)(a))',
  contract: 'needed for our contract with you (GDPR Art. 6(1)(b))',
  legal_obligation: 'a legal obligation (GDPR Art. 6(1)(c))',
  vital_interests: "protecting someone's vital interests (GDPR Art. 6(1)(d))",
  public_task: 'a task in the public interest (GDPR Art. 6(1)(e))',
  legitimate_interests: 'our legitimate interests (GDPR Art. 6(1)(f))',
};

export function describeLegalBasis(basis: string): string {
  return Object.hasOwn(LEGAL_BASES, basis) ? LEGAL_BASES[basis]! : basis;
}

/** A purpose of processing (config privacy.purposes) as a page names it. */
export interface PurposeLine {
  readonly description: string;
  readonly legalBasis: string;
}

/** Under a scope on the consent page: the purposes it serves (GDPR Art. 13(1)(c): the purposes and their legal basis, when the data is collected). */
function scopePurposes(purposes: readonly PurposeLine[]): Html | string {
  if (purposes.length === 0) return '';
  return html`<br><span class="hint">Used for: ${purposes.map((purpose, index) => html`${index > 0 ? '; ' : ''}${purpose.description} (legal basis: ${describeLegalBasis(purpose.legalBasis)})`)}.</span>`;
}

/**
 * Where a URI leads, as a person should read it: the host (and port) of a
 * web address, or the app a private-use scheme opens. A name the
 * application chose for itself can say anything (RFC 7591 section 5); the
 * host is where the person actually goes.
 */
export function destinationName(uri: string): string {
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    return 'an unknown address';
  }
  if (url.protocol === 'https:' || url.protocol === 'http:') return url.host;
  return `the app ${url.protocol.slice(0, -1)}`;
}

/** `purposes`: for each requested scope, the configured purposes it serves. */
export function consentPage(options: { csrf: string; interaction: string; clientName: string; clientId: string; scopes: readonly string[]; email: string; redirectUri: string; approved: boolean; purposes?: (scope: string) => readonly PurposeLine[] }): string {
  const destination = destinationName(options.redirectUri);
  return layout(
    'Allow access',
    html`<h1>Allow ${options.clientName} to access your account?</h1>
<p>Signed in as <strong>${options.email}</strong>. <span class="hint">Application id: ${options.clientId}</span></p>
<p id="destination">You will be sent to <strong>${destination}</strong>.</p>
${options.approved ? '' : html`<p class="hint" id="unreviewed">This application registered itself: its name is its own claim, not checked by the operator of this server. Allow only if you expected to be sent to ${destination}.</p>`}
<h2 id="scopes-heading">${options.clientName} asks to:</h2>
<ul aria-labelledby="scopes-heading">
${options.scopes.map((scope) => html`<li>${describeScope(scope)}${scopePurposes(options.purposes?.(scope) ?? [])}</li>
`)}
</ul>
<p class="hint">You can withdraw this later on your account page.</p>
<form method="post" action="/authorize/consent">
<input type="hidden" name="_csrf" value="${options.csrf}">
<input type="hidden" name="interaction" value="${options.interaction}">
<button type="submit" name="decision" value="allow" autofocus>Allow</button>
<button type="submit" name="decision" value="deny" class="secondary">Deny</button>
</form>`,
  );
}

function applicationsSection(csrf: string, consents: readonly ConsentRow[]): Html {
  if (consents.length === 0) return html`<p class="hint">No application has access to your account.</p>`;
  return html`<ul class="applications">
${consents.map(
  (consent) => html`<li><strong>${consent.clientName}</strong>: ${consent.scopes.map(describeScope).join('; ')}. <span class="hint">Since ${formatTime(consent.grantedAt)}.</span>
<form class="inline" method="post" action="/account/applications/revoke"><input type="hidden" name="_csrf" value="${csrf}"><input type="hidden" name="client" value="${consent.clientId}"><button type="submit" class="small secondary" aria-label="Remove access for ${consent.clientName}">Remove access</button></form></li>
`,
)}
</ul>`;
}

/** The profile claims shown and edited on the account page (OIDC Core section 5.1). */
export interface ProfileValues {
  readonly name?: string;
  readonly given_name?: string;
  readonly family_name?: string;
  readonly locale?: string;
  readonly zoneinfo?: string;
  readonly picture?: string;
}

const PROFILE_INPUTS: readonly { readonly field: keyof ProfileValues; readonly label: string; readonly inputmode?: string; readonly autocomplete: string; readonly maxlength: number; readonly hint?: string }[] = [
  { field: 'name', label: 'Full name', autocomplete: 'name', maxlength: 200 },
  { field: 'given_name', label: 'Given name', autocomplete: 'given-name', maxlength: 200 },
  { field: 'family_name', label: 'Family name', autocomplete: 'family-name', maxlength: 200 },
  { field: 'locale', label: 'Language', autocomplete: 'language', maxlength: 200, hint: 'A language tag, for example en-GB or fr-CA.' },
  { field: 'zoneinfo', label: 'Time zone', autocomplete: 'off', maxlength: 200, hint: 'For example Europe/Paris or America/New_York.' },
  // A text field with inputmode="url" (styled like the others); the server checks the URL.
  { field: 'picture', label: 'Picture URL', inputmode: 'url', autocomplete: 'photo', maxlength: 2048, hint: 'An https address of an image.' },
];

function profileSection(csrf: string, profile: ProfileValues): Html {
  return html`<p class="hint">Applications you allow to "See your basic profile" receive these. Leave a field empty to remove it.</p>
<form method="post" action="/account/profile">
<input type="hidden" name="_csrf" value="${csrf}">
${PROFILE_INPUTS.map(
  (input) => html`<label for="profile-${input.field}">${input.label}</label>
<input type="text"${input.inputmode !== undefined ? html` inputmode="${input.inputmode}"` : ''} id="profile-${input.field}" name="${input.field}" autocomplete="${input.autocomplete}" maxlength="${String(input.maxlength)}" value="${profile[input.field] ?? ''}"${input.hint !== undefined ? html` aria-describedby="profile-${input.field}-hint"` : ''}>
${input.hint !== undefined ? html`<p class="hint" id="profile-${input.field}-hint">${input.hint}</p>
` : ''}`,
)}<button type="submit">Save profile</button>
</form>`;
}

/** The form that downloads the person's data; the current password when the session is not fresh. */
function dataExportForm(csrf: string, passwordRequired: boolean, error?: string): Html {
  return html`<form method="post" action="/account/export"${error !== undefined ? html` aria-describedby="form-error"` : ''}>
<input type="hidden" name="_csrf" value="${csrf}">
${
  passwordRequired
    ? html`<label for="export-password">Current password</label>
<input type="password" id="export-password" name="password" autocomplete="current-password" required maxlength="1024">
`
    : ''
}<button type="submit">Download my data</button>
</form>`;
}

function dataExportSection(csrf: string, passwordRequired: boolean): Html {
  return html`<h2>Your data</h2>
<p class="hint">A copy of everything this service keeps about you, as one JSON file: your profile, sessions, applications and their access, consents, requests, and the audit log's entries about you with the proofs to check them. Its format is described by <a href="/privacy/export-schema.json">a JSON Schema</a>.</p>
${dataExportForm(csrf, passwordRequired)}
`;
}

/** Asked again for the password before a download, or told why it cannot happen now. */
export function dataExportPage(options: { csrf: string; error: string; passwordRequired: boolean }): string {
  return layout(
    'Download your data',
    html`<h1>Download your data</h1>
${message(options.error)}
${options.passwordRequired ? dataExportForm(options.csrf, true, options.error) : ''}
<p><a href="/account">Back to your account</a></p>`,
  );
}

export function accountPage(options: {
  email: string;
  csrf: string;
  sessions: readonly SessionRow[];
  consents?: readonly ConsentRow[];
  secondFactor?: SecondFactorState;
  profile?: ProfileValues;
  /** The "Download my data" form (GDPR Art. 15, 20); `passwordRequired` when the session signed in too long ago. */
  dataExport?: { readonly passwordRequired: boolean };
  /** More sections after Applications (the privacy choices), rendered by their owners. */
  sections?: readonly Html[];
  error?: string;
  notice?: string;
}): string {
  const others = options.sessions.filter((session) => !session.current).length;
  return layout(
    'Your account',
    html`<h1>Your account</h1>
${message(options.error, options.notice)}
<p>Signed in as <strong>${options.email}</strong>.</p>

<h2 id="sessions-heading">Active sessions</h2>
<table aria-labelledby="sessions-heading">
<thead><tr><th scope="col">Device</th><th scope="col">Network</th><th scope="col">Last seen</th><th scope="col"><span class="hint">Action</span></th></tr></thead>
<tbody>
${options.sessions.map(
  (session) => html`<tr>
<td>${session.device}${session.current ? html` <span class="current">(this session)</span>` : ''}</td>
<td>${session.ip}</td>
<td>${formatTime(session.lastSeenAt)}</td>
<td>${
    session.current
      ? ''
      : html`<form class="inline" method="post" action="/account/sessions/revoke"><input type="hidden" name="_csrf" value="${options.csrf}"><input type="hidden" name="session" value="${session.handle}"><button type="submit" class="small secondary" aria-label="Sign out the session on ${session.device}, last seen ${formatTime(session.lastSeenAt)}">Sign out</button></form>`
  }</td>
</tr>
`,
)}
</tbody>
</table>
${
  others > 0
    ? html`<form method="post" action="/account/sessions/revoke-others"><input type="hidden" name="_csrf" value="${options.csrf}"><button type="submit" class="secondary">Sign out all other sessions (${others})</button></form>`
    : html`<p class="hint">No other sessions.</p>`
}

<h2>Profile</h2>
${profileSection(options.csrf, options.profile ?? {})}

<h2>Applications</h2>
${applicationsSection(options.csrf, options.consents ?? [])}
${options.sections ?? []}

<h2>Two-step verification</h2>
${secondFactorSection(options.csrf, options.secondFactor ?? { state: 'off' })}

${options.dataExport !== undefined ? dataExportSection(options.csrf, options.dataExport.passwordRequired) : ''}
<h2>Change password</h2>
<form method="post" action="/account/password">
<input type="hidden" name="_csrf" value="${options.csrf}">
<label for="current-password">Current password</label>
<input type="password" id="current-password" name="current_password" autocomplete="current-password" required maxlength="1024">
<label for="new-password">New password</label>
<input type="password" id="new-password" name="new_password" autocomplete="new-password" required minlength="8" maxlength="1024" aria-describedby="new-password-hint">
<p class="hint" id="new-password-hint">At least 8 characters. Common or breached passwords are refused. Other sessions are signed out.</p>
<button type="submit">Change password</button>
</form>

<h2>Sign out</h2>
<form method="post" action="/logout"><input type="hidden" name="_csrf" value="${options.csrf}"><button type="submit" class="secondary">Sign out</button></form>

<h2>Delete your account</h2>
<p><a href="/account/delete">Delete my account</a>: your data is erased, and every application that received it is told.</p>`,
  );
}

export function secondFactorPage(options: { csrf: string; error?: string; returnTo?: string }): string {
  return layout(
    'Two-step verification',
    html`<h1>Two-step verification</h1>
${message(options.error)}
<form method="post" action="/login/totp"${options.error !== undefined ? html` aria-describedby="form-error"` : ''}>
<input type="hidden" name="_csrf" value="${options.csrf}">
${options.returnTo !== undefined ? html`<input type="hidden" name="return_to" value="${options.returnTo}">` : ''}
<label for="code">Code from your authenticator app, or a recovery code</label>
<input type="text" id="code" name="code" autocomplete="one-time-code" required maxlength="32" autofocus>
<button type="submit">Continue</button>
</form>
<p><a href="/login">Start again</a></p>`,
  );
}

export function recoveryCodesPage(options: { codes: readonly string[] }): string {
  return layout(
    'Recovery codes',
    html`<h1>Two-step verification is on</h1>
<p>Keep these recovery codes somewhere safe. Each works once, if you lose your authenticator app. They are shown only now.</p>
<ul>${options.codes.map((code) => html`<li><code>${code}</code></li>`)}</ul>
<p><a href="/account">Back to your account</a></p>`,
  );
}

/**
 * Before an authorization error goes to an application no operator
 * approved: the person sees where the link leads and chooses (RFC 9700
 * section 4.11.2). A plain link, never an automatic redirect.
 */
export function redirectInterstitialPage(options: { clientName: string; description: string; location: string }): string {
  const destination = destinationName(options.location);
  return layout(
    `Continue to ${destination}?`,
    html`<h1>Continue to ${destination}?</h1>
<p>${options.clientName} sent you here, but the request could not be completed: ${options.description}</p>
<p>The application asks to send you back to <strong>${destination}</strong>. It registered itself; the operator of this server has not reviewed it. Continue only if you trust ${destination}.</p>
<p><a href="${options.location}" id="continue">Continue to ${destination}</a></p>
<p><a href="/account">Stay on this site</a></p>`,
  );
}

/** After signing out: a return address no id_token_hint confirmed is offered as a link, never followed. */
function continueLink(clientName: string | undefined, continueTo: string | undefined): Html | string {
  if (continueTo === undefined) return '';
  const destination = destinationName(continueTo);
  return html`<p>${clientName ?? 'The application'} asks to send you to <strong>${destination}</strong>. Continue only if you trust it.</p>
<p><a href="${continueTo}" id="continue">Continue to ${destination}</a></p>`;
}

export function logoutPage(options: { csrf: string; signedIn: boolean; clientName?: string; params?: Readonly<Record<string, string>>; error?: string; continueTo?: string }): string {
  const hidden = Object.entries(options.params ?? {}).map(([name, value]) => html`<input type="hidden" name="${name}" value="${value}">`);
  return layout(
    'Sign out',
    options.signedIn
      ? html`<h1>Sign out</h1>
${message(options.error)}
<p>${options.clientName !== undefined ? html`${options.clientName} asks to sign you out. ` : ''}Do you want to sign out of Portcullis on this device?</p>
${options.continueTo !== undefined ? html`<p class="hint">Afterwards you can choose whether to continue to ${destinationName(options.continueTo)}.</p>` : ''}
<form method="post" action="/logout"><input type="hidden" name="_csrf" value="${options.csrf}">${hidden}<button type="submit">Sign out</button></form>
<p><a href="/account">Back to your account</a></p>`
      : html`<h1>Signed out</h1>
${message(options.error)}
<p>You are not signed in. <a href="/login">Sign in</a></p>
${continueLink(options.clientName, options.continueTo)}`,
  );
}

export function errorPage(options: { title: string; detail: string }): string {
  return layout(options.title, html`<h1>${options.title}</h1><p>${options.detail}</p><p><a href="/login">Sign in</a></p>`);
}
