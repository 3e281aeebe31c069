/**
 * Mutual TLS for tests (RFC 8705): certificates made by the `openssl` command
 * line in a temporary directory, and an HTTPS listener in front of a test
 * server's Fastify app that asks every client for a certificate
 * (`requestCert`) without refusing an untrusted one (`rejectUnauthorized:
 * false`), as the self-signed method needs: the routes then read the
 * certificate and `authorized` from the socket, exactly as on the mTLS
 * listener.
 */
import { execFileSync } from 'node:child_process';
import { X509Certificate, createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { Agent, fetch, type Response } from 'undici';

/** A certificate and its key, PEM. */
export interface Pem {
  readonly cert: string;
  readonly key: string;
  readonly x509: X509Certificate;
  /** RFC 8705 section 3.1: base64url SHA-256 of the DER. */
  readonly thumbprint: string;
  /** Where they are on disk (for command-line clients). */
  readonly certFile: string;
  readonly keyFile: string;
}

export interface TestPki {
  /** The CA the listener trusts. */
  readonly ca: Pem;
  /** The listener's own certificate (127.0.0.1, localhost), from `ca`. */
  readonly server: Pem;
  /** From `ca`: CN=alpha,OU=Payments,O=Example Corp,C=US with SPIFFE, DNS, IP and email SANs. */
  readonly alpha: Pem;
  /** From `ca`: CN=beta with its own SPIFFE ID and DNS name. */
  readonly beta: Pem;
  /** The same subject and SANs as alpha, from a CA the listener does not trust. */
  readonly foreignAlpha: Pem;
  /** Self-signed, valid for a day from now. */
  readonly selfSigned: Pem;
  /** Another self-signed certificate. */
  readonly otherSelfSigned: Pem;
  /** A JWK of `pem`'s public key with the certificate as its x5c (RFC 7517 section 4.7). */
  jwk(pem: Pem): Record<string, unknown>;
  remove(): void;
}

export const ALPHA = {
  dn: 'CN=alpha,OU=Payments,O=Example Corp,C=US',
  uri: 'spiffe://example.org/ns/prod/sa/alpha',
  dns: 'alpha.example.com',
  ip: '192.0.2.10',
  ipv6: '2001:db8::10',
  email: 'Alpha.Ops@Example.com',
} as const;
export const BETA = { uri: 'spiffe://example.org/ns/prod/sa/beta', dns: 'beta.example.com' } as const;

function openssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

function read(dir: string, name: string): Pem {
  const certFile = join(dir, `${name}.pem`);
  const keyFile = join(dir, `${name}.key`);
  const cert = readFileSync(certFile, 'utf8');
  const x509 = new X509Certificate(cert);
  return { cert, key: readFileSync(keyFile, 'utf8'), x509, thumbprint: createHash('sha256').update(x509.raw).digest('base64url'), certFile, keyFile };
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

/** A CA certificate (self-signed, CA:TRUE). */
function makeCa(dir: string, name: string, subject: string): void {
  openssl(dir, ['req', '-x509', ...EC, '-keyout', `${name}.key`, '-out', `${name}.pem`, '-days', '2', '-subj', subject, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
}

/** A leaf certificate issued by `ca`, with the given extensions. */
function makeLeaf(dir: string, name: string, ca: string, subject: string, extensions: string[]): void {
  openssl(dir, ['req', '-new', ...EC, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject]);
  writeFileSync(join(dir, `${name}.ext`), `${['basicConstraints=CA:FALSE', ...extensions].join('\n')}\n`);
  openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`, '-set_serial', `0x${randomBytes(12).toString('hex')}`, '-days', '1', '-extfile', `${name}.ext`, '-out', `${name}.pem`]);
}

function makeSelfSigned(dir: string, name: string, subject: string): void {
  openssl(dir, ['req', '-x509', ...EC, '-keyout', `${name}.key`, '-out', `${name}.pem`, '-days', '1', '-subj', subject, '-addext', 'basicConstraints=critical,CA:FALSE', '-addext', 'extendedKeyUsage=clientAuth']);
}

/** Makes every certificate the mTLS tests use (a few hundred milliseconds of openssl). */
export function makeTestPki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-mtls-'));
  const alphaSans = `subjectAltName=URI:${ALPHA.uri},DNS:${ALPHA.dns},IP:${ALPHA.ip},IP:${ALPHA.ipv6},email:${ALPHA.email}`;
  const client = 'extendedKeyUsage=clientAuth';
  makeCa(dir, 'ca', '/CN=Portcullis Test Client CA');
  makeCa(dir, 'foreign-ca', '/CN=Someone Else CA');
  makeLeaf(dir, 'server', 'ca', '/CN=localhost', ['subjectAltName=IP:127.0.0.1,DNS:localhost', 'extendedKeyUsage=serverAuth']);
  makeLeaf(dir, 'alpha', 'ca', '/C=US/O=Example Corp/OU=Payments/CN=alpha', [alphaSans, client]);
  makeLeaf(dir, 'beta', 'ca', '/C=US/O=Example Corp/OU=Payments/CN=beta', [`subjectAltName=URI:${BETA.uri},DNS:${BETA.dns}`, client]);
  makeLeaf(dir, 'foreign-alpha', 'foreign-ca', '/C=US/O=Example Corp/OU=Payments/CN=alpha', [alphaSans, client]);
  makeSelfSigned(dir, 'self', '/CN=self-signed one');
  makeSelfSigned(dir, 'self2', '/CN=self-signed two');
  return {
    ca: read(dir, 'ca'),
    server: read(dir, 'server'),
    alpha: read(dir, 'alpha'),
    beta: read(dir, 'beta'),
    foreignAlpha: read(dir, 'foreign-alpha'),
    selfSigned: read(dir, 'self'),
    otherSelfSigned: read(dir, 'self2'),
    jwk: (pem) => ({ ...pem.x509.publicKey.export({ format: 'jwk' }), x5c: [pem.x509.raw.toString('base64')] }),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export interface MtlsListener {
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

/**
 * An HTTPS listener on a free loopback port that passes every request to
 * `app` (Fastify's own request handler, hooks and all), asking the client
 * for a certificate and trusting `pki.ca`.
 */
export async function startMtlsListener(app: FastifyInstance, pki: TestPki): Promise<MtlsListener> {
  const server: Server = createServer({ cert: pki.server.cert, key: pki.server.key, ca: pki.ca.cert, requestCert: true, rejectUnauthorized: false }, (request, response) => app.routing(request, response));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return {
    url: `https://127.0.0.1:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** An HTTPS client that trusts the test CA and presents `pem` (or no certificate). */
export class MtlsClient {
  readonly #agent: Agent;
  constructor(pki: TestPki, pem?: Pem) {
    this.#agent = new Agent({ connect: { ca: pki.ca.cert, ...(pem !== undefined && { cert: pem.cert, key: pem.key }) } });
  }

  /** POSTs a form; resolves with the status, headers and JSON body (or {} when there is none). */
  async form(url: string, params: Record<string, string>, headers: Record<string, string> = {}): Promise<{ status: number; headers: Response['headers']; body: Record<string, unknown> }> {
    const response = await fetch(url, { method: 'POST', dispatcher: this.#agent, headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body: new URLSearchParams(params).toString() });
    const text = await response.text();
    return { status: response.status, headers: response.headers, body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>) };
  }

  async get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Response['headers']; body: Record<string, unknown> }> {
    const response = await fetch(url, { dispatcher: this.#agent, headers });
    const text = await response.text();
    return { status: response.status, headers: response.headers, body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>) };
  }

  close(): Promise<void> {
    return this.#agent.close();
  }
}

/** The payload of a JWT, unverified (the tests verify signatures elsewhere). */
export function jwtPayload(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as Record<string, unknown>;
}
