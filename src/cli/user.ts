/**
 * `portcullis user create | set-password | list | set-profile | disable | enable | unlock | delete | export`: accounts from
 * the command line, through the same Accounts service the pages use (so
 * every change is checked and audited the same way).
 */
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { PasswordInputError, readNewPassword } from './password-prompt.ts';
import type { Command, Option } from 'commander';
import type { Config, ConfigInput } from '../config/index.ts';
import { PasswordPolicyError, UserError, type OnSessionsEnding, type Identity, type ProfileField, type User } from '../identity/index.ts';
import { PROFILES, withServices } from '../runtime/index.ts';
import type { Privacy } from '../privacy/index.ts';

export interface UserCliContext {
  readonly out: (line: string) => void;
  readonly err: (line: string) => void;
  readonly load: (options: { config?: string }, overrides?: ConfigInput) => Readonly<Config>;
  readonly configOption: () => Option;
  /** Where a password is read from (stdin by default; tests pass text). */
  readonly stdin?: NodeJS.ReadableStream;
  /** Where password prompts are written (stderr by default). */
  readonly promptTo?: NodeJS.WritableStream;
}

/** A refusal the operator can act on: one line, exit 1. */
export class UserCommandError extends Error {
  override readonly name = 'UserCommandError';
}

/** Identity over an existing deployment (never created or migrated from here), audited; stopped however the work ends. */
function withIdentity<T>(config: Readonly<Config>, work: (identity: Identity) => Promise<T>): Promise<T> {
  return withServices({ config, profile: PROFILES.admin() }, ['identity'], (services) => work(services.get('identity')));
}

/** What a command that ends a user's sessions passes to Accounts, for that user. */
type SessionsEnding = (user: User) => { onSessionsEnding?: OnSessionsEnding };

/**
 * Identity with the authorization server's logout, for the commands that
 * end a user's sessions (disable, delete, set-password): before the
 * sessions end, each one's tokens end and a back-channel logout is queued
 * for every application it signed in to that registered a
 * backchannel_logout_uri (OIDC Back-Channel Logout 1.0 sections 2.3 and
 * 2.5), exactly as a sign-out on the pages does; otherwise the applications
 * would keep the person signed in locally. The messages are committed to
 * the outbox here; this process delivers nothing (no outbox worker in a
 * one-shot command): a running server's worker polls the outbox and
 * delivers them, or the next `serve` does. The authorization server is
 * opened only when `who` has a session: its keyring would make signing keys
 * on a deployment never served, and a person with no session has no
 * application to tell (a session is what a server makes).
 */
async function withSignOut<T>(config: Readonly<Config>, who: string, work: (identity: Identity, ending: SessionsEnding) => Promise<T>): Promise<T> {
  const signedIn = await withIdentity(config, async (identity) => (await identity.accounts.sessions.list((await findUser(identity, who)).id)).length > 0);
  if (!signedIn) return withIdentity(config, (identity) => work(identity, () => ({})));
  return withServices({ config, profile: PROFILES.admin() }, ['identity', 'oauth'], (services) => {
    const { logout } = services.get('oauth');
    return work(services.get('identity'), (user) => ({ onSessionsEnding: (handles, pass) => logout.sessionsEnded(user.id, handles, { actorService: 'admin-cli' }, { again: pass.ended }) }));
  });
}

/** Identity and the privacy workflows over an existing deployment (no keyring: an export makes no signing key). */
function withPrivacy<T>(config: Readonly<Config>, work: (identity: Identity, privacy: Privacy) => Promise<T>): Promise<T> {
  return withServices({ config, profile: PROFILES.admin() }, ['identity', 'privacy'], (services) => work(services.get('identity'), services.get('privacy')));
}

/**
 * A file readable by its owner only (0600), written whole or not at all: a
 * new file beside `path` (created 0600, so nothing personal is ever
 * readable by others), renamed over it once written. Opened before the
 * export is made, so a path that cannot be written fails before anything
 * is recorded, and an export that fails leaves an existing file as it was.
 */
