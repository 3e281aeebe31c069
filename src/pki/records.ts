/**
 * What the CA keeps in the durable store: its own certificates and sealed
 * keys (`ca_authorities`, one record per CA certificate, by key id), and
 * every certificate it issued (`ca_certificates`, by serial), and the one
 * record `ca init` claims (`ca_initialisation`). All are typed
 * collections: a record that does not match is an error, never a cast.
 */
import { Type, type Static } from '@sinclair/typebox';
import { collection, typeboxCodec, type Collection, type RecordStore } from '../store/index.ts';

const AUTHORITIES = 'ca_authorities';
const CERTIFICATES = 'ca_certificates';
const INITIALISATION = 'ca_initialisation';

const AuthoritySchema = Type.Object({
  role: Type.Union([Type.Literal('root'), Type.Literal('intermediate')]),
  /** The certificate, DER in base64. */
  certificate: Type.String(),
  /** The private key sealed for `ca-keys` (absent: a root kept offline). */
  sealedKey: Type.Optional(Type.String()),
  createdAt: Type.Number(),
  notAfter: Type.Number(),
  /** The intermediate that signs now (exactly one); roots are never active signers of workloads. */
  active: Type.Boolean(),
  /** A retired intermediate stays in the bundles until every certificate it signed has expired. */
  servedUntil: Type.Optional(Type.Number()),
  /** Its CRL (DER, base64), its number (RFC 5280 section 5.2.3) and when it must be re-signed. */
  crl: Type.Optional(Type.String()),
  crlNumber: Type.Number(),
  crlNextUpdate: Type.Optional(Type.Number()),
});
export type AuthorityRecord = Static<typeof AuthoritySchema>;

const CertificateSchema = Type.Object({
  spiffeId: Type.String(),
  dns: Type.Array(Type.String()),
  ips: Type.Array(Type.String()),
  notBefore: Type.Number(),
  notAfter: Type.Number(),
  /** SHA-256 of the DER, hex: what the ledger records and a presented certificate is matched by. */
  sha256: Type.String(),
  /** Key id (hex) of the intermediate that signed it. */
  issuer: Type.String(),
  certificate: Type.String(),
  /** Who asked first: `client:ID`, `enrolment:JTI` or `instance`; a renewal keeps its predecessor's. */
  requestedBy: Type.String(),
  revokedAt: Type.Optional(Type.Number()),
  reason: Type.Optional(Type.String()),
});
export type CertificateRecord = Static<typeof CertificateSchema>;

/** `ca init` claims this one record first: two racing initialisations make roots with different ids, so only a fixed id can have one winner. */
const InitialisationSchema = Type.Object({ root: Type.String(), createdAt: Type.Number() });
export type InitialisationRecord = Static<typeof InitialisationSchema>;
export const INITIALISATION_ID = 'ca';

export type AuthorityCollection = Collection<AuthorityRecord>;
export type CertificateCollection = Collection<CertificateRecord, 'revoked_by'>;

export function authorityRecords(records: RecordStore): AuthorityCollection {
  return collection(records, { name: AUTHORITIES, codec: typeboxCodec(AuthoritySchema) });
}

export function initialisationRecords(records: RecordStore): Collection<InitialisationRecord> {
  return collection(records, { name: INITIALISATION, codec: typeboxCodec(InitialisationSchema) });
}

export function certificateRecords(records: RecordStore): CertificateCollection {
  return collection(records, {
    name: CERTIFICATES,
    codec: typeboxCodec(CertificateSchema),
    // The revoked certificates of one issuer: what its CRL lists.
    indexes: { revoked_by: (value) => (value.revokedAt === undefined ? null : value.issuer) },
  });
}
