/**
 * X.509 v3 certificates in the RFC 5280 profile, built with
 * @peculiar/asn1-x509 and signed with node:crypto (ECDSA P-256, SHA-256).
 * Three shapes: the self-signed root, the intermediate that signs
 * workloads, and the workload's X509-SVID (SPIFFE X509-SVID specification,
 * sections 4 and 5).
 */
import { X509Certificate, createHash, randomBytes, type KeyObject } from 'node:crypto';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import {
  AttributeTypeAndValue,
  AttributeValue,
  AuthorityKeyIdentifier,
  BasicConstraints,
  CRLDistributionPoints,
  Certificate,
  DistributionPoint,
  DistributionPointName,
  ExtendedKeyUsage,
  Extension,
  Extensions,
  GeneralName,
  KeyIdentifier,
  KeyUsage,
  KeyUsageFlags,
  Name,
  RelativeDistinguishedName,
  SubjectAlternativeName,
  SubjectKeyIdentifier,
  SubjectPublicKeyInfo,
  TBSCertificate,
  Validity,
  Version,
  id_ce_authorityKeyIdentifier,
  id_ce_basicConstraints,
  id_ce_cRLDistributionPoints,
  id_ce_extKeyUsage,
  id_ce_keyUsage,
  id_ce_subjectAltName,
  id_ce_subjectKeyIdentifier,
  id_kp_clientAuth,
  id_kp_serverAuth,
} from '@peculiar/asn1-x509';
import type { KeyKind } from './keys.ts';
import { caSignatureAlgorithm, signStructure } from './signed.ts';
import { NO_NAMES, fromGeneralNames, toGeneralNames, type SubjectNames } from './names.ts';

/** Who signs: its subject name, its key identifier, its private key (ECDSA P-256). */
export interface Signer {
  readonly subject: Name;
  readonly keyId: Buffer;
  readonly privateKey: KeyObject;
}

export type CertificateProfile =
  | { readonly kind: 'root' }
  | { readonly kind: 'intermediate' }
  | { readonly kind: 'workload'; readonly names: Pick<SubjectNames, 'uris' | 'dns' | 'ips'>; readonly keyKind: KeyKind; readonly crlUrl?: string };

export interface CertificateTemplate {
  readonly serial: Buffer;
  readonly subject: Name;
  readonly spki: Buffer;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly profile: CertificateProfile;
  /** Omitted: self-signed with `selfKey`. */
  readonly issuer?: Signer;
  readonly selfKey?: KeyObject;
}

/** RFC 5280 section 4.1.2.2: positive, at most 20 octets; 16 random octets with the top bit clear and the next set keep the DER minimal. */
export function newSerial(): Buffer {
  const serial = randomBytes(16);
  serial[0] = (serial[0]! & 0x7f) | 0x40;
  return serial;
}

/** RFC 7093 section 2 method 1: the leftmost 160 bits of the SHA-256 of the subjectPublicKey bits. */
export function keyIdentifier(spki: Uint8Array): Buffer {
  const info = AsnConvert.parse(spki, SubjectPublicKeyInfo);
  return createHash('sha256').update(Buffer.from(info.subjectPublicKey)).digest().subarray(0, 20);
}

/** A distinguished name from (attribute, value) pairs, one attribute per RDN, as UTF8String (RFC 5280 section 4.1.2.4). */
export function distinguishedName(parts: ReadonlyArray<readonly ['CN' | 'O' | 'OU', string]>): Name {
  const oid = { CN: '2.5.4.3', O: '2.5.4.10', OU: '2.5.4.11' } as const;
  return new Name(parts.map(([type, value]) => new RelativeDistinguishedName([new AttributeTypeAndValue({ type: oid[type], value: new AttributeValue({ utf8String: value }) })])));
}

const extension = (extnID: string, critical: boolean, value: unknown) => new Extension({ extnID, critical, extnValue: new OctetString(AsnConvert.serialize(value)) });

