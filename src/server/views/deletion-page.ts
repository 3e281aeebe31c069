/**
 * "Delete my account" (GDPR Art. 17): its own page, so the account page's
 * forms cannot be mistaken for it. The current password is always asked,
 * however recently the person signed in, and a box must be ticked.
 */
import { html } from './html.ts';
import { layout } from './pages.ts';

const message = (error: string | undefined) => (error !== undefined ? html`<p class="error" role="alert" id="form-error">${error}</p>` : '');

export function deletionPage(options: { csrf: string; email: string; graceDays: number; scheduledFor?: number; error?: string }): string {
  if (options.scheduledFor !== undefined) {
    return layout(
      'Delete your account',
      html`<h1>Your account will be deleted</h1>
${message(options.error)}
<p>The account <strong>${options.email}</strong> and its data will be erased on <strong>${new Date(options.scheduledFor).toUTCString()}</strong>. Until then you can change your mind.</p>
<form method="post" action="/account/delete/cancel"><input type="hidden" name="_csrf" value="${options.csrf}"><button type="submit">Keep my account</button></form>
<p><a href="/account">Back to your account</a></p>`,
    );
  }
  const when = options.graceDays > 0 ? html`after ${String(options.graceDays)} days, during which you can cancel` : html`at once`;
  return layout(
    'Delete your account',
    html`<h1>Delete your account</h1>
${message(options.error)}
<p>This erases the account <strong>${options.email}</strong> ${when}: your profile, sessions, second factors and the applications you let in. Every application that received your data is told to erase it too. The security log keeps its entries, but nothing in them can name you any more.</p>
<form method="post" action="/account/delete"${options.error !== undefined ? html` aria-describedby="form-error"` : ''}>
<input type="hidden" name="_csrf" value="${options.csrf}">
<label for="password">Your password</label>
<input type="password" id="password" name="password" autocomplete="current-password" required maxlength="1024">
<label><input type="checkbox" name="confirm" value="yes" required> I understand that this cannot be undone.</label>
<button type="submit">Delete my account</button>
</form>
<p><a href="/account">Back to your account</a></p>`,
  );
}

export function deletedPage(): string {
  return layout('Account deleted', html`<h1>Your account was deleted</h1><p>Your data has been erased, and the applications that received it are being told.</p><p><a href="/login">Sign in page</a></p>`);
}
