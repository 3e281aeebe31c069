/**
 * node-oidc-provider (`oidc-provider` v9, a devDependency) for bench/oauth.ts,
 * configured as close to Portcullis as it allows:
 *
 * - its default in-memory adapter (an LRU of 1000 entries per process);
 * - one Ed25519 signing key (EdDSA) for ID tokens and JWT access tokens;
 * - JWT access tokens (RFC 9068, `typ: at+jwt`) for the resource
 *   BENCH_OAUTH.resource, through `features.resourceIndicators`: a token
 *   request that names the resource (client_credentials with `resource=`, or
 *   a code whose authorization request named it) gets a signed JWT, not
 *   stored. Without a resource a token is opaque and stored in the adapter:
 *   oidc-provider refuses to introspect a JWT access token, so the bench's
 *   introspection token is such a client_credentials token;
 * - introspection and client_credentials on; PKCE (S256) required of every
 *   client; lifetimes as Portcullis' defaults (access 600 s, ID token 3600 s,
 *   code 60 s);
 * - two clients, both client_secret_basic: `service` (client_credentials,
 *   scope `api:read`) and `web` (authorization_code, the bench redirect URI);
 * - devInteractions off. The interaction routes are this file's own, shaped
 *   like Portcullis' pages: GET /interaction/:uid renders a sign-in form
 *   (email, password, a CSRF field bound to the interaction) or a consent
 *   form; POST /interaction/:uid/login checks the Origin and the CSRF field,
 *   then verifies the password with @node-rs/argon2 against an argon2id hash
 *   made at start with the parameters in BENCH_OAUTH.argon2 (Portcullis'
 *   defaults, so both sides pay the same hash); POST
 *   /interaction/:uid/confirm grants what the consent prompt asks for.
 *
 * Consent (BENCH_OAUTH.consent): `every` shows it on every flow (the bench
 * sends prompt=consent, and a fresh browser has no session anyway);
 * `remembered` also remembers each account's grant per client
 * (`loadExistingGrant`), as Portcullis remembers consent per user and client,
 * so that a later sign-in needs no consent while the grant is in the adapter.
 *
 * Plain HTTP on 127.0.0.1 needs nothing special: Koa's `proxy` stays off,
 * and the provider marks cookies `secure` only on a secure request.
 *
 * Prints `ready {"url", "service", "web"}` on stdout once listening; exits on
 * SIGTERM or when the parent's IPC channel closes.
 */
