/**
 * PKCS#10 certificate signing requests (RFC 2986): parsed with
 * @peculiar/asn1-csr, their self-signature checked over the exact bytes
 * received (the raw CertificationRequestInfo, never a re-encoding), and the
 * extensions they ask for (PKCS#9 extensionRequest, RFC 2985 section 5.4.2)
 * read so policy can refuse what it does not grant.
 */
import { createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import { Attributes, CertificationRequest, CertificationRequestInfo } from '@peculiar/asn1-csr';
import {
  AlgorithmIdentifier,
  Attribute,
  BasicConstraints,
  Extension,
  Extensions,
  KeyUsage,
  KeyUsageFlags,
  Name,
  SubjectAlternativeName,
  SubjectPublicKeyInfo,
  id_ce_basicConstraints,
  id_ce_keyUsage,
  id_ce_subjectAltName,
} from '@peculiar/asn1-x509';
import { CertificateRequestError } from './errors.ts';
import { acceptPublicKey, signatureAlgorithm, type AcceptedKey, type KeyKind } from './keys.ts';
import { NO_NAMES, fromGeneralNames, toGeneralNames, type SubjectNames } from './names.ts';
import { fromPem } from './pem.ts';

/** RFC 2985 section 5.4.2. */
const EXTENSION_REQUEST = '1.2.840.113549.1.9.14';

/** A CSR is a few hundred bytes; 64 KiB is far beyond any honest one. */
const MAX_CSR_BYTES = 65_536;

export interface CertificateRequest {
  readonly publicKey: AcceptedKey;
  /** The SubjectPublicKeyInfo, as the certificate will carry it. */
  readonly spki: Buffer;
  /** The subject alternative names it asks for. */
  readonly names: SubjectNames;
  /** It asks for basicConstraints cA, or for keyCertSign / cRLSign. */
  readonly asksForCa: boolean;
}

/** Accepts PEM ("CERTIFICATE REQUEST", or the legacy "NEW CERTIFICATE REQUEST") or DER. */
export function parseCertificateRequest(input: string | Uint8Array): CertificateRequest {
  const der = csrBytes(input);
  let request: CertificationRequest;
  try {
    request = AsnConvert.parse(der, CertificationRequest);
  } catch {
    throw new CertificateRequestError('malformed_csr', 'the CSR is not a DER PKCS#10 certification request (RFC 2986)');
  }
  const info = request.certificationRequestInfo;
  const raw = request.certificationRequestInfoRaw;
  if (raw === undefined || info.version !== 0) throw new CertificateRequestError('malformed_csr', 'the CSR is not a version 1 PKCS#10 certification request');
  const spki = Buffer.from(AsnConvert.serialize(info.subjectPKInfo));
  const publicKey = acceptPublicKey(spki);
  const { digest } = signatureAlgorithm(request.signatureAlgorithm.algorithm, publicKey);
  // RFC 2986 section 4.2: the signature covers the DER of certificationRequestInfo as sent.
  const valid = verify(digest, Buffer.from(raw), publicKey.kind.startsWith('ec-') ? { key: publicKey.key, dsaEncoding: 'der' } : publicKey.key, Buffer.from(request.signature));
  if (!valid) throw new CertificateRequestError('bad_csr_signature', 'the CSR signature does not verify with its own public key');
  const extensions = requestedExtensions(request);
  return { publicKey, spki, names: requestedNames(extensions), asksForCa: asksForCa(extensions) };
}

/** How a requester signs its CSR, by key kind: the signature algorithm OID (RFC 5758 section 3.2, RFC 8410 section 3) and the digest. */
const REQUEST_SIGNATURES: Readonly<Partial<Record<KeyKind, { readonly oid: string; readonly digest: string | null }>>> = {
  'ec-p256': { oid: '1.2.840.10045.4.3.2', digest: 'sha256' },
  'ec-p384': { oid: '1.2.840.10045.4.3.3', digest: 'sha384' },
  ed25519: { oid: '1.3.101.112', digest: null },
};

/**
 * A PKCS#10 request (DER) for `privateKey`'s public key asking for these
 * subject alternative names and nothing else: an empty subject (X509-SVID
 * section 4.1 puts the identity in the URI SAN), the names in an
 * extensionRequest, signed with the key itself. ECDSA (P-256, P-384) and
 * Ed25519 keys; this is what `portcullis agent` sends.
 */
export function buildCertificateRequest(request: { readonly privateKey: KeyObject; readonly names: Pick<SubjectNames, 'uris' | 'dns' | 'ips'> }): Buffer {
  const spki = createPublicKey(request.privateKey).export({ type: 'spki', format: 'der' });
  const { kind } = acceptPublicKey(spki);
  const algorithm = REQUEST_SIGNATURES[kind];
  if (algorithm === undefined) throw new TypeError(`a certificate request is built for ECDSA or Ed25519 keys, not ${kind}`);
  // RFC 5280 section 4.2.1.6: with an empty subject the names are critical, as the certificate will have them.
  const names = new Extension({ extnID: id_ce_subjectAltName, critical: true, extnValue: new OctetString(AsnConvert.serialize(new SubjectAlternativeName(toGeneralNames(request.names)))) });
  const info = new CertificationRequestInfo({
    version: 0,
    subject: new Name([]),
    subjectPKInfo: AsnConvert.parse(spki, SubjectPublicKeyInfo),
    attributes: new Attributes([new Attribute({ type: EXTENSION_REQUEST, values: [AsnConvert.serialize(new Extensions([names]))] })]),
  });
  const infoDer = Buffer.from(AsnConvert.serialize(info));
  const signature = sign(algorithm.digest, infoDer, kind === 'ed25519' ? request.privateKey : { key: request.privateKey, dsaEncoding: 'der' });
  return Buffer.from(AsnConvert.serialize(new CertificationRequest({ certificationRequestInfo: info, signatureAlgorithm: new AlgorithmIdentifier({ algorithm: algorithm.oid }), signature: new Uint8Array(signature).buffer })));
}

function csrBytes(input: string | Uint8Array): Buffer {
  if (typeof input !== 'string') {
    if (input.byteLength > MAX_CSR_BYTES) throw new CertificateRequestError('malformed_csr', 'the CSR is larger than 64 KiB');
    return Buffer.from(input);
  }
  if (input.length > MAX_CSR_BYTES * 2) throw new CertificateRequestError('malformed_csr', 'the CSR is larger than 64 KiB');
  let blocks: Buffer[];
  try {
    blocks = [...fromPem(input, 'CERTIFICATE REQUEST'), ...fromPem(input, 'NEW CERTIFICATE REQUEST')];
  } catch {
    blocks = [];
  }
  if (blocks.length !== 1) throw new CertificateRequestError('malformed_csr', 'expected exactly one PEM "CERTIFICATE REQUEST" block');
  return blocks[0]!;
}

function requestedExtensions(request: CertificationRequest): Extensions {
  const found = request.certificationRequestInfo.attributes.filter((attribute) => attribute.type === EXTENSION_REQUEST);
  if (found.length === 0) return new Extensions();
  if (found.length > 1 || found[0]!.values.length !== 1) throw new CertificateRequestError('malformed_csr', 'the CSR has more than one extensionRequest');
  try {
    return AsnConvert.parse(found[0]!.values[0]!, Extensions);
  } catch {
    throw new CertificateRequestError('malformed_csr', 'the CSR extensionRequest is not a list of X.509 extensions');
  }
}

function extension<T>(extensions: Extensions, id: string, type: new () => T): T | undefined {
  const matches = extensions.filter((item) => item.extnID === id);
  if (matches.length > 1) throw new CertificateRequestError('malformed_csr', `the CSR asks for the extension ${id} twice (RFC 5280 section 4.2)`);
  if (matches.length === 0) return undefined;
  try {
    return AsnConvert.parse(matches[0]!.extnValue, type);
  } catch {
    throw new CertificateRequestError('malformed_csr', `the CSR extension ${id} does not parse`);
  }
}

function requestedNames(extensions: Extensions): SubjectNames {
  const names = extension(extensions, id_ce_subjectAltName, SubjectAlternativeName);
  return names === undefined ? NO_NAMES : fromGeneralNames(names);
}

function asksForCa(extensions: Extensions): boolean {
  const constraints = extension(extensions, id_ce_basicConstraints, BasicConstraints);
  if (constraints?.cA === true) return true;
  const usage = extension(extensions, id_ce_keyUsage, KeyUsage);
  if (usage === undefined) return false;
  return (usage.toNumber() & (KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign)) !== 0;
}
