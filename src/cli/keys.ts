/**
 * `portcullis keys list | rotate | revoke`: the token-signing keys from the
 * command line, through the same Keyring the server uses (so every change is
 * one compare-and-set on the shared keyring and is audited the same way).
 * Running servers take changes up at their next refresh (`tokens.keyringRefreshMs`).
 */
import { Option, type Command } from 'commander';
import type { Config, ConfigInput } from '../config/index.ts';
import { systemClock, type Clock } from '../store/index.ts';
import { PROFILES, withServices } from '../runtime/index.ts';
import { SIGNING_ALGORITHMS, type Keyring, type KeyInfo, type KeyState, type SigningAlgorithm } from '../tokens/index.ts';

export interface KeysCliContext {
  readonly out: (line: string) => void;
  readonly err: (line: string) => void;
  readonly load: (options: { config?: string }, overrides?: ConfigInput) => Readonly<Config>;
  readonly configOption: () => Option;
  /** Key states come from the schedule and this clock (default: the system clock). */
  readonly clock?: Clock;
}

/** The keyring of an existing deployment, on `clock`, without its refresh timer; stopped however the work ends. */
function withKeyring<T>(config: Readonly<Config>, clock: Clock, work: (keyring: Keyring) => Promise<T>): Promise<T> {
  return withServices({ config, profile: PROFILES.admin(), clock }, ['keyring'], (services) => work(services.get('keyring')));
}

/** ISO 8601 to the second: the keyring's times are whole seconds apart from their origin anyway. */
function time(ms: number | undefined): string {
  return ms === undefined ? '-' : new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function lifetimeColumn(key: KeyInfo): string {
  if (key.state === 'revoked') return `revoked ${time(key.revokedAt)}`;
  return key.retiredAt === undefined ? '-' : `${time(key.retiredAt)} / ${time(key.removeAt)}`;
}

function table(rows: readonly (readonly string[])[]): string[] {
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  return rows.map((row) => row.map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column]!))).join('  '));
}

/** What a key was doing when it was revoked, in words. */
function describeState(state: KeyState, key: KeyInfo): string {
  switch (state) {
    case 'next':
      return `it was next: published, signing from ${time(key.activatesAt)}`;
    case 'current':
      return `it was current: signing since ${time(key.activatesAt)}`;
    case 'retired':
      return `it was retired: it stopped signing at ${time(key.retiredAt)}`;
    case 'revoked':
      return 'it was already revoked';
  }
}

function refreshNote(config: Readonly<Config>): string {
  return `Running servers take this up within ${Math.ceil(config.tokens.keyringRefreshMs / 1000)}s (tokens.keyringRefreshMs).`;
}

export function registerKeysCommands(program: Command, context: KeysCliContext): void {
  const clock = context.clock ?? systemClock;
  const keys = program.command('keys').description('Manage the keys that sign access and ID tokens (published at /jwks).');

  keys
    .command('list')
    .description('List signing keys: kid, algorithm, state (next, current, retired, revoked), when each signs, retires and leaves the JWKS.')
    .addOption(context.configOption())
    .action(async (options: { config?: string }) => {
      const config = context.load(options);
      await withKeyring(config, clock, async (keyring) => {
        const rows = keyring.list().map((key) => [key.kid, key.alg, key.state, time(key.activatesAt), lifetimeColumn(key)]);
        for (const line of table([['KID', 'ALG', 'STATE', 'ACTIVATES', 'RETIRES / REMOVED FROM JWKS'], ...rows])) context.out(line);
      });
    });

  keys
    .command('rotate')
    .description('Publish a new signing key now; it starts signing one JWKS max-age later (tokens.jwksMaxAgeSeconds), when every verifier has it.')
    .addOption(context.configOption())
    .addOption(new Option('--alg <algorithm>', 'algorithm of the new key (default: tokens.signingAlgorithm)').choices(SIGNING_ALGORITHMS))
    .action(async (options: { config?: string; alg?: SigningAlgorithm }) => {
      const config = context.load(options);
      await withKeyring(config, clock, async (keyring) => {
        const created = await keyring.rotate(options.alg ?? config.tokens.signingAlgorithm);
        context.out(`Created ${created.alg} key ${created.kid}: published now, signs from ${time(created.activatesAt)}.`);
        context.out(refreshNote(config));
      });
    });

  const revoke = keys
    .command('revoke')
    .description('Revoke a compromised key: it leaves the JWKS and tokens it signed are refused at once; if it was signing, a new key signs from now.')
    .addOption(context.configOption())
    .argument('[kid]', 'the key id (see portcullis keys list)')
    .option('--kid <kid>', 'the key id, for one that starts with "-" (which would read as an option): --kid=<kid>');
  // A kid is base64url (RFC 7638 thumbprint), so 1 in 64 starts with "-",
  // which the parser takes for an unknown option: --kid=<kid> always works,
  // and main.ts says so when a kid-shaped option is refused.
  revoke.action(async (positional: string | undefined, options: { config?: string; kid?: string }) => {
    const kid = options.kid ?? positional;
    if (kid === undefined) revoke.error("error: missing required argument 'kid'", { code: 'commander.missingArgument' });
    if (options.kid !== undefined && positional !== undefined) revoke.error('error: give the kid once: as an argument or as --kid', { code: 'commander.conflictingOption' });
    const config = context.load(options);
    await withKeyring(config, clock, async (keyring) => {
      const revoked = await keyring.revoke(kid!);
      // The state it had when revoked, which may differ from what an
      // earlier `keys list` showed: the schedule moves on with the clock.
      context.out(`Revoked ${revoked.alg} key ${revoked.kid} (${describeState(revoked.stateBefore, revoked)}): it is out of the JWKS, and tokens it signed are refused.`);
      const current = keyring.signingKey(revoked.alg);
      context.out(revoked.stateBefore === 'current' ? `A new ${revoked.alg} key ${current.kid} signs from now.` : `${revoked.alg} tokens are still signed by ${current.kid}.`);
      context.out(refreshNote(config));
    });
  });
}
