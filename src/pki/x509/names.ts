/**
 * Subject alternative names (RFC 5280 section 4.2.1.6) in the forms the CA
 * policy speaks: URIs (the SPIFFE ID), DNS names, IP addresses. Encoded and
 * decoded with @peculiar/asn1-x509's GeneralName, never by hand.
 */
import { GeneralName, GeneralNames } from '@peculiar/asn1-x509';
import { isIP, isIPv4, isIPv6 } from 'node:net';

export interface SubjectNames {
  readonly uris: readonly string[];
  readonly dns: readonly string[];
  readonly ips: readonly string[];
  readonly emails: readonly string[];
  /** Names of any other kind (directoryName, otherName, ...), which the CA never issues. */
  readonly other: number;
}

export const NO_NAMES: SubjectNames = { uris: [], dns: [], ips: [], emails: [], other: 0 };

export function toGeneralNames(names: Pick<SubjectNames, 'uris' | 'dns' | 'ips'>): GeneralNames {
  return new GeneralNames([
    ...names.uris.map((uri) => new GeneralName({ uniformResourceIdentifier: uri })),
    ...names.dns.map((dns) => new GeneralName({ dNSName: dns })),
    ...names.ips.map((ip) => new GeneralName({ iPAddress: ip })),
  ]);
}

export function fromGeneralNames(names: readonly GeneralName[]): SubjectNames {
  const uris: string[] = [];
  const dns: string[] = [];
  const ips: string[] = [];
  const emails: string[] = [];
  let other = 0;
  for (const name of names) {
    if (name.uniformResourceIdentifier !== undefined) uris.push(name.uniformResourceIdentifier);
    else if (name.dNSName !== undefined) dns.push(name.dNSName);
    else if (name.iPAddress !== undefined) ips.push(canonicalIp(name.iPAddress) ?? name.iPAddress);
    else if (name.rfc822Name !== undefined) emails.push(name.rfc822Name);
    else other += 1;
  }
  return { uris, dns, ips, emails, other };
}

/** RFC 1123 host names, lowercase, as they go into dNSName (no wildcard: the CA issues for exact names). */
const DNS_NAME = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

export function isDnsName(text: string): boolean {
  return DNS_NAME.test(text);
}

export function isIpAddress(text: string): boolean {
  return isIP(text) !== 0;
}

/**
 * One spelling per address: IPv4 dotted decimal as Node's strict parser
 * accepts it (no leading zeros), IPv6 in the RFC 5952 form the WHATWG URL
 * serialiser writes. An IPv4-mapped IPv6 address stays IPv6 (another
 * iPAddress value in a certificate: 16 octets, not 4). Undefined for
 * anything else, a zone included.
 */
export function canonicalIp(value: string): string | undefined {
  if (isIPv4(value)) return value;
  if (!isIPv6(value) || value.includes('%')) return undefined;
  try {
    // The serialiser writes the host in brackets: the address is inside.
    return new URL(`http://[${value}]/`).hostname.slice(1, -1);
  } catch {
    return undefined;
  }
}
