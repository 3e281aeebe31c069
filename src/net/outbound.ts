/**
 * Requests the server makes to addresses a client registered (back-channel
 * logout, pushed security events). A registrant chooses the URL, so in production such a request
 * must not reach the server's own network: loopback, private, link-local,
 * carrier-grade NAT, multicast and reserved ranges are refused (SSRF,
 * OWASP). The check is made on the address actually connected to (the
 * request's own DNS lookup), so a name that resolves differently the
 * second time (DNS rebinding) cannot slip through.
 */
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import ipaddr from 'ipaddr.js';
import { lookup as dnsLookup } from 'node:dns';

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

/** What a receiver answered: its status and the start of its body (for an error code). */
export interface OutboundResponse {
  readonly status: number;
  readonly body: string;
}

export interface OutboundOptions {
  readonly publicOnly: boolean;
  readonly timeoutMs: number;
  /** Request headers besides content-type and content-length. */
  readonly headers?: Readonly<Record<string, string>>;
  /** Response bytes kept; the rest is read and dropped. Default 4096. */
  readonly maxResponseBytes?: number;
  /** Aborts the request (the caller gave up). */
  readonly signal?: AbortSignal;
}

/**
 * POSTs a body and resolves with the status and the start of the response
 * body. No redirect is followed. With `publicOnly`, a URL whose host is, or
 * resolves to, a non-public address is refused with OutboundAddressError
 * before any byte is sent.
 */
export function postBody(url: string, body: string, contentType: string, options: OutboundOptions): Promise<OutboundResponse> {
  const target = new URL(url);
  const host = target.hostname.replace(/^\[|\]$/g, '');
  if (options.publicOnly && isIP(host) !== 0 && !isPublicAddress(host)) return Promise.reject(new OutboundAddressError('the address is not on the public internet'));
  const send = target.protocol === 'https:' ? httpsRequest : httpRequest;
  const keep = options.maxResponseBytes ?? 4096;
  return new Promise((resolve, reject) => {
    let settled = false;
    const finish = (outcome: () => void): void => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      outcome();
    };
    const outgoing = send(
      target,
      {
        method: 'POST',
        headers: { ...options.headers, 'content-type': contentType, 'content-length': String(Buffer.byteLength(body)), 'cache-control': 'no-store' },
        // An idle timeout: a socket silent this long is given up (the deadline below bounds the whole exchange).
        timeout: options.timeoutMs,
        ...(options.signal !== undefined && { signal: options.signal }),
        ...(options.publicOnly && { lookup: publicOnlyLookup }),
      },
      (response) => {
        const chunks: Buffer[] = [];
        let kept = 0;
        const done = (): void => finish(() => resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        response.on('data', (chunk: Buffer) => {
          chunks.push(chunk.subarray(0, keep - kept));
          kept += Math.min(chunk.length, keep - kept);
          // Enough to read an error code: the rest is not waited for (a receiver that trickles bytes holds nobody).
          if (kept >= keep) {
            done();
            response.destroy();
          }
        });
        response.on('end', done);
        response.on('error', (error) => finish(() => reject(error)));
      },
    );
    // One deadline for connect, headers and body: an idle timeout alone lets a peer that sends a byte now and then hold the caller forever.
    const deadline = setTimeout(() => outgoing.destroy(new Error('timed out')), options.timeoutMs);
    outgoing.on('timeout', () => outgoing.destroy(new Error('timed out')));
    outgoing.on('error', (error) => finish(() => reject(error)));
    outgoing.end(body);
  });
}

/** POSTs a form and resolves with the status code (see {@link postBody}). */
export async function postForm(url: string, form: Record<string, string>, options: { publicOnly: boolean; timeoutMs: number }): Promise<number> {
  return (await postBody(url, new URLSearchParams(form).toString(), 'application/x-www-form-urlencoded', options)).status;
}
