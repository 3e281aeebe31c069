/**
 * Certificate material made by the openssl command line (not by our own
 * code, so a bug in Portcullis' X.509 handling cannot hide behind a bug in
 * the test's): a small CA with `openssl ca` (issuance with any validity,
 * revocation, CRLs), and self-signed certificates. P-256 keys, PKCS#8 PEM.
 */
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface IssuedFiles {
  readonly certFile: string;
  readonly keyFile: string;
  readonly cert: string;
  readonly key: string;
  /** Uppercase hex, as X509Certificate#serialNumber gives it. */
  readonly serialNumber: string;
}

export interface IssueOptions {
  readonly kind: 'server' | 'client';
  readonly ipAddresses?: readonly string[];
  readonly dnsNames?: readonly string[];
  /** Validity; default from a minute ago for a day. */
  readonly notBefore?: Date;
  readonly notAfter?: Date;
}

const CA_CONFIG = `[ ca ]
default_ca = test_ca
[ test_ca ]
dir = .
database = ./index.txt
new_certs_dir = ./issued
serial = ./serial
crlnumber = ./crlnumber
default_md = sha256
policy = any_name
unique_subject = no
copy_extensions = copy
default_crl_days = 1
[ any_name ]
commonName = supplied
[ server ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
[ client ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
`;

function openssl(args: readonly string[], cwd?: string): Buffer {
  return execFileSync('openssl', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
}

/** openssl ca's date format (GeneralizedTime, whole seconds). */
function opensslDate(date: Date): string {
  return `${date.toISOString().replace(/[-:T]/g, '').slice(0, 14)}Z`;
}

function newKeyAndRequest(dir: string, name: string, subjectAltName: string | undefined): { keyFile: string; csrFile: string } {
  const keyFile = join(dir, `${name}.key`);
  const csrFile = join(dir, `${name}.csr`);
  openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyFile, '-out', csrFile, '-subj', `/CN=${name}`, ...(subjectAltName !== undefined ? ['-addext', `subjectAltName=${subjectAltName}`] : [])]);
  return { keyFile, csrFile };
}

function filesOf(certFile: string, keyFile: string): IssuedFiles {
  const cert = readFileSync(certFile, 'utf8');
  return { certFile, keyFile, cert, key: readFileSync(keyFile, 'utf8'), serialNumber: new X509Certificate(cert).serialNumber };
}

export class OpensslCa {
  readonly dir: string;
  readonly certFile: string;
  readonly keyFile: string;
  /** The CA certificate, PEM. */
  readonly cert: string;
  #issued = 0;

  private constructor(dir: string) {
    this.dir = dir;
    this.certFile = join(dir, 'ca.crt');
    this.keyFile = join(dir, 'ca.key');
    this.cert = readFileSync(this.certFile, 'utf8');
  }

  /** A new CA in `dir` (created), named `name`. */
  static create(dir: string, name: string): OpensslCa {
    mkdirSync(join(dir, 'issued'), { recursive: true });
    writeFileSync(join(dir, 'ca.cnf'), CA_CONFIG);
    writeFileSync(join(dir, 'index.txt'), '');
    writeFileSync(join(dir, 'serial'), '1000\n');
    writeFileSync(join(dir, 'crlnumber'), '1000\n');
    openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', `/CN=${name}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
    return new OpensslCa(dir);
  }

  /** A certificate signed by this CA, with a new key; files named `<name>-<n>` in the CA's directory. */
  issue(name: string, options: IssueOptions): IssuedFiles {
    const base = `${name}-${(this.#issued += 1)}`;
    const names = [...(options.ipAddresses ?? []).map((ip) => `IP:${ip}`), ...(options.dnsNames ?? []).map((dns) => `DNS:${dns}`)];
    const { keyFile, csrFile } = newKeyAndRequest(this.dir, base, names.length > 0 ? names.join(',') : undefined);
    const certFile = join(this.dir, `${base}.crt`);
    const notBefore = options.notBefore ?? new Date(Date.now() - 60_000);
    const notAfter = options.notAfter ?? new Date(Date.now() + 86_400_000);
    openssl(['ca', '-config', 'ca.cnf', '-batch', '-rand_serial', '-notext', '-cert', 'ca.crt', '-keyfile', 'ca.key', '-in', csrFile, '-out', certFile, '-extensions', options.kind, '-startdate', opensslDate(notBefore), '-enddate', opensslDate(notAfter)], this.dir);
    return filesOf(certFile, keyFile);
  }

  /** Marks the certificate revoked in the CA's database (the next crl() names it). */
  revoke(certFile: string): void {
    openssl(['ca', '-config', 'ca.cnf', '-revoke', certFile, '-cert', 'ca.crt', '-keyfile', 'ca.key'], this.dir);
  }

  /** A CRL signed now, naming every revoked certificate: DER, as ListenerAuthority#clientTrust gives it. */
  crl(): Buffer {
    const pem = openssl(['ca', '-config', 'ca.cnf', '-gencrl', '-cert', 'ca.crt', '-keyfile', 'ca.key'], this.dir);
    return execFileSync('openssl', ['crl', '-outform', 'DER'], { input: pem });
  }
}

/** A self-signed certificate (a client registered by its certificate, RFC 8705 section 2.2; or a bare server). */
export function selfSigned(dir: string, name: string, options: { readonly kind: 'server' | 'client'; readonly ipAddresses?: readonly string[] }): IssuedFiles {
  const certFile = join(dir, `${name}.crt`);
  const keyFile = join(dir, `${name}.key`);
  const names = (options.ipAddresses ?? []).map((ip) => `IP:${ip}`);
  openssl([
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '1', '-subj', `/CN=${name}`,
    '-addext', `extendedKeyUsage=${options.kind === 'server' ? 'serverAuth' : 'clientAuth'}`,
    ...(names.length > 0 ? ['-addext', `subjectAltName=${names.join(',')}`] : []),
  ]);
  return filesOf(certFile, keyFile);
}
