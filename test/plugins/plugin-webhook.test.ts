/**
 * The registration-webhook example plugin (examples/plugins/) in a serving
 * Portcullis, asking a real HTTPS webhook in this test whether a client may
 * register (RFC 7591 dynamic registration, `oauth.registration` open). The
 * example is copied, pointed at the test's webhook (its webhook.json and
 * its manifest's http.fetch origin), re-signed with the TEST key that signs
 * the examples, and installed through the registry; the webhook's
 * certificate comes from a CA made with openssl (plugins.fetchCaFile), and
 * http.fetch may reach loopback (plugins.fetchPrivateNetworks).
 *
 * What a client sees (POST /register), what the webhook received, and what
 * the host recorded in the audit ledger (every http.fetch as plugin.call).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { decodeEntry } from '../../src/audit/index.ts';
import { PluginRegistry, digestDirectory, parsePublicKey, parseSecretKey, publicKeyLine, signMessage, type PluginHost } from '../../src/plugins/index.ts';
import { OpensslCa } from '../support/openssl-ca.ts';
import { tempDirectory } from '../support/plugin-packages.ts';
import { startTestServer, testBackends, type TestServer } from '../support/server.ts';

const EXAMPLE = join(import.meta.dirname, '../../examples/plugins/registration-webhook');
const TEST_KEY = parseSecretKey(readFileSync(join(import.meta.dirname, '../fixtures/plugins/seed-ed25519.pem'), 'utf8'));
const TEST_PUBLIC_KEY = parsePublicKey(readFileSync(join(import.meta.dirname, '../../examples/plugins/test-key.pub'), 'utf8'));
const PLUGIN = 'registration-webhook';
const WEBHOOK_PATH = '/portcullis/registration';
/** The deny reason the host shows when a plugin failed (src/hooks/chains.ts). */
const FAULT_REASON = 'This request could not be checked. Try again later.';

interface Received {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingMessage['headers'];
  readonly body: string;
}

/** An HTTPS server on loopback with a certificate of `ca`, recording what it receives and answering with `respond`. */
async function httpsServer(ca: OpensslCa, name: string): Promise<{ server: Server; origin: string; received: Received[]; connections: () => number; respond: (handler: (request: Received, response: ServerResponse) => void) => void }> {
  const { cert, key } = ca.issue(name, { kind: 'server', ipAddresses: ['127.0.0.1'] });
  const received: Received[] = [];
  let connections = 0;
  let handler: (request: Received, response: ServerResponse) => void = (_request, response) => response.writeHead(404).end();
  const server = createServer({ cert, key }, (incoming, response) => {
    const chunks: Buffer[] = [];
    incoming.on('data', (chunk: Buffer) => chunks.push(chunk));
    incoming.on('end', () => {
      const entry = { method: incoming.method!, url: incoming.url!, headers: incoming.headers, body: Buffer.concat(chunks).toString('utf8') };
      received.push(entry);
      handler(entry, response);
    });
  });
  server.on('connection', () => connections++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, origin: `https://127.0.0.1:${(server.address() as { port: number }).port}`, received, connections: () => connections, respond: (next) => (handler = next) };
}

const json = (response: ServerResponse, status: number, body: unknown) => response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));

