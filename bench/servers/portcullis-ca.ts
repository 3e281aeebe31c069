/**
 * Portcullis for bench/ca-issue.ts: as servers/portcullis-oauth.ts runs it
 * (config from the environment, a throwaway data directory, the embedded
 * SQLite default, a port chosen first so the development issuer is the URL
 * it is reached at). Before it says it is ready it initialises the CA,
 * registers the CA's resource `<issuer>/ca` (scope ca:issue) and one
 * client_credentials client allowed BENCH_CA_SPIFFE_ID in its certificates.
 * Prints `ready {"url", "client": {id, secret}}` once listening; exits on
 * SIGTERM or when the parent's IPC channel closes.
 */
import { validateClientMetadata } from '../../src/oauth/index.ts';
import { startBenchPortcullis } from './start-portcullis.ts';

const spiffeId = process.env['BENCH_CA_SPIFFE_ID'];
if (spiffeId === undefined) throw new Error('set BENCH_CA_SPIFFE_ID');

const { running } = await startBenchPortcullis({ overrides: { pki: { trustDomain: 'bench.test' } }, fixedPort: true });

await running.runtime.get('pki').authority.initialise({ keepRootOffline: false });
await running.authorizationServer.resources.create({ uri: `${running.url}/ca`, scopes: ['ca:issue'] }, { actor: 'bench' });
const metadata = validateClientMetadata(
  { client_name: 'bench workload', grant_types: ['client_credentials'], redirect_uris: [], scope: 'ca:issue', token_endpoint_auth_method: 'client_secret_basic', cert_sans: [spiffeId] },
  { allowedScopes: ['ca:issue'], defaultSigningAlgorithm: 'EdDSA', operator: true },
);
const { client, clientSecret } = await running.authorizationServer.clients.register(metadata, { actor: 'bench' });
process.stdout.write(`ready ${JSON.stringify({ url: running.url, client: { id: client.client_id, secret: clientSecret } })}\n`);
