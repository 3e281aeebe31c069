/**
 * `portcullis client …` in-process, on a real data directory: create
 * (confidential, public native, private_key_jwt), list, show, rotate-secret,
 * delete; the secret printed once and stored only as its keyed hash; every
 * change audited without the secret; one clear line and a non-zero exit for
 * every mistake; --help on every subcommand.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { auditedEvents, decodeEntry, openLedger } from '../../src/audit/index.ts';
import { initDeployment, runCli as run } from '../support/cli.ts';
import { loadConfig } from '../../src/config/index.ts';
import { ClientRegistry, type OAuthClient } from '../../src/oauth/clients.ts';
import { openStores, systemClock } from '../../src/store/index.ts';
import { KeyVault } from '../../src/crypto/index.ts';

const SECRET_LINE = /^ {2}client_secret: ([A-Za-z0-9_-]{43})$/;

describe('portcullis client', () => {
  let dir: string;
  let configFile: string;
  /** Every secret the CLI printed. */
  const printed: string[] = [];

  /** Opens the deployment's stores as the server would, to look behind the CLI. */
  async function inspect<T>(work: (tools: { registry: ClientRegistry; raw: (id: string) => Promise<string>; auditTexts: () => Promise<string[]> }) => Promise<T>): Promise<T> {
    const config = loadConfig({ env: {}, file: configFile });
    const stores = await openStores(config);
    const vault = KeyVault.load(config);
    const ledger = await openLedger({ log: stores.durable.auditLog, records: stores.durable.records, vault, issuer: config.issuer, clock: systemClock, audit: config.audit });
    try {
      const registry = new ClientRegistry({ records: stores.durable.records, secretKey: vault.derive('client-secrets'), events: auditedEvents(ledger), clock: systemClock });
      return await work({
        registry,
        raw: async (id) => JSON.stringify(await stores.durable.records.get('oauth_clients', id)),
        auditTexts: async () => {
          const size = await stores.durable.auditLog.size();
          return (await stores.durable.auditLog.entries(0, size)).map((row) => new TextDecoder().decode(row.entry));
        },
      });
    } finally {
      await ledger.close();
      await stores.close();
    }
  }

  before(async () => {
    ({ dir, configFile } = await initDeployment('portcullis-client-cli-'));
    // API scopes are scopes of a registered resource (they were oauth.extraScopes).
    assert.equal((await run(['resource', 'create', '--config', configFile, '--uri', 'https://orders.example.com/api', '--scope', 'orders:read'])).code, 0);
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('lists nothing at first, and says how to create a client', async () => {
    const listed = await run(['client', 'list', '--config', configFile]);
    assert.equal(listed.code, 0, listed.err.join('\n'));
    assert.match(listed.out[0]!, /^No clients yet: portcullis client create/);
  });

  it('creates a confidential client, prints its secret once, and keeps only the keyed hash', async () => {
    const created = await run([
      'client', 'create', '--config', configFile,
      '--name', 'Orders Portal',
      '--redirect-uri', 'https://orders.example.com/callback',
      '--redirect-uri', 'http://127.0.0.1:8080/callback',
      '--grant-type', 'authorization_code', '--grant-type', 'refresh_token',
      '--scope', 'openid profile orders:read',
    ]);
    assert.equal(created.code, 0, created.err.join('\n'));
    assert.match(created.out[0]!, /^Created client Orders Portal \(c_[A-Za-z0-9_-]{22}\)\.$/);
    const clientId = /client_id: +(c_\S+)/.exec(created.out.join('\n'))![1]!;
    const secret = created.out.map((line) => SECRET_LINE.exec(line)?.[1]).find((value) => value !== undefined)!;
    assert.ok(secret, created.out.join('\n'));
    printed.push(secret);
    assert.equal(created.out.filter((line) => line.includes(secret)).length, 1, 'printed exactly once');
    assert.ok(created.out.some((line) => /shown only this once/.test(line)));

    await inspect(async ({ registry, raw }) => {
      const client = (await registry.get(clientId))!;
      assert.deepEqual(client.redirect_uris, ['https://orders.example.com/callback', 'http://127.0.0.1:8080/callback']);
      assert.deepEqual(client.grant_types, ['authorization_code', 'refresh_token']);
      assert.equal(client.scope, 'openid profile orders:read');
      assert.equal(client.token_endpoint_auth_method, 'client_secret_basic');
      assert.equal(registry.verifySecret(client, secret), true);
      assert.ok(!(await raw(clientId)).includes(secret), 'the stored record does not contain the secret');
    });

    const shown = await run(['client', 'show', clientId, '--config', configFile]);
    assert.equal(shown.code, 0, shown.err.join('\n'));
    assert.ok(shown.out.includes(`client_id: ${clientId}`));
    assert.ok(shown.out.includes('token_endpoint_auth_method: client_secret_basic'));
    assert.ok(shown.out.some((line) => /^client_secret: set/.test(line)));
    const shownJson = await run(['client', 'show', clientId, '--json', '--config', configFile]);
    const view = JSON.parse(shownJson.out.join('\n'));
    assert.equal(view.client_id, clientId);
    assert.equal(view.has_client_secret, true);
    for (const output of [shown, shownJson]) {
      const text = JSON.stringify(output);
      assert.ok(!text.includes(secret), 'show never prints the secret');
      assert.ok(!/secretHash|[0-9a-f]{64}/.test(text), 'nor its hash');
      assert.ok(!text.includes('version'));
    }

    const listed = await run(['client', 'list', '--config', configFile]);
    assert.ok(listed.out.includes(`${clientId}  Orders Portal  client_secret_basic  authorization_code,refresh_token  approved`), listed.out.join('\n'));
    assert.ok(!JSON.stringify(listed).includes(secret));
  });

  it('creates a public native client and a private_key_jwt service, neither with a secret', async () => {
    const native = await run(['client', 'create', '--config', configFile, '--name', 'Phone App', '--public', '--native', '--redirect-uri', 'com.example.phone:/oauth2redirect']);
    assert.equal(native.code, 0, native.err.join('\n'));
    assert.ok(!native.out.some((line) => /client_secret/.test(line)));
    assert.ok(native.out.some((line) => /public client: no secret; it must use PKCE/.test(line)));

    const jwkFile = join(dir, 'service.jwk.json');
    writeFileSync(jwkFile, JSON.stringify(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' })));
    const service = await run(['client', 'create', '--config', configFile, '--name', 'Billing', '--grant-type', 'client_credentials', '--auth-method', 'private_key_jwt', '--jwks-file', jwkFile, '--scope', 'orders:read', '--json']);
    assert.equal(service.code, 0, service.err.join('\n'));
    const response = JSON.parse(service.out.join('\n'));
    assert.match(response.client_id, /^c_/);
    assert.equal(response.client_secret, undefined);
    assert.equal(response.token_endpoint_auth_method, 'private_key_jwt');
    assert.deepEqual(response.redirect_uris, []);
    assert.equal(response.jwks.keys[0].kty, 'EC');
    assert.equal(typeof response.client_id_issued_at, 'number');
  });

  it('--json create prints the RFC 7591 response with the secret, once', async () => {
    const created = await run(['client', 'create', '--config', configFile, '--name', 'Reports', '--grant-type', 'client_credentials', '--auth-method', 'client_secret_post', '--scope', 'orders:read', '--json']);
    assert.equal(created.code, 0, created.err.join('\n'));
    const response = JSON.parse(created.out.join('\n'));
    assert.match(response.client_secret, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(response.client_secret_expires_at, 0);
    assert.equal(response.secretHash, undefined);
    assert.equal(response.version, undefined);
    printed.push(response.client_secret);
    await inspect(async ({ registry }) => {
      assert.equal(registry.verifySecret((await registry.get(response.client_id))!, response.client_secret), true);
    });
  });

  it('rotate-secret prints a new secret once; the old one stops working', async () => {
    const created = await run(['client', 'create', '--config', configFile, '--name', 'Rotator', '--redirect-uri', 'https://rotator.example.com/cb', '--json']);
    const { client_id: clientId, client_secret: oldSecret } = JSON.parse(created.out.join('\n')) as { client_id: string; client_secret: string };
    const rotated = await run(['client', 'rotate-secret', clientId, '--config', configFile]);
    assert.equal(rotated.code, 0, rotated.err.join('\n'));
    assert.match(rotated.out[0]!, /^New secret for client Rotator \(c_\S+\); the old one no longer works\.$/);
    const newSecret = rotated.out.map((line) => SECRET_LINE.exec(line)?.[1]).find((value) => value !== undefined)!;
    assert.ok(newSecret);
    assert.notEqual(newSecret, oldSecret);
    printed.push(oldSecret, newSecret);
    await inspect(async ({ registry, raw }) => {
      const client = (await registry.get(clientId))!;
      assert.equal(registry.verifySecret(client, newSecret), true);
      assert.equal(registry.verifySecret(client, oldSecret), false);
      assert.ok(!(await raw(clientId)).includes(newSecret));
    });
  });

  it('delete removes the client; show and delete then say there is no such client', async () => {
    const created = await run(['client', 'create', '--config', configFile, '--name', 'Doomed', '--public', '--redirect-uri', 'http://[::1]:3000/cb', '--json']);
    const { client_id: clientId } = JSON.parse(created.out.join('\n')) as { client_id: string };
    const deleted = await run(['client', 'delete', clientId, '--config', configFile]);
    assert.equal(deleted.code, 0, deleted.err.join('\n'));
    assert.deepEqual(deleted.out, [`Deleted client Doomed (${clientId}).`]);
    for (const command of ['show', 'delete', 'rotate-secret']) {
      const again = await run(['client', command, clientId, '--config', configFile]);
      assert.equal(again.code, 1);
      assert.deepEqual(again.err, [`portcullis: no client ${clientId}`]);
    }
  });

  it('refuses, in one line and a non-zero exit, every bad request, and creates nothing', async () => {
    const before = (await run(['client', 'list', '--json', '--config', configFile])).out.join('\n');
    const privateJwk = join(dir, 'private.jwk.json');
    writeFileSync(privateJwk, JSON.stringify(generateKeyPairSync('ed25519').privateKey.export({ format: 'jwk' })));
    const notJson = join(dir, 'not.json');
    writeFileSync(notJson, 'hello');
    const publicId = JSON.parse((await run(['client', 'list', '--json', '--config', configFile])).out.join('\n')).find((client: OAuthClient) => client.token_endpoint_auth_method === 'none').client_id as string;
    const cases: [string[], RegExp][] = [
      [['client', 'create', '--name', 'X', '--redirect-uri', 'http://app.example.com/cb'], /^portcullis: client refused \(invalid_redirect_uri\): redirect_uris\[0\]: must use https/],
      [['client', 'create', '--name', 'X', '--redirect-uri', 'https://*.example.com/cb'], /wildcards are not allowed/],
      [['client', 'create', '--name', 'X', '--redirect-uri', 'https://app.example.com/cb#top'], /fragment/],
      [['client', 'create', '--name', 'X', '--redirect-uri', 'https://user@app.example.com/cb'], /userinfo/],
      [['client', 'create', '--name', 'X'], /at least one redirect URI/],
      [['client', 'create', '--name', 'X', '--public', '--grant-type', 'client_credentials'], /invalid_client_metadata.*confidential client/],
      [['client', 'create', '--name', 'X', '--grant-type', 'implicit', '--redirect-uri', 'https://app.example.com/cb'], /implicit grant is not supported/],
      [['client', 'create', '--name', 'X', '--grant-type', 'refresh_token', '--grant-type', 'client_credentials'], /refresh_token needs authorization_code/],
      [['client', 'create', '--name', 'X', '--redirect-uri', 'https://app.example.com/cb', '--scope', 'openid admin'], /"admin" is not offered.*portcullis resource create --uri/],
      [['client', 'create', '--name', 'X', '--redirect-uri', 'https://app.example.com/cb', '--public', '--auth-method', 'client_secret_basic'], /--public and --auth-method client_secret_basic contradict/],
      [['client', 'create', '--name', 'X', '--redirect-uri', 'https://app.example.com/cb', '--auth-method', 'magic'], /argument 'magic' is invalid/],
      [['client', 'create', '--name', 'X', '--redirect-uri', 'https://app.example.com/cb', '--auth-method', 'private_key_jwt'], /needs jwks/],
      [['client', 'create', '--name', 'X', '--redirect-uri', 'https://app.example.com/cb', '--auth-method', 'private_key_jwt', '--jwks-file', privateJwk], /private key material/],
      [['client', 'create', '--name', 'X', '--redirect-uri', 'https://app.example.com/cb', '--auth-method', 'private_key_jwt', '--jwks-file', join(dir, 'missing.json')], /cannot read --jwks-file .*missing\.json \(ENOENT\)/],
      [['client', 'create', '--name', 'X', '--redirect-uri', 'https://app.example.com/cb', '--auth-method', 'private_key_jwt', '--jwks-file', notJson], /is not JSON/],
      [['client', 'create', '--redirect-uri', 'https://app.example.com/cb'], /required option '--name/],
      [['client', 'show', 'c_nobody'], /^portcullis: no client c_nobody$/],
      [['client', 'rotate-secret', publicId], /authenticates with none; it has no secret to rotate/],
      [['client', 'show'], /missing required argument/],
      [['client', 'frobnicate'], /unknown command/],
    ];
    for (const [args, message] of cases) {
      const result = await run([...args, '--config', configFile]);
      assert.notEqual(result.code, 0, args.join(' '));
      assert.equal(result.err.length, 1, `${args.join(' ')}: ${result.err.join(' | ')}`);
      assert.match(result.err[0]!, message, args.join(' '));
      assert.ok(!result.err[0]!.includes('\n    at '), 'no stack trace');
    }
    assert.equal((await run(['client', 'list', '--json', '--config', configFile])).out.join('\n'), before, 'nothing was created');
  });

  it('--help on every subcommand', async () => {
    for (const [command, mention] of [
      [[], /create.*\n(.*\n)*.*list/],
      [['create'], /secret, printed\s+once[\s\S]*--redirect-uri <uri>[\s\S]*--public[\s\S]*--jwks-file/],
      [['list'], /List clients/],
      [['show'], /never its secret/],
      [['delete'], /Delete a client/],
      [['rotate-secret'], /old secret stops\s+working/],
    ] as const) {
      const result = await run(['client', ...command, '--help']);
      assert.equal(result.code, 0, command.join(' '));
      assert.match(result.out.join('\n'), mention, command.join(' '));
    }
  });

  it('audited every change, naming the CLI as the actor and carrying no secret', async () => {
    await inspect(async ({ auditTexts }) => {
      const texts = await auditTexts();
      const entries = texts.map((text) => decodeEntry(new TextEncoder().encode(text)));
      const clientEntries = entries.filter((entry) => entry.type.startsWith('client.'));
      assert.deepEqual([...new Set(clientEntries.map((entry) => entry.type))].sort(), ['client.deleted', 'client.registered', 'client.updated']);
      for (const entry of clientEntries) assert.equal(entry.service, 'admin-cli');
      assert.ok(printed.length >= 4);
      for (const text of texts) for (const secret of printed) assert.ok(!text.includes(secret), 'no secret in the audit log');
    });
  });
});
