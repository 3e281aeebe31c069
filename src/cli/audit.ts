/**
 * `portcullis audit verify | export | checkpoint | key`: the ledger from the
 * command line, for operators, auditors and SIEM pipelines.
 */
import { createWriteStream, readFileSync, type WriteStream } from 'node:fs';
import { once } from 'node:events';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { checkpointFormat, decodeEntry, storedLogVerifierKey, verifyLog, verifySubjectHistory, type HistoryReport, type VerifyReport, type VerifySource } from '../audit/index.ts';
import type { Config, ConfigInput } from '../config/index.ts';
import type { Stores } from '../store/index.ts';
import { PROFILES, withServices } from '../runtime/index.ts';
import { AuditSourceError, fetchFailure, fileSource, privacyExportAudit, storeSource, urlSource } from './audit-sources.ts';

export interface AuditCliContext {
  readonly out: (line: string) => void;
  readonly err: (line: string) => void;
  /** Writes without a newline (progress bar); only used when `interactive`. */
  readonly errRaw: (text: string) => void;
  readonly interactive: boolean;
  readonly load: (options: { config?: string }, overrides?: ConfigInput) => Readonly<Config>;
  readonly configOption: () => Option;
}

/** A verification that found tampering: the report is printed, the exit code is 1. */
export class AuditVerificationFailed extends Error {
  override readonly name = 'AuditVerificationFailed';
}

export { AuditSourceError };

function nonNegativeInteger(value: string): number {
  if (!/^(0|[1-9][0-9]{0,15})$/.test(value)) throw new InvalidArgumentError('must be a non-negative integer.');
  return Number(value);
}