for (const backend of testBackends) {
  describe(`the registration-webhook example against a real HTTPS webhook (${backend})`, () => {
    const root = tempDirectory('portcullis-plugin-webhook-');
    let ca: OpensslCa;
    let webhook: Awaited<ReturnType<typeof httpsServer>>;
    let elsewhere: Awaited<ReturnType<typeof httpsServer>>;
    let server: TestServer;
    let host: PluginHost;
    /** Registration attempts made while the plugin runs (each one http.fetch call). */
    const attempts: { readonly label: string; readonly outcome: 'success' | 'failure' }[] = [];

    const register = (metadata: Record<string, unknown>) =>
      fetch(`${server.url}/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(metadata), signal: AbortSignal.timeout(30_000) });
    const ledger = async () => {
      const log = server.running.stores.durable.auditLog;
      const size = await log.size();
      const rows = [];
      for (let start = 0; start < size; start += 1000) rows.push(...(await log.entries(start, Math.min(size, start + 1000))));
      return rows.map((row) => decodeEntry(row.entry) as unknown as { type: string; outcome: string; detail?: Record<string, unknown> });
    };
    const ofPlugin = async (type: string) => (await ledger()).filter((entry) => entry.type === type && entry.detail?.['plugin'] === PLUGIN);
    /** Waits (bounded) until `count` entries of `type` for the plugin are in the ledger. */
    const waitFor = async (type: string, count: number) => {
      const deadline = Date.now() + 10_000;
      for (;;) {
        const found = await ofPlugin(type);
        if (found.length >= count) return found;
        if (Date.now() > deadline) throw new Error(`${count} ${type} entries expected, ${found.length} found`);
        await delay(25);
      }
    };
    const registeredCount = async () => (await ledger()).filter((entry) => entry.type === 'client.registered').length;
    const clientCount = async () => (await server.running.authorizationServer.clients.list({ limit: 1000 })).length;
    /** A registration the plugin must refuse: the status and description the client got, and nothing registered. */
    const assertRefused = async (metadata: Record<string, unknown>, description: string) => {
      const [registeredBefore, clientsBefore] = [await registeredCount(), await clientCount()];
      const response = await register(metadata);
      const body = (await response.json()) as Record<string, unknown>;
      assert.equal(response.status, 403, JSON.stringify(body));
      assert.equal(body['error'], 'access_denied');
      assert.equal(body['error_description'], description);
      assert.equal(body['client_id'], undefined);
      assert.equal(await registeredCount(), registeredBefore, 'no client.registered entry');
      assert.equal(await clientCount(), clientsBefore, 'no client');
    };

    before(async () => {
      ca = OpensslCa.create(join(root, 'ca'), 'Portcullis webhook test CA');
      webhook = await httpsServer(ca, 'hooks');
      elsewhere = await httpsServer(ca, 'elsewhere');
      // The example, pointed at the test's webhook and signed again with the examples' TEST key.
      const copy = join(root, 'package', PLUGIN);
      cpSync(EXAMPLE, copy, { recursive: true });
      writeFileSync(join(copy, 'webhook.json'), `${JSON.stringify({ url: `${webhook.origin}${WEBHOOK_PATH}` }, null, 2)}\n`);
      const manifest = JSON.parse(readFileSync(join(copy, 'portcullis-plugin.json'), 'utf8')) as { hostCalls: { name: string; origins: string[] }[] };
      assert.deepEqual(manifest.hostCalls, [{ name: 'http.fetch', origins: ['https://hooks.acme.example'] }], 'the example as shipped');
      manifest.hostCalls = [{ name: 'http.fetch', origins: [webhook.origin] }];
      writeFileSync(join(copy, 'portcullis-plugin.json'), `${JSON.stringify(manifest, null, 2)}\n`);
      const { digest } = digestDirectory(copy);
      writeFileSync(`${copy}.minisig`, signMessage(Buffer.from(digest, 'latin1'), TEST_KEY, { trustedComment: `file:${PLUGIN}\tdigest:${digest}` }));
      const trustedKeys = [publicKeyLine(TEST_PUBLIC_KEY)];
      server = await startTestServer({ backend, overrides: { oauth: { registration: 'open' }, plugins: { trustedKeys, fetchCaFile: ca.certFile, fetchPrivateNetworks: true, breakerReset: '1s' } } });
      host = server.running.runtime.get('plugins')!;
      const registry = new PluginRegistry({ records: server.running.stores.durable.records, events: server.running.events, directory: join(server.running.runtime.get('config').dataDir, 'plugins'), trustedKeys, clock: Date.now });
      await registry.install(copy, { actor: 'test' });
      await registry.setEnabled(PLUGIN, true, 'test');
      await host.reconcile();
      await host.plugin(PLUGIN)!.whenRunning();
    });
    after(async () => {
      await server?.close();
      for (const https of [webhook, elsewhere]) {
        https?.server.closeAllConnections();
        await new Promise<void>((resolve) => (https ? https.server.close(() => resolve()) : resolve()));
      }
    });

    it('the webhook answers {allow: true}: 201, the client is registered; the webhook got the event as JSON over HTTPS', async () => {
      webhook.respond((_request, response) => json(response, 200, { allow: true }));
      const before = webhook.received.length;
      const response = await register({ client_name: 'Acme Portal', redirect_uris: ['https://portal.acme.example/callback'] });
      attempts.push({ label: 'allow', outcome: 'success' });
      const body = (await response.json()) as Record<string, unknown>;
      assert.equal(response.status, 201, JSON.stringify(body));
      assert.match(String(body['client_id']), /^c_/);
      assert.equal(body['client_name'], 'Acme Portal');
      assert.notEqual(await server.running.authorizationServer.clients.get(String(body['client_id'])), null);
      const received = webhook.received.slice(before);
      assert.equal(received.length, 1);
      assert.equal(received[0]!.method, 'POST');
      assert.equal(received[0]!.url, WEBHOOK_PATH);
      assert.equal(received[0]!.headers['content-type'], 'application/json');
      assert.deepEqual(JSON.parse(received[0]!.body), { event: 'client.registering', client_name: 'Acme Portal', redirect_uris: ['https://portal.acme.example/callback'] });
    });

    it('the webhook answers {allow: false, reason}: 403 access_denied with the webhook\'s reason; nothing registered', async () => {
      webhook.respond((_request, response) => json(response, 200, { allow: false, reason: 'Acme does not know this application.' }));
      await assertRefused({ client_name: 'Stranger', redirect_uris: ['https://stranger.example/cb'] }, 'Acme does not know this application.');
      attempts.push({ label: 'deny', outcome: 'success' });
    });

    it('the webhook answers 500: refused (fail closed: 403 access_denied, the host\'s reason, not the webhook\'s); plugin.failed and hook.fault audited; nothing registered', async () => {
      webhook.respond((_request, response) => json(response, 500, { allow: true, reason: 'an error page that says allow' }));
      const failedBefore = (await ofPlugin('plugin.failed')).length;
      await assertRefused({ client_name: 'During an outage', redirect_uris: ['https://outage.example/cb'] }, FAULT_REASON);
      attempts.push({ label: '500', outcome: 'success' });
      const failed = await ofPlugin('plugin.failed');
      assert.equal(failed.length, failedBefore + 1);
      assert.deepEqual([failed.at(-1)!.outcome, failed.at(-1)!.detail], ['denied', { plugin: PLUGIN, hook: 'registration.before', failure: 'error', action: 'denied' }]);
      assert.ok((await ledger()).some((entry) => entry.type === 'hook.fault' && entry.detail?.['point'] === 'registration.before' && entry.detail['hook'] === 'plugins.host'));
    });

    it('the webhook redirects to an origin not in the allow-list: refused; the other server saw nothing; the refused hop is a plugin.call failure for http.fetch', async () => {
      webhook.respond((_request, response) => response.writeHead(307, { location: `${elsewhere.origin}/collect` }).end());
      const callsBefore = (await ofPlugin('plugin.call')).length;
      await assertRefused({ client_name: 'Redirected', redirect_uris: ['https://redirected.example/cb'] }, FAULT_REASON);
      attempts.push({ label: 'redirect', outcome: 'failure' });
      const calls = await ofPlugin('plugin.call');
      assert.equal(calls.length, callsBefore + 1);
      assert.deepEqual([calls.at(-1)!.outcome, calls.at(-1)!.detail], ['failure', { plugin: PLUGIN, method: 'http.fetch', rpcError: -32001 }]);
      // The other server is up and would have answered: the test's own request is its first, and only, connection.
      const control = await new Promise<number>((resolve, reject) => {
        elsewhere.respond((_request, response) => response.writeHead(204).end());
        request(`${elsewhere.origin}/control`, { ca: ca.cert }, (response) => {
          response.resume();
          resolve(response.statusCode!);
        })
          .on('error', reject)
          .end();
      });
      assert.equal(control, 204);
      assert.deepEqual(elsewhere.received.map((entry) => entry.url), ['/control']);
      assert.equal(elsewhere.connections(), 1);
    });

    it('the webhook never answers: refused within the plugin\'s deadline (1 s) plus a margin; the missed deadline and the abandoned fetch are audited', { timeout: 30_000 }, async () => {
      const held: ServerResponse[] = [];
      webhook.respond((_request, response) => void held.push(response));
      const started = performance.now();
      try {
        await assertRefused({ client_name: 'Slow', redirect_uris: ['https://slow.example/cb'] }, FAULT_REASON);
      } finally {
        for (const response of held) response.destroy();
      }
      const elapsed = performance.now() - started;
      attempts.push({ label: 'hang', outcome: 'failure' });
      assert.ok(elapsed < 1000 + 1500, `refused in ${Math.round(elapsed)} ms`);
      // The hook's deadline, the plugin's own wait for its host call and the fetch's are all the
      // manifest's deadlineMs (1 s), started in that order a millisecond or two apart: usually the
      // hook's passes first (timeout), but the plugin may answer its failed fetch first (error).
      // Refused either way, and audited.
      const failed = await ofPlugin('plugin.failed');
      assert.deepEqual({ ...failed.at(-1)!.detail, failure: undefined }, { plugin: PLUGIN, hook: 'registration.before', failure: undefined, action: 'denied' });
      assert.ok(['timeout', 'error'].includes(String(failed.at(-1)!.detail?.['failure'])), String(failed.at(-1)!.detail?.['failure']));
      // The host's fetch ends at its deadline in a refusal the plugin no longer waits for.
      const calls = await waitFor('plugin.call', attempts.length);
      assert.deepEqual([calls.at(-1)!.outcome, calls.at(-1)!.detail], ['failure', { plugin: PLUGIN, method: 'http.fetch', rpcError: -32001 }]);
    });

    it('every http.fetch call is in the ledger as plugin.call, in order, with its outcome, and nothing of the request', async () => {
      const calls = await waitFor('plugin.call', attempts.length);
      assert.deepEqual(
        calls.map((entry) => [entry.outcome, entry.detail?.['method']]),
        attempts.map((attempt) => [attempt.outcome, 'http.fetch']),
        attempts.map((attempt) => attempt.label).join(', '),
      );
      assert.ok(calls.every((entry) => !/127\.0\.0\.1|\/portcullis\/registration|Slow|Redirected|collect/.test(JSON.stringify(entry))), 'no URL, address or body of the request in the ledger');
      assert.equal(host.plugin(PLUGIN)!.state, 'running', 'failures of the webhook are not crashes of the plugin');
    });

    it('3 failures in 5 calls opened the plugin\'s breaker: the next registration is refused at once, the webhook not called (breaker_open audited); half-open after plugins.breakerReset, an allowed registration goes through and closes it', { timeout: 30_000 }, async () => {
      const supervised = host.plugin(PLUGIN)!;
      assert.equal(supervised.breakerState, 'open');
      webhook.respond((_request, response) => json(response, 200, { allow: true }));
      const before = webhook.received.length;
      await assertRefused({ client_name: 'While open', redirect_uris: ['https://open.example/cb'] }, FAULT_REASON);
      assert.equal(webhook.received.length, before, 'the webhook was not asked');
      assert.deepEqual((await ofPlugin('plugin.failed')).at(-1)!.detail, { plugin: PLUGIN, hook: 'registration.before', failure: 'breaker_open', action: 'denied' });
      const deadline = Date.now() + 10_000;
      while (supervised.breakerState === 'open' && Date.now() < deadline) await delay(25);
      assert.equal(supervised.breakerState, 'half-open');
      const response = await register({ client_name: 'After all that', redirect_uris: ['https://after.example/cb'] });
      assert.equal(response.status, 201, await response.text());
      assert.equal(webhook.received.length, before + 1);
      assert.equal(supervised.breakerState, 'closed');
    });
  });
}
