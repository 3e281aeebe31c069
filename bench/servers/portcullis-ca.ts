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
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/index.ts';
import { validateClientMetadata } from '../../src/oauth/index.ts';
import { exitGracefullyOnSignals, startPortcullis } from '../../src/server/index.ts';
import { freePort } from '../../test/support/process.ts';

const spiffeId = process.env['BENCH_CA_SPIFFE_ID'];
if (spiffeId === undefined) throw new Error('set BENCH_CA_SPIFFE_ID');

const dataDir = mkdtempSync(join(tmpdir(), 'portcullis-bench-'));
process.on('exit', () => rmSync(dataDir, { recursive: true, force: true }));

const config = loadConfig({ env: process.env, overrides: { dataDir, port: await freePort(), pki: { trustDomain: 'bench.test' } } });
const running = await startPortcullis(config);
exitGracefullyOnSignals(running, config.http.shutdownTimeoutMs);
process.once('disconnect', () => process.kill(process.pid, 'SIGTERM'));

await running.runtime.get('pki').authority.initialise({ keepRootOffline: false });
await running.authorizationServer.resources.create({ uri: `${running.url}/ca`, scopes: ['ca:issue'] }, { actor: 'bench' });
const metadata = validateClientMetadata(
  { client_name: 'bench workload', grant_types: ['client_credentials'], redirect_uris: [], scope: 'ca:issue', token_endpoint_auth_method: 'client_secret_basic', cert_sans: [spiffeId] },
  { allowedScopes: ['ca:issue'], defaultSigningAlgorithm: 'EdDSA', operator: true },
);
const { client, clientSecret } = await running.authorizationServer.clients.register(metadata, { actor: 'bench' });
process.stdout.write(`ready ${JSON.stringify({ url: running.url, client: { id: client.client_id, secret: clientSecret } })}\n`);
