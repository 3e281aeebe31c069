/**
 * `portcullis ca init | token | list | revoke | rotate | prove`: the
 * built-in CA, operated from the command line. Every change is a ledger
 * entry; `prove` prints the inclusion proofs of a certificate's entries
 * against a signed checkpoint (certificate transparency for internal
 * certificates).
 */
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Option, type Command } from 'commander';
import { decodeEntry } from '../audit/index.ts';
import { verifyInclusion } from '../audit/merkle/index.ts';
import { parseDuration, type Config, type ConfigInput } from '../config/index.ts';
import { ResourceRegistryError } from '../oauth/index.ts';
import { AuthorityError, REVOCATION_REASONS, normaliseSerial, parseAllowedName, type CertificateSummary, type RevocationReason } from '../pki/index.ts';
import { PROFILES, withServices } from '../runtime/index.ts';

export interface CaCliContext {
  readonly out: (line: string) => void;
  readonly err: (line: string) => void;
  readonly load: (options: { config?: string }, overrides?: ConfigInput) => Readonly<Config>;
  readonly configOption: () => Option;
}

/** A refusal the operator can act on: one line, exit 1. */
export class CaCommandError extends Error {
  override readonly name = 'CaCommandError';
}

const ACTOR = { actorService: 'admin-cli' } as const;
/** The scope clients need for POST /ca/sign, owned by the CA's resource `<issuer>/ca`. */
const CA_ISSUE_SCOPE = 'ca:issue';

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

function duration(text: string, what: string): number {
  try {
    return parseDuration(text);
  } catch (error) {
    throw new CaCommandError(`${what}: ${(error as Error).message}`);
  }
}

/** AuthorityErrors are the operator's to act on: one line. */
async function operatorErrors<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (error instanceof AuthorityError) throw new CaCommandError(error.message);
    throw error;
  }
}

function row(item: CertificateSummary): string {
  const state = item.revokedAt !== undefined ? `revoked ${new Date(item.revokedAt).toISOString()} (${item.reason ?? 'unspecified'})` : 'valid';
  const names = [...item.dns.map((name) => `dns:${name}`), ...item.ips.map((ip) => `ip:${ip}`)].join(' ');
  return `${item.serial}  ${new Date(item.notAfter).toISOString()}  ${state.padEnd(10)}  ${item.spiffeId}${names === '' ? '' : `  ${names}`}`;
}

