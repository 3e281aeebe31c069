/**
 * The package digest: one SHA-256 that names every byte of a plugin package.
 *
 * It is the SHA-256 of a canonical listing, a header line then one line per
 * regular file, sorted by the bytes of its UTF-8 path:
 *
 *     portcullis-plugin-digest/v1\n
 *     <sha256 of the file, hex> <size in bytes> <path relative to the package, "/"-separated>\n
 *
 * Every file counts, the manifest included, so a signature over the digest
 * covers what the plugin is and what it may do. Only regular files and
 * directories may be in a package: a symlink (which could point out of the
 * package), a hard link, a device, a FIFO or a socket is refused, as is a
 * name that could not be listed unambiguously. A `.tgz` is extracted under
 * the same rules into a fresh temporary directory and digested there.
 */
import { createHash } from 'node:crypto';
import { closeSync, constants, createReadStream, fstatSync, lstatSync, mkdtempSync, openSync, readSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Unpack } from 'tar';

export const DIGEST_HEADER = 'portcullis-plugin-digest/v1\n';

export interface PackageLimits {
  /** Regular files in the package, at most. */
  readonly maxFiles: number;
  /** Bytes of all files together, at most. */
  readonly maxBytes: number;
}

export const DEFAULT_PACKAGE_LIMITS: PackageLimits = { maxFiles: 10_000, maxBytes: 64 * 1024 * 1024 };

export interface PackageFile {
  readonly path: string;
  readonly size: number;
  readonly sha256: string;
}

export interface PackageDigest {
  /** SHA-256 of the listing, lowercase hex. */
  readonly digest: string;
  /** The files, in listing order. */
  readonly files: readonly PackageFile[];
}

export class PackageError extends Error {
  override readonly name = 'PackageError';
}

/**
 * A path segment the listing can carry unambiguously: not empty, not `.` or
 * `..`, no `/` or `\`, no control character (a newline would forge a line),
 * no U+FFFD (a name that was not UTF-8).
 */
function checkSegment(segment: string, path: string): void {
   
  if (segment === '' || segment === '.' || segment === '..' || /[\\\u0000-\u001f\u007f\ufffd]/.test(segment)) {
    throw new PackageError(`refused path ${JSON.stringify(path.slice(0, 200))}: empty, ".", ".." or an unlistable character in a name`);
  }
}

