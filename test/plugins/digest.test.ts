import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFileSync, existsSync, linkSync, readdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DIGEST_HEADER, ManifestError, PackageError, digestDirectory, extractTarball, inspectPackage, signaturePath } from '../../src/plugins/index.ts';
import { MANIFEST, packageDirectory, rawTarball, type TarEntry, tempDirectory } from '../support/plugin-packages.ts';

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
const leftovers = () => new Set(readdirSync(tmpdir()).filter((name) => name.startsWith('portcullis-plugin-')));

/** The package of packageDirectory() as tarball entries. */
function packageEntries(manifest: Record<string, unknown> = MANIFEST): TarEntry[] {
  return [
    { path: 'portcullis-plugin.json', body: JSON.stringify(manifest) },
    { path: 'index.js', body: 'export default {};\n' },
    { path: 'lib/', type: '5' },
    { path: 'lib/directory.json', body: '{"alice":{"acme_team":"red"}}\n' },
  ];
}

async function refusesTarball(entries: readonly TarEntry[], pattern: RegExp, limits?: { maxFiles: number; maxBytes: number }): Promise<void> {
  const before = leftovers();
  await assert.rejects(extractTarball(rawTarball(entries), limits), (error: unknown) => error instanceof PackageError && pattern.test(error.message));
  // The temporary directory of a refused tarball is gone.
  assert.deepEqual([...leftovers()].filter((name) => !before.has(name)), []);
}