import { createHmac, generateKeyPairSync, randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { hash as argon2Hash, verify as argon2Verify } from '@node-rs/argon2';
import type { Algorithm } from '@node-rs/argon2';
// @ts-expect-error -- oidc-provider ships no type declarations (and @types/oidc-provider is not installed): the little used here is typed below.
import ProviderModule, { errors as providerErrors } from 'oidc-provider';

interface Setup {
  readonly emails: readonly string[];
  readonly password: string;
  readonly redirectUri: string;
  readonly resource: string;
  readonly apiScope: string;
  readonly consent: 'every' | 'remembered';
  readonly argon2: { readonly memoryCostKiB: number; readonly timeCost: number; readonly parallelism: number };
}
const setup = readSetup();
function readSetup(): Setup {
  const parsed = JSON.parse(process.env['BENCH_OAUTH'] ?? 'null') as Setup | null;
  if (parsed === null) throw new Error('set BENCH_OAUTH');
  return parsed;
}

// What this file uses of oidc-provider's API.
interface Interaction {
  readonly uid: string;
  readonly prompt: { readonly name: string; readonly details: Record<string, unknown> };
  readonly params: Record<string, unknown> & { readonly client_id: string };
  readonly session?: { readonly accountId: string };
  readonly grantId?: string;
}
interface Grant {
  addOIDCScope(scope: string): void;
  addOIDCClaims(claims: readonly string[]): void;
  addResourceScope(resource: string, scope: string): void;
  save(): Promise<string>;
}
interface Provider {
  callback(): (req: IncomingMessage, res: ServerResponse) => void;
  interactionDetails(req: IncomingMessage, res: ServerResponse): Promise<Interaction>;
  interactionFinished(req: IncomingMessage, res: ServerResponse, result: Record<string, unknown>, options: { mergeWithLastSubmission: boolean }): Promise<void>;
  on(event: string, listener: (...args: unknown[]) => void): void;
  readonly Grant: {
    new (init: { accountId: string; clientId: string }): Grant;
    find(id: string): Promise<Grant | undefined>;
  };
}
interface OidcContext {
  readonly oidc: {
    readonly client: { readonly clientId: string };
    readonly session: { readonly accountId?: string; grantIdFor(clientId: string): string | undefined };
    readonly result?: { readonly consent?: { readonly grantId?: string } };
    readonly provider: Provider;
  };
}
const Provider = ProviderModule as unknown as new (issuer: string, configuration: Record<string, unknown>) => Provider;
const InvalidTarget = (providerErrors as { InvalidTarget: new (description?: string) => Error }).InvalidTarget;

// @node-rs/argon2 declares Algorithm as an ambient const enum, which
// `isolatedModules` cannot inline (src/identity/passwords.ts does the same).
const ARGON2ID = 2 satisfies Algorithm.Argon2id;

/** Accounts by email; the account id is the `sub`. */
interface Account {
  readonly id: string;
  readonly email: string;
  readonly phc: string;
}
const accountsByEmail = new Map<string, Account>();
const accountsById = new Map<string, Account>();
for (const email of setup.emails) {
  const phc = await argon2Hash(setup.password, {
    algorithm: ARGON2ID,
    memoryCost: setup.argon2.memoryCostKiB,
    timeCost: setup.argon2.timeCost,
    parallelism: setup.argon2.parallelism,
    outputLen: 32,
  });
  const account = { id: `u_${randomBytes(16).toString('base64url')}`, email, phc };
  accountsByEmail.set(email, account);
  accountsById.set(account.id, account);
}

const signingKey = { ...generateKeyPairSync('ed25519').privateKey.export({ format: 'jwk' }), kid: randomBytes(16).toString('base64url'), alg: 'EdDSA', use: 'sig' };
const service = { id: 'bench-service', secret: randomBytes(32).toString('base64url') };
const web = { id: 'bench-web', secret: randomBytes(32).toString('base64url') };
const csrfKey = randomBytes(32);
/** Remembered consent: grant id by `${accountId} ${clientId}`. */
const rememberedGrants = new Map<string, string>();

const server = createServer();
await new Promise<void>((resolve, reject) => {
  server.once('error', reject);
  server.listen(0, '127.0.0.1', resolve);
});
const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: service.id,
      client_secret: service.secret,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
    },
    {
      client_id: web.id,
      client_secret: web.secret,
      application_type: 'web',
      grant_types: ['authorization_code'],
      response_types: ['code'],
      redirect_uris: [setup.redirectUri],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: 'EdDSA',
    },
  ],
  // Portcullis' paths, so that both sides get byte-identical requests.
  routes: { authorization: '/authorize', introspection: '/introspect' },
  jwks: { keys: [signingKey] },
  clientDefaults: { id_token_signed_response_alg: 'EdDSA', grant_types: ['authorization_code'], response_types: ['code'], token_endpoint_auth_method: 'client_secret_basic' },
  claims: { openid: ['sub'], email: ['email', 'email_verified'] },
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  pkce: { required: () => true },
  ttl: { AccessToken: 600, ClientCredentials: 600, IdToken: 3600, AuthorizationCode: 60, Interaction: 600, Session: 86_400, Grant: 86_400 },
  features: {
    devInteractions: { enabled: false },
    introspection: { enabled: true },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      // No resource asked for: none (an opaque token, usable at userinfo).
      defaultResource: (_ctx: unknown, _client: unknown, oneOf?: string[]) => oneOf,
      // The token request of a code flow gets the resource its authorization named.
      useGrantedResource: () => true,
      getResourceServerInfo: (_ctx: unknown, resource: string) => {
        if (resource !== setup.resource) throw new InvalidTarget();
        return { scope: setup.apiScope, audience: setup.resource, accessTokenTTL: 600, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'EdDSA' } } };
      },
    },
  },
  interactions: { url: (_ctx: unknown, interaction: { uid: string }) => `/interaction/${interaction.uid}` },
  findAccount: (_ctx: unknown, sub: string) => {
    const account = accountsById.get(sub);
    return account === undefined ? undefined : { accountId: sub, claims: () => ({ sub, email: account.email, email_verified: false }) };
  },
  ...(setup.consent === 'remembered' && {
    loadExistingGrant: async (ctx: OidcContext) => {
      const { oidc } = ctx;
      const grantId = oidc.result?.consent?.grantId ?? oidc.session.grantIdFor(oidc.client.clientId) ?? rememberedGrants.get(`${oidc.session.accountId} ${oidc.client.clientId}`);
      return grantId === undefined ? undefined : oidc.provider.Grant.find(grantId);
    },
  }),
});
provider.on('server_error', (_ctx, error) => process.stderr.write(`oidc-provider server_error: ${String(error)}\n`));
const providerCallback = provider.callback();

const escapeHtml = (value: string) => value.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const csrfFor = (uid: string) => createHmac('sha256', csrfKey).update(uid).digest('base64url');

