/**
 * `portcullis user export EMAIL|ID -o file.json` (issue 15): the person's
 * export in a file only its owner can read (0600, also when it replaces
 * one), valid against the schema, recorded and audited as the CLI's; and
 * its audit part checks offline with `portcullis audit verify --file
 * --key`, while a tampered copy fails.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeEntry } from '../../src/audit/index.ts';
import { loadConfig } from '../../src/config/index.ts';
import { EXPORT_VERSION, privacyExportJsonSchema, type PrivacyExport } from '../../src/privacy/index.ts';
import { openStores } from '../../src/store/index.ts';
import { initDeployment, runCli as run } from '../support/cli.ts';
import { exportValidator } from '../support/privacy-export.ts';

describe('portcullis user export', () => {
  let dir: string;
  let configFile: string;
  let userId: string;
  let logKey: string;
  let file: string;

  before(async () => {
    ({ dir, configFile } = await initDeployment('portcullis-user-export-'));
    const created = await run(['user', 'create', '--config', configFile, '--email', 'erin@example.com', '--password-stdin'], 'quiet orchards in november\n');
    assert.equal(created.code, 0, created.err.join('\n'));
    userId = /\((u_[A-Za-z0-9_-]{22})\)/.exec(created.out[0]!)![1]!;
    assert.equal((await run(['user', 'set-profile', '--config', configFile, userId, '--name', 'Erin Example'])).code, 0);
    const key = await run(['audit', 'key', '--config', configFile]);
    assert.equal(key.code, 0, key.err.join('\n'));
    logKey = key.out[0]!.trim();
    file = join(dir, 'erin.json');
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('writes the export to a 0600 file, by email or by id, replacing a file readable by others', async () => {
    const byEmail = await run(['user', 'export', '--config', configFile, 'erin@example.com', '-o', file]);
    assert.equal(byEmail.code, 0, byEmail.err.join('\n'));
    assert.match(byEmail.out[0]!, /^Wrote the data of erin@example\.com \(u_[A-Za-z0-9_-]{22}\) to .*erin\.json: \d+ audit entries/);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const document = JSON.parse(readFileSync(file, 'utf8')) as PrivacyExport;
    exportValidator(privacyExportJsonSchema(document.issuer))(document);
    assert.equal(document.version, EXPORT_VERSION);
    assert.equal(document.subject.sub, userId);
    assert.equal(document.profile.claims['name'], 'Erin Example');
    assert.ok(document.audit.entries.some((item) => item.entry.type === 'user.created'));

    const other = join(dir, 'replaced.json');
    writeFileSync(other, 'old content\n');
    chmodSync(other, 0o644);
    const byId = await run(['user', 'export', '--config', configFile, userId, '--output', other]);
    assert.equal(byId.code, 0, byId.err.join('\n'));
    assert.equal(statSync(other).mode & 0o777, 0o600, 'a replaced file is owner-only too');
    assert.equal((JSON.parse(readFileSync(other, 'utf8')) as PrivacyExport).subject.sub, userId);
    assert.deepEqual(readdirSync(dir).filter((name) => name.endsWith('.tmp')), [], 'no temporary file left');
  });

  it('is recorded as the person\'s access request and audited as the CLI\'s, naming nobody in the entry', async () => {
    const stores = await openStores(loadConfig({ env: {}, file: configFile }));
    try {
      const size = await stores.durable.auditLog.size();
      const entries = (await stores.durable.auditLog.entries(0, size)).map((row) => decodeEntry(row.entry));
      assert.deepEqual(entries.filter((entry) => entry.type.startsWith('key.')), [], 'an export opens no keyring: no signing key was made');
      const exports = entries.filter((entry) => entry.type === 'privacy.export');
      assert.equal(exports.length, 2);
      for (const entry of exports) {
        assert.equal(entry.service, 'cli');
        assert.equal(entry.detail?.['channel'], 'cli');
        assert.ok(!JSON.stringify(entry).includes('erin@example.com'));
      }
      const requests = (await stores.durable.records.list<{ kind: string; channel: string; outcome?: string }>('privacy_requests')).map((record) => record.data);
      assert.deepEqual(
        requests.map((request) => [request.kind, request.channel, request.outcome]),
        [
          ['access', 'cli', 'fulfilled'],
          ['access', 'cli', 'fulfilled'],
        ],
      );
    } finally {
      await stores.close();
    }
  });

  it('`audit verify --file` passes on the export with the log key, and fails on a tampered copy', async () => {
    const verified = await run(['audit', 'verify', '--file', file, '--key', logKey]);
    assert.equal(verified.code, 0, [...verified.out, ...verified.err].join('\n'));
    assert.match(verified.out.join('\n'), /^OK/m);

    const document = JSON.parse(readFileSync(file, 'utf8')) as PrivacyExport;
    const tampered = (name: string, change: (copy: PrivacyExport) => void) => {
      const copy = structuredClone(document);
      change(copy);
      const path = join(dir, `${name}.json`);
      writeFileSync(path, JSON.stringify(copy));
      return path;
    };
    const created = document.audit.entries.findIndex((item) => item.entry.type === 'user.created');
    const cases = [
      // The entry rewritten, its bytes and its decoded form alike: only the proof can tell.
      tampered('entry', (copy) => {
        const bytes = Buffer.from(copy.audit.entries[created]!.entryBase64, 'base64').toString('utf8').replace('"success"', '"failure"');
        copy.audit.entries[created]!.entryBase64 = Buffer.from(bytes).toString('base64');
        copy.audit.entries[created]!.entry = JSON.parse(bytes) as { type: string; time: string };
      }),
      tampered('entry-shown', (copy) => {
        copy.audit.entries[created]!.entry = { ...copy.audit.entries[created]!.entry, type: 'user.deleted' };
      }),
      tampered('dropped-proof', (copy) => {
        copy.audit.entries[created]!.proof = copy.audit.entries[created]!.proof.slice(1);
      }),
      tampered('index', (copy) => {
        copy.audit.entries[created]!.index += 1;
      }),
      tampered('checkpoint', (copy) => {
        copy.audit.checkpoint = copy.audit.checkpoint.replace(/\n(\d+)\n/, (_line, size: string) => `\n${Number(size) + 1}\n`);
      }),
    ];
    for (const path of cases) {
      const result = await run(['audit', 'verify', '--file', path, '--key', logKey]);
      assert.notEqual(result.code, 0, `${path}: ${result.out.join('\n')}`);
      assert.match(result.out[0] ?? '', /^TAMPERED/, `${path}: ${[...result.out, ...result.err].join('\n')}`);
    }
  });

  it('refuses in one line: an unknown user, no output file, a directory that does not exist; nothing is recorded', async () => {
    const cases: [string[], RegExp][] = [
      [['user', 'export', 'nobody@example.com', '-o', join(dir, 'nobody.json')], /no user nobody@example\.com/],
      [['user', 'export', 'erin@example.com'], /required option '-o, --output <file>'/],
      [['user', 'export', 'erin@example.com', '-o', join(dir, 'missing', 'erin.json')], /cannot write .*missing.*erin\.json \(ENOENT\)/],
    ];
    for (const [args, message] of cases) {
      const result = await run([...args, '--config', configFile]);
      assert.notEqual(result.code, 0, args.join(' '));
      assert.equal(result.err.length, 1, result.err.join(' | '));
      assert.match(result.err[0]!, message);
    }
    const stores = await openStores(loadConfig({ env: {}, file: configFile }));
    try {
      assert.equal((await stores.durable.records.list('privacy_requests')).length, 2, 'no request for the refused exports');
    } finally {
      await stores.close();
    }
  });
});
