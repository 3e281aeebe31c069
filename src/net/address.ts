/**
 * The SSRF address rule shared by every outbound request (outbound.ts,
 * fetch.ts): in production a request must not reach the server's own
 * network: loopback, private, link-local, carrier-grade NAT, multicast and
 * reserved ranges are refused (OWASP). The check is made on the address
 * actually connected to (the request's own DNS lookup), so a name that
 * resolves differently the second time (DNS rebinding) cannot slip through.
 */
import { lookup as dnsLookup } from 'node:dns';
import { isIP, type LookupFunction } from 'node:net';
import ipaddr from 'ipaddr.js';

/**
 * Where an address may be reached from, by ipaddr.js's range tables (kept up
 * to date with the IANA special-purpose registries, RFC 6890), not by a list
 * of our own: only `unicast` (ipaddr's name for "none of the special
 * ranges") is public.
 *
 * IPv6 transition ranges embed an IPv4 address that a relay or translator
 * on the path may turn into a connection to it (SSRF into IPv4 space):
 * - ::ffff:0:0/96 (IPv4-mapped, RFC 4291 section 2.5.5.2) is judged as the IPv4 address it carries;
 * - ::/96 (IPv4-compatible, deprecated by RFC 4291 section 2.5.5.1), which
 *   ipaddr files under `unicast`, is refused;
 * - 64:ff9b::/96 and 64:ff9b:1::/48 (NAT64, RFC 6052, RFC 8215), 2002::/16 (6to4, RFC 3056),
 *   2001::/32 (Teredo, RFC 4380) and fec0::/10 (site-local, RFC 3879) are special ranges, so refused.
 */
const IPV4_COMPATIBLE = ipaddr.parseCIDR('::/96');

/** Whether an IP address is on the public internet (IPv4-mapped IPv6 is judged as its IPv4 address). */
export function isPublicAddress(address: string): boolean {
  if (isIP(address) === 0) return false;
  let parsed: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    parsed = ipaddr.parse(address);
  } catch {
    return false;
  }
  if (parsed instanceof ipaddr.IPv6) {
    if (parsed.isIPv4MappedAddress()) return parsed.toIPv4Address().range() === 'unicast';
    if (parsed.match(IPV4_COMPATIBLE)) return false;
  }
  return parsed.range() === 'unicast';
}

/** A request refused because its host is, or resolves to, an address the rule does not allow. */
export class OutboundAddressError extends Error {
  override readonly name = 'OutboundAddressError';
}

/**
 * A DNS lookup (node:net's `lookup` option) that refuses a name when any
 * address it resolves to fails `allowed`: the connection then never starts.
 */
export function addressCheckedLookup(allowed: (address: string) => boolean): LookupFunction {
  return (hostname, options, callback) => {
    dnsLookup(hostname, { ...options, all: true }, (error, addresses) => {
      if (error !== null) return callback(error, '', 0);
      const list = addresses as unknown as { address: string; family: number }[];
      const refused = list.find((entry) => !allowed(entry.address));
      if (refused !== undefined || list.length === 0) return callback(new OutboundAddressError('the address is not on the public internet'), '', 0);
      if ((options as { all?: boolean }).all === true) return (callback as unknown as (error: null, addresses: typeof list) => void)(null, list);
      return callback(null, list[0]!.address, list[0]!.family);
    });
  };
}

/** A DNS lookup that refuses names resolving to a non-public address. */
export const publicOnlyLookup: LookupFunction = addressCheckedLookup(isPublicAddress);
