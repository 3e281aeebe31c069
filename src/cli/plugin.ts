/**
 * `portcullis plugin keygen | sign | verify`: signing keys for plugin
 * packages and their minisign-format signatures (src/plugins/signature.ts).
 * A signature is a detached `<package>.minisig` beside the package
 * directory or `.tgz`, over the package digest (src/plugins/digest.ts).
 * `install | list | enable | disable | remove` change the registry (audited);
 * `status` reads what the serving instances publish of the plugins they run.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { Command, Option } from 'commander';
import type { Config } from '../config/index.ts';
import { PROFILES, withServices } from '../runtime/index.ts';
import {
  ManifestError,
  PackageError,
  SignatureError,
  generateSigningKey,
  inspectPackage,
  parsePublicKey,
  parseSecretKey,
  publicKeyLine,
  signMessage,
  signaturePath,
  verifyMessage,
  PluginInstallError,
  PluginRegistry,
  readPluginStatus,
  type PluginPackage,
} from '../plugins/index.ts';

export interface PluginCliContext {
  readonly out: (line: string) => void;
  readonly err: (line: string) => void;
  /** The option every deployment command takes, and the config it names. */
  readonly configOption: () => Option;
  readonly load: (options: { config?: string }) => Readonly<Config>;
  /** Unix seconds for the trusted comment's timestamp (default: now). */
  readonly now?: () => number;
}

/** A refusal the operator can act on: one line, exit 1. */
export class PluginCommandError extends Error {
  override readonly name = 'PluginCommandError';
}

function readText(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    throw new PluginCommandError(`cannot read ${what} ${path}`);
  }
}

/** Package, manifest and signature errors are the operator's to act on: one line each. */
async function operatorErrors<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (error instanceof PackageError || error instanceof ManifestError || error instanceof SignatureError || error instanceof PluginInstallError) throw new PluginCommandError(error.message);
    throw error;
  }
}

const describe = (pkg: PluginPackage) => `${pkg.manifest.name} ${pkg.manifest.version}`;

