/**
 * A plugin package as the host sees it before trusting it: its digest, its
 * files and its validated manifest. A directory is read in place; a `.tgz`
 * is extracted into a temporary directory that is removed afterwards.
 */
import { createHash } from 'node:crypto';
import { lstatSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { DEFAULT_PACKAGE_LIMITS, PackageError, digestDirectory, extractTarball, type PackageDigest, type PackageLimits } from './digest.ts';
import { MANIFEST_FILE, parseManifestText, type PluginManifest } from './manifest.ts';

export interface PluginPackage extends PackageDigest {
  readonly manifest: PluginManifest;
}

/** Whether `path` names a tarball (by its name), rather than a package directory. */
export const isTarball = (path: string): boolean => /\.(tgz|tar\.gz)$/.test(path);

/**
 * The signature file that goes beside a package: `<package>.minisig`, from
 * the resolved path (so `.` signs into `../<dir>.minisig`, never inside the package).
 */
export const signaturePath = (packagePath: string): string => `${resolve(packagePath)}.minisig`;

function inspectDirectory(directory: string, limits: PackageLimits): PluginPackage {
  // The manifest is read first and matched against the digested listing, so
  // the manifest returned is the one the digest (and signature) covers.
  let text: Buffer;
  try {
    text = readFileSync(join(directory, MANIFEST_FILE));
  } catch {
    throw new PackageError(`no ${MANIFEST_FILE} at the top of the package`);
  }
  const digest = digestDirectory(directory, limits);
  const listed = digest.files.find((file) => file.path === MANIFEST_FILE);
  if (listed === undefined || listed.sha256 !== createHash('sha256').update(text).digest('hex')) throw new PackageError(`${MANIFEST_FILE} changed while the package was read`);
  const manifest = parseManifestText(text.toString('utf8'));
  if (!digest.files.some((file) => file.path === manifest.entry)) throw new PackageError(`the entry "${manifest.entry}" is not a file of the package`);
  return { ...digest, manifest };
}

/** Digests and checks a package directory or `.tgz`; throws PackageError or ManifestError. */
export async function inspectPackage(path: string, limits: PackageLimits = DEFAULT_PACKAGE_LIMITS): Promise<PluginPackage> {
  let stats;
  try {
    stats = lstatSync(path);
  } catch {
    throw new PackageError(`no package at ${path}`);
  }
  if (stats.isDirectory()) return inspectDirectory(path, limits);
  if (!stats.isFile() || !isTarball(path)) throw new PackageError('a plugin package is a directory or a .tgz of one');
  const directory = await extractTarball(path, limits);
  try {
    return inspectDirectory(directory, limits);
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
}
