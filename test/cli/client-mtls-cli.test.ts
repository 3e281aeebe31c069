/**
 * `portcullis client create` for RFC 8705 clients, in-process on a real data
 * directory: tls_client_auth with its subject name, certificate-bound
 * tokens, and the operator-only `--cert-san` names (repeatable, checked,
 * stored canonical, shown by `client show`); a malformed name is one clear
 * line, exit 1, and creates nothing.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { initDeployment, runCli as run } from '../support/cli.ts';

describe('portcullis client create: mutual TLS and --cert-san', () => {
  let dir: string;
  let configFile: string;

  before(async () => {
    ({ dir, configFile } = await initDeployment('portcullis-client-mtls-cli-'));
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('creates a tls_client_auth service with cert_sans, prints no secret, and shows the names', async () => {
    const created = await run([
      'client', 'create', '--config', configFile,
      '--name', 'Payments worker',
      '--grant-type', 'client_credentials',
      '--auth-method', 'tls_client_auth',
      '--tls-san-uri', 'spiffe://example.org/ns/prod/sa/payments',
      '--certificate-bound-tokens',
      '--cert-san', 'spiffe://example.org/ns/prod/sa/payments',
      '--cert-san', 'dns:Payments.internal.example',
      '--cert-san', 'ip:10.0.0.7',
    ]);
    assert.equal(created.code, 0, created.err.join('\n'));
    const text = created.out.join('\n');
    assert.doesNotMatch(text, /client_secret:/);
    assert.match(text, /TLS client certificate/);
    assert.match(text, /cert_sans: +spiffe:\/\/example\.org\/ns\/prod\/sa\/payments dns:payments\.internal\.example ip:10\.0\.0\.7/);
    const clientId = /client_id: +(c_\S+)/.exec(text)![1]!;

    const shown = await run(['client', 'show', '--config', configFile, clientId, '--json']);
    assert.equal(shown.code, 0, shown.err.join('\n'));
    const view = JSON.parse(shown.out.join('\n')) as Record<string, unknown>;
    assert.equal(view['token_endpoint_auth_method'], 'tls_client_auth');
    assert.equal(view['tls_client_auth_san_uri'], 'spiffe://example.org/ns/prod/sa/payments');
    assert.equal(view['tls_client_certificate_bound_access_tokens'], true);
    assert.deepEqual(view['cert_sans'], ['spiffe://example.org/ns/prod/sa/payments', 'dns:payments.internal.example', 'ip:10.0.0.7']);
    assert.equal(view['has_client_secret'], false);
  });

  it('refuses a malformed --cert-san or a tls_client_auth client without its name: one line, exit 1, nothing created', async () => {
    const before = (await run(['client', 'list', '--config', configFile, '--json'])).out.join('\n');
    for (const args of [
      ['--grant-type', 'client_credentials', '--cert-san', 'spiffe://example.org'],
      ['--grant-type', 'client_credentials', '--cert-san', 'dns:*.example.org'],
      ['--grant-type', 'client_credentials', '--cert-san', 'payments.example.org'],
      ['--grant-type', 'client_credentials', '--auth-method', 'tls_client_auth'],
      ['--grant-type', 'client_credentials', '--auth-method', 'tls_client_auth', '--tls-san-dns', 'a.example.org', '--tls-san-uri', 'spiffe://example.org/a'],
    ]) {
      const refused = await run(['client', 'create', '--config', configFile, '--name', 'Bad', ...args]);
      assert.equal(refused.code, 1, args.join(' '));
      assert.equal(refused.err.length, 1, refused.err.join('\n'));
      assert.match(refused.err[0]!, /invalid_client_metadata/);
    }
    assert.equal((await run(['client', 'list', '--config', configFile, '--json'])).out.join('\n'), before);
  });
});
