/**
 * The bearer credential a client presents to the transmitter (RFC 6750
 * section 2.1): a fixed string, or a function asked before every request,
 * so an expiring access token is renewed by whoever owns it.
 */

export type TokenProvider = string | (() => string | Promise<string>);

export async function bearer(token: TokenProvider | undefined): Promise<Record<string, string>> {
  if (token === undefined) return {};
  const value = typeof token === 'string' ? token : await token();
  if (typeof value !== 'string' || value === '' || /[\r\n]/.test(value)) throw new TypeError('the token must be a non-empty string on one line');
  return { authorization: `Bearer ${value}` };
}