export function registerCaCommands(program: Command, context: CaCliContext): void {
  const ca = program.command('ca').description('The built-in certificate authority: SPIFFE X509-SVIDs for services, their revocation, and the proof of every issuance.');

  ca.command('init')
    .description('Create the root and intermediate CA (ECDSA P-256), and the resource <issuer>/ca with scope ca:issue.')
    .addOption(context.configOption())
    .option('--root-out <dir>', 'write the root key to DIR/root-key.pem and keep it only there (offline root); `ca rotate` then needs it back')
    .action(async (options: { config?: string; rootOut?: string }) => {
      const config = context.load(options);
      await withServices({ config, profile: PROFILES.admin() }, ['pki', 'registries'], async (services) => {
        const { authority } = services.get('pki');
        const rootDir = options.rootOut === undefined ? undefined : resolve(options.rootOut);
        const created = await operatorErrors(() => authority.initialise({ keepRootOffline: rootDir !== undefined, context: ACTOR }));
        if (rootDir !== undefined && created.rootKeyPem !== undefined) {
          mkdirSync(rootDir, { recursive: true, mode: 0o700 });
          writeFileSync(join(rootDir, 'root-key.pem'), created.rootKeyPem, { mode: 0o600, flag: 'wx' });
          context.out(`root key written to ${join(rootDir, 'root-key.pem')}: keep it offline; it is not stored here`);
        }
        const resources = services.get('registries').resources;
        const uri = `${config.issuer.replace(/\/$/, '')}/ca`;
        try {
          if ((await resources.get(uri)) === null) await resources.create({ uri, scopes: [CA_ISSUE_SCOPE] }, { actor: 'admin-cli' });
        } catch (error) {
          if (!(error instanceof ResourceRegistryError)) throw error;
          context.err(`the CA works, but the resource ${uri} with scope ${CA_ISSUE_SCOPE} could not be registered: ${error.message}`);
        }
        context.out(`CA initialised for trust domain ${authority.trustDomain}`);
        context.out(`root: ${created.root}`);
        context.out(`intermediate: ${created.intermediate}`);
        context.out(`clients get certificates with scope ${CA_ISSUE_SCOPE} (resource ${uri}) and --cert-san names; or use \`portcullis ca token\``);
      });
    });

  ca.command('token')
    .description('Make a one-time enrolment token for POST /ca/sign (portcullis agent --token): a short-lived signed JWT, usable once.')
    .addOption(context.configOption())
    .requiredOption('--san <name>', 'a name the certificate may have: exactly one spiffe://TRUST_DOMAIN/PATH, and any dns:NAME or ip:ADDRESS; repeatable', collect)
    .option('--ttl <duration>', 'how long the token can be used (at most 24h)', '10m')
    .action(async (options: { config?: string; san: string[]; ttl: string }) => {
      const config = context.load(options);
      for (const name of options.san) {
        try {
          parseAllowedName(name);
        } catch (error) {
          throw new CaCommandError(`--san ${name.slice(0, 200)}: ${(error as Error).message}`);
        }
      }
      const ttlMs = duration(options.ttl, '--ttl');
      await withServices({ config, profile: PROFILES.admin() }, ['pki'], async (services) => {
        const { authority, enrolment } = services.get('pki');
        if (!authority.initialised) throw new CaCommandError('the CA is not initialised: run `portcullis ca init`');
        try {
          const made = await enrolment.create({ names: options.san, ttlMs, context: ACTOR });
          context.out(made.token);
          context.err(`enrolment token ${made.jti}: one use, until ${made.expiresAt.toISOString()}`);
        } catch (error) {
          if (error instanceof RangeError) throw new CaCommandError(error.message);
          throw error;
        }
      });
    });

  ca.command('list')
    .description('List issued certificates (serial, expiry, state, SPIFFE ID, other names).')
    .addOption(context.configOption())
    .option('--expiring <duration>', 'only valid certificates that expire within this time (e.g. 24h)')
    .option('--revoked', 'only revoked certificates')
    .option('--json', 'print JSON')
    .action(async (options: { config?: string; expiring?: string; revoked?: boolean; json?: boolean }) => {
      const config = context.load(options);
      const expiringWithinMs = options.expiring === undefined ? undefined : duration(options.expiring, '--expiring');
      await withServices({ config, profile: PROFILES.admin() }, ['pki'], async (services) => {
        const found = await services.get('pki').authority.list({ ...(expiringWithinMs !== undefined && { expiringWithinMs }), ...(options.revoked === true && { revoked: true }) });
        if (options.json === true) {
          context.out(JSON.stringify(found.map(({ certificate: _der, ...rest }) => rest), null, 2));
          return;
        }
        if (found.length === 0) context.out('no certificates');
        for (const item of found) context.out(row(item));
      });
    });

  ca.command('revoke')
    .description('Revoke a certificate: it cannot renew, the CRL lists it at once, and every mTLS listener refuses it.')
    .addOption(context.configOption())
    .argument('<serial>', 'the serial, in hex (as `ca list` prints it)')
    .addOption(new Option('--reason <reason>', 'RFC 5280 section 5.3.1 reason').choices(REVOCATION_REASONS).default('unspecified'))
    .action(async (serial: string, options: { config?: string; reason: RevocationReason }) => {
      const config = context.load(options);
      if (normaliseSerial(serial) === undefined) throw new CaCommandError(`${serial.slice(0, 64)} is not a serial (hex, as \`portcullis ca list\` prints it)`);
      await withServices({ config, profile: PROFILES.admin() }, ['pki'], async (services) => {
        const outcome = await operatorErrors(() => services.get('pki').authority.revoke(serial, options.reason, ACTOR));
        if (outcome === 'unknown') throw new CaCommandError(`no certificate with serial ${serial.slice(0, 64)} (see portcullis ca list)`);
        context.out(outcome === 'revoked' ? `revoked ${normaliseSerial(serial)} (${options.reason})` : `${normaliseSerial(serial)} was already revoked`);
      });
    });

  ca.command('rotate')
    .description('Make a new intermediate; the old one stays in the bundles until every certificate it signed has expired.')
    .addOption(context.configOption())
    .option('--root-key <file>', 'the root key (PEM), when it is kept offline (ca init --root-out)')
    .action(async (options: { config?: string; rootKey?: string }) => {
      const config = context.load(options);
      let rootKey: KeyObject | undefined;
      if (options.rootKey !== undefined) {
        try {
          rootKey = createPrivateKey(readFileSync(options.rootKey));
        } catch {
          throw new CaCommandError(`--root-key: ${options.rootKey} is not a readable PEM private key`);
        }
      }
      await withServices({ config, profile: PROFILES.admin() }, ['pki'], async (services) => {
        const rotated = await operatorErrors(() => services.get('pki').authority.rotate({ ...(rootKey !== undefined && { rootKey }), context: ACTOR }));
        context.out(`new intermediate ${rotated.intermediate}; ${rotated.retired} retired (still served until what it signed expires)`);
      });
    });

  ca.command('prove')
    .description("Print the ledger entries of a certificate's issue, renewal and revocation, each with its inclusion proof against a signed checkpoint.")
    .addOption(context.configOption())
    .argument('<serial>', 'the serial, in hex')
    .action(async (serial: string, options: { config?: string }) => {
      const config = context.load(options);
      const id = normaliseSerial(serial);
      if (id === undefined) throw new CaCommandError(`${serial.slice(0, 64)} is not a serial (hex, as \`portcullis ca list\` prints it)`);
      await withServices({ config, profile: PROFILES.admin() }, ['ledger'], async (services) => {
        const ledger = services.get('ledger');
        const size = await ledger.size();
        const found: { index: number; text: string }[] = [];
        for (let start = 0; start < size; start += 1000) {
          for (const [offset, row] of (await ledger.entries(start, Math.min(size, start + 1000))).entries()) {
            const entry = decodeEntry(row.entry);
            if (!entry.type.startsWith('certificate.')) continue;
            const detail = entry.detail ?? {};
            if (detail['serial'] === id || detail['previous'] === id) found.push({ index: start + offset, text: new TextDecoder().decode(row.entry) });
          }
        }
        if (found.length === 0) throw new CaCommandError(`the ledger has no entry for serial ${id}`);
        // A proof needs a checkpoint that covers the entry: sign one when the latest is older than it.
        let checkpoint = await ledger.latestCheckpoint();
        if (checkpoint.size <= found.at(-1)!.index) checkpoint = await ledger.signCheckpoint();
        const proofs = [];
        for (const item of found) {
          const { leafHash, proof } = await ledger.inclusionProof(item.index, checkpoint.size);
          if (!verifyInclusion(leafHash, item.index, checkpoint.size, proof, checkpoint.rootHash)) throw new Error(`the inclusion proof of entry ${item.index} does not verify against the checkpoint`);
          proofs.push({ index: item.index, entry: JSON.parse(item.text) as unknown, leafHash: Buffer.from(leafHash).toString('base64'), proof: proof.map((node) => Buffer.from(node).toString('base64')) });
        }
        context.out(JSON.stringify({ serial: id, treeSize: checkpoint.size, checkpoint: checkpoint.note, entries: proofs }, null, 2));
      });
    });
}
