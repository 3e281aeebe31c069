/**
 * Portcullis for bench/signals-revocation.ts and bench/signals-fanout.ts:
 * the default config (embedded SQLite in a throwaway directory, or the
 * PostgreSQL and Redis of the environment), the signal settings from the
 * environment (PORTCULLIS_SIGNALS_*), on a port chosen before it starts so
 * that the development issuer is the URL it is reached at.
 *
 * Before it says it is ready it registers, through the running server:
 * - the API `BENCH_SIGNALS.resource` as a resource owning the scope `api:read`;
 * - `service`: a client_credentials client with `api:read` (its tokens are
 *   RFC 9068 JWTs for the API, revoked at /revoke);
 * - `BENCH_SIGNALS.receivers` approved client_credentials clients with
 *   `ssf:stream` (each gets tokens for `<issuer>/signals` and makes streams).
 *
 * Prints `ready {"url","service","receivers"}` (ids and secrets). Over IPC:
 * - `{type:"publish",count,intervalMs}`: revokes `count` made-up token ids one after
 *   another, back to back or one every `intervalMs` (`accessTokens.revokeJti`, the path of /revoke after the token
 *   was decoded: the denylist write and the `tokens.revoked` event), then
 *   answers `{type:"published"}`;
 * - `{type:"appends"}`: answers `{type:"appends",appends:[[seq,ns],...]}`,
 *   the process.hrtime (CLOCK_MONOTONIC, comparable across processes on
 *   one Linux machine) at which each log entry was appended and the
 *   deliveries were woken, and forgets them.
 * Exits on SIGTERM through the graceful shutdown, or when the IPC channel closes.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { validateClientMetadata } from '../../src/oauth/index.ts';
import { startBenchPortcullis } from './start-portcullis.ts';

interface Setup {
  readonly resource: string;
  readonly receivers: number;
}
const setup = JSON.parse(process.env['BENCH_SIGNALS'] ?? 'null') as Setup | null;
if (setup === null) throw new Error('set BENCH_SIGNALS');

const { running } = await startBenchPortcullis({ fixedPort: true });
const signals = running.signals;

await running.authorizationServer.resources.create({ uri: setup.resource, scopes: ['api:read'] }, { actor: 'bench' });
const register = async (scope: string) => {
  const valid = validateClientMetadata({ grant_types: ['client_credentials'], redirect_uris: [], scope, token_endpoint_auth_method: 'client_secret_basic' }, { allowedScopes: ['api:read', 'ssf:stream'], defaultSigningAlgorithm: 'EdDSA' });
  const { client, clientSecret } = await running.authorizationServer.clients.register(valid, { actor: 'bench' }, { approved: true });
  if (clientSecret === undefined) throw new Error('a confidential client got no secret');
  return { id: client.client_id, secret: clientSecret };
};
const service = await register('api:read');
const receivers = [];
for (let i = 0; i < setup.receivers; i++) receivers.push(await register('ssf:stream'));

let appends: [number, number][] = [];
signals.transmitter.onAppended((seq) => appends.push([seq, Number(process.hrtime.bigint())]));

process.on('message', (message: { type: string; count?: number; intervalMs?: number }) => {
  if (message.type === 'publish') {
    void (async () => {
      const exp = Math.floor(Date.now() / 1000) + 600;
      const start = performance.now();
      for (let i = 0; i < (message.count ?? 0); i++) {
        if (message.intervalMs !== undefined && message.intervalMs > 0) await sleep(start + i * message.intervalMs - performance.now());
        await running.authorizationServer.accessTokens.revokeJti(randomUUID(), exp);
      }
      process.send!({ type: 'published' });
    })();
  } else if (message.type === 'appends') {
    process.send!({ type: 'appends', appends });
    appends = [];
  }
});

process.stdout.write(`ready ${JSON.stringify({ url: running.url, service, receivers })}\n`);
