import { createPrivateKey } from 'node:crypto';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, readFileSync, renameSync, statSync, writeFileSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { runCli } from '../support/cli.ts';
import { MANIFEST, packageDirectory, rawTarball, tempDirectory } from '../support/plugin-packages.ts';

async function keys(): Promise<{ dir: string; pub: string; key: string }> {
  const dir = join(tempDirectory('plugin-keys-'), 'keys');
  const run = await runCli(['plugin', 'keygen', '--out', dir]);
  assert.equal(run.code, 0, run.err.join('\n'));
  return { dir, pub: join(dir, 'plugin.pub'), key: join(dir, 'plugin.key') };
}

/** Exit non-zero with exactly one line on stderr matching `pattern`. */
function refusedWith(run: { code: number; err: string[] }, pattern: RegExp): void {
  assert.notEqual(run.code, 0);
  assert.equal(run.err.length, 1, run.err.join('\n'));
  assert.match(run.err[0]!, pattern);
}

describe('portcullis plugin keygen | sign | verify', () => {
  it('keygen writes a minisign public key and a 0600 secret key, and refuses to overwrite them', async () => {
    const { dir, pub, key } = await keys();
    assert.match(readFileSync(pub, 'utf8'), /^untrusted comment: minisign public key [0-9A-F]{16}\nRW[A-Za-z0-9+/]{54}\n$/);
    assert.equal(statSync(key).mode & 0o777, 0o600);
    // A PKCS#8 Ed25519 private key Node can load (not just text that looks like one).
    assert.equal(createPrivateKey(readFileSync(key, 'utf8')).asymmetricKeyType, 'ed25519');
    refusedWith(await runCli(['plugin', 'keygen', '--out', dir]), /already exists; left unchanged/);
    refusedWith(await runCli(['plugin', 'keygen']), /required option '--out <dir>'/);
  });

  it('signs a directory and a .tgz beside them, and verifies both', async () => {
    const { pub, key } = await keys();
    const directory = packageDirectory();
    const signed = await runCli(['plugin', 'sign', directory, '--key', key]);
    assert.equal(signed.code, 0, signed.err.join('\n'));
    assert.match(signed.out[0]!, /^Signed acme-claims 1\.0\.0: digest [0-9a-f]{64}, 3 files; wrote .*acme-claims\.minisig\.$/);
    const verified = await runCli(['plugin', 'verify', directory, '--pub', pub]);
    assert.equal(verified.code, 0, verified.err.join('\n'));
    assert.match(verified.out[0]!, /^Good signature: acme-claims 1\.0\.0, digest [0-9a-f]{64}, key [0-9A-F]{16}; trusted comment: timestamp:\d+\tfile:acme-claims\tdigest:[0-9a-f]{64}$/);

    const tarball = rawTarball([
      { path: 'portcullis-plugin.json', body: JSON.stringify(MANIFEST) },
      { path: 'index.js', body: 'export default {};\n' },
    ]);
    assert.equal((await runCli(['plugin', 'sign', tarball, '--key', key])).code, 0);
    assert.match(readFileSync(`${tarball}.minisig`, 'utf8'), /^untrusted comment: .*\nRW[A-Za-z0-9+/=]+\ntrusted comment: .*\n[A-Za-z0-9+/=]{88}\n$/);
    assert.equal((await runCli(['plugin', 'verify', tarball, '--pub', pub])).code, 0);
  });

  it('verify refuses a tampered package, an unsigned one, another key and a changed trusted comment, each with one line', async () => {
    const { pub, key } = await keys();
    const other = await keys();
    const directory = packageDirectory();
    assert.equal((await runCli(['plugin', 'sign', directory, '--key', key])).code, 0);
    refusedWith(await runCli(['plugin', 'verify', directory, '--pub', other.pub]), /^portcullis: signed by key [0-9A-F]{16}, not by [0-9A-F]{16}$/);
    const signature = `${directory}.minisig`;
    const original = readFileSync(signature, 'utf8');
    writeFileSync(signature, original.replace('timestamp:', 'timestamp:1'));
    refusedWith(await runCli(['plugin', 'verify', directory, '--pub', pub]), /global signature does not match/);
    writeFileSync(signature, original);
    appendFileSync(join(directory, 'lib/directory.json'), ' ');
    refusedWith(await runCli(['plugin', 'verify', directory, '--pub', pub]), /^portcullis: the signature does not match/);
    refusedWith(await runCli(['plugin', 'verify', packageDirectory(), '--pub', pub]), /^portcullis: unsigned package: no signature at /);
  });

  it('refuses to sign or verify a package with a symlink out of it, or an invalid manifest', async () => {
    const { pub, key } = await keys();
    const escaping = packageDirectory();
    symlinkSync('/etc/passwd', join(escaping, 'passwd'));
    refusedWith(await runCli(['plugin', 'sign', escaping, '--key', key]), /^portcullis: refused symlink "passwd"/);
    refusedWith(await runCli(['plugin', 'verify', escaping, '--pub', pub]), /^portcullis: refused symlink "passwd"/);
    refusedWith(await runCli(['plugin', 'sign', packageDirectory({ ...MANIFEST, hooks: ['login.before'], onFailure: { 'login.before': 'skip' } }), '--key', key]), /onFailure\.login\.before: "skip" is allowed only for claims hooks/);
    refusedWith(await runCli(['plugin', 'sign', rawTarball([{ path: '../evil', body: 'x' }]), '--key', key]), /"\.\."/);
  });

  it('refuses bad keys and missing files with one line', async () => {
    const { pub, key } = await keys();
    const directory = packageDirectory();
    refusedWith(await runCli(['plugin', 'sign', directory, '--key', pub]), /not a PKCS#8 PEM/);
    refusedWith(await runCli(['plugin', 'sign', directory, '--key', '/nonexistent/plugin.key']), /cannot read the secret key/);
    refusedWith(await runCli(['plugin', 'verify', directory, '--pub', key]), /^portcullis: .*public key/);
    refusedWith(await runCli(['plugin', 'verify', directory, '--pub', '/nonexistent/plugin.pub']), /cannot read the public key/);
    refusedWith(await runCli(['plugin', 'sign', '/nonexistent/package', '--key', key]), /no package at/);
    const newline = `${packageDirectory()}\nforged`;
    renameSync(newline.split('\n')[0]!, newline);
    refusedWith(await runCli(['plugin', 'sign', newline, '--key', key]), /^portcullis: a comment must be one line$/);
    refusedWith(await runCli(['plugin', 'sign', directory]), /required option '--key <file>'/);
    refusedWith(await runCli(['plugin', 'verify', '--pub', pub]), /missing required argument 'package'/);
  });

  it('every command has --help', async () => {
    for (const command of [['plugin'], ['plugin', 'keygen'], ['plugin', 'sign'], ['plugin', 'verify']]) {
      const run = await runCli([...command, '--help']);
      assert.equal(run.code, 0);
      assert.match(run.out.join('\n'), /^Usage: portcullis plugin/);
    }
  });
});
