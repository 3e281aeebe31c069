/**
 * Requests the server makes to addresses a client registered (back-channel
 * logout). A registrant chooses the URL, so in production such a request
 * must not reach the server's own network: loopback, private, link-local,
 * carrier-grade NAT, multicast and reserved ranges are refused (SSRF,
 * OWASP). The check is made on the address actually connected to (the
 * request's own DNS lookup), so a name that resolves differently the
 * second time (DNS rebinding) cannot slip through.
 */
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { BlockList, isIP, type LookupFunction } from 'node:net';
import { lookup as dnsLookup } from 'node:dns';

const NON_PUBLIC = new BlockList();
for (const [network, prefix] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.0.2.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['198.51.100.0', 24],
  ['203.0.113.0', 24],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const) {
  NON_PUBLIC.addSubnet(network, prefix, 'ipv4');
}
for (const [network, prefix] of [
  ['::', 128],
  ['::1', 128],
  ['64:ff9b:1::', 48],
  ['100::', 64],
  ['2001:db8::', 32],
  ['fc00::', 7],
  ['fe80::', 10],
  ['ff00::', 8],
] as const) {
  NON_PUBLIC.addSubnet(network, prefix, 'ipv6');
}

/** Whether an IP address is on the public internet (IPv4-mapped IPv6 is judged as its IPv4 address). */
export function isPublicAddress(address: string): boolean {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped !== null) return isPublicAddress(mapped[1]!);
  const family = isIP(address);
  if (family === 0) return false;
  return !NON_PUBLIC.check(address, family === 4 ? 'ipv4' : 'ipv6');
}

export class OutboundAddressError extends Error {
  override readonly name = 'OutboundAddressError';
}

/** A DNS lookup that refuses names resolving to a non-public address. */
const publicOnlyLookup: LookupFunction = (hostname, options, callback) => {
  dnsLookup(hostname, { ...options, all: true }, (error, addresses) => {
    if (error !== null) return callback(error, '', 0);
    const list = addresses as unknown as { address: string; family: number }[];
    const refused = list.find((entry) => !isPublicAddress(entry.address));
    if (refused !== undefined || list.length === 0) return callback(new OutboundAddressError('the address is not on the public internet'), '', 0);
    if ((options as { all?: boolean }).all === true) return (callback as unknown as (error: null, addresses: typeof list) => void)(null, list);
    return callback(null, list[0]!.address, list[0]!.family);
  });
};

/**
 * POSTs a form and resolves with the status code. No redirect is followed.
 * With `publicOnly`, a URL whose host is, or resolves to, a non-public
 * address is refused with OutboundAddressError before any byte is sent.
 */
export function postForm(url: string, form: Record<string, string>, options: { publicOnly: boolean; timeoutMs: number }): Promise<number> {
  const target = new URL(url);
  const host = target.hostname.replace(/^\[|\]$/g, '');
  if (options.publicOnly && isIP(host) !== 0 && !isPublicAddress(host)) return Promise.reject(new OutboundAddressError('the address is not on the public internet'));
  const body = new URLSearchParams(form).toString();
  const send = target.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const outgoing = send(
      target,
      {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': String(Buffer.byteLength(body)), 'cache-control': 'no-store' },
        timeout: options.timeoutMs,
        ...(options.publicOnly && { lookup: publicOnlyLookup }),
      },
      (response) => {
        response.resume();
        response.on('end', () => resolve(response.statusCode ?? 0));
        response.on('error', reject);
      },
    );
    outgoing.on('timeout', () => outgoing.destroy(new Error('timed out')));
    outgoing.on('error', reject);
    outgoing.end(body);
  });
}
