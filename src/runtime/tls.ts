/**
 * TLS material of a listener: read from the configured PEM files (or
 * issued by the built-in CA), checked before a server uses it (parsed, key
 * matching the certificate, valid now), and turned into the one set of
 * options a TLS server is built and rebuilt from, so a bad file is refused
 * while the old context keeps serving.
 */
import { X509Certificate, constants, createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createSecureContext, type SecureContextOptions } from 'node:tls';
import { ConfigError } from '../config/index.ts';

export interface TlsFiles {
  readonly certFile: string;
  readonly keyFile: string;
}

/** A PEM certificate chain (leaf first) and its private key. */
export interface TlsMaterial {
  readonly cert: Buffer;
  readonly key: Buffer;
}

/** What a client certificate must chain to, on a listener that asks for one (mTLS). */
export interface ClientTrust {
  /** PEM certificates: CA certificates, and self-signed client certificates trusted as they are. */
  readonly ca: readonly string[];
  /** Certificate revocation lists, DER (RFC 5280 section 5). */
  readonly crl: readonly Buffer[];
}

/**
 * Everything a TLS listener's server is built from. Node's
 * tls.Server#setSecureContext rebuilds the context from what it is given
 * and forgets the rest (a missing `ca` falls back to the public root store,
 * a missing `minVersion` to the default), so every swap passes all of it.
 */
/** RFC 5746 made renegotiation safe, not needed: nothing here uses it, and a client certificate must not change mid-connection. */
const NO_RENEGOTIATION = constants.SSL_OP_NO_RENEGOTIATION;

export interface TlsServerOptions {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly minVersion: 'TLSv1.2';
  /** OpenSSL options: renegotiation off. */
  readonly secureOptions: number;
  readonly ca?: string[];
  readonly crl?: string[];
  readonly requestCert?: boolean;
  readonly rejectUnauthorized?: boolean;
  readonly ALPNProtocols?: string[];
}

