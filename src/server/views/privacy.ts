/**
 * The privacy choices on the pages (issue 15): the account page's "Do not
 * sell or share" switch and its purposes, the page that asks for consent
 * after sign-in, and what the OAuth consent page says a scope is used for.
 * No script, like every page; each form posts with the session's CSRF token.
 */
import { html, type Html } from './html.ts';
import { describeLegalBasis, layout } from './pages.ts';

function formatDate(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

/** One configured purpose with the person's decision, as the account page shows it. */
export interface PurposeRow {
  readonly id: string;
  readonly description: string;
  readonly legalBasis: string;
  readonly version: number;
  readonly decision?: { readonly version: number; readonly granted: boolean; readonly at: number };
}

function decisionText(row: PurposeRow): Html | string {
  if (row.legalBasis !== 'consent') return 'No consent is asked: it rests on another basis.';
  if (row.decision === undefined) return 'You have not decided yet.';
  const what = row.decision.granted ? 'You consented' : 'You declined';
  const old = row.decision.version !== row.version ? html` to version ${row.decision.version}; this is version ${row.version}, and you will be asked again` : '';
  return html`${what} on ${formatDate(row.decision.at)}${old}.`;
}

function purposeItem(csrf: string, row: PurposeRow): Html {
  const granted = row.decision?.granted === true && row.decision.version === row.version;
  const action =
    row.legalBasis !== 'consent'
      ? ''
      : html`
<form class="inline" method="post" action="/account/privacy/purposes"><input type="hidden" name="_csrf" value="${csrf}"><input type="hidden" name="purpose" value="${row.id}"><button type="submit" name="decision" value="${granted ? 'withdraw' : 'grant'}" class="small secondary" aria-label="${granted ? 'Withdraw consent' : 'Consent'}: ${row.description}">${granted ? 'Withdraw' : 'Grant'}</button></form>`;
  return html`<li id="purpose-${row.id}"><strong>${row.description}</strong> <span class="hint">(version ${row.version}; legal basis: ${describeLegalBasis(row.legalBasis)})</span><br>${decisionText(row)}${action}</li>
`;
}

/**
 * The account page's privacy section. `gpc`: this request carries Global
 * Privacy Control, so the switch cannot be turned off from here (CCPA
 * regulations section 7025(c)(3): the signal is honoured over a setting
 * that conflicts with it).
 */
export function privacySection(options: { csrf: string; optOut?: { readonly at: number; readonly source: string }; gpc: boolean; purposes: readonly PurposeRow[] }): Html {
  const { csrf } = options;
  const on = options.optOut !== undefined;
  const since = options.optOut === undefined ? '' : html` since ${formatDate(options.optOut.at)}${options.optOut.source === 'gpc' ? ' (from your browser\'s Global Privacy Control signal)' : ''}`;
  const switchForm = on
    ? options.gpc
      ? html`<p class="hint" id="gpc-holds">Your browser sends the Global Privacy Control signal, which is a request to opt out. While it does, this stays on.</p>`
      : html`<form method="post" action="/account/privacy/opt-out"><input type="hidden" name="_csrf" value="${csrf}"><input type="hidden" name="opt_out" value="off"><button type="submit" class="secondary">Allow the sale or sharing of my personal information</button></form>`
    : html`<form method="post" action="/account/privacy/opt-out"><input type="hidden" name="_csrf" value="${csrf}"><input type="hidden" name="opt_out" value="on"><button type="submit">Do not sell or share my personal information</button></form>`;
  return html`<h2 id="privacy-heading">Do not sell or share my personal information</h2>
<p id="opt-out-state">"Do not sell or share my personal information" is <strong>${on ? 'on' : 'off'}</strong>${since}.</p>
${switchForm}
<p class="hint">Applications you allow to "Know your privacy choices" are told of it.</p>
${
  options.purposes.length === 0
    ? ''
    : html`<h2 id="purposes-heading">Purposes</h2>
<p class="hint">What your data is used for. Those that rest on your consent can be granted or withdrawn at any time (GDPR Art. 7(3)).</p>
<ul class="purposes" aria-labelledby="purposes-heading">
${options.purposes.map((row) => purposeItem(csrf, row))}</ul>`
}`;
}

/** After sign-in: the purposes that need the person's decision at their current version, each granted or declined. */
export function purposesPromptPage(options: { csrf: string; returnTo: string; purposes: readonly { readonly id: string; readonly description: string; readonly version: number; readonly previous?: number }[]; error?: string }): string {
  return layout(
    'Your consent',
    html`<h1>Your consent</h1>
${options.error !== undefined ? html`<p class="error" role="alert" id="form-error">${options.error}</p>` : ''}
<p>Before you continue: may we use your data for the purposes below? You can change each answer later on your account page.</p>
<form method="post" action="/privacy/purposes"${options.error !== undefined ? html` aria-describedby="form-error"` : ''}>
<input type="hidden" name="_csrf" value="${options.csrf}">
<input type="hidden" name="return_to" value="${options.returnTo}">
${options.purposes.map(
  (purpose) => html`<fieldset id="ask-${purpose.id}">
<legend>${purpose.description} <span class="hint">(version ${purpose.version}${purpose.previous !== undefined ? html`; it changed since you answered version ${purpose.previous}` : ''})</span></legend>
<label><input type="radio" name="consent_${purpose.id}" value="grant" required> I consent</label>
<label><input type="radio" name="consent_${purpose.id}" value="decline"> I do not consent</label>
</fieldset>
`,
)}<button type="submit">Continue</button>
</form>`,
  );
}

/** Turning the opt-out off while the browser sends Global Privacy Control: refused, and why. */
export function optOutHeldPage(): string {
  return layout(
    'Still opted out',
    html`<h1>Still opted out</h1>
<p>Your browser sends the Global Privacy Control signal, which is a request not to sell or share your personal information. While it sends it, the signal is honoured, and "Do not sell or share" stays on (CCPA regulations section 7025).</p>
<p>To allow the sale or sharing of your personal information, turn Global Privacy Control off in your browser first, then come back.</p>
<p><a href="/account">Back to your account</a></p>`,
  );
}

/** A refused privacy form (an unknown purpose, a missing answer): what happened, and the way back. */
export function privacyErrorPage(options: { title: string; detail: string }): string {
  return layout(options.title, html`<h1>${options.title}</h1><p>${options.detail}</p><p><a href="/account">Back to your account</a></p>`);
}