function ownerOnlyFile(path: string): { commit(text: string): void; abandon(): void } {
  const temporary = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  let fd: number;
  try {
    fd = openSync(temporary, 'wx', 0o600);
  } catch (error) {
    throw new UserCommandError(`cannot write ${path} (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  const abandon = () => {
    closeSync(fd);
    rmSync(temporary, { force: true });
  };
  return {
    commit(text) {
      try {
        writeSync(fd, text);
        fsyncSync(fd);
      } catch (error) {
        abandon();
        throw error;
      }
      closeSync(fd);
      renameSync(temporary, path);
    },
    abandon,
  };
}

async function newPassword(context: UserCliContext, fromStdin: boolean, whose: string): Promise<string> {
  try {
    return await readNewPassword({ fromStdin, stdin: context.stdin ?? process.stdin, promptTo: context.promptTo ?? process.stderr }, whose);
  } catch (error) {
    if (error instanceof PasswordInputError) throw new UserCommandError(error.message);
    throw error;
  }
}

async function findUser(identity: Identity, who: string): Promise<User> {
  const user = who.startsWith('u_') ? await identity.accounts.users.byId(who) : await identity.accounts.users.byEmail(who);
  if (user === null) throw new UserCommandError(`no user ${who}`);
  return user;
}

function explain(error: unknown): never {
  if (error instanceof PasswordPolicyError) throw new UserCommandError(`password refused: ${error.message}`);
  if (error instanceof UserError) throw new UserCommandError(error.message);
  throw error;
}

export function registerUserCommands(program: Command, context: UserCliContext): void {
  const user = program.command('user').description('Manage user accounts.');

  user
    .command('create')
    .description('Create a user. On a terminal it asks for the password (typed twice, not shown); --password-stdin reads it from standard input. Never from the command line.')
    .addOption(context.configOption())
    .requiredOption('--email <address>', "the user's email address (their sign-in name)")
    .option('--password-stdin', 'read the password from the first line of standard input')
    .option('--no-password', 'create the account without a password (nobody can sign in to it until `user set-password`)')
    .action(async (options: { config?: string; email: string; passwordStdin?: boolean; password: boolean }) => {
      if (options.passwordStdin === true && !options.password) throw new UserCommandError('--password-stdin and --no-password contradict each other: give one');
      const config = context.load(options);
      await withIdentity(config, async (identity) => {
        // Ask only once the stores opened: a wrong --config fails before anyone types a password.
        const password = options.password ? await newPassword(context, options.passwordStdin === true, options.email) : null;
        const created = await identity.accounts.createUser(options.email, password, { actor: 'admin-cli' }).catch(explain);
        context.out(`Created ${created.email} (${created.id})${password === null ? ' without a password: nobody can sign in until `portcullis user set-password` sets one' : ''}.`);
      });
    });

  user
    .command('set-password')
    .description("Set a user's password (asked on a terminal, or --password-stdin); the password policy applies and every session they hold ends (their applications are sent back-channel logouts).")
    .addOption(context.configOption())
    .argument('<user>', 'email address or user id')
    .option('--password-stdin', 'read the password from the first line of standard input')
    .action(async (who: string, options: { config?: string; passwordStdin?: boolean }) => {
      const config = context.load(options);
      await withSignOut(config, who, async (identity, ending) => {
        const found = await findUser(identity, who);
        const password = await newPassword(context, options.passwordStdin === true, found.email);
        const ended = await identity.accounts.setPassword(found.id, password, { actor: 'admin-cli' }, ending(found)).catch(explain);
        context.out(`Password set for ${found.email}; ${ended === 1 ? '1 session' : `${ended} sessions`} ended.`);
      });
    });

  user
    .command('set-email')
    .description("Change a user's email address (their sign-in name); receivers of security signals get RISC identifier-changed.")
    .addOption(context.configOption())
    .argument('<user>', 'email address or user id')
    .requiredOption('--email <address>', 'the new address')
    .action(async (who: string, options: { config?: string; email: string }) => {
      const config = context.load(options);
      await withIdentity(config, async (identity) => {
        const found = await findUser(identity, who);
        const changed = await identity.accounts.changeEmail(found.id, options.email, { actor: 'admin-cli' }).catch(explain);
        context.out(`${found.email} is now ${changed.email} (${changed.id}).`);
      });
    });

  user
    .command('list')
    .description('List users: id, email, state (active or disabled; locked or slowed by failed sign-ins; no password), and name when one is set.')
    .addOption(context.configOption())
    .action(async (options: { config?: string }) => {
      const config = context.load(options);
      await withIdentity(config, async (identity) => {
        let after: string | undefined;
        let count = 0;
        for (;;) {
          const page = await identity.accounts.users.list({ ...(after !== undefined && { after }), limit: 1000 });
          for (const listed of page) {
            const lock = await identity.accounts.lockState(listed);
            const states = [listed.disabled ? 'disabled' : 'active', ...(lock !== null ? [lock] : []), ...(listed.passwordHash === null ? ['no password'] : [])];
            context.out(`${listed.id}  ${listed.email}  ${states.join(', ')}${listed.profile?.name !== undefined ? `  ${JSON.stringify(listed.profile.name)}` : ''}`);
          }
          count += page.length;
          if (page.length < 1000) break;
          after = page.at(-1)!.id;
        }
        if (count === 0) context.out('No users yet: portcullis user create --email <address> --password-stdin');
      });
    });

  user
    .command('set-profile')
    .description('Set profile claims (OpenID Connect Core 5.1) that applications granted the "profile" scope receive. An empty value removes a claim.')
    .addOption(context.configOption())
    .argument('<user>', 'email address or user id')
    .option('--name <text>', 'full name')
    .option('--given-name <text>', 'given (first) name')
    .option('--family-name <text>', 'family (last) name')
    .option('--locale <tag>', 'BCP 47 language tag, e.g. en-GB')
    .option('--zoneinfo <zone>', 'IANA time zone, e.g. Europe/Paris')
    .option('--picture <url>', 'https URL of a picture')
    .action(async (who: string, options: { config?: string; name?: string; givenName?: string; familyName?: string; locale?: string; zoneinfo?: string; picture?: string }) => {
      const change: { [field in ProfileField]?: string } = {
        ...(options.name !== undefined && { name: options.name }),
        ...(options.givenName !== undefined && { given_name: options.givenName }),
        ...(options.familyName !== undefined && { family_name: options.familyName }),
        ...(options.locale !== undefined && { locale: options.locale }),
        ...(options.zoneinfo !== undefined && { zoneinfo: options.zoneinfo }),
        ...(options.picture !== undefined && { picture: options.picture }),
      };
      if (Object.keys(change).length === 0) throw new UserCommandError('set-profile: give at least one of --name, --given-name, --family-name, --locale, --zoneinfo, --picture');
      const config = context.load(options);
      await withIdentity(config, async (identity) => {
        const found = await findUser(identity, who);
        const { changed } = await identity.accounts.updateProfile(found.id, change, { actor: 'admin-cli' }).catch(explain);
        context.out(changed.length === 0 ? `${found.email}: the profile already had these values; nothing changed.` : `${found.email}: profile updated (${changed.join(', ')}).`);
      });
    });

  user
    .command('export')
    .description("Write a copy of everything kept about a user (GDPR Art. 15 and 20) to a JSON file readable only by you (0600): profile, sessions, applications, grants, consents, requests, and their audit entries with inclusion proofs. Recorded as their access request and audited.")
    .addOption(context.configOption())
    .argument('<user>', 'email address or user id')
    .requiredOption('-o, --output <file>', 'the file to write (created or replaced, mode 0600)')
    .action(async (who: string, options: { config?: string; output: string }) => {
      const config = context.load(options);
      await withPrivacy(config, async (identity, privacy) => {
        const found = await findUser(identity, who);
        const file = ownerOnlyFile(options.output);
        let document;
        try {
          document = await privacy.exporter.export(found.id, { channel: 'cli' });
        } catch (error) {
          file.abandon();
          throw error;
        }
        file.commit(`${JSON.stringify(document, null, 2)}\n`);
        context.out(`Wrote the data of ${found.email} (${found.id}) to ${options.output}: ${document.audit.entries.length} audit entries, proved against the checkpoint of size ${document.audit.size}.`);
      });
    });

  // The commands that act on one user and say what they did: one shape, one table.
  // `signsOut`: the command ends the user's sessions, so it runs with the logout (withSignOut).
  const actions: readonly { name: string; description: string; signsOut?: true; act: (identity: Identity, found: User, ending: SessionsEnding) => Promise<string> }[] = [
    {
      name: 'disable',
      description: 'Disable a user: they cannot sign in, and every session they hold ends now (their applications are sent back-channel logouts).',
      signsOut: true,
      act: async (identity, found, ending) => {
        await identity.accounts.setDisabled(found.id, true, { actor: 'admin-cli' }, ending(found)).catch(explain);
        return `${found.email} is disabled; their sessions have ended.`;
      },
    },
    {
      name: 'enable',
      description: 'Enable a disabled user again.',
      act: async (identity, found) => {
        await identity.accounts.setDisabled(found.id, false, { actor: 'admin-cli' }).catch(explain);
        return `${found.email} is enabled.`;
      },
    },
    {
      name: 'unlock',
      description: 'Clear the failed sign-in counts and locks of a user (every address, the account-wide slowdown, the second step).',
      act: async (identity, found) => {
        await identity.accounts.unlock(found.id, { actor: 'admin-cli' }).catch(explain);
        return `${found.email} is unlocked: failed sign-ins are forgotten.`;
      },
    },
    {
      name: 'delete',
      description: 'Delete a user and end their sessions (their applications are sent back-channel logouts).',
      signsOut: true,
      act: async (identity, found, ending) => {
        await identity.accounts.deleteUser(found.id, { actor: 'admin-cli' }, ending(found));
        return `Deleted ${found.email} (${found.id}).`;
      },
    },
  ];
  for (const action of actions) {
    user
      .command(action.name)
      .description(action.description)
      .addOption(context.configOption())
      .argument('<user>', 'email address or user id')
      .action(async (who: string, options: { config?: string }) => {
        const config = context.load(options);
        const run = async (identity: Identity, ending: SessionsEnding) => context.out(await action.act(identity, await findUser(identity, who), ending));
        await (action.signsOut === true ? withSignOut(config, who, run) : withIdentity(config, (identity) => run(identity, () => ({}))));
      });
  }
}