function profileExtensions(template: CertificateTemplate, subjectKeyId: Buffer, issuerKeyId: Buffer): Extension[] {
  const { profile } = template;
  const extensions = [extension(id_ce_subjectKeyIdentifier, false, new SubjectKeyIdentifier(subjectKeyId))];
  // RFC 5280 section 4.2.1.1: a self-signed root may omit the authority key identifier.
  if (profile.kind !== 'root') extensions.push(extension(id_ce_authorityKeyIdentifier, false, new AuthorityKeyIdentifier({ keyIdentifier: new KeyIdentifier(issuerKeyId) })));
  if (profile.kind === 'root' || profile.kind === 'intermediate') {
    // RFC 5280 sections 4.2.1.9 and 4.2.1.3; the intermediate signs only end entities (pathLen 0).
    extensions.push(extension(id_ce_basicConstraints, true, new BasicConstraints({ cA: true, ...(profile.kind === 'intermediate' && { pathLenConstraint: 0 }) })));
    extensions.push(extension(id_ce_keyUsage, true, new KeyUsage(KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign)));
    return extensions;
  }
  // X509-SVID section 4.3 and 4.4: not a CA; digitalSignature, keyEncipherment only for RSA key transport; server and client auth.
  extensions.push(extension(id_ce_basicConstraints, true, new BasicConstraints({ cA: false })));
  extensions.push(extension(id_ce_keyUsage, true, new KeyUsage(KeyUsageFlags.digitalSignature | (profile.keyKind === 'rsa' ? KeyUsageFlags.keyEncipherment : 0))));
  extensions.push(extension(id_ce_extKeyUsage, false, new ExtendedKeyUsage([id_kp_serverAuth, id_kp_clientAuth])));
  // RFC 5280 section 4.2.1.6: the subject is empty, so the names are critical.
  extensions.push(extension(id_ce_subjectAltName, true, new SubjectAlternativeName(toGeneralNames(profile.names))));
  if (profile.crlUrl !== undefined) {
    extensions.push(
      extension(id_ce_cRLDistributionPoints, false, new CRLDistributionPoints([new DistributionPoint({ distributionPoint: new DistributionPointName({ fullName: [new GeneralName({ uniformResourceIdentifier: profile.crlUrl })] }) })])),
    );
  }
  return extensions;
}

/** The signed certificate, DER. */
export function buildCertificate(template: CertificateTemplate): Buffer {
  const subjectKeyId = keyIdentifier(template.spki);
  const signerKey = template.issuer?.privateKey ?? template.selfKey;
  if (signerKey === undefined) throw new TypeError('a certificate needs an issuer or, self-signed, its own key');
  const tbs = new TBSCertificate({
    version: Version.v3,
    serialNumber: new Uint8Array(template.serial).buffer,
    signature: caSignatureAlgorithm(),
    issuer: template.issuer?.subject ?? template.subject,
    validity: new Validity({ notBefore: template.notBefore, notAfter: template.notAfter }),
    subject: template.subject,
    subjectPublicKeyInfo: AsnConvert.parse(template.spki, SubjectPublicKeyInfo),
    extensions: new Extensions(profileExtensions(template, subjectKeyId, template.issuer?.keyId ?? subjectKeyId)),
  });
  return signStructure(new Uint8Array(AsnConvert.serialize(tbs)), signerKey);
}

export interface CertificateFacts {
  /** Lowercase hex, no leading zero octets. */
  readonly serial: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly subject: Name;
  readonly names: SubjectNames;
  readonly isCa: boolean;
  readonly keyId: Buffer | undefined;
  readonly authorityKeyId: Buffer | undefined;
  /** SHA-256 of the DER, hex: what the ledger records. */
  readonly sha256: string;
  readonly spki: Buffer;
}