export function registerPluginCommands(program: Command, context: PluginCliContext): void {
  const now = context.now ?? (() => Math.floor(Date.now() / 1000));
  const plugin = program
    .command('plugin')
    .description('Plugins: signing keys, signatures, installation pinned by digest, and the status of the plugins a serving instance runs.');

  /** The installed plugins of the deployment, with audited changes. */
  const withPlugins = <T>(options: { config?: string }, work: (registry: PluginRegistry) => Promise<T>): Promise<T> => {
    const config = context.load(options);
    return withServices({ config, profile: PROFILES.admin() }, ['events'], (services) =>
      work(new PluginRegistry({ records: services.get('stores').durable.records, events: services.get('events'), directory: join(config.dataDir, 'plugins'), trustedKeys: config.plugins.trustedKeys, clock: Date.now })),
    );
  };

  plugin
    .command('install')
    .description('Install a signed plugin package (directory or .tgz): its signature must verify with a key in plugins.trustedKeys; a copy is kept in the data directory and pinned by its digest. Installed disabled.')
    .addOption(context.configOption())
    .argument('<package>', 'the package directory or .tgz')
    .option('--signature <file>', 'the signature file (default: PACKAGE.minisig)')
    .option('--allow-downgrade', 'install a version older than the installed one')
    .action(async (path: string, options: { config?: string; signature?: string; allowDowngrade?: boolean }) => {
      const installed = await withPlugins(options, (registry) => operatorErrors(() => registry.install(path, { actor: 'admin-cli', ...(options.signature !== undefined && { signature: options.signature }), ...(options.allowDowngrade === true && { allowDowngrade: true }) })));
      context.out(`Installed ${installed.name} ${installed.version} (digest ${installed.digest}, signed by ${installed.keyId})${installed.enabled ? '' : `; enable it with: portcullis plugin enable ${installed.name}`}.`);
    });

  plugin
    .command('list')
    .description('The installed plugins: name, version, state, digest.')
    .addOption(context.configOption())
    .action(async (options: { config?: string }) => {
      const plugins = await withPlugins(options, (registry) => registry.list());
      if (plugins.length === 0) context.out('No plugins installed.');
      for (const entry of plugins) context.out(`${entry.name}  ${entry.version}  ${entry.enabled ? (entry.quarantined !== undefined ? `quarantined (${entry.quarantined.reason})` : 'enabled') : 'disabled'}  ${entry.digest}`);
    });

  plugin
    .command('status')
    .description('What each serving instance runs: per plugin its state, circuit breaker, restarts, calls, failures and p50/p99 latency (published by the servers every 2 s).')
    .addOption(context.configOption())
    .option('--json', 'print the statuses as JSON')
    .action(async (options: { config?: string; json?: boolean }) => {
      const config = context.load(options);
      const statuses = await withServices({ config, profile: PROFILES.admin() }, ['stores'], (services) => readPluginStatus(services.get('stores').hot));
      if (options.json === true) {
        context.out(JSON.stringify(statuses, null, 2));
        return;
      }
      if (statuses.length === 0) context.out('No serving instance has published plugin status (is `portcullis serve` running?).');
      const ms = (value: number | null) => (value === null ? '-' : `${value} ms`);
      for (const status of statuses) {
        context.out(`instance ${status.instance} (updated ${new Date(status.updatedAt).toISOString()})`);
        if (status.plugins.length === 0) context.out('  no enabled plugins');
        for (const entry of status.plugins) {
          context.out(
            `  ${entry.name}  ${entry.version}  ${entry.state}  breaker ${entry.breaker}  restarts ${entry.restarts}  calls ${entry.calls}  failures ${entry.failures}  p50 ${ms(entry.p50Ms)}  p99 ${ms(entry.p99Ms)}${entry.problem !== undefined ? `  problem: ${entry.problem}` : ''}`,
          );
        }
      }
    });

  for (const [name, description] of [
    ['enable', 'Enable an installed plugin (its installed copy is checked against its pinned digest first).'],
    ['disable', 'Disable an installed plugin.'],
    ['remove', 'Remove an installed plugin and its copy.'],
  ] as const) {
    plugin
      .command(name)
      .description(description)
      .addOption(context.configOption())
      .argument('<name>', 'the plugin name')
      .action(async (pluginName: string, options: { config?: string }) => {
        await withPlugins(options, (registry) => operatorErrors(async () => (name === 'remove' ? registry.remove(pluginName, 'admin-cli') : registry.setEnabled(pluginName, name === 'enable', 'admin-cli'))));
        context.out(`${pluginName}: ${name === 'remove' ? 'removed' : `${name}d`}.`);
      });
  }

  plugin
    .command('keygen')
    .description('Make a signing key pair: DIR/plugin.pub (minisign public key) and DIR/plugin.key (Ed25519 PKCS#8 PEM, mode 0600).')
    .requiredOption('--out <dir>', 'directory for plugin.pub and plugin.key (created 0700 if missing)')
    .action((options: { out: string }) => {
      const publicPath = join(options.out, 'plugin.pub');
      const secretPath = join(options.out, 'plugin.key');
      for (const path of [publicPath, secretPath]) if (existsSync(path)) throw new PluginCommandError(`${path} already exists; left unchanged (choose another --out)`);
      const keys = generateSigningKey();
      mkdirSync(options.out, { recursive: true, mode: 0o700 });
      // `wx`: never through a file (or symlink) that appeared since the check above.
      writeFileSync(secretPath, keys.secretKeyPem, { mode: 0o600, flag: 'wx' });
      writeFileSync(publicPath, keys.publicKeyFile, { mode: 0o644, flag: 'wx' });
      context.out(`Wrote ${secretPath} (mode 0600: keep it secret) and ${publicPath}, key id ${keys.keyId}.`);
      context.out(`To trust it, add to plugins.trustedKeys: ${publicKeyLine(parsePublicKey(keys.publicKeyFile))}`);
    });

  plugin
    .command('sign')
    .description('Sign a plugin package (a directory or a .tgz): writes PACKAGE.minisig beside it, over the package digest.')
    .argument('<package>', 'the package directory or .tgz')
    .requiredOption('--key <file>', 'the secret key (plugin.key from `plugin keygen`)')
    .action(async (path: string, options: { key: string }) => {
      const secret = await operatorErrors(async () => parseSecretKey(readText(options.key, 'the secret key')));
      const pkg = await operatorErrors(() => inspectPackage(path));
      const target = signaturePath(path);
      const trustedComment = `timestamp:${now()}\tfile:${basename(target, '.minisig')}\tdigest:${pkg.digest}`;
      const signature = await operatorErrors(async () => signMessage(Buffer.from(pkg.digest, 'latin1'), secret, { trustedComment }));
      writeFileSync(target, signature, { mode: 0o644 });
      context.out(`Signed ${describe(pkg)}: digest ${pkg.digest}, ${pkg.files.length} files; wrote ${target}.`);
    });

  plugin
    .command('verify')
    .description('Check a plugin package against its signature (PACKAGE.minisig) and a public key; exit 0 only when both signatures hold.')
    .argument('<package>', 'the package directory or .tgz')
    .requiredOption('--pub <file>', 'the public key file (plugin.pub)')
    .option('--signature <file>', 'the signature file (default: PACKAGE.minisig)')
    .action(async (path: string, options: { pub: string; signature?: string }) => {
      const publicKey = await operatorErrors(async () => parsePublicKey(readText(options.pub, 'the public key')));
      const pkg = await operatorErrors(() => inspectPackage(path));
      const sigPath = options.signature ?? signaturePath(path);
      if (!existsSync(sigPath)) throw new PluginCommandError(`unsigned package: no signature at ${sigPath}`);
      const verified = await operatorErrors(async () => verifyMessage(Buffer.from(pkg.digest, 'latin1'), readText(sigPath, 'the signature'), publicKey));
      context.out(`Good signature: ${describe(pkg)}, digest ${pkg.digest}, key ${verified.keyId}; trusted comment: ${verified.trustedComment}`);
    });
}
