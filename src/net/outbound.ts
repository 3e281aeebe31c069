/**
 * Requests the server makes to addresses a client registered (back-channel
 * logout, pushed security events). A registrant chooses the URL, so in production such a request
 * must not reach the server's own network: loopback, private, link-local,
 * carrier-grade NAT, multicast and reserved ranges are refused (SSRF,
 * OWASP), by the shared rule of address.ts, checked on the address actually
 * connected to (DNS rebinding cannot slip through).
 */
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import { OutboundAddressError, isPublicAddress, publicOnlyLookup } from './address.ts';

export { OutboundAddressError, isPublicAddress } from './address.ts';

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
