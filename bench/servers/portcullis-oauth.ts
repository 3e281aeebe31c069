/**
 * Portcullis for bench/oauth.ts: as servers/portcullis.ts runs it (config
 * from the environment, a throwaway data directory, the embedded SQLite
 * default), on a port chosen before it starts so that the development issuer
 * derived from the port is the URL it is reached at. Before it says it is
 * ready it registers, through the running server's own client registry, the
 * clients the benchmark uses, and creates its accounts:
 *
 * - `service`: client_credentials only, client_secret_basic, scope `api:read`;
 * - `web`: authorization_code, client_secret_basic (PKCE is always required),
 *   the bench redirect URI, scope `openid email api:read`;
 * - one account per address in BENCH_OAUTH.emails, through
 *   `accounts.createUser` (the password policy and the configured argon2id
 *   parameters apply).
 *
 * BENCH_OAUTH (JSON: emails, password, redirectUri, apiScope, resource) says what to
 * create; the API (`resource`) is registered as a resource that owns `apiScope`.
 * Prints `ready {"url", "service", "web"}` (client ids and secrets) on stdout
 * once listening; exits on SIGTERM through the product's own graceful
 * shutdown, or when the parent's IPC channel closes.
 */
import { validateClientMetadata } from '../../src/oauth/index.ts';
import { startBenchPortcullis } from './start-portcullis.ts';

interface Setup {
  readonly emails: readonly string[];
  readonly password: string;
  readonly redirectUri: string;
  readonly apiScope: string;
  readonly resource: string;
}
const setup = JSON.parse(process.env['BENCH_OAUTH'] ?? 'null') as Setup | null;
if (setup === null) throw new Error('set BENCH_OAUTH');


const { running } = await startBenchPortcullis({ fixedPort: true });

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
  grant_types: ['authorization_code'],
  redirect_uris: [setup.redirectUri],
  scope: `openid email ${setup.apiScope}`,
  token_endpoint_auth_method: 'client_secret_basic',
});
for (const email of setup.emails) await running.identity.accounts.createUser(email, setup.password, { actor: 'bench' });

process.stdout.write(`ready ${JSON.stringify({ url: running.url, service, web })}\n`);
