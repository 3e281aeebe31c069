/**
 * `portcullis resource …` in-process on a real data directory: create,
 * list, show, delete, each audited; --help; one clear line and a non-zero
 * exit for every mistake, with nothing created. Then the README's "Calling
 * an API: a machine client end to end" (first-hour D5), step by step: the
 * CLI registers the API and the machine client, plain HTTP gets the token,
 * and jose verifies it as the API would (createRemoteJWKSet + jwtVerify:
 * iss, aud, scope) against a real listening server.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { decodeEntry } from '../../src/audit/index.ts';
import { loadConfig } from '../../src/config/index.ts';
import { openStores } from '../../src/store/index.ts';
import { initDeployment, runCli as run } from '../support/cli.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

describe('portcullis resource', () => {
  let dir: string;
  let configFile: string;

  before(async () => {
    ({ dir, configFile } = await initDeployment('portcullis-resource-cli-'));
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('lists nothing at first, and says how to create a resource', async () => {
    const listed = await run(['resource', 'list', '--config', configFile]);
    assert.equal(listed.code, 0);
    assert.deepEqual(listed.out, ['No resources yet: portcullis resource create --uri <uri> --scope <scope>']);
  });

  it('creates, lists, shows and deletes a resource; its scopes are free again once it is deleted', async () => {
    const reports = await run(['client', 'create', '--config', configFile, '--name', 'Reports API', '--grant-type', 'client_credentials', '--json']);
    const rsClient = (JSON.parse(reports.out.join('\n')) as { client_id: string }).client_id;
    const created = await run(['resource', 'create', '--config', configFile, '--uri', 'https://reports.example.com/v1', '--scope', 'reports:read', '--scope', 'reports:write', '--access-token-alg', 'ES256', '--client', rsClient]);
    assert.equal(created.code, 0, created.err.join('\n'));
    assert.equal(created.out[0], 'Created resource https://reports.example.com/v1 with scopes reports:read reports:write.');
    assert.match(created.out[1]!, /portcullis client create .*--scope "reports:read reports:write"/);

    const listed = await run(['resource', 'list', '--config', configFile]);
    assert.deepEqual(listed.out, ['https://reports.example.com/v1  reports:read reports:write  ES256']);
    const shown = await run(['resource', 'show', 'https://reports.example.com/v1', '--json', '--config', configFile]);
    const resource = JSON.parse(shown.out.join('\n')) as Record<string, unknown>;
    assert.deepEqual({ ...resource, createdAt: undefined }, { uri: 'https://reports.example.com/v1', scopes: ['reports:read', 'reports:write'], accessTokenAlg: 'ES256', clients: [rsClient], createdAt: undefined });

    const granted = await run(['client', 'create', '--config', configFile, '--name', 'Reporter', '--grant-type', 'client_credentials', '--scope', 'reports:read']);
    assert.equal(granted.code, 0, 'a resource scope can be granted now');

    const deleted = await run(['resource', 'delete', 'https://reports.example.com/v1', '--config', configFile]);
    assert.deepEqual(deleted.out, ['Deleted resource https://reports.example.com/v1 and its scopes reports:read reports:write.']);
    const refused = await run(['client', 'create', '--config', configFile, '--name', 'Late', '--grant-type', 'client_credentials', '--scope', 'reports:read']);
    assert.notEqual(refused.code, 0, 'its scopes no longer exist');
    const again = await run(['resource', 'create', '--config', configFile, '--uri', 'https://reports.example.com/v2', '--scope', 'reports:read']);
    assert.equal(again.code, 0, again.err.join('\n'));
  });

  it('refuses, in one line and a non-zero exit, every bad request, and creates nothing', async () => {
    assert.equal((await run(['resource', 'create', '--config', configFile, '--uri', 'https://taken.example.com', '--scope', 'taken:read'])).code, 0);
    const before = (await run(['resource', 'list', '--config', configFile])).out;
    const cases: [string[], RegExp][] = [
      [['resource', 'create', '--uri', 'api.example.com', '--scope', 'x:read'], /^portcullis: resource URI api\.example\.com must be an absolute URI \(RFC 8707 section 2\)/],
      [['resource', 'create', '--uri', 'https://api.example.com/#top', '--scope', 'x:read'], /must not contain a fragment/],
      [['resource', 'create', '--uri', 'https://api.example.com'], /^portcullis: a resource needs at least one --scope$/],
      [['resource', 'create', '--uri', 'https://api.example.com', '--scope', 'openid'], /openid is an OpenID Connect scope/],
      [['resource', 'create', '--uri', 'https://api.example.com', '--scope', 'bad"scope'], /is not a scope name/],
      [['resource', 'create', '--uri', 'https://other.example.com', '--scope', 'taken:read'], /^portcullis: scope taken:read already belongs to resource https:\/\/taken\.example\.com; scope names are unique across resources$/],
      [['resource', 'create', '--uri', 'https://taken.example.com', '--scope', 'y:read'], /^portcullis: resource https:\/\/taken\.example\.com already exists$/],
      [['resource', 'create', '--uri', 'https://api.example.com', '--scope', 'x:read', '--client', 'c_nobody'], /^portcullis: no client c_nobody/],
      [['resource', 'create', '--uri', 'https://api.example.com', '--scope', 'x:read', '--access-token-alg', 'HS256'], /argument 'HS256' is invalid\. Allowed choices are EdDSA, ES256, RS256\./],
      [['resource', 'create', '--scope', 'x:read'], /required option '--uri <uri>' not specified/],
      [['resource', 'show', 'https://nothing.example.com'], /^portcullis: no resource https:\/\/nothing\.example\.com \(see portcullis resource list\)$/],
      [['resource', 'delete', 'https://nothing.example.com'], /^portcullis: no resource https:\/\/nothing\.example\.com/],
      [['resource', 'frobnicate'], /unknown command/],
    ];
    for (const [args, message] of cases) {
      const result = await run([...args, '--config', configFile]);
      assert.notEqual(result.code, 0, args.join(' '));
      assert.equal(result.err.length, 1, `${args.join(' ')}: ${result.err.join(' | ')}`);
      assert.match(result.err[0]!, message);
    }
    assert.deepEqual((await run(['resource', 'list', '--config', configFile])).out, before, 'nothing was created');
  });

  it('has --help for each command', async () => {
    for (const command of ['create', 'list', 'show', 'delete']) {
      const help = await run(['resource', command, '--help']);
      assert.equal(help.code, 0);
      assert.match(help.out.join('\n'), new RegExp(`^Usage: portcullis resource ${command}`));
    }
  });

  it('records each change in the audit log, naming the CLI', async () => {
    const stores = await openStores(loadConfig({ env: {}, file: configFile }));
    try {
      const size = await stores.durable.auditLog.size();
      const entries = (await stores.durable.auditLog.entries(0, size)).map((row) => decodeEntry(row.entry)).filter((entry) => entry.type.startsWith('resource.'));
      assert.deepEqual(
        entries.map((entry) => [entry.type, entry.service, entry.detail?.['uri']]),
        [
          ['resource.created', 'admin-cli', 'https://reports.example.com/v1'],
          ['resource.deleted', 'admin-cli', 'https://reports.example.com/v1'],
          ['resource.created', 'admin-cli', 'https://reports.example.com/v2'],
          ['resource.created', 'admin-cli', 'https://taken.example.com'],
        ],
      );
    } finally {
      await stores.close();
    }
  });
});

describe('Calling an API: a machine client end to end (first-hour D5, the README steps)', () => {
  let dir: string;
  let configFile: string;
  let server: TestServer;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'portcullis-d5-'));
    configFile = join(dir, 'portcullis.json');
    writeFileSync(configFile, JSON.stringify({ dataDir: join(dir, 'data'), log: { level: 'silent' } }));
    assert.equal((await run(['init', '--config', configFile])).code, 0);
    assert.equal((await run(['migrate', '--config', configFile])).code, 0);
    server = await startTestServer({ fixedPort: true, overrides: { dataDir: join(dir, 'data') } });
  });
  after(async () => {
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('resource create, client create --scope api:read, the token over HTTP, verified with createRemoteJWKSet + jwtVerify (iss, aud, scope)', async () => {
    // 1. The operator registers the API and its scopes.
    const resource = await run(['resource', 'create', '--uri', 'https://api.example.com', '--scope', 'api:read', '--scope', 'api:write', '--config', configFile]);
    assert.equal(resource.code, 0, resource.err.join('\n'));
    // 2. ... and the machine client, granted api:read.
    const created = await run(['client', 'create', '--name', 'Billing job', '--grant-type', 'client_credentials', '--scope', 'api:read', '--json', '--config', configFile]);
    assert.equal(created.code, 0, created.err.join('\n'));
    const { client_id: clientId, client_secret: clientSecret } = JSON.parse(created.out.join('\n')) as { client_id: string; client_secret: string };

    // 3. The client gets a token (curl -u "$CLIENT_ID:$CLIENT_SECRET" -d grant_type=client_credentials -d scope=api:read .../token).
    const issuer = server.running.authorizationServer.issuer;
    const answer = await fetch(`${issuer}/token`, {
      method: 'POST',
      headers: { authorization: `Basic ${Buffer.from(`${clientId}:${clientSecret}`).toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: 'grant_type=client_credentials&scope=api:read',
    });
    const body = (await answer.json()) as { access_token: string; token_type: string; scope: string };
    assert.equal(answer.status, 200, JSON.stringify(body));
    assert.equal(body.token_type, 'Bearer');
    assert.equal(body.scope, 'api:read');

    // 4. The API verifies it, as the README shows.
    const JWKS = createRemoteJWKSet(new URL(`${issuer}/jwks`));
    const { payload } = await jwtVerify(body.access_token, JWKS, { issuer, audience: 'https://api.example.com', typ: 'at+jwt' });
    assert.ok(String(payload['scope']).split(' ').includes('api:read'));
    assert.equal(payload['client_id'], clientId);

    // What the review hit: a scope the client was not granted, and an API nobody registered.
    const refused = await fetch(`${issuer}/token`, {
      method: 'POST',
      headers: { authorization: `Basic ${Buffer.from(`${clientId}:${clientSecret}`).toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: 'grant_type=client_credentials&scope=api:read&resource=https://payments.internal.example/',
    });
    assert.equal(((await refused.json()) as { error: string }).error, 'invalid_target');
  });
});
