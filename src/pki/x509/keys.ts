/**
 * Which public keys the CA certifies and which signature algorithms it
 * reads. RFC 5480 (ECDSA), RFC 8017 (RSA), RFC 8410 (Ed25519). A key the
 * CA does not list is refused rather than certified: a small RSA modulus or
 * an exotic curve is the weakest link of every connection it would secure.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import { SubjectPublicKeyInfo } from '@peculiar/asn1-x509';
import { CertificateRequestError } from './errors.ts';

export type KeyKind = 'ec-p256' | 'ec-p384' | 'rsa' | 'ed25519';

/** NIST SP 800-57 part 1, table 2: 2048-bit RSA is the floor for keys in use today. */
export const MIN_RSA_BITS = 2048;
export const MAX_RSA_BITS = 8192;

const CURVES: Readonly<Record<string, KeyKind>> = { prime256v1: 'ec-p256', secp384r1: 'ec-p384' };

export interface AcceptedKey {
  readonly key: KeyObject;
  readonly kind: KeyKind;
}

/** The public key of a SubjectPublicKeyInfo, if the CA certifies keys like it. */
export function acceptPublicKey(spki: Uint8Array): AcceptedKey {
  let key: KeyObject;
  try {
    key = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
  } catch {
    throw new CertificateRequestError('weak_key', 'the public key is not one this CA can read (ECDSA P-256 or P-384, RSA of at least 2048 bits, or Ed25519)');
  }
  const details = key.asymmetricKeyDetails ?? {};
  switch (key.asymmetricKeyType) {
    case 'ec': {
      // RFC 5480 section 2.1.1: the parameters name the curve (an OBJECT IDENTIFIER); explicit curve parameters are not allowed.
      if (!namesItsCurve(spki)) throw new CertificateRequestError('weak_key', 'the EC key gives its curve as explicit parameters; RFC 5480 allows only a named curve (P-256 or P-384)');
      const kind = details.namedCurve !== undefined ? CURVES[details.namedCurve] : undefined;
      if (kind === undefined) throw new CertificateRequestError('weak_key', `the curve ${details.namedCurve ?? '(unnamed)'} is not accepted: use P-256 or P-384`);
      return { key, kind };
    }
    case 'rsa': {
      const bits = details.modulusLength ?? 0;
      if (bits < MIN_RSA_BITS || bits > MAX_RSA_BITS) throw new CertificateRequestError('weak_key', `an RSA key of ${bits} bits is not accepted: ${MIN_RSA_BITS} to ${MAX_RSA_BITS} bits`);
      return { key, kind: 'rsa' };
    }
    case 'ed25519':
      return { key, kind: 'ed25519' };
    default:
      throw new CertificateRequestError('weak_key', `a ${key.asymmetricKeyType ?? 'unknown'} key is not accepted: ECDSA P-256 or P-384, RSA of at least 2048 bits, or Ed25519`);
  }
}

function namesItsCurve(spki: Uint8Array): boolean {
  try {
    const parameters = AsnConvert.parse(spki, SubjectPublicKeyInfo).algorithm.parameters;
    // DER tag 0x06: OBJECT IDENTIFIER (namedCurve); a SEQUENCE here would be specifiedCurve.
    return parameters instanceof ArrayBuffer && new Uint8Array(parameters)[0] === 0x06;
  } catch {
    return false;
  }
}

/** Signature algorithms a CSR may be signed with: OID -> the node:crypto digest (null for Ed25519) and the key kind it needs. */
const SIGNATURE_ALGORITHMS: Readonly<Record<string, { readonly digest: string | null; readonly family: 'ec' | 'rsa' | 'ed25519' }>> = {
  '1.2.840.10045.4.3.2': { digest: 'sha256', family: 'ec' },
  '1.2.840.10045.4.3.3': { digest: 'sha384', family: 'ec' },
  '1.2.840.10045.4.3.4': { digest: 'sha512', family: 'ec' },
  '1.2.840.113549.1.1.11': { digest: 'sha256', family: 'rsa' },
  '1.2.840.113549.1.1.12': { digest: 'sha384', family: 'rsa' },
  '1.2.840.113549.1.1.13': { digest: 'sha512', family: 'rsa' },
  '1.3.101.112': { digest: null, family: 'ed25519' },
};

export function signatureAlgorithm(oid: string, key: AcceptedKey): { readonly digest: string | null } {
  const algorithm = Object.hasOwn(SIGNATURE_ALGORITHMS, oid) ? SIGNATURE_ALGORITHMS[oid] : undefined;
  if (algorithm === undefined) throw new CertificateRequestError('unsupported_algorithm', `the CSR is signed with an algorithm this CA does not accept (${oid}); SHA-1, MD5 and RSA-PSS are not accepted`);
  const family = key.kind.startsWith('ec-') ? 'ec' : key.kind;
  if (algorithm.family !== family) throw new CertificateRequestError('bad_csr_signature', 'the CSR signature algorithm does not match its public key');
  return algorithm;
}

/** The CA's own keys: ECDSA P-256 signing with SHA-256 (RFC 5758 section 3.2: no parameters). */
export const CA_SIGNATURE_OID = '1.2.840.10045.4.3.2';
