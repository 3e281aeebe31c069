/**
 * Portcullis for bench/plugin-tokens.ts and bench/plugin-refuse.ts: the
 * default config (embedded SQLite in a throwaway directory; plugin settings
 * from PORTCULLIS_PLUGINS_*), on a port chosen before it starts so that the
 * development issuer is the URL it is reached at. A signing key is made at
 * start and its public key is the one `plugins.trustedKeys` entry.
 *
 * Before it says it is ready it registers, through the running server:
 * - the API `BENCH_PLUGINS.resource` as a resource owning `BENCH_PLUGINS.apiScope`;
 * - `service`: a client_credentials client (client_secret_basic) with that scope;
 * - two plugins, signed with the key and installed through the registry
 *   (PluginRegistry.install, as `portcullis plugin install` does), both
 *   disabled:
 *   - `bench-claims`: `access-token.claims`, answers
 *     `{ verdict: 'modify', claims: { acme_tier: 'gold' } }` at once;
 *     claimsNamespace `acme_`, limits.concurrency from BENCH_PLUGIN_CONCURRENCY,
 *     else the manifest's default (16; calls past it wait for a slot);
 *   - `bench-crash`: `access-token.claims`, calls `process.exit(1)`;
 *     onFailure deny (the default).
 *
 * Prints `ready {"url","service","plugins"}`. Over IPC:
 * - `{type:"set",id,enabled}`: `enabled` is a plugin's name or null; makes
 *   exactly that one enabled (registry.setEnabled), reconciles the host and
 *   waits until it runs, then answers `{type:"set",id,pid}`;
 * - `{type:"status",id}`: answers `{type:"status",id,status}` (PluginHost.status()).
 * Sends `{type:"event",event,at,detail}` for every plugin.crashed,
 * plugin.quarantined, plugin.enabled and plugin.disabled event, `at` in
 * performance.timeOrigin + performance.now() (ms since the epoch).
 * Exits on SIGTERM through the graceful shutdown, or when the IPC channel closes.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { validateClientMetadata } from '../../src/oauth/index.ts';
import { PluginRegistry, digestDirectory, generateSigningKey, parsePublicKey, parseSecretKey, publicKeyLine, signMessage, type PluginHost } from '../../src/plugins/index.ts';
import { startBenchPortcullis } from './start-portcullis.ts';

interface Setup {
  readonly resource: string;
  readonly apiScope: string;
}
const setup = JSON.parse(process.env['BENCH_PLUGINS'] ?? 'null') as Setup | null;
if (setup === null) throw new Error('set BENCH_PLUGINS');

const PLUGINS = {
  'bench-claims': {
    manifest: { hooks: ['access-token.claims'], claimsNamespace: 'acme_', ...(process.env['BENCH_PLUGIN_CONCURRENCY'] !== undefined && { limits: { concurrency: Number(process.env['BENCH_PLUGIN_CONCURRENCY']) } }) },
    source: `export const hooks = { 'access-token.claims': () => ({ verdict: 'modify', claims: { acme_tier: 'gold' } }) };\n`,
  },
  'bench-crash': {
    manifest: { hooks: ['access-token.claims'], claimsNamespace: 'crash_' },
    source: `export const hooks = { 'access-token.claims': () => process.exit(1) };\n`,
  },
} as const;
type PluginName = keyof typeof PLUGINS;

const keys = generateSigningKey();
const trustedKey = publicKeyLine(parsePublicKey(keys.publicKeyFile));
const { running, dataDir } = await startBenchPortcullis({ fixedPort: true, overrides: { plugins: { trustedKeys: [trustedKey] } } });
const host: PluginHost | undefined = running.runtime.get('plugins');
if (host === undefined) throw new Error('the plugins service is not running');

await running.authorizationServer.resources.create({ uri: setup.resource, scopes: [setup.apiScope] }, { actor: 'bench' });
const valid = validateClientMetadata(
  { client_name: 'bench service', grant_types: ['client_credentials'], redirect_uris: [], scope: setup.apiScope, token_endpoint_auth_method: 'client_secret_basic' },
  { allowedScopes: [setup.apiScope], defaultSigningAlgorithm: 'EdDSA' },
);
const registered = await running.authorizationServer.clients.register(valid, { actor: 'bench' });
if (registered.clientSecret === undefined) throw new Error('a confidential client got no secret');
const service = { id: registered.client.client_id, secret: registered.clientSecret };

// The packages, signed as `portcullis plugin sign` signs (the digest's hex), then installed disabled.
const registry = new PluginRegistry({ records: running.stores.durable.records, events: running.events, directory: join(dataDir, 'plugins'), trustedKeys: [trustedKey], clock: Date.now });
const secret = parseSecretKey(keys.secretKeyPem);
for (const [name, plugin] of Object.entries(PLUGINS)) {
  const directory = join(dataDir, 'bench-packages', name);
  mkdirSync(directory, { recursive: true });
  writeFileSync(join(directory, 'portcullis-plugin.json'), JSON.stringify({ name, version: '1.0.0', entry: 'index.mjs', ...plugin.manifest }));
  writeFileSync(join(directory, 'index.mjs'), plugin.source);
  const { digest } = digestDirectory(directory);
  writeFileSync(`${directory}.minisig`, signMessage(Buffer.from(digest, 'latin1'), secret, { trustedComment: `${name} 1.0.0` }));
  await registry.install(directory, { actor: 'bench' });
}

const now = () => performance.timeOrigin + performance.now();
running.events.on(['plugin.crashed', 'plugin.quarantined', 'plugin.enabled', 'plugin.disabled'], (event) => {
  process.send?.({ type: 'event', event: event.type, at: now(), detail: event.detail });
});

async function enableOnly(enabled: PluginName | null): Promise<number | null> {
  const installed = await registry.list();
  for (const plugin of installed) {
    const want = plugin.name === enabled;
    if (plugin.enabled !== want) await registry.setEnabled(plugin.name, want, 'bench');
  }
  await host!.reconcile();
  if (enabled === null) return null;
  const supervised = host!.plugin(enabled);
  if (supervised === undefined) throw new Error(`${enabled} is not running after reconcile: ${JSON.stringify(host!.status())}`);
  await supervised.whenRunning();
  return supervised.status().pid;
}

process.on('message', (message: { type?: string; id?: number; enabled?: PluginName | null }) => {
  if (message.type === 'set') {
    enableOnly(message.enabled ?? null).then(
      (pid) => process.send?.({ type: 'set', id: message.id, pid }),
      (error: unknown) => process.send?.({ type: 'error', id: message.id, message: error instanceof Error ? error.message : String(error) }),
    );
  } else if (message.type === 'status') {
    process.send?.({ type: 'status', id: message.id, status: host.status() });
  }
});

process.stdout.write(`ready ${JSON.stringify({ url: running.url, service, plugins: Object.keys(PLUGINS) })}\n`);
