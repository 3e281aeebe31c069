/**
 * Plugins end to end, as an operator runs them: the real `portcullis`
 * binary (embedded backend) installs and enables the signed
 * directory-claims example (examples/plugins/, trusted by the examples'
 * TEST key in plugins.trustedKeys), `portcullis serve` runs it, `portcullis
 * plugin status` reports it, and a real OpenID Connect client
 * (openid-client, through the sign-in form and consent page) sees its
 * claims. Then, while the server runs: the plugin's process is killed with
 * SIGKILL (restarted, counted, audited; the server answers throughout), and
 * the plugin is disabled from the command line (stopped within the server's
 * registry poll, its claims gone).
 *
 * Every wait is a bounded poll of something observable: the status the
 * server publishes, a process id, the ledger.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import * as oidc from 'openid-client';
import { decodeJwt } from 'jose';
import { parsePublicKey, publicKeyLine } from '../../src/plugins/index.ts';
import { BrowserlessClient } from '../support/browserless-client.ts';
import { initDeployment } from '../support/cli.ts';
import { completeAuthorization } from '../support/oauth-flow.ts';
import { BIN, collectRun, freePort, spawnServe, type BinaryRun, type ServeProcess } from '../support/process.ts';

const EXAMPLES = join(import.meta.dirname, '../../examples/plugins');
const TEST_KEY_LINE = publicKeyLine(parsePublicKey(readFileSync(join(EXAMPLES, 'test-key.pub'), 'utf8')));
const NAMESPACE = 'https://acme.example/';
const ALICE = { email: 'alice@acme.example', password: 'correct horse battery staple 42' };
/** In the company directory (directory.json)? No: an account the plugin finds nothing for. */
const CAROL = { email: 'carol@acme.example', password: 'another fine passphrase 42' };
const REDIRECT = 'http://127.0.0.1:8080/callback';
/** How often a serving instance reads the registry again (PluginHost's default) and publishes its status. */
const POLL_MS = 2000;

interface PublishedStatus {
  readonly instance: string;
  readonly updatedAt: number;
  readonly plugins: readonly { name: string; version: string; digest: string; state: string; breaker: string; pid: number | null; restarts: number; calls: number; failures: number; p50Ms: number | null; p99Ms: number | null }[];
}

const isAlive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw error;
  }
};

const acmeClaims = (claims: Record<string, unknown>) => Object.fromEntries(Object.entries(claims).filter(([name]) => name.startsWith(NAMESPACE)));