/** The certificate a listener serves, as logs and tests name it (nothing secret). */
export interface CertificateInfo {
  readonly serialNumber: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

/** The certificate is not valid yet: it may be loaded at `notBefore`. */
export class CertificateNotYetValidError extends ConfigError {
  readonly notBefore: Date;
  constructor(notBefore: Date) {
    super(`the TLS certificate is not valid before ${notBefore.toISOString()}`);
    this.notBefore = notBefore;
  }
}

/** The files the config names, when it names both (then the listener speaks HTTPS). */
export function tlsFilesOf(config: { readonly tls: { readonly certFile?: string | undefined; readonly keyFile?: string | undefined } }): TlsFiles | undefined {
  const { certFile, keyFile } = config.tls;
  return certFile !== undefined && keyFile !== undefined ? { certFile, keyFile } : undefined;
}

/** The mTLS listener's own certificate files, when the config names both (else the built-in CA issues one). */
export function mtlsFilesOf(config: { readonly tls: { readonly mtlsCertFile?: string | undefined; readonly mtlsKeyFile?: string | undefined } }): TlsFiles | undefined {
  const { mtlsCertFile, mtlsKeyFile } = config.tls;
  return mtlsCertFile !== undefined && mtlsKeyFile !== undefined ? { certFile: mtlsCertFile, keyFile: mtlsKeyFile } : undefined;
}

/** Reads and checks the files; the error names no path or key material, only what is wrong. */
export function readTlsMaterial(files: TlsFiles): TlsMaterial {
  const material = readTlsFiles(files);
  checkTlsMaterial(material);
  return material;
}

/** Reads the files, unchecked. */
export function readTlsFiles(files: TlsFiles): TlsMaterial {
  try {
    return { cert: readFileSync(files.certFile), key: readFileSync(files.keyFile) };
  } catch (error) {
    throw new ConfigError(`cannot read the TLS certificate or key (${(error as NodeJS.ErrnoException).code ?? 'unreadable'})`);
  }
}

/**
 * The server options for `material`; with `trust`, those of an mTLS
 * listener: a client certificate is required and verified during the
 * handshake (RFC 8705 section 2), against `trust` only, and ALPN offers
 * HTTP/1.1 alone, so a client that also offers h2 gets HTTP/1.1 and a
 * WebSocket upgrade (RFC 6455 section 4, an HTTP/1.1 mechanism) works.
 */
export function tlsServerOptions(material: TlsMaterial, trust?: ClientTrust): TlsServerOptions {
  // No TLS 1.2 renegotiation: the client certificate is checked once per connection, so it must not change within one.
  const base = { cert: material.cert, key: material.key, minVersion: 'TLSv1.2', secureOptions: NO_RENEGOTIATION } as const;
  if (trust === undefined) return base;
  return {
    ...base,
    // Always an array, even empty: an absent `ca` would make OpenSSL trust the public root store.
    ca: [...trust.ca],
    crl: trust.crl.map(pemCrl),
    requestCert: true,
    rejectUnauthorized: true,
    ALPNProtocols: ['http/1.1'],
  };
}

/** The part of the server options a secure context is built from (the rest belongs to the server). */
export function secureContextOptions(options: TlsServerOptions): SecureContextOptions {
  return {
    cert: options.cert,
    key: options.key,
    minVersion: options.minVersion,
    secureOptions: options.secureOptions,
    ...(options.ca !== undefined && { ca: options.ca }),
    // Node reads CRLs as PEM only. With the first one it checks every certificate of a chain (CRL_CHECK_ALL).
    ...(options.crl !== undefined && options.crl.length > 0 && { crl: options.crl }),
  };
}

/**
 * Builds a context from the material once, the way the server will: OpenSSL
 * refuses a file that is not PEM, and a key that does not belong to the
 * certificate ("key values mismatch"). With trust, checkClientTrust first.
 */
export function checkTlsMaterial(material: TlsMaterial, trust?: ClientTrust): void {
  if (trust !== undefined) checkClientTrust(trust);
  try {
    createSecureContext(secureContextOptions(tlsServerOptions(material, trust)));
  } catch (error) {
    const reason = (error as { code?: unknown }).code;
    throw new ConfigError(`the TLS certificate or key is not usable (${typeof reason === 'string' ? reason : 'invalid'}): a PEM certificate chain and its own private key are needed`);
  }
}

/**
 * Every trusted certificate parses, and so does every CRL. OpenSSL reads a
 * `ca` entry that holds no certificate as an empty list without a word, so
 * a damaged bundle would lock every client out; it is refused here instead.
 */
export function checkClientTrust(trust: ClientTrust): void {
  for (const [index, pem] of trust.ca.entries()) {
    const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
    try {
      if (blocks.length === 0) throw new Error('no certificate');
      for (const block of blocks) new X509Certificate(block);
    } catch {
      throw new ConfigError(`client trust: entry ${index} of the CA bundle is not a PEM X.509 certificate`);
    }
  }
  for (const [index, der] of trust.crl.entries()) {
    try {
      createSecureContext({ crl: pemCrl(der) });
    } catch {
      throw new ConfigError(`client trust: CRL ${index} does not parse (a DER CertificateList, RFC 5280 section 5.1, is needed)`);
    }
  }
}

/**
 * The leaf certificate's serial and validity, once its private key is
 * known to be the one given (checked on the parsed key, not only by
 * OpenSSL's context).
 */
export function describeCertificate(material: TlsMaterial): CertificateInfo {
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(material.cert);
  } catch {
    throw new ConfigError('the TLS certificate is not usable (not a PEM X.509 certificate)');
  }
  let matches: boolean;
  try {
    matches = certificate.checkPrivateKey(createPrivateKey(material.key));
  } catch {
    matches = false;
  }
  if (!matches) throw new ConfigError('the TLS certificate or key is not usable (the key does not belong to the certificate)');
  return { serialNumber: certificate.serialNumber, notBefore: certificate.validFromDate, notAfter: certificate.validToDate };
}

/**
 * describeCertificate, and `now` inside the certificate's validity (RFC
 * 5280 section 4.1.2.5): an expired certificate would fail every client's
 * handshake, so it is refused like a broken file.
 */
export function checkCertificateCurrent(material: TlsMaterial, now: number): CertificateInfo {
  const info = describeCertificate(material);
  if (now > info.notAfter.getTime()) throw new ConfigError(`the TLS certificate expired at ${info.notAfter.toISOString()}`);
  if (now < info.notBefore.getTime()) throw new CertificateNotYetValidError(info.notBefore);
  return info;
}

/** A DER CRL as the PEM Node's `crl` option reads (RFC 7468 section 5, label "X509 CRL"). */
function pemCrl(der: Buffer): string {
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN X509 CRL-----\n${lines.join('\n')}\n-----END X509 CRL-----\n`;
}
