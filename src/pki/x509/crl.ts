/**
 * Certificate revocation lists (RFC 5280 section 5), version 2, signed by
 * the CA that issued the certificates they list, with a CRL number
 * (section 5.2.3), the authority key identifier (5.2.1) and a reason code
 * per entry (5.3.1).
 */
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import {
  AuthorityKeyIdentifier,
  CRLNumber,
  CRLReason,
  CRLReasons,
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
import type { Signer } from './certificate.ts';
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