describe('package digest', () => {
  it('is the SHA-256 of the sorted listing of every file, the manifest included', () => {
    const directory = packageDirectory();
    const files = [
      ['index.js', 'export default {};\n'],
      ['lib/directory.json', '{"alice":{"acme_team":"red"}}\n'],
      ['portcullis-plugin.json', JSON.stringify(MANIFEST)],
    ] as const;
    const listing = DIGEST_HEADER + files.map(([path, text]) => `${sha256(text)} ${Buffer.byteLength(text)} ${path}\n`).join('');
    const result = digestDirectory(directory);
    assert.equal(result.digest, sha256(listing));
    assert.deepEqual(result.files.map((file) => file.path), files.map(([path]) => path));
  });

  it('changes with any byte of any file, a rename, or a new empty file', () => {
    const directory = packageDirectory();
    const original = digestDirectory(directory).digest;
    const seen = new Set([original]);
    appendFileSync(join(directory, 'lib/directory.json'), ' ');
    seen.add(digestDirectory(directory).digest);
    renameSync(join(directory, 'lib/directory.json'), join(directory, 'lib/directory2.json'));
    seen.add(digestDirectory(directory).digest);
    writeFileSync(join(directory, 'empty'), '');
    seen.add(digestDirectory(directory).digest);
    writeFileSync(join(directory, 'portcullis-plugin.json'), JSON.stringify({ ...MANIFEST, hostCalls: ['users.read'] }));
    seen.add(digestDirectory(directory).digest);
    assert.equal(seen.size, 5);
  });

  it('refuses a symlink out of the plugin directory, and any other symlink', () => {
    const outside = packageDirectory();
    symlinkSync('/etc/passwd', join(outside, 'passwd'));
    assert.throws(() => digestDirectory(outside), (error: unknown) => error instanceof PackageError && /refused symlink "passwd"/.test(error.message));
    const escaping = packageDirectory();
    symlinkSync('../../..', join(escaping, 'lib/up'));
    assert.throws(() => digestDirectory(escaping), /refused symlink "lib\/up"/);
    const inside = packageDirectory();
    symlinkSync('index.js', join(inside, 'alias.js'));
    assert.throws(() => digestDirectory(inside), /refused symlink "alias.js"/);
  });

  it('refuses special files and names that could forge a listing line', () => {
    const fifo = packageDirectory();
    execFileSync('mkfifo', [join(fifo, 'pipe')]);
    assert.throws(() => digestDirectory(fifo), /refused "pipe": not a regular file/);
    const newline = packageDirectory();
    writeFileSync(join(newline, 'a\n0000 1 index.js'), '');
    assert.throws(() => digestDirectory(newline), /unlistable character/);
    const backslash = packageDirectory();
    writeFileSync(join(backslash, 'lib\\x.js'), '');
    assert.throws(() => digestDirectory(backslash), /unlistable character/);
  });

  it('counts hard links as the files they are (the content is digested, nothing is followed out)', () => {
    const directory = packageDirectory();
    linkSync(join(directory, 'index.js'), join(directory, 'copy.js'));
    assert.equal(digestDirectory(directory).files.length, 4);
  });

  it('refuses a package past its file count or size', () => {
    const directory = packageDirectory();
    assert.throws(() => digestDirectory(directory, { maxFiles: 2, maxBytes: 1_000_000 }), /more than 2 files/);
    assert.throws(() => digestDirectory(directory, { maxFiles: 100, maxBytes: 40 }), /larger than 40 bytes/);
  });

  it('gives a .tgz the digest of the same directory', async () => {
    const directory = packageDirectory();
    const tarball = rawTarball(packageEntries());
    const fromDirectory = await inspectPackage(directory);
    const fromTarball = await inspectPackage(tarball);
    assert.equal(fromTarball.digest, fromDirectory.digest);
    assert.deepEqual(fromTarball.manifest, fromDirectory.manifest);
    // Leading "./" (tar -C dir .) is the same package.
    const dotted = rawTarball([{ path: './', type: '5' }, ...packageEntries().map((entry) => ({ ...entry, path: `./${entry.path}` }))]);
    assert.equal((await inspectPackage(dotted)).digest, fromDirectory.digest);
  });

  it('refuses tarball entries that are absolute, climb out, link, or are devices', async () => {
    const body = packageEntries();
    await refusesTarball([...body, { path: '/tmp/evil.js', body: 'x' }], /refused absolute path "\/tmp\/evil.js"/);
    await refusesTarball([...body, { path: '../evil.js', body: 'x' }], /"\.\."/);
    await refusesTarball([...body, { path: 'lib/../../evil.js', body: 'x' }], /"\.\."/);
    await refusesTarball([...body, { path: 'passwd', type: '2', linkpath: '/etc/passwd' }], /refused "passwd": a SymbolicLink entry/);
    await refusesTarball([...body, { path: 'up', type: '2', linkpath: '../..' }], /SymbolicLink/);
    await refusesTarball([...body, { path: 'hard', type: '1', linkpath: 'index.js' }], /refused "hard": a Link entry/);
    await refusesTarball([...body, { path: 'tty', type: '3' }], /CharacterDevice/);
    await refusesTarball([...body, { path: 'pipe', type: '6' }], /FIFO/);
    await refusesTarball([...body, { path: 'a\nb', body: 'x' }], /unlistable character/);
  });

  it('refuses a tarball past its file count or declared size', async () => {
    await refusesTarball(packageEntries(), /more than 3 entries/, { maxFiles: 3, maxBytes: 1_000_000 });
    // Refused at the header that declares the size, before its data is read.
    await refusesTarball([...packageEntries(), { path: 'big', body: 'x', size: 2_000_000 }], /larger than 1000000 bytes/, { maxFiles: 100, maxBytes: 1_000_000 });
    // The compressed file itself is bounded too.
    await refusesTarball(packageEntries(), /package file is larger than 80 bytes/, { maxFiles: 100, maxBytes: 40 });
  });

  it('refuses a file that is not a tarball', async () => {
    const file = join(tempDirectory('plugin-tgz-'), 'broken.tgz');
    writeFileSync(file, 'not gzip at all');
    await assert.rejects(inspectPackage(file), (error: unknown) => error instanceof PackageError && /not a readable \.tgz/.test(error.message));
  });

  it('a package needs its manifest, valid, with its entry among the files', async () => {
    const missing = packageDirectory();
    rmSync(join(missing, 'portcullis-plugin.json'));
    await assert.rejects(inspectPackage(missing), /no portcullis-plugin.json at the top/);
    await assert.rejects(inspectPackage(packageDirectory({ ...MANIFEST, entry: 'main.js' })), /entry "main.js" is not a file of the package/);
    await assert.rejects(inspectPackage(packageDirectory({ ...MANIFEST, hooks: ['token.issue'] })), ManifestError);
    await assert.rejects(inspectPackage(join(tmpdir(), 'no-such-package')), /no package at/);
    const notTarball = join(packageDirectory(), 'index.js');
    await assert.rejects(inspectPackage(notTarball), /directory or a \.tgz/);
    assert.equal(existsSync(notTarball), true);
  });

  it('puts the signature beside the package, never inside it (also for "." and a trailing "/")', () => {
    assert.equal(signaturePath('.'), `${process.cwd()}.minisig`);
    assert.equal(signaturePath('/srv/plugins/acme/'), '/srv/plugins/acme.minisig');
    assert.equal(signaturePath('/srv/plugins/acme.tgz'), '/srv/plugins/acme.tgz.minisig');
  });
});