function readText(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw new AuditSourceError(`cannot read ${what} ${path} (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

async function withStores<T>(config: Readonly<Config>, work: (stores: Stores) => Promise<T>): Promise<T> {
  // These commands only read: opening a missing SQLite file would create an
  // empty database (and its directory) where the operator mistyped a path.
  // A database without the audit tables is a wrong --config or data
  // directory, not an empty log: say so rather than fail on a query.
  // No master key either: an auditor with a copy of the database needs none.
  return withServices({ config, profile: PROFILES.admin() }, ['stores'], (services) => work(services.get('stores')));
}

/** A one-line progress bar on a terminal: `verifying  45% [#########-----------] 450000/1000000`. */
function progressBar(context: AuditCliContext): ((done: number, total: number) => void) | undefined {
  if (!context.interactive) return undefined;
  return (done, total) => {
    const fraction = total > 0 ? Math.min(1, done / total) : 1;
    const filled = Math.round(fraction * 30);
    context.errRaw(`\rverifying ${String(Math.round(fraction * 100)).padStart(3)}% [${'#'.repeat(filled)}${'-'.repeat(30 - filled)}] ${done}/${total}`);
    if (done >= total) context.errRaw('\n');
  };
}

function printReport(report: VerifyReport, context: AuditCliContext): void {
  if (report.ok) {
    const latest = report.latest;
    context.out(`OK: ${report.entries} entries and ${report.checkpointsChecked} checkpoints verified.`);
    if (latest !== undefined) {
      context.out(`Latest verified checkpoint: size ${latest.size}, root ${Buffer.from(latest.rootHash).toString('base64')}.`);
      if (latest.size < report.entries) context.out(`${report.entries - latest.size} newer entries are not covered by a checkpoint yet.`);
    }
    return;
  }
  context.out(`TAMPERED: ${report.problems.length + report.problemsOmitted} problem(s) found.`);
  if (report.firstBadIndex !== undefined) context.out(`First bad index: ${report.firstBadIndex}`);
  for (const problem of report.problems) context.out(`  ${problem.kind}: ${problem.message}`);
  if (report.problemsOmitted > 0) context.out(`  ... and ${report.problemsOmitted} more`);
}

/** The verdict on a person's own history (a privacy export's `audit` member). */
function printHistoryReport(report: HistoryReport, context: AuditCliContext): void {
  if (report.ok) {
    context.out(`OK: ${report.verified} of your entries verified against the checkpoint of size ${report.checkpoint?.size ?? 0}.`);
    return;
  }
  context.out(`TAMPERED: ${report.problems.length + report.problemsOmitted} problem(s) found; ${report.verified} of ${report.entries} entries verified.`);
  for (const problem of report.problems) context.out(`  ${problem.kind}: ${problem.message}`);
  if (report.problemsOmitted > 0) context.out(`  ... and ${report.problemsOmitted} more`);
}

async function saveNote(path: string, note: string): Promise<void> {
  const output = createWriteStream(path, { mode: 0o644 });
  output.end(note);
  await once(output, 'close');
}

interface VerifyOptions {
  config?: string;
  url?: string;
  token?: string;
  file?: string;
  key?: string;
  keyFile?: string;
  trusted: string[];
  json?: boolean;
  saveLatest?: string;
}

/** Adds `audit` and its subcommands to the program (through `.command`, so they inherit its error handling and output). */
export function registerAuditCommands(program: Command, context: AuditCliContext): void {
  const audit = program.command('audit').description('Verify, export and inspect the tamper-evident audit ledger.');

  audit
    .command('verify')
    .description('Check the whole log: every entry against every signed checkpoint, and against checkpoints you trust. Exit 1 on any tampering.')
    .addOption(context.configOption())
    .addOption(new Option('--url <url>', 'verify a running server (entries need --token)').conflicts('file'))
    .option('--token <token>', 'admin bearer token for --url (default: $PORTCULLIS_ADMIN_TOKEN)')
    .option('--file <file>', 'verify a JSONL export (made with `audit export --with-checkpoints`), or the audit history in a person\'s privacy export')
    .option('--key <vkey>', "the log's public key (signed-note verifier key); pin it, or a replaced key goes unnoticed")
    .option('--key-file <file>', 'read --key from a file')
    .option('--trusted <file>', 'a checkpoint you saved earlier and trust (repeatable)', (value: string, previous: string[]) => [...previous, value], [])
    .option('--save-latest <file>', 'write the latest verified checkpoint here, to pass as --trusted next time')
    .option('--json', 'print the report as JSON')
    .action(async (options: VerifyOptions) => {
      const trusted = options.trusted.map((path) => readText(path, 'trusted checkpoint'));
      const pinnedKey = options.key ?? (options.keyFile !== undefined ? readText(options.keyFile, 'key file').trim() : undefined);
      /** The key to verify with: the pinned one (warning when the source offers another), else the source's own (warning). */
      const logKeyOf = async (sourceKey: () => Promise<string | null>) => {
        let keyText = pinnedKey;
        if (keyText !== undefined) {
          const offered = await sourceKey().catch(() => null);
          if (offered !== null && offered !== keyText) context.err(`warning: the source's log key (${offered}) is not the one you pinned: the key may have been replaced`);
        } else {
          keyText = (await sourceKey()) ?? undefined;
          if (keyText === undefined) throw new AuditSourceError('no log key: pass --key (the output of `portcullis audit key` on the server)');
          context.err(`warning: using the log key the source itself provides (${keyText}); pin it with --key so a replaced key is caught`);
        }
        try {
          return checkpointFormat.parseVerifierKey(keyText);
        } catch {
          throw new AuditSourceError('--key is not a signed-note verifier key (name+keyid+base64)');
        }
      };
      const run = async (source: VerifySource, sourceKey: () => Promise<string | null>) => {
        const logKey = await logKeyOf(sourceKey);
        const progress = progressBar(context);
        const report = await verifyLog(source, { logKey, trusted, ...(progress !== undefined && { onProgress: progress }) });
        if (options.json) context.out(JSON.stringify(report, (_key, value: unknown) => (value instanceof Uint8Array ? Buffer.from(value).toString('base64') : value), 2));
        else printReport(report, context);
        if (options.saveLatest !== undefined && report.ok && report.latestNote !== undefined) await saveNote(options.saveLatest, report.latestNote);
        if (!report.ok) throw new AuditVerificationFailed('the audit log failed verification');
      };
      /** A person's own history: every entry with its inclusion proof against one signed checkpoint. */
      const runHistory = async (history: unknown) => {
        const offered = isObject(history) && typeof history['logKey'] === 'string' ? history['logKey'] : null;
        const logKey = await logKeyOf(async () => offered);
        // Trusted checkpoints need consistency proofs to be compared with, which an export does not carry.
        if (trusted.length > 0) context.err('warning: --trusted is not used for a privacy export (it carries no consistency proofs)');
        const report = verifySubjectHistory(history, { logKey });
        if (options.json) context.out(JSON.stringify(report, (_key, value: unknown) => (value instanceof Uint8Array ? Buffer.from(value).toString('base64') : value), 2));
        else printHistoryReport(report, context);
        if (options.saveLatest !== undefined && report.ok && isObject(history) && typeof history['checkpoint'] === 'string') await saveNote(options.saveLatest, history['checkpoint']);
        if (!report.ok) throw new AuditVerificationFailed('the audit history failed verification');
      };
      if (options.url !== undefined) {
        const source = urlSource(options.url, options.token ?? process.env['PORTCULLIS_ADMIN_TOKEN']);
        return run(source, () => source.key());
      }
      if (options.file !== undefined) {
        const privacyExport = await privacyExportAudit(options.file);
        if (privacyExport !== undefined) return runHistory(privacyExport.audit);
        return run(fileSource(options.file), async () => null);
      }
      const config = context.load(options);
      return withStores(config, (stores) => run(storeSource(stores.durable), () => storedLogVerifierKey(stores.durable.records)));
    });

  audit
    .command('export')
    .description('Stream entries as JSON lines (for a SIEM, or for `audit verify --file`).')
    .addOption(context.configOption())
    .addOption(new Option('--format <format>', 'output format').choices(['jsonl']).default('jsonl'))
    .addOption(new Option('--start <index>', 'first entry').argParser(nonNegativeInteger).default(0))
    .addOption(new Option('--end <index>', 'stop before this entry (default: the end of the log)').argParser(nonNegativeInteger))
    .option('--with-checkpoints', 'also write every signed checkpoint, as {"checkpoint": note} lines')
    .option('-o, --output <file>', 'write to this file instead of stdout')
    .action(async (options: { config?: string; start: number; end?: number; withCheckpoints?: boolean; output?: string }) => {
      const config = context.load(options);
      await withStores(config, async (stores) => {
        const log = stores.durable.auditLog;
        const end = Math.min(options.end ?? Number.MAX_SAFE_INTEGER, await log.size());
        const file: WriteStream | undefined = options.output === undefined ? undefined : createWriteStream(options.output, { mode: 0o600 });
        const write = async (line: string) => {
          if (file === undefined) context.out(line);
          else if (!file.write(`${line}\n`)) await once(file, 'drain');
        };
        for (let start = options.start; start < end; ) {
          const rows = await log.entries(start, end);
          if (rows.length === 0) break;
          for (const row of rows) await write(`{"index":${row.index},"entry":${JSON.stringify(decodeEntry(row.entry))}}`);
          start = rows.at(-1)!.index + 1;
        }
        if (options.withCheckpoints) {
          for (let afterId = 0; ; ) {
            const page = await log.checkpoints({ afterId, limit: 1000 });
            for (const checkpoint of page) await write(JSON.stringify({ checkpoint: checkpoint.note }));
            if (page.length < 1000) break;
            afterId = page.at(-1)!.id;
          }
        }
        if (file !== undefined) {
          file.end();
          await once(file, 'close');
        }
      });
    });

  audit
    .command('checkpoint')
    .description('Print the latest signed checkpoint (with witness cosignatures): keep it, and pass it to `audit verify --trusted` later.')
    .addOption(context.configOption())
    .option('--url <url>', 'ask a running server instead of the local store')
    .option('--sign', 'sign a new checkpoint of the log as it is now first (with --url: needs --token)')
    .option('--token <token>', 'admin bearer token for --url --sign (default: $PORTCULLIS_ADMIN_TOKEN)')
    .action(async (options: { config?: string; url?: string; sign?: boolean; token?: string }) => {
      if (options.url !== undefined) {
        const token = options.token ?? process.env['PORTCULLIS_ADMIN_TOKEN'];
        const init: RequestInit = options.sign ? { method: 'POST', headers: token === undefined ? {} : { authorization: `Bearer ${token}` } } : {};
        const response = await fetch(`${options.url.replace(/\/+$/, '')}/audit/checkpoint`, init).catch((error: unknown) => {
          throw new AuditSourceError(`cannot reach ${options.url}: ${fetchFailure(error)}`);
        });
        if (!response.ok) {
          const hint = response.status === 401 ? ' (signing needs the admin token: --token or $PORTCULLIS_ADMIN_TOKEN)' : '';
          throw new AuditSourceError(`${options.url} answered ${response.status}${hint}`);
        }
        context.out((await response.text()).trimEnd());
        return;
      }
      const config = context.load(options);
      // Signing needs the ledger (and so the master key); reading needs only the stores.
      await withServices({ config, profile: PROFILES.admin() }, options.sign ? ['ledger'] : ['stores'], async (services) => {
        if (options.sign) await services.get('ledger').signCheckpoint();
        const stores = services.get('stores');
        const latest = await stores.durable.auditLog.latestCheckpoint();
        if (latest === null) throw new AuditSourceError('the log has no checkpoint yet: start the server once (`portcullis serve`)');
        const cosignatures = await stores.durable.auditLog.cosignatures(latest.id);
        context.out((latest.note + cosignatures.map((cosignature) => `${cosignature.signatureLine}\n`).join('')).trimEnd());
      });
    });

  audit
    .command('key')
    .description("Print the log's public key (the signed-note verifier key that checks its checkpoints).")
    .addOption(context.configOption())
    .action(async (options: { config?: string }) => {
      const config = context.load(options);
      await withStores(config, async (stores) => {
        const key = await storedLogVerifierKey(stores.durable.records);
        if (key === null) throw new AuditSourceError('the log has no key yet: start the server once (`portcullis serve`)');
        context.out(key);
      });
    });
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