describe('the directory-claims example through the real binary: install, enable, serve, status, claims, kill -9, disable', () => {
  let dir: string;
  let configFile: string;
  let serving: ServeProcess | undefined;
  let digest: string;
  let issuer: URL;
  let web: { client_id: string; client_secret: string };
  let batch: { client_id: string; client_secret: string };
  let aliceAccessToken: string;
  let aliceSub: string;

  /** `portcullis ARGS --config FILE`, the real binary, with `input` on its standard input. */
  const portcullis = (args: readonly string[], input?: string): Promise<BinaryRun> => {
    const child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', BIN, ...args, '--config', configFile], { cwd: dir, env: { PATH: process.env['PATH'] ?? '', HOME: dir } });
    const run = collectRun(child, args.join(' '), 30_000);
    child.stdin.end(input ?? '');
    return run;
  };
  const succeeds = async (args: readonly string[], input?: string): Promise<string> => {
    const run = await portcullis(args, input);
    assert.equal(run.code, 0, `portcullis ${args.join(' ')}: ${run.stderr}${run.stdout}`);
    return run.stdout;
  };
  const status = async (): Promise<PublishedStatus[]> => JSON.parse(await succeeds(['plugin', 'status', '--json'])) as PublishedStatus[];
  /** Polls `plugin status --json` until `accept` holds for the one serving instance's entry of the plugin (undefined: not listed). */
  const statusUntil = async (accept: (plugin: PublishedStatus['plugins'][number] | undefined, instance: PublishedStatus | undefined) => boolean, what: string, ms = 20_000) => {
    const deadline = Date.now() + ms;
    let last: PublishedStatus[] = [];
    while (Date.now() < deadline) {
      last = await status();
      const instance = last[0];
      if (last.length <= 1 && accept(instance?.plugins.find((plugin) => plugin.name === 'directory-claims'), instance)) return { instance, plugin: instance?.plugins.find((plugin) => plugin.name === 'directory-claims') };
      await delay(100);
    }
    throw new Error(`plugin status: ${what} did not happen within ${ms} ms; last: ${JSON.stringify(last)}`);
  };
  const ledger = async () =>
    (await succeeds(['audit', 'export']))
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => (JSON.parse(line) as { entry: { type: string; outcome: string; service: string; detail?: Record<string, unknown> } }).entry);
  const config = () => oidc.discovery(issuer, web.client_id, web.client_secret, oidc.ClientSecretBasic(web.client_secret), { execute: [oidc.allowInsecureRequests] });
  const userinfo = async (accessToken: string, sub: string) => oidc.fetchUserInfo(await config(), accessToken, sub);

  /** A code flow for `person` with openid-client (PKCE, state, nonce; ID token checked by the library). */
  const codeFlow = async (person: { email: string; password: string }) => {
    const configuration = await config();
    const verifier = oidc.randomPKCECodeVerifier();
    const state = oidc.randomState();
    const nonce = oidc.randomNonce();
    const url = oidc.buildAuthorizationUrl(configuration, { redirect_uri: REDIRECT, scope: 'openid email', code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', state, nonce });
    const callback = await completeAuthorization(new BrowserlessClient(serving!.url), url, person, { redirectUri: REDIRECT });
    return oidc.authorizationCodeGrant(configuration, callback, { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce });
  };

  before(async () => {
    const port = await freePort();
    ({ dir, configFile } = await initDeployment('portcullis-plugin-serve-', { port, log: { level: 'info' }, plugins: { trustedKeys: [TEST_KEY_LINE], restartBackoffMs: 100 } }));
    const installed = await succeeds(['plugin', 'install', join(EXAMPLES, 'directory-claims')]);
    const match = /^Installed directory-claims 1\.0\.0 \(digest ([0-9a-f]{64}), signed by 4C476354A75A4756\); enable it with: portcullis plugin enable directory-claims\.\n$/.exec(installed);
    assert.ok(match, installed);
    digest = match[1]!;
    assert.equal(await succeeds(['plugin', 'list']), `directory-claims  1.0.0  disabled  ${digest}\n`);
    assert.equal(await succeeds(['plugin', 'enable', 'directory-claims']), 'directory-claims: enabled.\n');
    await succeeds(['resource', 'create', '--uri', 'https://api.acme.example', '--scope', 'api:read']);
    web = JSON.parse(await succeeds(['client', 'create', '--name', 'Acme Portal', '--redirect-uri', REDIRECT, '--scope', 'openid email', '--json'])) as typeof web;
    batch = JSON.parse(await succeeds(['client', 'create', '--name', 'Acme Batch', '--grant-type', 'client_credentials', '--scope', 'api:read', '--json'])) as typeof batch;
    for (const person of [ALICE, CAROL]) assert.match(await succeeds(['user', 'create', '--email', person.email, '--password-stdin'], `${person.password}\n`), new RegExp(`^Created ${person.email.replace('.', '\\.')}`));
    serving = await spawnServe(['--config', configFile], { cwd: dir, env: {} });
    issuer = new URL(serving.url);
  });
  after(async () => {
    if (serving !== undefined) assert.equal(await serving.stop(), 0, 'the server stopped cleanly');
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it('`plugin status` (text and --json) shows the plugin running in the serving instance: breaker closed, no restarts, its process alive', async () => {
    const { instance, plugin } = await statusUntil((entry) => entry?.state === 'running', 'directory-claims running');
    assert.match(instance!.instance, /^[0-9a-f-]{36}$/);
    assert.deepEqual({ ...plugin!, pid: typeof plugin!.pid, calls: typeof plugin!.calls }, { name: 'directory-claims', version: '1.0.0', digest, state: 'running', breaker: 'closed', pid: 'number', restarts: 0, calls: 'number', failures: 0, p50Ms: plugin!.p50Ms, p99Ms: plugin!.p99Ms });
    assert.ok(isAlive(plugin!.pid!), 'the published pid is a live process');
    assert.notEqual(plugin!.pid, serving!.child.pid);
    const text = await succeeds(['plugin', 'status']);
    assert.match(text, new RegExp(`^instance ${instance!.instance} \\(updated \\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z\\)\\n  directory-claims  1\\.0\\.0  running  breaker closed  restarts 0  calls \\d+  failures 0  p50 (-|[\\d.]+ ms)  p99 (-|[\\d.]+ ms)\\n$`));
  });

  it('a code flow for alice@acme.example (in directory.json): the ID token, the access token and UserInfo carry her department and employee id', async () => {
    const tokens = await codeFlow(ALICE);
    const expected = { [`${NAMESPACE}department`]: 'Engineering', [`${NAMESPACE}employee_id`]: 'E-1001' };
    const idToken = tokens.claims()!;
    assert.deepEqual(acmeClaims(idToken), expected, 'ID token');
    aliceAccessToken = tokens.access_token;
    aliceSub = idToken.sub;
    const access = decodeJwt(aliceAccessToken);
    assert.equal(access.sub, aliceSub);
    assert.deepEqual(acmeClaims(access), expected, 'access token');
    assert.deepEqual(await userinfo(aliceAccessToken, aliceSub), { sub: aliceSub, email: ALICE.email, email_verified: false, ...expected });
  });

  it('a code flow for an account not in the directory, and a client_credentials token: none of the claims', async () => {
    const tokens = await codeFlow(CAROL);
    assert.deepEqual(acmeClaims(tokens.claims()!), {});
    assert.deepEqual(acmeClaims(decodeJwt(tokens.access_token)), {});
    assert.deepEqual(acmeClaims(await userinfo(tokens.access_token, tokens.claims()!.sub)), {});
    const service = await oidc.discovery(issuer, batch.client_id, batch.client_secret, oidc.ClientSecretBasic(batch.client_secret), { execute: [oidc.allowInsecureRequests] });
    const granted = await oidc.clientCredentialsGrant(service, { scope: 'api:read' });
    const claims = decodeJwt(granted.access_token);
    assert.equal(claims['client_id'], batch.client_id);
    assert.deepEqual(acmeClaims(claims), {}, 'the client acts for itself: no person to describe');
  });

  it('kill -9 of the plugin\'s process while serving: the server answers throughout; the plugin is restarted (status: restarts 1, a new pid), the crash is in the ledger, the claims are back', { timeout: 60_000 }, async () => {
    const { plugin } = await statusUntil((entry) => entry?.state === 'running', 'directory-claims running');
    const victim = plugin!.pid!;
    process.kill(victim, 'SIGKILL');
    // At once, whatever the plugin's state: the server serves, and UserInfo (onFailure skip) answers.
    assert.equal((await fetch(`${serving!.url}/.well-known/openid-configuration`)).status, 200);
    const during = await userinfo(aliceAccessToken, aliceSub);
    assert.equal(during.sub, aliceSub);
    const restarted = await statusUntil((entry) => entry?.restarts === 1 && entry.state === 'running', 'restarts 1 and running');
    assert.notEqual(restarted.plugin!.pid, victim);
    assert.ok(isAlive(restarted.plugin!.pid!));
    assert.ok(!isAlive(victim), 'the killed process is gone (reaped by the server)');
    assert.equal(restarted.plugin!.breaker, 'closed');
    const crashes = (await ledger()).filter((entry) => entry.type === 'plugin.crashed' && entry.detail?.['plugin'] === 'directory-claims');
    assert.deepEqual(crashes.map((entry) => [entry.outcome, entry.detail?.['reason'], entry.detail?.['restartInMs']]), [['failure', 'the plugin exited (signal SIGKILL)', 100]]);
    assert.deepEqual(acmeClaims(await userinfo(aliceAccessToken, aliceSub)), { [`${NAMESPACE}department`]: 'Engineering', [`${NAMESPACE}employee_id`]: 'E-1001' });
  });

  it('`plugin disable` while serving: the server stops the plugin\'s process within its registry poll; status lists it no more; UserInfo no longer carries the claims', { timeout: 60_000 }, async () => {
    const { plugin } = await statusUntil((entry) => entry?.state === 'running', 'directory-claims running');
    const pid = plugin!.pid!;
    assert.equal(await succeeds(['plugin', 'disable', 'directory-claims']), 'directory-claims: disabled.\n');
    const disabledAt = performance.now();
    while (isAlive(pid) && performance.now() - disabledAt < POLL_MS + 5000) await delay(20);
    const stoppedIn = performance.now() - disabledAt;
    assert.ok(!isAlive(pid), 'the plugin process exited');
    assert.ok(stoppedIn < POLL_MS + 1500, `stopped ${Math.round(stoppedIn)} ms after the disable (poll every ${POLL_MS} ms)`);
    const { instance } = await statusUntil((entry, published) => entry === undefined && published !== undefined, 'directory-claims gone');
    assert.deepEqual(instance!.plugins, []);
    assert.match(await succeeds(['plugin', 'status']), /^instance [0-9a-f-]{36} \(updated [^)]+\)\n  no enabled plugins\n$/);
    assert.equal(await succeeds(['plugin', 'list']), `directory-claims  1.0.0  disabled  ${digest}\n`);
    const pluginEntries = async () => (await ledger()).filter((entry) => entry.type.startsWith('plugin.') && entry.detail?.['plugin'] === 'directory-claims').length;
    const entriesBefore = await pluginEntries();
    const info = await userinfo(aliceAccessToken, aliceSub);
    assert.deepEqual(info, { sub: aliceSub, email: ALICE.email, email_verified: false });
    assert.equal(await pluginEntries(), entriesBefore, 'not a failing plugin skipped: no plugin was called');
    const disabled = (await ledger()).filter((entry) => entry.type === 'plugin.disabled');
    assert.deepEqual(disabled.map((entry) => [entry.service, entry.detail?.['plugin']]), [['admin-cli', 'directory-claims']]);
  });
});
