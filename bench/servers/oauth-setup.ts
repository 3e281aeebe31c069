/**
 * The clients, API and accounts of the OAuth benchmarks (BENCH_OAUTH), made
 * through the running server's own registries:
 *
 * - `service`: client_credentials only, client_secret_basic, scope `apiScope`;
 * - `web`: authorization_code, client_secret_basic (PKCE is always required),
 *   the bench redirect URI, scope `openid email <apiScope>`; with `refresh`,
 *   also the refresh_token grant and `offline_access`;
 * - the API (`resource`), registered as a resource that owns `apiScope`;
 * - one account per address in `emails`, through `accounts.createUser` (the
 *   password policy and the configured argon2id parameters apply).
 */
import { validateClientMetadata } from '../../src/oauth/index.ts';
import type { RunningPortcullis } from '../../src/server/index.ts';

export interface OAuthSetup {
  readonly emails: readonly string[];
  readonly password: string;
  readonly redirectUri: string;
  readonly apiScope: string;
  readonly resource: string;
  /** The web client may also refresh (refresh_token grant, offline_access). */
  readonly refresh?: boolean;
}

export interface OAuthClients {
  readonly service: { readonly id: string; readonly secret: string };
  readonly web: { readonly id: string; readonly secret: string };
}

/** BENCH_OAUTH, parsed; throws when it is missing. */
export function oauthSetupFromEnv(): OAuthSetup {
  const setup = JSON.parse(process.env['BENCH_OAUTH'] ?? 'null') as OAuthSetup | null;
  if (setup === null) throw new Error('set BENCH_OAUTH');
  return setup;
}

export async function setUpOAuth(running: RunningPortcullis, setup: OAuthSetup): Promise<OAuthClients> {
  await running.authorizationServer.resources.create({ uri: setup.resource, scopes: [setup.apiScope] }, { actor: 'bench' });
  const register = async (metadata: Record<string, unknown>) => {
    const valid = validateClientMetadata(metadata, { allowedScopes: ['openid', 'profile', 'email', 'offline_access', setup.apiScope], defaultSigningAlgorithm: 'EdDSA' });
    const { client, clientSecret } = await running.authorizationServer.clients.register(valid, { actor: 'bench' });
    if (clientSecret === undefined) throw new Error('a confidential client got no secret');
    return { id: client.client_id, secret: clientSecret };
  };
  const service = await register({ client_name: 'bench service', grant_types: ['client_credentials'], redirect_uris: [], scope: setup.apiScope, token_endpoint_auth_method: 'client_secret_basic' });
  const web = await register({
    client_name: 'bench web app',
    application_type: 'web',
    grant_types: setup.refresh === true ? ['authorization_code', 'refresh_token'] : ['authorization_code'],
    redirect_uris: [setup.redirectUri],
    scope: `openid email ${setup.refresh === true ? 'offline_access ' : ''}${setup.apiScope}`,
    token_endpoint_auth_method: 'client_secret_basic',
  });
  for (const email of setup.emails) await running.identity.accounts.createUser(email, setup.password, { actor: 'bench' });
  return { service, web };
}
