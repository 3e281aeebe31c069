/**
 * Security review 5: `portcullis client approve ID`. A client an operator
 * made with `client create` is approved; a self-registered one is not until
 * an operator approves it, audited; `client list` and `client show` say
 * which. A self-managed update that changes its URIs withdraws the approval.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { auditedEvents, decodeEntry, openLedger } from '../../src/audit/index.ts';
import { loadConfig } from '../../src/config/index.ts';
import { ClientRegistry, validateClientMetadata } from '../../src/oauth/index.ts';
import { openStores, systemClock } from '../../src/store/index.ts';
import { KeyVault } from '../../src/crypto/index.ts';
import { initDeployment, runCli as run } from '../support/cli.ts';

describe('portcullis client approve', () => {
  let dir: string;
  let configFile: string;
  let selfRegistered: string;

  /** The deployment's registry, as the server would open it. */
  async function withRegistry<T>(work: (registry: ClientRegistry, auditTypes: () => Promise<{ type: string; detail: Record<string, unknown> | undefined }[]>) => Promise<T>): Promise<T> {
    const config = loadConfig({ env: {}, file: configFile });
    const stores = await openStores(config);
    const vault = KeyVault.load(config);
    const ledger = await openLedger({ log: stores.durable.auditLog, records: stores.durable.records, vault, issuer: config.issuer, clock: systemClock, audit: config.audit });
    try {
      const registry = new ClientRegistry({ records: stores.durable.records, secretKey: vault.derive('client-secrets'), events: auditedEvents(ledger), clock: systemClock, cacheMs: 0 });
      return await work(registry, async () => {
        const size = await stores.durable.auditLog.size();
        return (await stores.durable.auditLog.entries(0, size)).map((row) => decodeEntry(row.entry)).map((entry) => ({ type: entry.type, detail: entry.detail }));
      });
    } finally {
      await ledger.close();
      await stores.close();
    }
  }

  const metadata = (redirect: string) => validateClientMetadata({ client_name: 'Stranger', redirect_uris: [redirect], token_endpoint_auth_method: 'none' }, { allowedScopes: ['openid'], defaultSigningAlgorithm: 'EdDSA' });

  before(async () => {
    ({ dir, configFile } = await initDeployment('portcullis-client-approve-'));
    // As dynamic registration (RFC 7591) stores it: no approval.
    selfRegistered = await withRegistry(async (registry) => (await registry.register(metadata('https://stranger.example/cb'), { actor: 'registration' }, { withRegistrationToken: true })).client.client_id);
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('a client made with client create is approved; a self-registered one is not, and list and show say so', async () => {
    const created = await run(['client', 'create', '--config', configFile, '--name', 'Portal', '--redirect-uri', 'https://portal.example/cb']);
    assert.equal(created.code, 0, created.err.join('\n'));
    const createdId = /client_id: +(c_\S+)/.exec(created.out.join('\n'))![1]!;
    const listed = await run(['client', 'list', '--config', configFile]);
    assert.ok(listed.out.some((line) => line.startsWith(createdId) && line.endsWith('  approved')), listed.out.join('\n'));
    assert.ok(listed.out.some((line) => line.startsWith(selfRegistered) && line.endsWith('  unapproved')), listed.out.join('\n'));
    const shown = await run(['client', 'show', selfRegistered, '--config', configFile]);
    assert.ok(shown.out.includes('approved: false'), shown.out.join('\n'));
    assert.equal(JSON.parse((await run(['client', 'show', createdId, '--json', '--config', configFile])).out.join('\n')).approved, true);
  });

  it('approve marks it approved, audited with the CLI as actor; a second approve changes nothing', async () => {
    const approved = await run(['client', 'approve', selfRegistered, '--config', configFile]);
    assert.equal(approved.code, 0, approved.err.join('\n'));
    assert.match(approved.out[0]!, /^Approved client Stranger \(c_\S+\)\. Its redirect URIs: https:\/\/stranger\.example\/cb$/);
    assert.equal(JSON.parse((await run(['client', 'show', selfRegistered, '--json', '--config', configFile])).out.join('\n')).approved, true);
    const again = await run(['client', 'approve', selfRegistered, '--config', configFile]);
    assert.equal(again.code, 0);
    assert.match(again.out[0]!, /was already approved/);
    await withRegistry(async (_registry, audit) => {
      const approvals = (await audit()).filter((entry) => entry.type === 'client.updated' && entry.detail?.['reason'] === 'approved');
      assert.equal(approvals.length, 1);
    });
  });

  it('approve of an unknown client: one line, exit 1', async () => {
    const result = await run(['client', 'approve', 'c_nobody', '--config', configFile]);
    assert.equal(result.code, 1);
    assert.equal(result.err.length, 1);
    assert.match(result.err[0]!, /no client c_nobody/);
  });

  it('a self-managed update keeps the approval while the URIs stay, and withdraws it when they change', async () => {
    await withRegistry(async (registry, audit) => {
      const same = await registry.update(selfRegistered, { ...metadata('https://stranger.example/cb'), client_name: 'Stranger Two' }, { actor: 'registration' });
      assert.equal(same.client.approved, true);
      const moved = await registry.update(selfRegistered, metadata('https://evil.example/cb'), { actor: 'registration' });
      assert.equal(moved.client.approved, false);
      assert.equal((await audit()).at(-1)?.detail?.['approvalWithdrawn'], true);
    });
  });

  it('--help describes approve', async () => {
    const help = await run(['client', 'approve', '--help']);
    assert.equal(help.code, 0);
    assert.match(help.out.join('\n'), /self-registered/);
  });
});
