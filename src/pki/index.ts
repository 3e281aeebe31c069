/**
 * The built-in certificate authority: X.509 building and parsing
 * (`x509/`, on @peculiar/asn1-*, signed with node:crypto), the SPIFFE
 * X509-SVID issuance policy, the CA (keys, issuance, renewal, revocation,
 * CRLs, rotation, trust bundles) and one-time enrolment tokens.
 */
export { CertificateAuthority, normaliseSerial, type CertificateAuthorityOptions, type CertificateSummary, type IssueRequest, type IssuedCertificate, type RevocationOutcome } from './authority.ts';
export { EnrolmentTokens, ENROLMENT_TOKEN_TYPE, MAX_ENROLMENT_TTL_MS, type EnrolmentGrant, type EnrolmentTokensOptions } from './enrolment.ts';
export { AuthorityError, type AuthorityRefusal } from './errors.ts';
export { parseAllowedName, type AllowedName, type GrantedNames } from './policy.ts';
export { canonicalIp } from './x509/names.ts';
export { caSettings, type CaSettings } from './settings.ts';
export { CertificateRequestError, type RequestRefusal } from './x509/errors.ts';
export { REVOCATION_REASONS, readCrl, type CrlFacts, type RevocationReason } from './x509/crl.ts';
export { buildCertificateRequest } from './x509/csr.ts';
export { certificateFacts, isSelfIssued, selfSignedClientProblem, type CertificateFacts } from './x509/certificate.ts';
export { fromPem, toPem } from './x509/pem.ts';
