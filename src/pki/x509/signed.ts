/**
 * The outer shape shared by certificates (RFC 5280 section 4.1) and CRLs
 * (section 5.1): SEQUENCE { to-be-signed, signatureAlgorithm,
 * signatureValue BIT STRING }. Declared here with @peculiar/asn1-schema's
 * own property declarations (called as functions: type stripping has no
 * decorators), with the to-be-signed part as already-encoded DER, so the
 * bytes that were signed are the bytes sent, and are not encoded twice
 * (the library's Certificate class would serialise its TBSCertificate
 * again, which is most of the cost of issuing).
 */
import { sign, type KeyObject } from 'node:crypto';
import { AsnConvert, AsnProp, AsnPropTypes, AsnType, AsnTypeTypes } from '@peculiar/asn1-schema';
import { AlgorithmIdentifier } from '@peculiar/asn1-x509';
import { CA_SIGNATURE_OID } from './keys.ts';

class SignedStructure {
  toBeSigned: ArrayBuffer = new ArrayBuffer(0);
  signatureAlgorithm = new AlgorithmIdentifier();
  signatureValue: ArrayBuffer = new ArrayBuffer(0);
}
AsnType({ type: AsnTypeTypes.Sequence })(SignedStructure);
AsnProp({ type: AsnPropTypes.Any })(SignedStructure.prototype, 'toBeSigned');
AsnProp({ type: AlgorithmIdentifier })(SignedStructure.prototype, 'signatureAlgorithm');
AsnProp({ type: AsnPropTypes.BitString })(SignedStructure.prototype, 'signatureValue');

/** The CA's signature algorithm (RFC 5758 section 3.2: ecdsa-with-SHA256, parameters absent). */
export const caSignatureAlgorithm = (): AlgorithmIdentifier => new AlgorithmIdentifier({ algorithm: CA_SIGNATURE_OID });

/** Signs DER-encoded to-be-signed bytes with an ECDSA P-256 key and wraps them as a certificate or CRL. */
export function signStructure(toBeSigned: Uint8Array, privateKey: KeyObject): Buffer {
  const signature = sign('sha256', toBeSigned, { key: privateKey, dsaEncoding: 'der' });
  const structure = new SignedStructure();
  structure.toBeSigned = new Uint8Array(toBeSigned).buffer;
  structure.signatureAlgorithm = caSignatureAlgorithm();
  structure.signatureValue = new Uint8Array(signature).buffer;
  return Buffer.from(AsnConvert.serialize(structure));
}
