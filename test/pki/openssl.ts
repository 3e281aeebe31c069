/**
 * Debian's `openssl` CLI as the independent party of the PKI tests: it makes
 * the keys and CSRs a workload would send, and it verifies what the CA
 * issues (chains, purposes, CRLs), so a test never checks our X.509 code
 * with our X.509 code. Every file lives in one temp dir per workbench,
 * removed by `close`.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export type OpensslKeyKind = 'ec-p256' | 'ec-p384' | 'rsa-2048' | 'rsa-1024' | 'ed25519' | 'secp256k1';

const KEY_ARGS: Readonly<Record<OpensslKeyKind, readonly string[]>> = {
  'ec-p256': ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256'],
  'ec-p384': ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-384'],
  'rsa-2048': ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048'],
  'rsa-1024': ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:1024'],
  ed25519: ['-algorithm', 'ED25519'],
  secp256k1: ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:secp256k1'],
};

export interface OpensslResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export class Openssl {
  readonly dir = mkdtempSync(join(tmpdir(), 'portcullis-pki-'));
  #counter = 0;

  /** A fresh path in the temp dir. */
  path(name: string): string {
    this.#counter += 1;
    return join(this.dir, `${this.#counter}-${name}`);
  }

  /** Writes `content` to a fresh file and returns its path. */
  file(name: string, content: string | Uint8Array): string {
    const path = this.path(name);
    writeFileSync(path, content);
    return path;
  }

  /** Runs openssl; never throws on a non-zero exit (the caller asserts the code). */
  async run(args: readonly string[]): Promise<OpensslResult> {
    try {
      const { stdout, stderr } = await run('openssl', [...args], { cwd: this.dir, encoding: 'utf8' });
      return { code: 0, stdout, stderr };
    } catch (error) {
      const failed = error as { code?: unknown; stdout?: string; stderr?: string };
      if (typeof failed.code !== 'number') throw error;
      return { code: failed.code, stdout: failed.stdout ?? '', stderr: failed.stderr ?? '' };
    }
  }

  /** Runs openssl and returns stdout; throws with stderr when it fails. */
  async ok(args: readonly string[]): Promise<string> {
    const result = await this.run(args);
    if (result.code !== 0) throw new Error(`openssl ${args.join(' ')} exited ${result.code}: ${result.stderr}${result.stdout}`);
    return result.stdout;
  }

  /** A private key (PEM path). */
  async key(kind: OpensslKeyKind): Promise<string> {
    const out = this.path(`${kind}.key`);
    await this.ok(['genpkey', ...KEY_ARGS[kind], '-out', out]);
    return out;
  }

  /**
   * A CSR (PEM text) for `keyPath` asking for `sans` (openssl's syntax:
   * `URI:spiffe://...`, `DNS:...`, `IP:...`) and any other `-addext` lines.
   */
  async csr(keyPath: string, options: { readonly sans?: readonly string[]; readonly addext?: readonly string[]; readonly subject?: string } = {}): Promise<string> {
    const out = this.path('request.csr');
    const args = ['req', '-new', '-key', keyPath, '-subj', options.subject ?? '/CN=workload', '-out', out];
    if (options.sans !== undefined && options.sans.length > 0) args.push('-addext', `subjectAltName=${options.sans.join(',')}`);
    for (const line of options.addext ?? []) args.push('-addext', line);
    await this.ok(args);
    return readFileSync(out, 'utf8');
  }

  /** A key and a CSR for it in one step. */
  async request(kind: OpensslKeyKind, sans: readonly string[], addext: readonly string[] = []): Promise<{ readonly keyPath: string; readonly csr: string }> {
    const keyPath = await this.key(kind);
    return { keyPath, csr: await this.csr(keyPath, { sans, addext }) };
  }

  /** `openssl x509 -text` of a PEM certificate. */
  text(certificatePem: string): Promise<string> {
    return this.ok(['x509', '-noout', '-text', '-in', this.file('cert.pem', certificatePem)]);
  }

  /** `openssl verify` of `leafPem` against a root, with the intermediate untrusted; `extra` adds flags. */
  verify(options: { readonly root: string; readonly intermediate: string; readonly leaf: string; readonly extra?: readonly string[]; readonly crls?: readonly Uint8Array[] }): Promise<OpensslResult> {
    const args = ['verify', ...(options.extra ?? []), '-CAfile', this.file('root.pem', options.root), '-untrusted', this.file('intermediate.pem', options.intermediate)];
    if (options.crls !== undefined) {
      const pem = options.crls.map((der) => `-----BEGIN X509 CRL-----\n${Buffer.from(der).toString('base64').replace(/.{1,64}/g, '$&\n')}-----END X509 CRL-----\n`).join('');
      args.push('-CRLfile', this.file('crls.pem', pem));
    }
    args.push(this.file('leaf.pem', options.leaf));
    return this.run(args);
  }

  close(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The first PEM certificate in `pem` and the rest, as given. */
export function splitPem(pem: string): string[] {
  return [...pem.matchAll(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g)].map((match) => match[0]);
}
