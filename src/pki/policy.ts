/**
 * The issuance policy for X509-SVIDs (SPIFFE X509-SVID specification,
 * sections 2 to 4): exactly one URI SAN, a SPIFFE ID of this trust domain
 * with a workload path; DNS and IP SANs only as the caller's registration
 * permits; never a CA; a lifetime within `pki.maxTtl`.
 *
 * Allowed names are written as `client create --cert-san` takes them:
 * `spiffe://TD/path`, `dns:NAME`, `ip:ADDRESS`.
 */
import { parseSpiffeId } from '../sdk/mtls/index.ts';
import type { CertificateRequest } from './x509/csr.ts';
import { CertificateRequestError } from './x509/errors.ts';
import { isDnsName, isIpAddress, type SubjectNames } from './x509/names.ts';

export interface GrantedNames {
  readonly spiffeId: string;
  readonly dns: readonly string[];
  readonly ips: readonly string[];
}

/** One allowed name in its written form, checked; throws a TypeError saying what is wrong. */
export function parseAllowedName(text: string): { readonly kind: 'uri' | 'dns' | 'ip'; readonly value: string } {
  if (text.startsWith('spiffe://')) {
    const id = parseSpiffeId(text);
    if (id.path === '') throw new TypeError(`${text}: a certificate names a workload, so the SPIFFE ID needs a path`);
    return { kind: 'uri', value: text };
  }
  if (text.startsWith('dns:')) {
    const name = text.slice(4);
    if (!isDnsName(name)) throw new TypeError(`${text}: not a lowercase DNS name`);
    return { kind: 'dns', value: name };
  }
  if (text.startsWith('ip:')) {
    const address = text.slice(3);
    if (!isIpAddress(address)) throw new TypeError(`${text}: not an IP address`);
    return { kind: 'ip', value: address };
  }
  throw new TypeError(`${text}: write spiffe://TRUST_DOMAIN/PATH, dns:NAME or ip:ADDRESS`);
}

/**
 * The names a request gets, or the refusal: `allowed` are the caller's
 * names (from its client registration or its enrolment token).
 */
export function grantNames(request: CertificateRequest, allowed: readonly string[], trustDomain: string): GrantedNames {
  if (request.asksForCa) throw new CertificateRequestError('ca_requested', 'the CSR asks to be a CA (basicConstraints cA or keyCertSign/cRLSign); this CA issues only end-entity certificates');
  return grantListedNames(request.names, allowed, trustDomain);
}

export function grantListedNames(names: SubjectNames, allowed: readonly string[], trustDomain: string): GrantedNames {
  if (names.other > 0 || names.emails.length > 0) throw new CertificateRequestError('unsupported_name', 'the CSR asks for a name that is not a URI, DNS name or IP address');
  if (names.uris.length === 0) throw new CertificateRequestError('spiffe_id_required', 'the CSR must ask for exactly one URI SAN, the SPIFFE ID');
  if (names.uris.length > 1) throw new CertificateRequestError('multiple_uri_sans', 'an X509-SVID has exactly one URI SAN (SPIFFE X509-SVID section 2); the CSR asks for several');
  const spiffeId = names.uris[0]!;
  let parsed;
  try {
    parsed = parseSpiffeId(spiffeId);
  } catch (error) {
    throw new CertificateRequestError('spiffe_id_required', `the URI SAN is not a SPIFFE ID: ${(error as Error).message}`);
  }
  if (parsed.trustDomain !== trustDomain) throw new CertificateRequestError('name_not_permitted', `${spiffeId} is outside this CA's trust domain ${trustDomain}`);
  if (parsed.path === '') throw new CertificateRequestError('spiffe_id_required', 'the SPIFFE ID needs a workload path');
  const permitted = new Set(allowed);
  const refuse = (written: string) => new CertificateRequestError('name_not_permitted', `the caller may not have ${written} in a certificate`);
  if (!permitted.has(spiffeId)) throw refuse(spiffeId);
  const dns = [...new Set(names.dns.map((name) => name.toLowerCase()))];
  for (const name of dns) if (!permitted.has(`dns:${name}`)) throw refuse(`dns:${name}`);
  const ips = [...new Set(names.ips)];
  for (const address of ips) if (!permitted.has(`ip:${address}`)) throw refuse(`ip:${address}`);
  return { spiffeId, dns, ips };
}