/** What the CA needs to know of a certificate (one it issued, or one presented to it). */
export function certificateFacts(der: Uint8Array): CertificateFacts {
  const certificate = AsnConvert.parse(der, Certificate);
  const tbs = certificate.tbsCertificate;
  const find = <T>(id: string, type: new () => T): T | undefined => {
    const found = tbs.extensions?.find((item) => item.extnID === id);
    return found === undefined ? undefined : AsnConvert.parse(found.extnValue, type);
  };
  const names = find(id_ce_subjectAltName, SubjectAlternativeName);
  const authority = find(id_ce_authorityKeyIdentifier, AuthorityKeyIdentifier);
  const subjectKey = find(id_ce_subjectKeyIdentifier, SubjectKeyIdentifier);
  return {
    serial: serialHex(tbs.serialNumber),
    notBefore: tbs.validity.notBefore.getTime(),
    notAfter: tbs.validity.notAfter.getTime(),
    subject: tbs.subject,
    names: names === undefined ? NO_NAMES : fromGeneralNames(names),
    isCa: find(id_ce_basicConstraints, BasicConstraints)?.cA === true,
    keyId: subjectKey === undefined ? undefined : Buffer.from(subjectKey.buffer),
    authorityKeyId: authority?.keyIdentifier === undefined ? undefined : Buffer.from(authority.keyIdentifier.buffer),
    sha256: createHash('sha256').update(der).digest('hex'),
    spki: Buffer.from(AsnConvert.serialize(tbs.subjectPublicKeyInfo)),
  };
}

/**
 * Why a certificate may not be registered as a self-signed client
 * certificate (RFC 8705 section 2.2), or undefined when it may. The mTLS
 * listener trusts it as itself, so it must not be able to act as an issuer
 * of anything else: self-signed (its own signature verifies), with
 * basicConstraints present and cA false, and without keyCertSign (OpenSSL
 * treats a certificate without basicConstraints as a possible CA).
 */
export function selfSignedClientProblem(der: Uint8Array): string | undefined {
  // Whatever the bytes, an answer and never a throw: this runs on client input (registration) and on stored records (the listener's trust).
  try {
    const certificate = AsnConvert.parse(der, Certificate);
    const x509 = new X509Certificate(der);
    // Not X509Certificate#checkIssued: OpenSSL's check also wants keyCertSign, which a client certificate must not have.
    if (!isSelfIssued(x509) || !x509.verify(x509.publicKey)) return 'is not self-signed (its issuer is not itself, or its signature does not verify with its own key)';
    const extensions = certificate.tbsCertificate.extensions ?? [];
    const ids = extensions.map((item) => item.extnID);
    // RFC 5280 section 4.2: an extension appears at most once.
    if (new Set(ids).size !== ids.length) return 'has an extension twice (RFC 5280 section 4.2)';
    const constraints = extensions.find((item) => item.extnID === id_ce_basicConstraints);
    if (constraints === undefined || AsnConvert.parse(constraints.extnValue, BasicConstraints).cA) return 'must carry basicConstraints with cA false: a certificate that may be a CA would let its holder vouch for others';
    const usage = extensions.find((item) => item.extnID === id_ce_keyUsage);
    if (usage !== undefined && (AsnConvert.parse(usage.extnValue, KeyUsage).toNumber() & (KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign)) !== 0) return 'must not have keyCertSign or cRLSign in its key usage';
    return undefined;
  } catch {
    return 'is not an X.509 certificate this server can read (a malformed extension)';
  }
}

/**
 * Issued by itself (RFC 5280 section 3.2: issuer and subject the same
 * name). This CA's certificates never are (their subject is empty), so on
 * the mTLS listener a self-issued client certificate is one a client
 * registered, trusted as itself and never as one the CA vouched for.
 */
export function isSelfIssued(certificate: X509Certificate): boolean {
  return certificate.issuer === certificate.subject;
}

/** A serial as the CLI and the ledger show it: lowercase hex without leading zero octets. */
export function serialHex(serial: ArrayBuffer | Uint8Array): string {
  const bytes = Buffer.from(serial instanceof Uint8Array ? serial : new Uint8Array(serial));
  let start = 0;
  while (start < bytes.length - 1 && bytes[start] === 0) start += 1;
  return bytes.subarray(start).toString('hex');
}
