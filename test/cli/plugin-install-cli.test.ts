/**
 * `portcullis plugin install | list | enable | disable | remove` on a real
 * deployment (issue 14, "Installation"): a package signed by a trusted key
 * is copied in and pinned by its digest; an unsigned, tampered, untrusted
 * or downgraded package, and a symlink out of the package, are refused and
 * change nothing; a copy changed after installation is not enabled.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { initDeployment, runCli } from '../support/cli.ts';
import { MANIFEST, packageDirectory, tempDirectory } from '../support/plugin-packages.ts';

async function keys(): Promise<{ pub: string; key: string; line: string }> {
  const dir = join(tempDirectory('plugin-keys-'), 'keys');
  const run = await runCli(['plugin', 'keygen', '--out', dir]);
  assert.equal(run.code, 0, run.err.join('\n'));
  const pub = join(dir, 'plugin.pub');
  return { pub, key: join(dir, 'plugin.key'), line: readFileSync(pub, 'utf8').trim().split('\n').at(-1)! };
}

function refusedWith(run: { code: number; err: string[] }, pattern: RegExp): void {
  assert.notEqual(run.code, 0);
  assert.equal(run.err.length, 1, run.err.join('\n'));
  assert.match(run.err[0]!, pattern);
}

describe('portcullis plugin install, list, enable, disable, remove', () => {
  let dir: string;
  let configFile: string;
  let trusted: { pub: string; key: string; line: string };
  let stranger: { pub: string; key: string; line: string };
  const list = async () => (await runCli(['plugin', 'list', '--config', configFile])).out;
  const signed = async (directory: string, key = trusted.key) => {
    const run = await runCli(['plugin', 'sign', directory, '--key', key]);
    assert.equal(run.code, 0, run.err.join('\n'));
    return directory;
  };

  before(async () => {
    trusted = await keys();
    stranger = await keys();
    ({ dir, configFile } = await initDeployment('portcullis-plugin-install-'));
    const config = JSON.parse(readFileSync(configFile, 'utf8')) as Record<string, unknown>;
    writeFileSync(configFile, JSON.stringify({ ...config, plugins: { trustedKeys: [trusted.line] } }));
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses an unsigned, a tampered and an untrusted package, and a symlink out of it; nothing is installed', async () => {
    refusedWith(await runCli(['plugin', 'install', packageDirectory(), '--config', configFile]), /unsigned package/);
    const tampered = await signed(packageDirectory());
    appendFileSync(join(tampered, 'index.js'), '// one more line\n');
    refusedWith(await runCli(['plugin', 'install', tampered, '--config', configFile]), /tampered/);
    refusedWith(await runCli(['plugin', 'install', await signed(packageDirectory(), stranger.key), '--config', configFile]), /untrusted key/);
    const escaping = packageDirectory();
    symlinkSync('/etc/passwd', join(escaping, 'passwd'));
    refusedWith(await runCli(['plugin', 'install', escaping, '--config', configFile]), /symlink/i);
    assert.deepEqual(await list(), ['No plugins installed.']);
  });

  it('installs a signed package disabled, pinned by digest; enable, disable; refuses a downgrade unless asked, and new content under the same version', async () => {
    const v1 = await signed(packageDirectory());
    const installed = await runCli(['plugin', 'install', v1, '--config', configFile]);
    assert.equal(installed.code, 0, installed.err.join('\n'));
    assert.match(installed.out[0]!, /^Installed acme-claims 1\.0\.0 \(digest ([0-9a-f]{64}), signed by [0-9A-F]{16}\); enable it with: portcullis plugin enable acme-claims\.$/);
    const digest = /digest ([0-9a-f]{64})/.exec(installed.out[0]!)![1]!;
    assert.deepEqual(await list(), [`acme-claims  1.0.0  disabled  ${digest}`]);
    // The copy is the installed one: changing the source afterwards changes nothing.
    appendFileSync(join(v1, 'index.js'), '// changed after install\n');
    assert.equal((await runCli(['plugin', 'enable', 'acme-claims', '--config', configFile])).code, 0);
    assert.deepEqual(await list(), [`acme-claims  1.0.0  enabled  ${digest}`]);
    assert.equal((await runCli(['plugin', 'disable', 'acme-claims', '--config', configFile])).code, 0);

    const other = await signed(packageDirectory(MANIFEST, { 'index.js': 'export default { other: true };\n' }));
    refusedWith(await runCli(['plugin', 'install', other, '--config', configFile]), /installed with other content; a changed package needs a new version/);
    const v2 = await signed(packageDirectory({ ...MANIFEST, version: '1.1.0' }));
    assert.equal((await runCli(['plugin', 'install', v2, '--config', configFile])).code, 0);
    refusedWith(await runCli(['plugin', 'install', await signed(packageDirectory()), '--config', configFile]), /1\.1\.0 is installed; 1\.0\.0 is older \(--allow-downgrade/);
    const downgraded = await runCli(['plugin', 'install', await signed(packageDirectory()), '--config', configFile, '--allow-downgrade']);
    assert.equal(downgraded.code, 0, downgraded.err.join('\n'));
    assert.match((await list())[0]!, /^acme-claims {2}1\.0\.0 /);
  });

  it('does not enable a plugin whose installed copy was changed; remove deletes it and its copy', async () => {
    const copies = join(dir, 'data', 'plugins', 'acme-claims');
    const [copy] = readdirSync(copies);
    appendFileSync(join(copies, copy!, 'index.js'), '// changed on disk\n');
    refusedWith(await runCli(['plugin', 'enable', 'acme-claims', '--config', configFile]), /installed copy differs from the signed package/);
    assert.equal((await runCli(['plugin', 'remove', 'acme-claims', '--config', configFile])).code, 0);
    assert.deepEqual(await list(), ['No plugins installed.']);
    assert.equal(existsSync(copies), false);
    refusedWith(await runCli(['plugin', 'enable', 'acme-claims', '--config', configFile]), /no plugin acme-claims is installed/);
  });
});
