import { chmodSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { ConfigError, configWarnings, loadConfig, maskConfig, type Config, type ConfigInput } from '../config/index.ts';
import { StoreSchemaError, StoreUnavailableError, sqlitePath, type Clock } from '../store/index.ts';
import { assertLoopbackInDevelopment } from './development-host.ts';
import { DeploymentError, PROFILES, assertDataDirUsable, provisionVault, withAbsolutePaths, withServices } from '../runtime/index.ts';
import { MasterKeyError, SealedSecretError } from '../crypto/index.ts';
import { KeyringError } from '../tokens/index.ts';
import { exitGracefullyOnSignals, reloadTlsOnHangup, startPortcullis } from '../server/index.ts';
import { AuditSourceError, AuditVerificationFailed, registerAuditCommands } from './audit.ts';
import { registerKeysCommands } from './keys.ts';
import { UserCommandError, registerUserCommands } from './user.ts';
import { ClientCommandError, registerClientCommands } from './client.ts';
import { ResourceCommandError, registerResourceCommands } from './resource.ts';
import { CaCommandError, registerCaCommands } from './ca.ts';
import { AgentExit, registerAgentCommand } from './agent.ts';
import { PluginCommandError, registerPluginCommands } from './plugin.ts';
import { PrivacyCommandError, registerPrivacyCommands } from './privacy.ts';

const { version } = createRequire(import.meta.url)('../../package.json') as { version: string };

/** Errors whose message is written for the operator and is safe to print as is. */
const OPERATOR_ERRORS = [ConfigError, DeploymentError, StoreUnavailableError, StoreSchemaError, MasterKeyError, SealedSecretError, AuditSourceError, UserCommandError, ClientCommandError, ResourceCommandError, CaCommandError, KeyringError, PluginCommandError, PrivacyCommandError];

/** What a command writes; injected so tests can capture it. */
export interface CliOutput {
  out(line: string): void;
  err(line: string): void;
  /** Progress output (no newline); present only when stderr is a terminal. */
  progress?(text: string): void;
  /** Standard input for commands that read it (tests pass a stream). */
  readonly stdin?: NodeJS.ReadableStream;
  /** The clock time-dependent commands (keys) judge states by; default the system clock. Tests pin it. */
  readonly clock?: Clock;
}

const processOutput: CliOutput = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
  ...(process.stderr.isTTY && { progress: (text: string) => process.stderr.write(text) }),
};

interface CommonOptions {
  config?: string;
}

function parsePort(value: string): number {
  const port = Number(value);
  if (!/^\d+$/.test(value) || port > 65535) throw new InvalidArgumentError('must be an integer from 0 to 65535.');
  return port;
}

function configOption(): Option {
  return new Option('-c, --config <file>', 'JSON config file (default: $PORTCULLIS_CONFIG)');
}

function load(options: CommonOptions, overrides: ConfigInput = {}): Readonly<Config> {
  return loadConfig({ ...(options.config !== undefined && { file: options.config }), overrides });
}

/**
 * A key id is base64url (RFC 7638), so 1 in 64 starts with "-" and reads as
 * an option: a refused option of exactly a kid's shape says how to pass it.
 */
function withKidHint(message: string): string {
  const kid = /^error: unknown option '(-[A-Za-z0-9_-]{42})'$/.exec(message)?.[1];
  return kid === undefined ? message : `${message}: a key id that starts with "-" goes as --kid=${kid}`;
}

/**
 * Runs the `portcullis` command line and resolves to the exit code. A
 * mistake prints one line naming what is wrong, never a stack trace.
 */
