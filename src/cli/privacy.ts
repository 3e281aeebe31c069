/**
 * `portcullis user erase` and `portcullis privacy requests | erasures |
 * reapply | hold | run`: the privacy workflows from the command line,
 * through the same services the server runs (so every step is checked and
 * audited the same way). Erasure notices are delivered by the running
 * server's outbox worker, which picks up what a command committed.
 */
import type { Command, Option } from 'commander';
import type { Config, ConfigInput } from '../config/index.ts';
import type { User } from '../identity/index.ts';
import { ErasureRefusedError, type ConsumerRequest, type ErasureRecord, type ErasureService } from '../privacy/index.ts';
import { PROFILES, withServices, type PortcullisServices } from '../runtime/index.ts';

export interface PrivacyCliContext {
  readonly out: (line: string) => void;
  readonly err: (line: string) => void;
  readonly load: (options: { config?: string }, overrides?: ConfigInput) => Readonly<Config>;
  readonly configOption: () => Option;
}

/** A refusal the operator can act on: one line, exit 1. */
export class PrivacyCommandError extends Error {
  override readonly name = 'PrivacyCommandError';
}

interface Services {
  readonly privacy: ErasureService;
  readonly identity: PortcullisServices['identity'];
}

function withPrivacy<T>(config: Readonly<Config>, work: (services: Services) => Promise<T>): Promise<T> {
  return withServices({ config, profile: PROFILES.admin() }, ['erasure'], (services) => work({ privacy: services.get('erasure'), identity: services.get('identity') }));
}

async function findUser(services: Services, who: string): Promise<User> {
  const users = services.identity.accounts.users;
  const user = who.startsWith('u_') ? await users.byId(who) : await users.byEmail(who);
  if (user === null) throw new PrivacyCommandError(`no user ${who}`);
  return user;
}

const iso = (ms: number | undefined) => (ms === undefined ? '-' : new Date(ms).toISOString());

function describeRequest(request: ConsumerRequest, now: number): string {
  const late = request.answeredAt === undefined && (now > request.answerBy || (request.confirmedAt === undefined && now > request.confirmBy));
  const state = request.answeredAt !== undefined ? (request.outcome ?? 'answered') : late ? 'OVERDUE' : 'open';
  return `${request.id}  ${request.kind.padEnd(10)} ${request.channel.padEnd(9)} received ${iso(request.receivedAt)}  answer by ${iso(request.answerBy)}  ${state}`;
}

function describeErasure(erasure: ErasureRecord): string[] {
  const head = `${erasure.id}  ${erasure.state.padEnd(9)} requested ${iso(erasure.requestedAt)}  ${erasure.state === 'scheduled' ? `due ${iso(erasure.dueAt)}` : `executed ${iso(erasure.executedAt)}`}  request ${erasure.request}`;
  return [head, ...erasure.recipients.map((recipient) => `    ${recipient.clientId}  ${recipient.channel.padEnd(4)} ${recipient.state.padEnd(10)} deadline ${iso(recipient.deadline)}${recipient.deliveredAt !== undefined ? `  delivered ${iso(recipient.deliveredAt)}` : ''}`)];
}

async function allPages<T extends { id: string }>(list: (options: { after?: string; limit?: number }) => Promise<T[]>): Promise<T[]> {
  const all: T[] = [];
  for (let after: string | undefined; ; ) {
    const page = await list({ limit: 500, ...(after !== undefined && { after }) });
    all.push(...page);
    if (page.length < 500) return all;
    after = page.at(-1)!.id;
  }
}

function explain(error: unknown): never {
  if (error instanceof ErasureRefusedError) throw new PrivacyCommandError(`erasure refused: ${error.message}`);
  throw error;
}

