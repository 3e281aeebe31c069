/**
 * The built-in certificate authority: X.509 building and parsing
 * (`x509/`), the CA itself (keys, issuance, renewal, revocation, CRL,
 * trust bundles) and its policy for SPIFFE X509-SVIDs.
 */
export {};