export async function main(argv: readonly string[], output: CliOutput = processOutput): Promise<number> {
  const program = new Command('portcullis')
    .description('Portcullis: identity and trust server (OAuth 2.1 / OpenID Connect, audit ledger, privacy, service CA).')
    .version(version, '-v, --version')
    .exitOverride()
    .configureOutput({
      writeOut: (text) => output.out(text.trimEnd()),
      // An error (with its "did you mean" hint) is one line; help text keeps its lines.
      writeErr: (text) => output.err(text.startsWith('error:') ? withKidHint(text.trim().replace(/\s*\n\s*/g, ' ')) : text.trimEnd()),
    })
    .showSuggestionAfterError(true);

  program
    .command('init')
    .description('Create the data directory, a master key file readable only by you (0600), and the database.')
    .addOption(configOption())
    .option('--data-dir <dir>', 'data directory (default: ./data or $PORTCULLIS_DATA_DIR)')
    .action(async (options: CommonOptions & { dataDir?: string }) => {
      const config = withAbsolutePaths(load(options, options.dataDir !== undefined ? { dataDir: options.dataDir } : {}));
      assertDataDirUsable(config);
      mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
      chmodSync(config.dataDir, 0o700);
      const vault = provisionVault(config);
      if (vault.source === 'environment') {
        output.out(`Data directory ${config.dataDir} is ready; the master key comes from PORTCULLIS_MASTER_KEY.`);
      } else {
        output.out(vault.created ? `Created master key ${resolve(vault.path)} (mode 0600). Back it up: private keys are encrypted with it.` : `Master key ${resolve(vault.path)} already exists; left unchanged.`);
      }
      // The database too, so every other command finds a deployment here (and none creates one).
      await withServices({ config, profile: PROFILES.init() }, ['stores'], async (services) => {
        const stores = services.get('stores');
        const report = await stores.durable.migrate();
        const where = stores.durable.driver === 'sqlite' ? `SQLite ${sqlitePath(config)}` : 'PostgreSQL';
        output.out(report.applied.length === 0 ? `Database ${where} is current (schema version ${report.currentVersion}).` : `Database ${where} is at schema version ${report.currentVersion}.`);
      });
      output.out('Next steps:');
      output.out('  portcullis config check                  show the effective configuration');
      output.out('  portcullis user create --email <address>  create a user (asks for the password)');
      output.out('  portcullis serve                         start the server (http://127.0.0.1:9000 in development)');
    });

  program
    .command('serve')
    .description('Start the HTTP server (applies pending migrations first unless --no-migrate).')
    .addOption(configOption())
    .addOption(new Option('-p, --port <number>', 'listen on this port').argParser(parsePort))
    .option('--host <address>', 'bind this address')
    .option('--no-migrate', 'do not apply migrations; refuse to start if the schema is not current')
    .option('--allow-remote-development', 'in development mode, listen on a non-loopback --host anyway (plain HTTP, open registration)')
    .action(async (options: CommonOptions & { port?: number; host?: string; migrate: boolean; allowRemoteDevelopment?: boolean }) => {
      const overrides: ConfigInput = {};
      if (options.port !== undefined) overrides['port'] = options.port;
      if (options.host !== undefined) overrides['host'] = options.host;
      if (!options.migrate) overrides['migrateOnStart'] = false;
      const config = load(options, overrides);
      assertDataDirUsable(config);
      assertLoopbackInDevelopment(config, options.allowRemoteDevelopment === true);
      const running = await startPortcullis(config);
      exitGracefullyOnSignals(running, config.http.shutdownTimeoutMs);
      reloadTlsOnHangup(running);
    });

  program
    .command('migrate')
    .description('Apply pending database migrations, then exit.')
    .addOption(configOption())
    .action(async (options: CommonOptions) => {
      const config = load(options);
      // Migrates an existing database; never creates one (that is `init`).
      await withServices({ config, profile: PROFILES.migrate() }, ['stores'], async (services) => {
        const stores = services.get('stores');
        output.out(`Migrating ${stores.durable.driver === 'sqlite' ? `SQLite ${resolve(sqlitePath(config))}` : 'PostgreSQL'} ...`);
        const report = await stores.durable.migrate();
        for (const migration of report.applied) output.out(`  applied ${migration.version} ${migration.name}`);
        output.out(report.applied.length === 0 ? `Schema is current (version ${report.currentVersion}).` : `Schema is now at version ${report.currentVersion}.`);
      });
    });

  const configCommand = program.command('config').description('Inspect the configuration.');
  configCommand
    .command('check')
    .description('Validate the configuration and print it, with secrets masked.')
    .addOption(configOption())
    .action((options: CommonOptions) => {
      const config = load(options);
      output.out(JSON.stringify(maskConfig(config), null, 2));
      for (const warning of configWarnings(config)) output.err(`warning: ${warning}`);
    });

  registerUserCommands(program, { out: (line) => output.out(line), err: (line) => output.err(line), load, configOption, ...(output.stdin !== undefined && { stdin: output.stdin }) });
  registerClientCommands(program, { out: (line) => output.out(line), err: (line) => output.err(line), load, configOption });
  registerResourceCommands(program, { out: (line) => output.out(line), err: (line) => output.err(line), load, configOption });
  registerCaCommands(program, { out: (line) => output.out(line), err: (line) => output.err(line), load, configOption });
  registerAgentCommand(program, { out: (line) => output.out(line), err: (line) => output.err(line) });
  registerPluginCommands(program, { out: (line) => output.out(line), err: (line) => output.err(line), load, configOption });
  registerPrivacyCommands(program, { out: (line) => output.out(line), err: (line) => output.err(line), load, configOption });
  registerKeysCommands(program, { out: (line) => output.out(line), err: (line) => output.err(line), load, configOption, ...(output.clock !== undefined && { clock: output.clock }) });
  registerAuditCommands(program, {
    out: (line) => output.out(line),
    err: (line) => output.err(line),
    errRaw: (text) => output.progress?.(text),
    interactive: output.progress !== undefined,
    load,
    configOption,
  });

  try {
    await program.parseAsync([...argv], { from: 'user' });
    return 0;
  } catch (error) {
    return reportError(error, output);
  }
}

function reportError(error: unknown, output: CliOutput): number {
  if (error instanceof CommanderError) {
    // Commander has already printed its one line (or the help text).
    return error.exitCode;
  }
  // The report is printed already; the exit code says the rest.
  if (error instanceof AuditVerificationFailed) return 1;
  // The agent's one line, and its exit code (README: "Service certificates").
  if (error instanceof AgentExit) {
    output.err(`portcullis agent: ${error.message}`);
    return error.exitCode;
  }
  if (OPERATOR_ERRORS.some((type) => error instanceof type)) {
    output.err(`portcullis: ${(error as Error).message}`);
    return 1;
  }
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'EADDRINUSE') {
    // Node's listen error carries the address and port it tried (first-hour D14: name them).
    const { address, port } = error as { address?: string; port?: number };
    const where = address !== undefined && port !== undefined ? `${address.includes(':') ? `[${address}]` : address}:${port}` : 'the address';
    output.err(`portcullis: ${where} is already in use: another server listens on that port (choose another with --port or PORTCULLIS_PORT)`);
    return 1;
  }
  if (code === 'EACCES') {
    output.err('portcullis: permission denied (a port below 1024, or a file or directory you may not write)');
    return 1;
  }
  output.err(`portcullis: unexpected error: ${error instanceof Error ? error.message : String(error)}`);
  return 1;
}
