/**
 * The URLs this SDK is willing to fetch from or connect to, and the
 * transmitter configuration URL of an issuer.
 */

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

/**
 * SSF 1.0 section 7.1 asks for an https issuer and endpoints: a receiver
 * that fetched keys over plain HTTP would accept SETs signed by anyone on
 * the path (openid/sharedsignals#166). Plain http (or ws) is let through for
 * loopback addresses only, for development and tests.
 */
export function checkSecureUrl(value: string, what: string, secure: 'https:' | 'wss:' = 'https:'): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new TypeError(`the ${what} is not a URL: ${JSON.stringify(value)}`);
  }
  const plain = secure === 'https:' ? 'http:' : 'ws:';
  if (url.protocol !== secure && !(url.protocol === plain && LOOPBACK_HOSTS.has(url.hostname))) {
    throw new TypeError(`the ${what} must use ${secure.slice(0, -1)} (${plain.slice(0, -1)} only to a loopback address): ${value}`);
  }
  if (url.username !== '' || url.password !== '') throw new TypeError(`the ${what} must not carry credentials`);
  return url;
}

/**
 * SSF 1.0 section 7.2 (as RFC 8414 section 3.1): `/.well-known/ssf-configuration`
 * goes between the host and the issuer's path, with any terminating `/` of
 * the path removed. For an issuer without a path this is
 * `<issuer>/.well-known/ssf-configuration`.
 */
export function ssfConfigurationUrl(issuer: string): URL {
  const url = checkSecureUrl(issuer, 'issuer');
  if (url.search !== '' || url.hash !== '') throw new TypeError(`the issuer must have no query or fragment (SSF 1.0 section 7.1): ${issuer}`);
  const path = url.pathname.replace(/\/$/, '');
  return new URL(`/.well-known/ssf-configuration${path}`, url.origin);
}