function page(res: ServerResponse, status: number, title: string, body: string): void {
  const text = `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>${escapeHtml(title)}</title></head><body><main><h1>${escapeHtml(title)}</h1>${body}</main></body></html>`;
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-store',
    'content-security-policy': "default-src 'none'; form-action 'self'; frame-ancestors 'none'",
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

function loginForm(uid: string, error?: string): string {
  return `${error === undefined ? '' : `<p class="error" role="alert">${escapeHtml(error)}</p>`}<form method="post" action="/interaction/${escapeHtml(uid)}/login">
<input type="hidden" name="_csrf" value="${csrfFor(uid)}">
<label>Email <input type="email" name="email" autocomplete="username" required></label>
<label>Password <input type="password" name="password" autocomplete="current-password" required></label>
<button type="submit">Sign in</button></form>`;
}

function consentForm(uid: string, clientId: string, scopes: readonly string[]): string {
  return `<p>${escapeHtml(clientId)} asks for: ${scopes.map(escapeHtml).join(', ')}</p><form method="post" action="/interaction/${escapeHtml(uid)}/confirm">
<input type="hidden" name="_csrf" value="${csrfFor(uid)}">
<button type="submit" name="decision" value="allow">Allow</button></form>`;
}

async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > 16_384) throw new Error('form too large');
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

/** Same-origin POST with the interaction's CSRF field, as Portcullis asks of its forms. */
function formIsGenuine(req: IncomingMessage, form: URLSearchParams, uid: string): boolean {
  if (req.headers.origin !== issuer) return false;
  const presented = Buffer.from(form.get('_csrf') ?? '');
  const expected = Buffer.from(csrfFor(uid));
  return presented.length === expected.length && timingSafeEqual(presented, expected);
}

async function interactions(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = new URL(req.url ?? '/', issuer).pathname;
  const match = /^\/interaction\/([\w-]+)(?:\/(login|confirm))?$/.exec(path);
  if (match === null) return page(res, 404, 'Not found', '');
  const [, uid, action] = match as unknown as [string, string, string | undefined];
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) return page(res, 400, 'Bad request', '<p>This sign-in has expired.</p>');

  if (action === undefined && req.method === 'GET') {
    if (details.prompt.name === 'login') return page(res, 200, 'Sign in', loginForm(uid));
    if (details.prompt.name === 'consent') {
      const asked = [...((details.prompt.details['missingOIDCScope'] as string[] | undefined) ?? []), ...Object.values((details.prompt.details['missingResourceScopes'] as Record<string, string[]> | undefined) ?? {}).flat()];
      return page(res, 200, 'Allow access', consentForm(uid, details.params.client_id, asked));
    }
    return page(res, 501, 'Not implemented', `<p>prompt ${escapeHtml(details.prompt.name)}</p>`);
  }
  if (req.method !== 'POST') return page(res, 405, 'Method not allowed', '');
  const form = await readForm(req);
  if (!formIsGenuine(req, form, uid)) return page(res, 403, 'Forbidden', '<p>This form was not sent from this site.</p>');

  if (action === 'login' && details.prompt.name === 'login') {
    const account = accountsByEmail.get((form.get('email') ?? '').trim().toLowerCase());
    const password = form.get('password') ?? '';
    // An unknown address costs a verify too, against a fixed hash.
    const ok = await argon2Verify(account?.phc ?? accountsByEmail.values().next().value!.phc, password);
    if (!ok || account === undefined) return page(res, 200, 'Sign in', loginForm(uid, 'Wrong email or password.'));
    return provider.interactionFinished(req, res, { login: { accountId: account.id, amr: ['pwd'] } }, { mergeWithLastSubmission: false });
  }
  if (action === 'confirm' && details.prompt.name === 'consent') {
    if (form.get('decision') !== 'allow') return provider.interactionFinished(req, res, { error: 'access_denied', error_description: 'The user denied access.' }, { mergeWithLastSubmission: false });
    const accountId = details.session!.accountId;
    const clientId = details.params.client_id;
    const existing = details.grantId === undefined ? undefined : await provider.Grant.find(details.grantId);
    const grant = existing ?? new provider.Grant({ accountId, clientId });
    const { missingOIDCScope, missingOIDCClaims, missingResourceScopes } = details.prompt.details as {
      missingOIDCScope?: string[];
      missingOIDCClaims?: string[];
      missingResourceScopes?: Record<string, string[]>;
    };
    if (missingOIDCScope !== undefined) grant.addOIDCScope(missingOIDCScope.join(' '));
    if (missingOIDCClaims !== undefined) grant.addOIDCClaims(missingOIDCClaims);
    for (const [resource, scopes] of Object.entries(missingResourceScopes ?? {})) grant.addResourceScope(resource, scopes.join(' '));
    const grantId = await grant.save();
    if (setup.consent === 'remembered') rememberedGrants.set(`${accountId} ${clientId}`, grantId);
    return provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
  }
  return page(res, 400, 'Bad request', '<p>This step does not match the sign-in in progress.</p>');
}

server.on('request', (req: IncomingMessage, res: ServerResponse) => {
  if (req.url?.startsWith('/interaction/') === true) {
    interactions(req, res).catch((error: unknown) => {
      process.stderr.write(`interaction error: ${String(error)}\n`);
      if (!res.headersSent) page(res, 500, 'Error', '');
      else res.destroy();
    });
  } else providerCallback(req, res);
});

const stop = () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
};
process.once('SIGTERM', stop);
process.once('disconnect', stop);
process.stdout.write(`ready ${JSON.stringify({ url: issuer, service, web })}\n`);
