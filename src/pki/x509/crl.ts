/**
 * Certificate revocation lists (RFC 5280 section 5), version 2, signed by
 * the CA that issued the certificates they list, with a CRL number
 * (section 5.2.3), the authority key identifier (5.2.1) and a reason code
 * per entry (5.3.1).
 */
import { verify, type X509Certificate } from 'node:crypto';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import {
  AuthorityKeyIdentifier,
  CRLNumber,
  CRLReason,
  CRLReasons,
  CertificateList,
  Extension,
  KeyIdentifier,
  RevokedCertificate,
  TBSCertList,
  Time,
  Version,
  id_ce_authorityKeyIdentifier,
  id_ce_cRLNumber,
  id_ce_cRLReasons,
} from '@peculiar/asn1-x509';
import { serialHex, type Signer } from './certificate.ts';
import { acceptPublicKey, signatureAlgorithm } from './keys.ts';
import { caSignatureAlgorithm, signStructure } from './signed.ts';

/** RFC 5280 section 5.3.1 reasons the CA records (certificateHold is not offered: a revocation here is final). */
export const REVOCATION_REASONS = ['unspecified', 'keyCompromise', 'cACompromise', 'affiliationChanged', 'superseded', 'cessationOfOperation', 'privilegeWithdrawn'] as const;
export type RevocationReason = (typeof REVOCATION_REASONS)[number];

export interface RevokedEntry {
  readonly serial: string;
  readonly revokedAt: Date;
  readonly reason: RevocationReason;
}

export interface CrlTemplate {
  readonly issuer: Signer;
  readonly number: number;
  readonly thisUpdate: Date;
  readonly nextUpdate: Date;
  readonly revoked: readonly RevokedEntry[];
}

const extension = (extnID: string, value: unknown) => new Extension({ extnID, critical: false, extnValue: new OctetString(AsnConvert.serialize(value)) });

export function buildCrl(template: CrlTemplate): Buffer {
  const tbs = new TBSCertList({
    version: Version.v2,
    signature: caSignatureAlgorithm(),
    issuer: template.issuer.subject,
    thisUpdate: new Time(template.thisUpdate),
    nextUpdate: new Time(template.nextUpdate),
    ...(template.revoked.length > 0 && {
      revokedCertificates: template.revoked.map(
        (entry) =>
          new RevokedCertificate({
            userCertificate: new Uint8Array(Buffer.from(entry.serial.length % 2 === 0 ? entry.serial : `0${entry.serial}`, 'hex')).buffer,
            revocationDate: new Time(entry.revokedAt),
            // RFC 5280 section 5.3.1: unspecified is expressed by omitting the reason code.
            ...(entry.reason !== 'unspecified' && { crlEntryExtensions: [extension(id_ce_cRLReasons, new CRLReason(CRLReasons[entry.reason]))] }),
          }),
      ),
    }),
    crlExtensions: [extension(id_ce_authorityKeyIdentifier, new AuthorityKeyIdentifier({ keyIdentifier: new KeyIdentifier(template.issuer.keyId) })), extension(id_ce_cRLNumber, new CRLNumber(template.number))],
  });
  return signStructure(new Uint8Array(AsnConvert.serialize(tbs)), template.issuer.privateKey);
}

export interface CrlFacts {
  readonly thisUpdate: Date;
  readonly nextUpdate: Date | undefined;
  /** The issuer's key identifier (hex), from the authority key identifier extension. */
  readonly issuerKeyId: string | undefined;
  /** Serials as `certificateFacts` writes them, with the reason (unspecified when the entry names none). */
  readonly revoked: readonly { readonly serial: string; readonly reason: string }[];
}

/**
 * What a CRL says, if `issuer` signed it; throws a
 * TypeError for a CRL that does not parse or whose signature does not
 * verify with the issuer's key.
 */
export function readCrl(der: Uint8Array, issuer: X509Certificate): CrlFacts {
  let list: CertificateList;
  try {
    list = AsnConvert.parse(der, CertificateList);
  } catch {
    throw new TypeError('not a DER certificate revocation list (RFC 5280 section 5)');
  }
  if (list.tbsCertListRaw === undefined) throw new TypeError('not a DER certificate revocation list (RFC 5280 section 5)');
  const key = acceptPublicKey(issuer.publicKey.export({ type: 'spki', format: 'der' }));
  let digest: string | null;
  try {
    ({ digest } = signatureAlgorithm(list.signatureAlgorithm.algorithm, key));
  } catch {
    throw new TypeError('the CRL is signed with an algorithm that is not accepted');
  }
  const signed = verify(digest, Buffer.from(list.tbsCertListRaw), key.kind.startsWith('ec-') ? { key: key.key, dsaEncoding: 'der' } : key.key, Buffer.from(list.signature));
  if (!signed) throw new TypeError('the CRL signature does not verify with the issuer key');
  const tbs = list.tbsCertList;
  const authority = tbs.crlExtensions?.find((item) => item.extnID === id_ce_authorityKeyIdentifier);
  const keyId = authority === undefined ? undefined : AsnConvert.parse(authority.extnValue, AuthorityKeyIdentifier).keyIdentifier;
  return {
    thisUpdate: tbs.thisUpdate.getTime(),
    nextUpdate: tbs.nextUpdate?.getTime(),
    issuerKeyId: keyId === undefined ? undefined : Buffer.from(keyId.buffer).toString('hex'),
    revoked: (tbs.revokedCertificates ?? []).map((entry) => {
      const reason = entry.crlEntryExtensions?.find((item) => item.extnID === id_ce_cRLReasons);
      return { serial: serialHex(entry.userCertificate), reason: reason === undefined ? 'unspecified' : AsnConvert.parse(reason.extnValue, CRLReason).toJSON() };
    }),
  };
}
