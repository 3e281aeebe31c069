/**
 * Plugin packages for tests: a valid package directory, and raw tarballs
 * written byte by byte (ustar headers), so a test can put in an archive what
 * no well-behaved tar would: `..`, absolute paths, links, devices.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { digestDirectory, generateSigningKey, parsePublicKey, parseSecretKey, publicKeyLine, signMessage } from '../../src/plugins/index.ts';

const created: string[] = [];
// Every directory these helpers make is removed when the test process ends.
process.on('exit', () => {
  for (const directory of created) rmSync(directory, { recursive: true, force: true });
});

/** A fresh temporary directory, removed when the test process ends. */
export function tempDirectory(prefix: string): string {
  const directory = mkdtempSync(join(tmpdir(), prefix));
  created.push(directory);
  return directory;
}

export const MANIFEST = { name: 'acme-claims', version: '1.0.0', entry: 'index.js', hooks: ['token.claims'], claimsNamespace: 'acme_' };

/** A package directory with a manifest (overridable), an entry and a nested file. */
export function packageDirectory(manifest: Record<string, unknown> = MANIFEST, files: Record<string, string> = {}): string {
  const root = tempDirectory('plugin-test-');
  const directory = join(root, 'acme-claims');
  const all = { 'portcullis-plugin.json': JSON.stringify(manifest), 'index.js': 'export default {};\n', 'lib/directory.json': '{"alice":{"acme_team":"red"}}\n', ...files };
  for (const [path, text] of Object.entries(all)) {
    mkdirSync(dirname(join(directory, path)), { recursive: true });
    writeFileSync(join(directory, path), text);
  }
  return directory;
}

export interface TarEntry {
  readonly path: string;
  /** ustar typeflag: 0 file, 1 hard link, 2 symlink, 3 character device, 5 directory, 6 FIFO. */
  readonly type?: '0' | '1' | '2' | '3' | '5' | '6';
  readonly body?: string;
  readonly linkpath?: string;
  /** The size the header declares (default: the body's). */
  readonly size?: number;
}

function header(entry: TarEntry, size: number): Buffer {
  const block = Buffer.alloc(512);
  const put = (text: string, offset: number, length: number) => block.write(text, offset, Math.min(length, Buffer.byteLength(text)), 'utf8');
  const octal = (value: number, length: number) => value.toString(8).padStart(length - 1, '0');
  put(entry.path, 0, 100);
  put(octal(entry.type === '5' ? 0o755 : 0o644, 8), 100, 8);
  put(octal(0, 8), 108, 8);
  put(octal(0, 8), 116, 8);
  put(octal(size, 12), 124, 12);
  put(octal(1_700_000_000, 12), 136, 12);
  put(entry.type ?? '0', 156, 1);
  put(entry.linkpath ?? '', 157, 100);
  put('ustar\u000000', 257, 8);
  block.fill(' ', 148, 156);
  let sum = 0;
  for (const byte of block) sum += byte;
  put(`${sum.toString(8).padStart(6, '0')}\u0000 `, 148, 8);
  return block;
}

/** A gzipped tarball of `entries`, written to a new temporary file; returns its path. */
export function rawTarball(entries: readonly TarEntry[], name = 'package.tgz'): string {
  const parts: Buffer[] = [];
  for (const entry of entries) {
    const body = Buffer.from(entry.body ?? '');
    parts.push(header(entry, entry.size ?? body.length), body, Buffer.alloc((512 - (body.length % 512)) % 512));
  }
  parts.push(Buffer.alloc(1024));
  const file = join(tempDirectory('plugin-tgz-'), name);
  writeFileSync(file, gzipSync(Buffer.concat(parts)));
  return file;
}

/** A minisign key of the test's own and the packages it signs, in a temporary directory. */
export function pluginSigner(prefix: string): {
  /** The public key line to trust (`plugins.trustedKeys`). */
  readonly trustedKey: string;
  /** A signed package directory (the signature beside it, as `plugin sign` writes it). */
  readonly signedPackage: (name: string, manifest: Record<string, unknown>, source: string, version?: string) => string;
} {
  const keys = generateSigningKey();
  const secret = parseSecretKey(keys.secretKeyPem);
  const root = tempDirectory(prefix);
  return {
    trustedKey: publicKeyLine(parsePublicKey(keys.publicKeyFile)),
    signedPackage: (name, manifest, source, version = '1.0.0') => {
      const directory = join(root, `${name}-${version}`, name);
      mkdirSync(directory, { recursive: true });
      writeFileSync(join(directory, 'portcullis-plugin.json'), JSON.stringify({ name, version, entry: 'index.mjs', ...manifest }));
      writeFileSync(join(directory, 'index.mjs'), source);
      const { digest } = digestDirectory(directory);
      writeFileSync(`${directory}.minisig`, signMessage(Buffer.from(digest, 'latin1'), secret, { trustedComment: `${name} ${version}` }));
      return directory;
    },
  };
}