function hashFile(absolute: string, relative: string): { size: number; sha256: string } {
  // O_NOFOLLOW: a file swapped for a symlink after the walk is refused, not followed.
  let fd: number;
  try {
    fd = openSync(absolute, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ELOOP') throw new PackageError(`refused symlink ${JSON.stringify(relative)}`);
    throw error;
  }
  try {
    if (!fstatSync(fd).isFile()) throw new PackageError(`refused ${JSON.stringify(relative)}: not a regular file`);
    const hash = createHash('sha256');
    const buffer = Buffer.allocUnsafe(64 * 1024);
    let size = 0;
    for (let read = readSync(fd, buffer); read > 0; read = readSync(fd, buffer)) {
      hash.update(buffer.subarray(0, read));
      size += read;
    }
    return { size, sha256: hash.digest('hex') };
  } finally {
    closeSync(fd);
  }
}

/** Digests a package directory (see the module comment for the listing). */
export function digestDirectory(root: string, limits: PackageLimits = DEFAULT_PACKAGE_LIMITS): PackageDigest {
  if (!lstatSync(root).isDirectory()) throw new PackageError('a plugin package is a directory or a .tgz of one');
  const files: PackageFile[] = [];
  let total = 0;
  const walk = (directory: string, prefix: string): void => {
    for (const entry of readdirSync(directory, { withFileTypes: true })) {
      const relative = prefix === '' ? entry.name : `${prefix}/${entry.name}`;
      checkSegment(entry.name, relative);
      const absolute = join(directory, entry.name);
      const stats = lstatSync(absolute);
      if (stats.isSymbolicLink()) throw new PackageError(`refused symlink ${JSON.stringify(relative)}: a package holds only regular files and directories`);
      if (stats.isDirectory()) {
        walk(absolute, relative);
        continue;
      }
      if (!stats.isFile()) throw new PackageError(`refused ${JSON.stringify(relative)}: not a regular file (device, FIFO or socket)`);
      if (files.length + 1 > limits.maxFiles) throw new PackageError(`the package has more than ${limits.maxFiles} files`);
      const { size, sha256 } = hashFile(absolute, relative);
      total += size;
      if (total > limits.maxBytes) throw new PackageError(`the package is larger than ${limits.maxBytes} bytes`);
      files.push({ path: relative, size, sha256 });
    }
  };
  walk(root, '');
  files.sort((a, b) => Buffer.compare(Buffer.from(a.path), Buffer.from(b.path)));
  const listing = DIGEST_HEADER + files.map((file) => `${file.sha256} ${file.size} ${file.path}\n`).join('');
  return { digest: createHash('sha256').update(listing).digest('hex'), files };
}

/** Tar entry types a package may hold; everything else (links, devices, FIFOs) is refused. */
const ACCEPTED_TYPES = new Set(['File', 'OldFile', 'ContiguousFile', 'Directory']);

/** The problem with one tar entry, or undefined when it may be extracted. */
function tarEntryProblem(path: string, type: string): string | undefined {
  const shown = JSON.stringify(path.slice(0, 200));
  if (!ACCEPTED_TYPES.has(type)) return `refused ${shown}: a ${type} entry (a package holds only regular files and directories)`;
  if (path.startsWith('/') || /^[A-Za-z]:/.test(path)) return `refused absolute path ${shown}`;
  const relative = path.replace(/^(\.\/)+/, '').replace(/\/$/, '');
  // The package root itself (`./` from `tar -C dir .`).
  if ((relative === '' || relative === '.') && type === 'Directory') return undefined;
  const segments = relative.split('/');
  if (segments.includes('..')) return `refused path ${shown}: it contains ".."`;
  try {
    for (const segment of segments) checkSegment(segment, path);
  } catch (error) {
    return (error as Error).message;
  }
  return undefined;
}

/**
 * Extracts a `.tgz` into a new private temporary directory and returns it;
 * the caller removes it. Every entry is checked before anything of it is
 * written (type, path, running entry count and size), the first refusal
 * stops the extraction at once (no reading on through a gzip bomb), and any
 * refusal removes the directory and throws. The compressed file may be at
 * most twice `maxBytes`, and tar's own decompression-ratio guard stays on.
 */
export async function extractTarball(file: string, limits: PackageLimits = DEFAULT_PACKAGE_LIMITS): Promise<string> {
  const size = statSync(file).size;
  if (size > 2 * limits.maxBytes) throw new PackageError(`the package file is larger than ${2 * limits.maxBytes} bytes`);
  const directory = mkdtempSync(join(tmpdir(), 'portcullis-plugin-'));
  let entries = 0;
  let total = 0;
  const unpack: Unpack = new Unpack({
    cwd: directory,
    strict: true,
    preservePaths: false,
    preserveOwner: false,
    filter: (path, entry) => {
      const type = 'type' in entry ? entry.type : 'File';
      let problem = tarEntryProblem(path, type);
      if (problem === undefined) {
        entries += 1;
        total += type === 'Directory' ? 0 : entry.size;
        if (entries > limits.maxFiles) problem = `the package has more than ${limits.maxFiles} entries`;
        else if (total > limits.maxBytes) problem = `the package is larger than ${limits.maxBytes} bytes`;
      }
      if (problem !== undefined) unpack.abort(new PackageError(problem));
      return problem === undefined;
    },
  });
  try {
    await new Promise<void>((resolve, reject) => {
      const source = createReadStream(file);
      source.on('error', reject);
      unpack.on('error', (error: Error) => {
        source.destroy();
        reject(error);
      });
      unpack.on('close', () => resolve());
      source.pipe(unpack);
    });
    return directory;
  } catch (error) {
    rmSync(directory, { recursive: true, force: true });
    if (error instanceof PackageError) throw new PackageError(error.message);
    throw new PackageError(`not a readable .tgz: ${(error as Error).message.slice(0, 200)}`);
  }
}
