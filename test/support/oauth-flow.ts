/**
 * The person's side of an authorization code flow, for tests that let a
 * real OAuth client library build the authorization request and process the
 * response: a scripted browser (test/support/browserless-client.ts) follows
 * the authorization URL through the real sign-in form and consent page, with
 * plain HTTP form posts, and hands back the URL the server finally redirected
 * to (the client's redirect URI, with code, state and iss).
 */
import assert from 'node:assert/strict';
import { validateClientMetadata, type ClientMetadata } from '../../src/oauth/index.ts';
import { csrfField, type BrowserlessClient, type PageResponse } from './browserless-client.ts';
import type { TestServer } from './server.ts';

export interface Person {
  readonly email: string;
  readonly password: string;
}

export interface RegisteredClient {
  readonly clientId: string;
  /** Issued for client_secret_basic and client_secret_post. */
  readonly clientSecret?: string;
  readonly metadata: ClientMetadata;
}

/** The OpenID scopes every test server offers; API scopes are those of resources a test registers. */
export const OFFERED_SCOPES = ['openid', 'profile', 'email', 'offline_access'];

/**
 * Registers a client directly with the server's registry, as an administrator
 * would (granting it `apiScopes`); approved unless `options.approved` is
 * false (then it is like a self-registered client no operator reviewed).
 */
export async function registerClient(server: Pick<TestServer, 'running'>, metadata: Record<string, unknown>, apiScopes: readonly string[] = [], options: { approved?: boolean } = {}): Promise<RegisteredClient> {
  const checked = validateClientMetadata(metadata, { allowedScopes: [...OFFERED_SCOPES, ...apiScopes], defaultSigningAlgorithm: 'EdDSA' });
  const registered = await server.running.authorizationServer.clients.register(checked, { actor: 'test' }, { approved: options.approved ?? true });
  return { clientId: registered.client.client_id, ...(registered.clientSecret !== undefined && { clientSecret: registered.clientSecret }), metadata: checked };
}

export interface AuthorizationOptions {
  /** The client's redirect URI: a redirect there ends the flow. */
  readonly redirectUri: string;
  /** The answer on the consent page, if one is shown. Default allow. */
  readonly consent?: 'allow' | 'deny';
  /** The answer to every question of the purposes page asked after sign-in (privacy.purposes), if it is shown. Default grant. */
  readonly purposes?: 'grant' | 'decline';
}

/** Thrown when the flow stops on a page instead of redirecting back to the client. */
export class AuthorizationPageStop extends Error {
  override readonly name = 'AuthorizationPageStop';
  readonly page: PageResponse;
  constructor(page: PageResponse) {
    super(`the authorization flow stopped on a ${page.status} page: ${page.body.replace(/\s+/g, ' ').slice(0, 300)}`);
    this.page = page;
  }
}

const decodeAttribute = (value: string) => value.replaceAll('&amp;', '&').replaceAll('&#39;', "'").replaceAll('&quot;', '"');

/**
 * Follows `authorizationUrl` as a browser would: through redirects on the
 * server, the sign-in form (when there is no session yet) and the consent
 * page (when consent is not remembered), until the server redirects to
 * `redirectUri`. Resolves with that URL; throws AuthorizationPageStop when a
 * page ends the flow instead (an error page, say).
 */
export async function completeAuthorization(browser: BrowserlessClient, authorizationUrl: URL | string, person: Person, options: AuthorizationOptions): Promise<URL> {
  let next: string = authorizationUrl.toString();
  for (let hops = 0; hops < 12; hops++) {
    const response = await browser.get(next);
    if (response.status === 302 || response.status === 303) {
      const location = response.location!;
      if (location.startsWith(options.redirectUri)) return new URL(location);
      next = location;
      continue;
    }
    if (response.status === 200 && response.body.includes('action="/login"')) {
      next = await signIn(browser, response, person);
      continue;
    }
    if (response.status === 200 && response.body.includes('action="/privacy/purposes"')) {
      const answers = Object.fromEntries([...response.body.matchAll(/name="(consent_[^"]+)" value="grant"/g)].map((match) => [decodeAttribute(match[1]!), options.purposes ?? 'grant']));
      const returnTo = /name="return_to" value="([^"]*)"/.exec(response.body)?.[1] ?? '';
      const answer = await browser.post('/privacy/purposes', { _csrf: csrfField(response.body)!, return_to: decodeAttribute(returnTo), ...answers });
      assert.equal(answer.status, 303, `purposes answer: ${answer.body.slice(0, 300)}`);
      const location = answer.location!;
      if (location.startsWith(options.redirectUri)) return new URL(location);
      next = location;
      continue;
    }
    if (response.status === 200 && response.body.includes('action="/authorize/consent"')) {
      const interaction = /name="interaction" value="([^"]+)"/.exec(response.body)?.[1];
      assert.ok(interaction !== undefined, 'the consent page names its interaction');
      const answer = await browser.post('/authorize/consent', { _csrf: csrfField(response.body)!, interaction: decodeAttribute(interaction), decision: options.consent ?? 'allow' });
      assert.equal(answer.status, 303, `consent answer: ${answer.body.slice(0, 300)}`);
      const location = answer.location!;
      if (location.startsWith(options.redirectUri)) return new URL(location);
      next = location;
      continue;
    }
    throw new AuthorizationPageStop(response);
  }
  throw new Error('the authorization flow did not finish within 12 steps');
}

/** Fills in and posts the sign-in form shown in `page`; resolves with where the server sends the browser next. */
async function signIn(browser: BrowserlessClient, page: PageResponse, person: Person): Promise<string> {
  const returnTo = /name="return_to" value="([^"]*)"/.exec(page.body)?.[1];
  const answer = await browser.post('/login', {
    _csrf: csrfField(page.body)!,
    email: person.email,
    password: person.password,
    ...(returnTo !== undefined && returnTo !== '' && { return_to: decodeAttribute(returnTo) }),
  });
  assert.equal(answer.status, 303, `sign-in answer: ${answer.body.slice(0, 300)}`);
  return answer.location!;
}
