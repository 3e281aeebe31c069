/**
 * `portcullis agent`: keeps a service's certificate from the built-in CA
 * fresh, for services not written in Node (which use `portcullis/sdk/mtls`
 * instead). It enrols once (an enrolment token from `ca token`, or a client
 * with scope ca:issue and --cert-san names), writes DIR/cert.pem,
 * DIR/key.pem and DIR/bundle.pem atomically, and renews over mutual TLS at
 * two thirds of each lifetime with a new key, running --exec-on-renew
 * after each write. The loop is `agent/agent.ts`; this file reads flags.
 */
import { randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { parseDuration } from '../config/index.ts';
import { parseAllowedName } from '../pki/index.ts';
import { Agent, type AgentCredentials, type AgentNames } from './agent/agent.ts';
import { DEFAULT_BACKOFF } from './agent/backoff.ts';
import { HttpCa } from './agent/ca-client.ts';
import { AGENT_EXIT, AgentExit, AgentStopped } from './agent/errors.ts';
import { runHook } from './agent/hook.ts';

export { AGENT_EXIT, AgentExit } from './agent/errors.ts';

export interface AgentCliContext {
  readonly out: (line: string) => void;
  readonly err: (line: string) => void;
}

interface AgentFlags {
  caUrl: string;
  token?: string;
  tokenFile?: string;
  clientId?: string;
  clientSecretFile?: string;
  san: string[];
  out: string;
  execOnRenew?: string;
  renewUrl?: string;
  ttl?: string;
  once?: boolean;
  crlInterval: string;
  retryMax: string;
  retryInitialMs?: number;
}

/** The longest a timer may wait (Node's setTimeout limit, about 24.8 days). */
const MAX_TIMER_MS = 2 ** 31 - 1;

const refused = (message: string) => new AgentExit(AGENT_EXIT.refused, message);

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

function duration(text: string, flag: string, allowZero = false): number {
  if (allowZero && text.trim() === '0') return 0;
  try {
    return parseDuration(text);
  } catch (error) {
    throw refused(`${flag}: ${(error as Error).message}`);
  }
}

function positiveInteger(value: string): number {
  const number = Number(value);
  if (!/^\d+$/.test(value) || number < 1) throw new InvalidArgumentError('a whole number of milliseconds.');
  return number;
}

function url(text: string, flag: string, protocols: readonly string[]): URL {
  let parsed: URL;
  try {
    parsed = new URL(text);
  } catch {
    throw refused(`${flag}: ${text.slice(0, 200)} is not a URL`);
  }
  if (!protocols.includes(parsed.protocol)) throw refused(`${flag}: ${parsed.origin} must be ${protocols.map((protocol) => protocol.replace(':', '')).join(' or ')}`);
  if (parsed.username !== '' || parsed.password !== '' || parsed.search !== '' || parsed.hash !== '') throw refused(`${flag}: no user, query or fragment in the URL`);
  return parsed;
}

function names(written: readonly string[]): AgentNames {
  const spiffe: string[] = [];
  const dns: string[] = [];
  const ips: string[] = [];
  for (const text of written) {
    let name;
    try {
      name = parseAllowedName(text);
    } catch (error) {
      throw refused(`--san ${text.slice(0, 200)}: ${(error as Error).message}`);
    }
    (name.kind === 'uri' ? spiffe : name.kind === 'dns' ? dns : ips).push(name.value);
  }
  if (spiffe.length !== 1) throw refused('--san: exactly one spiffe://TRUST_DOMAIN/PATH, plus any dns:NAME and ip:ADDRESS');
  return { spiffeId: spiffe[0]!, dns: [...new Set(dns)], ips: [...new Set(ips)] };
}

/** A secret from a file: the first line, without its line ending. */
function secretFile(path: string, flag: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw refused(`${flag}: cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  const secret = text.split(/\r?\n/)[0]!.trim();
  if (secret === '') throw refused(`${flag}: ${path} is empty`);
  return secret;
}

function credentials(flags: AgentFlags): AgentCredentials {
  const given = [flags.token, flags.tokenFile, flags.clientId].filter((value) => value !== undefined).length;
  if (given !== 1) throw refused('authenticate with exactly one of --token, --token-file, or --client-id with --client-secret-file');
  if (flags.clientId !== undefined) {
    if (flags.clientSecretFile === undefined) throw refused('--client-id needs --client-secret-file');
    return { kind: 'client', clientId: flags.clientId, secret: secretFile(flags.clientSecretFile, '--client-secret-file') };
  }
  if (flags.clientSecretFile !== undefined) throw refused('--client-secret-file goes with --client-id');
  const token = flags.token ?? secretFile(flags.tokenFile!, '--token-file');
  return { kind: 'token', token: token.trim() };
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    if (signal.aborted) {
      reject(new AgentStopped('stopped'));
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(new AgentStopped('stopped'));
    };
    const timer = setTimeout(
      () => {
        signal.removeEventListener('abort', onAbort);
        resolvePromise();
      },
      Math.max(0, Math.min(ms, MAX_TIMER_MS)),
    );
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

export function registerAgentCommand(program: Command, context: AgentCliContext): void {
  program
    .command('agent')
    .description(
      'Get a certificate from the built-in CA and keep it renewed, for a service not written in Node: writes DIR/cert.pem, DIR/key.pem (0600) and DIR/bundle.pem atomically, renews over mutual TLS at two thirds of the lifetime with a new key, retries with backoff while the CA is down. Exit codes: 0 done or stopped, 1 refused or misconfigured, 2 CA unreachable (--once), 3 certificate revoked, 4 certificate expired before renewal.',
    )
    .requiredOption('--ca-url <url>', 'the Portcullis server (its issuer URL)')
    .option('--token <jwt>', 'a one-time enrolment token (portcullis ca token); prefer --token-file, which stays out of the process list')
    .option('--token-file <file>', 'a file holding the enrolment token')
    .option('--client-id <id>', 'a client_credentials client with scope ca:issue and --cert-san names (client create)')
    .option('--client-secret-file <file>', "a file holding that client's secret")
    .requiredOption('--san <name>', 'a name for the certificate: exactly one spiffe://TRUST_DOMAIN/PATH, and any dns:NAME or ip:ADDRESS; repeatable', collect)
    .requiredOption('--out <dir>', 'directory of cert.pem, key.pem and bundle.pem (created 0700 if missing)')
    .option('--exec-on-renew <command>', 'shell command run after each write of the files (e.g. to reload the service); its failure is logged, not fatal')
    .option('--renew-url <url>', 'the renewal endpoint (default: the mTLS endpoint the server advertises, + /ca/renew)')
    .option('--ttl <duration>', 'lifetime asked at enrolment (e.g. 24h; default: the CA default); renewals get the CA default')
    .option('--once', 'enrol, or renew now if DIR holds a valid certificate, then exit (cron, tests)')
    .option('--crl-interval <duration>', 'how often to read the CRL to notice a revocation before the next renewal (0: only at renewal)', '10m')
    .option('--retry-max <duration>', 'longest wait between attempts while the CA is unreachable', '60s')
    .addOption(new Option('--retry-initial-ms <ms>', 'first wait between attempts (tests)').argParser(positiveInteger).hideHelp())
    .action(async (flags: AgentFlags) => {
      const caUrl = url(flags.caUrl, '--ca-url', ['http:', 'https:']);
      const renewUrl = flags.renewUrl === undefined ? undefined : url(flags.renewUrl, '--renew-url', ['https:']).href;
      if (flags.ttl !== undefined) duration(flags.ttl, '--ttl');
      const crlIntervalMs = duration(flags.crlInterval, '--crl-interval', true);
      const capMs = duration(flags.retryMax, '--retry-max');
      const agentNames = names(flags.san);
      const agentCredentials = credentials(flags);
      const outDir = resolve(flags.out);
      const stop = new AbortController();
      const onSignal = () => stop.abort();
      process.once('SIGTERM', onSignal);
      process.once('SIGINT', onSignal);
      try {
        const agent = new Agent({
          ca: new HttpCa(caUrl, { signal: stop.signal }),
          caUrl: caUrl.href.replace(/\/+$/, ''),
          credentials: agentCredentials,
          names: agentNames,
          outDir,
          ...(flags.ttl !== undefined && { ttl: flags.ttl }),
          ...(renewUrl !== undefined && { renewUrl }),
          once: flags.once === true,
          backoff: { initialMs: Math.min(flags.retryInitialMs ?? DEFAULT_BACKOFF.initialMs, capMs), capMs },
          crlIntervalMs,
          ...(flags.execOnRenew !== undefined && { afterWrite: () => runHook(flags.execOnRenew!, { cwd: outDir }) }),
          clock: Date.now,
          sleep,
          random: () => randomInt(1_000_000) / 1_000_000,
          out: context.out,
          err: context.err,
        });
        await agent.run(stop.signal);
        if (stop.signal.aborted) context.out('stopped');
      } finally {
        process.removeListener('SIGTERM', onSignal);
        process.removeListener('SIGINT', onSignal);
      }
    });
}
