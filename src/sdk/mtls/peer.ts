/**
 * The SPIFFE ID of a peer: the X509-SVID rules a validator applies to a
 * leaf (X509-SVID specification, section 5.2) on top of the chain check
 * TLS already made.
 */
import { X509Certificate } from 'node:crypto';
import { TLSSocket } from 'node:tls';
import { svidFields } from './der.ts';
import { parseSpiffeId } from './spiffe-id.ts';

/**
 * The SPIFFE ID of `peer`, or undefined when it has none that counts:
 *
 * - a `TLSSocket`: its peer certificate, and only once TLS verified it
 *   against the trusted CAs (`socket.authorized`); an unverified
 *   certificate proves nothing, whatever it names;
 * - an `X509Certificate`: read as it is (verifying it is the caller's job).
 *
 * Undefined as well when the certificate is not an X509-SVID leaf
 * (section 5.2): more or fewer than exactly one URI SAN (section 2: a
 * validator MUST reject an SVID with more than one), a URI that is not a
 * valid SPIFFE ID, an ID without a path (section 3.1: a leaf names a
 * workload, not the trust domain), a CA certificate, or a key usage that
 * signs certificates or CRLs.
 */
export function spiffeIdOf(peer: TLSSocket | X509Certificate): string | undefined {
  let certificate: X509Certificate | undefined;
  if (peer instanceof TLSSocket) {
    if (!peer.authorized) return undefined;
    certificate = peer.getPeerX509Certificate();
  } else if (peer instanceof X509Certificate) {
    certificate = peer;
  } else {
    throw new TypeError('spiffeIdOf takes a TLSSocket or an X509Certificate');
  }
  if (certificate === undefined || certificate.ca) return undefined;
  let fields;
  try {
    fields = svidFields(certificate.raw);
  } catch {
    return undefined;
  }
  if (fields.signsCertificates || fields.uris.length !== 1) return undefined;
  const uri = fields.uris[0]!;
  try {
    return parseSpiffeId(uri).path === '' ? undefined : uri;
  } catch {
    return undefined;
  }
}
