/**
 * Installed plugins (issue 14, "Installation"): `plugin install` checks a
 * package's signature against `plugins.trustedKeys`, refuses a downgrade
 * unless asked, copies the package into the data directory and digests the
 * copy again (what runs is what was signed, whatever happens to the source
 * afterwards), and pins that digest in the durable store. Every change is
 * an audited domain event. A plugin is installed disabled; `plugin enable`
 * turns it on (the sandbox that runs it is a later part of the issue).
 */
import { cpSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import type { DomainEvents } from '../events/index.ts';
import { collection, typeboxCodec, type Collection, type RecordStore } from '../store/index.ts';
import { digestDirectory, extractTarball, PackageError } from './digest.ts';
import { compareVersions } from './manifest.ts';
import { inspectPackage, isTarball, signaturePath } from './package.ts';
import { parsePublicKey, SignatureError, verifyMessage, type PublicKey } from './signature.ts';

const InstalledSchema = Type.Object({
  version: Type.String(),
  /** SHA-256 package digest (src/plugins/digest.ts) of the installed copy: the signed one. */
  digest: Type.String(),
  /** The key id (hex) of the trusted key that signed it. */
  keyId: Type.String(),
  /** Where the copy is, below the data directory. */
  path: Type.String(),
  enabled: Type.Boolean(),
  installedAt: Type.Number(),
  /** When it was last enabled (ms): a host's own record of a quarantine older than this no longer holds. */
  enabledAt: Type.Optional(Type.Number()),
  /**
   * The manifest as signed (its JSON), kept from installation: what an
   * instance knows of a plugin whose copy no longer checks (its hooks and
   * onFailure, so it still fails closed where it served).
   */
  manifest: Type.Optional(Type.String()),
  /**
   * Set by a host that quarantined the plugin (too many crashes or
   * violations): no instance runs it, and every hook it serves fails as its
   * onFailure says, until an operator enables it again (which clears this)
   * or disables or removes it.
   */
  quarantined: Type.Optional(Type.Object({ at: Type.Number(), reason: Type.String(), digest: Type.String() })),
});
export type InstalledPlugin = Static<typeof InstalledSchema> & { readonly name: string };

/** A refusal an operator acts on (unsigned, tampered, untrusted, downgrade, unknown plugin). */
export class PluginInstallError extends Error {
  override readonly name = 'PluginInstallError';
}

export interface PluginRegistryOptions {
  readonly records: RecordStore;
  readonly events: Pick<DomainEvents, 'emit'>;
  /** Where installed copies go (`<dataDir>/plugins`). */
  readonly directory: string;
  /** `plugins.trustedKeys`: minisign public key lines. */
  readonly trustedKeys: readonly string[];
  readonly clock: () => number;
}

export class PluginRegistry {
  readonly #options: PluginRegistryOptions;
  readonly #plugins: Collection<Static<typeof InstalledSchema>>;
  readonly #trusted: PublicKey[];

  constructor(options: PluginRegistryOptions) {
    this.#options = options;
    this.#plugins = collection(options.records, { name: 'plugins', codec: typeboxCodec(InstalledSchema) });
    this.#trusted = options.trustedKeys.map((line) => parsePublicKey(line));
  }

  async install(path: string, options: { readonly allowDowngrade?: boolean; readonly signature?: string; readonly actor: string }): Promise<InstalledPlugin> {
    const pkg = await inspectPackage(path);
    const signatureFile = options.signature ?? signaturePath(path);
    if (!existsSync(signatureFile)) throw new PluginInstallError(`unsigned package: no signature at ${signatureFile}`);
    const keyId = this.#verify(pkg.digest, readFileSync(signatureFile, 'utf8'));
    const { name, version } = pkg.manifest;
    const current = await this.#plugins.get(name);
    if (current !== null) {
      const order = compareVersions(version, current.data.version);
      if (order < 0 && options.allowDowngrade !== true) throw new PluginInstallError(`${name} ${current.data.version} is installed; ${version} is older (--allow-downgrade to install it anyway)`);
      if (order === 0 && current.data.digest !== pkg.digest) throw new PluginInstallError(`${name} ${version} is installed with other content; a changed package needs a new version`);
    }
    const target = join(this.#options.directory, name, pkg.digest);
    if (!existsSync(target)) await this.#copy(path, target, pkg.digest);
    const installed = {
      version,
      digest: pkg.digest,
      keyId,
      path: target,
      enabled: current?.data.enabled ?? false,
      installedAt: this.#options.clock(),
      ...(current?.data.enabledAt !== undefined && { enabledAt: current.data.enabledAt }),
      manifest: JSON.stringify(pkg.manifest),
      // The same package installed again does not end its quarantine: only an operator's enable or disable does.
      ...(current?.data.quarantined !== undefined && current.data.quarantined.digest === pkg.digest && { quarantined: current.data.quarantined }),
    };
    if (current === null) {
      if (!(await this.#plugins.create(name, installed))) throw new PluginInstallError(`${name} was installed at the same moment; try again`);
    } else if ((await this.#plugins.update(name, current.version, installed)) === null) {
      throw new PluginInstallError(`${name} changed at the same moment; try again`);
    }
    // The previous version's copy goes: only the pinned one stays.
    if (current !== null && current.data.path !== target) rmSync(current.data.path, { recursive: true, force: true });
    await this.#options.events.emit({ type: 'plugin.installed', outcome: 'success', actorService: options.actor, detail: { plugin: name, version, digest: pkg.digest, keyId, ...(current !== null && { previous: current.data.version }) } });
    return { name, ...installed };
  }

  async list(): Promise<InstalledPlugin[]> {
    return (await this.#plugins.list({ limit: 1000 })).map((record) => ({ name: record.id, ...record.data }));
  }

  async setEnabled(name: string, enabled: boolean, actor: string): Promise<InstalledPlugin> {
    const current = await this.#plugins.get(name);
    if (current === null) throw new PluginInstallError(`no plugin ${name} is installed`);
    // Before it runs, the copy must still be what was signed.
    if (enabled) this.#checkCopy(current.data.path, current.data.digest);
    // Enabling or disabling ends a quarantine: the operator has decided.
    const { quarantined: ended, ...rest } = current.data;
    const data = { ...rest, enabled, ...(enabled ? { enabledAt: this.#options.clock() } : {}) };
    if ((await this.#plugins.update(name, current.version, data)) === null) throw new PluginInstallError(`${name} changed at the same moment; try again`);
    await this.#options.events.emit({ type: enabled ? 'plugin.enabled' : 'plugin.disabled', outcome: 'success', actorService: actor, detail: { plugin: name, version: current.data.version, digest: current.data.digest, ...(ended !== undefined && { quarantineEnded: true }) } });
    return { name, ...data };
  }

  /**
   * Records a quarantine of the installed `digest` (a newer version
   * installed meanwhile is not affected). The plugin stays enabled: its
   * hooks go on failing closed until an operator decides.
   */
  async setQuarantined(name: string, digest: string, reason: string): Promise<boolean> {
    const current = await this.#plugins.get(name);
    if (current === null || current.data.digest !== digest || !current.data.enabled) return false;
    const data = { ...current.data, quarantined: { at: this.#options.clock(), reason: reason.slice(0, 200), digest } };
    return (await this.#plugins.update(name, current.version, data)) !== null;
  }

  async remove(name: string, actor: string): Promise<void> {
    const current = await this.#plugins.get(name);
    if (current === null) throw new PluginInstallError(`no plugin ${name} is installed`);
    if (!(await this.#plugins.delete(name, current.version))) throw new PluginInstallError(`${name} changed at the same moment; try again`);
    rmSync(join(this.#options.directory, name), { recursive: true, force: true });
    await this.#options.events.emit({ type: 'plugin.removed', outcome: 'success', actorService: actor, detail: { plugin: name, version: current.data.version, digest: current.data.digest } });
  }

  /** Verifies the signature with the trusted keys; resolves with the signing key's id. */
  #verify(digest: string, signature: string): string {
    if (this.#trusted.length === 0) throw new PluginInstallError('no trusted keys: add the signer\'s public key to plugins.trustedKeys');
    let failure: unknown;
    for (const key of this.#trusted) {
      try {
        return verifyMessage(Buffer.from(digest, 'latin1'), signature, key).keyId;
      } catch (error) {
        if (!(error instanceof SignatureError)) throw error;
        // A key id mismatch means "not this key"; anything else from the right key means the package or signature was changed.
        if (!/^signed by key /.test(error.message)) failure = error;
      }
    }
    if (failure !== undefined) throw new PluginInstallError(`tampered package or signature: ${(failure as Error).message}`);
    throw new PluginInstallError('untrusted key: the package is signed by a key that is not in plugins.trustedKeys');
  }

  /** Copies the package (or extracts the .tgz) to `target` through a temporary name, and checks the copy's digest. */
  async #copy(source: string, target: string, digest: string): Promise<void> {
    mkdirSync(join(target, '..'), { recursive: true, mode: 0o700 });
    const staging = `${target}.partial-${process.pid}`;
    rmSync(staging, { recursive: true, force: true });
    try {
      if (isTarball(source)) renameSync(await extractTarball(source), staging);
      else cpSync(source, staging, { recursive: true, errorOnExist: true, verbatimSymlinks: true });
      this.#checkCopy(staging, digest);
      renameSync(staging, target);
    } catch (error) {
      rmSync(staging, { recursive: true, force: true });
      throw error;
    }
  }

  #checkCopy(directory: string, digest: string): void {
    let actual: string;
    try {
      actual = digestDirectory(directory).digest;
    } catch (error) {
      if (error instanceof PackageError) throw new PluginInstallError(`the installed copy of the plugin does not check: ${error.message}`);
      throw error;
    }
    if (actual !== digest) throw new PluginInstallError('the installed copy differs from the signed package (changed since it was checked)');
  }
}