export function registerPrivacyCommands(program: Command, context: PrivacyCliContext): void {
  const user = program.commands.find((command) => command.name() === 'user');
  if (user === undefined) throw new Error('register the user commands before the privacy commands');
  user
    .command('erase')
    .description("Erase a user (GDPR Art. 17): their data from every store, their sessions and tokens, their audit pseudonym key; every application that received their data is told (Art. 19). Cannot be undone. --grace schedules it after privacy.erasureGraceDays instead.")
    .addOption(context.configOption())
    .argument('<user>', 'email address or user id')
    .option('--grace', 'schedule the erasure after the grace period (privacy.erasureGraceDays) instead of now')
    .option('--json', 'print the erasure record as JSON')
    .action(async (who: string, options: { config?: string; grace?: boolean; json?: boolean }) => {
      const config = context.load(options);
      await withPrivacy(config, async (services) => {
        const found = await findUser(services, who);
        const outcome = await services.privacy.erasures.request(found.id, { channel: 'cli', actorService: 'cli' }, { grace: options.grace === true }).catch(explain);
        if (options.json) return context.out(JSON.stringify(outcome.erasure, null, 2));
        if (outcome.kind === 'scheduled') return context.out(`Erasure of ${found.email} scheduled for ${iso(outcome.erasure.dueAt)} (${outcome.erasure.id}).`);
        const tell = outcome.erasure.recipients.filter((recipient) => recipient.state === 'pending').length;
        const unreachable = outcome.erasure.recipients.filter((recipient) => recipient.state === 'no_channel').length;
        context.out(`Erased ${found.id} (${outcome.erasure.id}). Recipients to tell: ${tell}${unreachable > 0 ? `; ${unreachable} without a way to tell them (see \`portcullis privacy erasures\`)` : ''}.`);
        if (outcome.cleanup === 'pending') context.out('Ending the sessions and cutting the address out of shared records failed (is the hot store up?); `portcullis privacy run`, or the server\'s privacy job, finishes it.');
      });
    });

  const privacy = program.command('privacy').description('Privacy workflows: consumer requests and their deadlines, erasures and their notices, legal holds.');

  privacy
    .command('requests')
    .description('List consumer requests (access, deletion, correction, opt-out) with their legal deadlines; overdue ones are marked.')
    .addOption(context.configOption())
    .option('--open', 'only requests not answered yet')
    .option('--json', 'print JSON')
    .action(async (options: { config?: string; open?: boolean; json?: boolean }) => {
      const config = context.load(options);
      await withPrivacy(config, async ({ privacy: workflows }) => {
        const now = Date.now();
        const requests = (await allPages((page) => workflows.requests.list(page))).filter((request) => !options.open || request.answeredAt === undefined);
        if (options.json) return context.out(JSON.stringify(requests, null, 2));
        if (requests.length === 0) return context.out('No requests.');
        for (const request of requests) context.out(describeRequest(request, now));
      });
    });

  privacy
    .command('erasures')
    .description('List erasures and, for each, every recipient with its notice state (pending, delivered, overdue, no_channel, gone).')
    .addOption(context.configOption())
    .option('--json', 'print JSON')
    .action(async (options: { config?: string; json?: boolean }) => {
      const config = context.load(options);
      await withPrivacy(config, async ({ privacy: workflows }) => {
        const erasures = await allPages((page) => workflows.erasures.list(page));
        if (options.json) return context.out(JSON.stringify(erasures, null, 2));
        if (erasures.length === 0) return context.out('No erasures.');
        for (const erasure of erasures) for (const line of describeErasure(erasure)) context.out(line);
      });
    });

  privacy
    .command('reapply')
    .description('After restoring a backup: erase again every account an erasure tombstone names (tombstones of the database and of privacy.tombstoneFile), and put lost tombstones back.')
    .addOption(context.configOption())
    .action(async (options: { config?: string }) => {
      const config = context.load(options);
      await withPrivacy(config, async ({ privacy: workflows }) => {
        const report = await workflows.erasures.reapply({ channel: 'cli', actorService: 'cli' });
        context.out(`Tombstones: ${report.tombstones} (${report.restored} put back into the database${report.malformed > 0 ? `, ${report.malformed} malformed lines skipped` : ''}). Accounts erased again: ${report.erased}.`);
      });
    });

  privacy
    .command('run')
    .description('Run the privacy job once now (due erasures, overdue notices and requests, retention rules), as the server does every privacy.retention.interval.')
    .addOption(context.configOption())
    .action(async (options: { config?: string }) => {
      const config = context.load(options);
      await withPrivacy(config, async ({ privacy: workflows }) => {
        const report = await workflows.runJob();
        if (report === null) return context.out('Another instance is running the job now; nothing done.');
        context.out(`Erasures carried out: ${report.erasuresCarriedOut}. Notices newly overdue: ${report.noticesOverdue}. Requests newly overdue: ${report.requestsOverdue}.`);
        const { cleanups } = report;
        context.out(`Erasure clean-ups finished after a failure: ${cleanups.resumed}; last passes made: ${cleanups.settled} (records written after their erasure, removed: ${cleanups.lateRecords})${cleanups.failed > 0 ? `; failed, tried again next run: ${cleanups.failed}` : ''}.`);
        const retention = report.retention;
        context.out(
          `Retention: ${retention.recordsScanned} records scanned; inactive accounts noticed ${retention.inactiveNoticed}, erased ${retention.inactiveErased}; notices voided by a sign-in ${retention.noticesVoided}; sessions dropped ${retention.sessionsDropped}; IPs pseudonymised ${retention.ipsPseudonymised}; left alone for a legal hold ${retention.held}.`,
        );
        if (!retention.noticeMail && retention.inactiveUnnoticed > 0) context.out(`${retention.inactiveUnnoticed} inactive accounts were not noticed and so are not erased: mail.smtpUrl is not set.`);
        if (!retention.complete) context.out('The run stopped early: its lease passed to another instance.');
      });
    });

  const hold = privacy.command('hold').description('Legal holds (GDPR Art. 17(3)(e)): a held account is neither erased nor touched by retention rules.');
  hold
    .command('set')
    .description('Place a legal hold on a user.')
    .addOption(context.configOption())
    .argument('<user>', 'email address or user id')
    .requiredOption('--reason <text>', 'why (kept with the hold, not in the audit log)')
    .action(async (who: string, options: { config?: string; reason: string }) => {
      if (options.reason.trim() === '' || options.reason.length > 200) throw new PrivacyCommandError('--reason: 1 to 200 characters');
      const config = context.load(options);
      await withPrivacy(config, async (services) => {
        const found = await findUser(services, who);
        const placed = await services.privacy.holds.set(found.id, options.reason.trim(), 'cli');
        context.out(placed ? `${found.email} is on legal hold.` : `${found.email} was already on legal hold.`);
      });
    });
  hold
    .command('release')
    .description('Release a legal hold.')
    .addOption(context.configOption())
    .argument('<user>', 'email address or user id')
    .action(async (who: string, options: { config?: string }) => {
      const config = context.load(options);
      await withPrivacy(config, async (services) => {
        const found = await findUser(services, who);
        context.out((await services.privacy.holds.release(found.id, 'cli')) ? `${found.email}: legal hold released.` : `${found.email} had no legal hold.`);
      });
    });
}

