/**
 * The port between the mTLS listener (runtime) and the built-in CA (pki).
 * The runtime's `ca` service answers it from the built-in CA
 * (ca-authority.ts), unless the caller supplies another
 * (ServiceSettings.listenerAuthority: tests with an openssl-made CA).
 */
import type { X509Certificate } from 'node:crypto';

/**
 * What the built-in CA gives the mTLS listener.
 *
 * Contract (what the listener relies on):
 * - `clientTrust()` MUST answer synchronously from memory and MUST be
 *   consistent in itself: the CRLs are those of the CAs in `ca`. Once any
 *   CRL is given, OpenSSL checks every certificate of a client's chain
 *   (Node sets X509_V_FLAG_CRL_CHECK_ALL): each CA certificate in `ca` that
 *   can sign a client chain MUST have a current CRL in `crl` (nextUpdate in
 *   the future), or every chain through it is refused; a registered
 *   self-signed client certificate has no issuer to publish a CRL for it,
 *   so OpenSSL refuses it while any CRL is set (pinned by
 *   test/runtime/mtls-listener.test.ts).
 * - `onClientTrustChange` listeners MUST be called after the change is
 *   visible through `clientTrust()`. The listener applies the new trust
 *   before its callback returns, so a revocation is in force for every
 *   handshake that starts after the call. Its callback never throws.
 * - `issueServerCertificate` MUST return a chain whose leaf names the
 *   requested names (RFC 5280 section 4.2.1.6 subjectAltName), is valid
 *   now, and whose key is the returned PKCS#8 key. The listener renews at
 *   two thirds of notBefore..notAfter; a rejection keeps the current
 *   certificate and is retried with backoff.
 */
export interface ListenerAuthority {
  /** PEM certificates a client certificate may chain to (the CA bundle, plus registered self-signed client certificates), and the current CRLs (DER). */
  clientTrust(): { readonly ca: readonly string[]; readonly crl: readonly Buffer[] };
  /** Called when clientTrust() would answer differently (revocation, CA rotation, client registration); returns an unsubscribe function. */
  onClientTrustChange(listener: () => void): () => void;
  /** A fresh certificate for this instance's own listener: PEM chain (leaf first), PEM PKCS#8 key, and its validity. */
  issueServerCertificate(request: { readonly dnsNames: readonly string[]; readonly ipAddresses: readonly string[] }): Promise<{ readonly cert: string; readonly key: string; readonly notBefore: Date; readonly notAfter: Date }>;
  /**
   * Whether a client certificate the TLS handshake accepted is refused all
   * the same (revoked, or a self-signed one no longer registered): answered
   * from memory. The listener closes such a connection as its handshake
   * completes, before any request is read, and closes open connections
   * that become refused when the trust changes.
   */
  refuses?(certificate: X509Certificate): boolean;
}

/** What one issuance returns. */
export type IssuedServerCertificate = Awaited<ReturnType<ListenerAuthority['issueServerCertificate']>>;
