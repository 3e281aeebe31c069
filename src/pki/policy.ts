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
import { canonicalIp, isDnsName, type SubjectNames } from './x509/names.ts';

export interface GrantedNames {
  readonly spiffeId: string;
  readonly dns: readonly string[];
  readonly ips: readonly string[];
}

/** SPIFFE IDs under this path name Portcullis' own listeners. */
export const RESERVED_PATH = '/portcullis';

/** Longest allowed name as written (a SPIFFE ID is at most 2048 bytes). */
const MAX_NAME_LENGTH = 2048;

export interface AllowedName {
  readonly kind: 'uri' | 'dns' | 'ip';
  /** The bare name: the SPIFFE ID, the DNS name in lower case, the address in its one spelling. */
  readonly value: string;
  /** How it is stored and compared: `spiffe://...`, `dns:name`, `ip:address`. */
  readonly written: string;
}

/**
 * One allowed name as an operator writes it (`--cert-san`, `ca token
 * --san`), checked and put in its one spelling; throws a TypeError saying
 * what is wrong. Client registration (cert_sans) and enrolment tokens both
 * go through here, so what one stores the other compares alike.
 */
export function parseAllowedName(text: string): AllowedName {
  if (text.length === 0 || text.length > MAX_NAME_LENGTH) throw new TypeError(`must be 1 to ${MAX_NAME_LENGTH} characters`);
  if (text.startsWith('spiffe:')) {
    let id;
    try {
      id = parseSpiffeId(text);
    } catch (error) {
      throw new TypeError(`a SPIFFE ID is spiffe://trust-domain/path: ${(error as Error).message}`);
    }
    if (id.path === '') throw new TypeError("a workload's SPIFFE ID needs a path (spiffe://trust-domain/workload); the bare trust domain names no workload");
    if (id.path === RESERVED_PATH || id.path.startsWith(`${RESERVED_PATH}/`)) throw new TypeError(`SPIFFE IDs under ${RESERVED_PATH} are reserved for Portcullis' own listeners`);
    return { kind: 'uri', value: text, written: text };
  }
  if (text.startsWith('dns:')) {
    // RFC 4343: DNS names compare without regard to ASCII case.
    const name = text.slice(4).toLowerCase();
    if (!isDnsName(name)) throw new TypeError('dns: needs a DNS name (letters, digits, hyphens and dots, no wildcard; internationalised names in their xn-- form)');
    return { kind: 'dns', value: name, written: `dns:${name}` };
  }
  if (text.startsWith('ip:')) {
    const address = canonicalIp(text.slice(3));
    if (address === undefined) throw new TypeError('ip: needs an IPv4 address in dotted decimal or an IPv6 address (no brackets, no zone)');
    return { kind: 'ip', value: address, written: `ip:${address}` };
  }
  throw new TypeError('write spiffe://trust-domain/path, dns:name or ip:address');
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
  // Portcullis' own listeners are /portcullis/...: a workload certificate (which may serve TLS) never names them.
  if (parsed.path === RESERVED_PATH || parsed.path.startsWith(`${RESERVED_PATH}/`)) throw new CertificateRequestError('name_not_permitted', `${spiffeId} is reserved for Portcullis itself`);
  // The caller's names in their one spelling (parseAllowedName), so `ip:::1` and `ip:0:0::1` are one name.
  const permitted = new Set(allowed.flatMap((name) => {
    try {
      return [parseAllowedName(name).written];
    } catch {
      return [];
    }
  }));
  const refuse = (written: string) => new CertificateRequestError('name_not_permitted', `the caller may not have ${written} in a certificate`);
  if (!permitted.has(spiffeId)) throw refuse(spiffeId);
  const dns = [...new Set(names.dns.map((name) => name.toLowerCase()))];
  for (const name of dns) if (!permitted.has(`dns:${name}`)) throw refuse(`dns:${name}`);
  const ips = [...new Set(names.ips.map((address) => canonicalIp(address) ?? address))];
  for (const address of ips) if (!permitted.has(`ip:${address}`)) throw refuse(`ip:${address}`);
  return { spiffeId, dns, ips };
}
