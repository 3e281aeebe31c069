/** Why a change to a user was refused; `code` is what callers branch on. */
export class UserError extends Error {
  override readonly name = 'UserError';
  readonly code: 'invalid_email' | 'invalid_profile' | 'email_taken' | 'not_found' | 'conflict';
  constructor(code: UserError['code'], message: string) {
    super(message);
    this.code = code;
  }
}
