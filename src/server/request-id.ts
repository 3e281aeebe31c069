import { randomBytes, randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import proxyAddr from '@fastify/proxy-addr';

/** A request id we accept from a trusted proxy: short, printable, no spaces. */
const REQUEST_ID = /^[A-Za-z0-9._:@\-]{1,128}$/;
/** W3C Trace Context `traceparent`, version 00 (section 3.2). */
const TRACEPARENT = /^00-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$/;
const ZERO_TRACE_ID = '0'.repeat(32);

export interface RequestIdentity {
  /** Generates the request id, accepting `x-request-id` only from a trusted proxy. */
  requestId(request: IncomingMessage): string;
  /** The trace id: from a trusted proxy's `traceparent`, else a new one. */
  traceId(request: IncomingMessage): string;
  /** A trusted proxy's `traceparent` and `tracestate`, for the request's span to continue (undefined from anyone else). */
  traceParent(request: IncomingMessage): { traceparent: string; tracestate?: string } | undefined;
}

/**
 * Request and trace ids. A client that is not a trusted proxy cannot choose
 * them: otherwise anyone could forge log lines that seem to belong to
 * another request, or collide ids on purpose.
 */
export function requestIdentity(trustedProxies: readonly string[]): RequestIdentity {
  // A request id must be unique, not secret: a random per-instance prefix
  // (64 bits, so instances behind one balancer do not collide) and a counter
  // cost a fraction of a random UUID per request.
  const instancePrefix = randomBytes(8).toString('hex');
  let sequence = 0;
  const trust = trustedProxies.length > 0 ? proxyAddr.compile([...trustedProxies]) : undefined;
  const fromTrustedProxy = (request: IncomingMessage) =>
    trust !== undefined && request.socket.remoteAddress !== undefined && trust(request.socket.remoteAddress, 0);
  return {
    requestId(request) {
      const offered = request.headers['x-request-id'];
      if (typeof offered === 'string' && REQUEST_ID.test(offered) && fromTrustedProxy(request)) return offered;
      sequence = sequence === Number.MAX_SAFE_INTEGER ? 1 : sequence + 1;
      return `${instancePrefix}-${sequence.toString(36)}`;
    },
    traceId(request) {
      const offered = request.headers['traceparent'];
      if (typeof offered === 'string' && fromTrustedProxy(request)) {
        const traceId = TRACEPARENT.exec(offered)?.[1];
        if (traceId !== undefined && traceId !== ZERO_TRACE_ID) return traceId;
      }
      // randomUUID draws from Node's cached entropy pool: 122 random bits at
      // a tenth of the cost of randomBytes(16) on every request.
      return randomUUID().replaceAll('-', '');
    },
    traceParent(request) {
      const offered = request.headers['traceparent'];
      if (typeof offered !== 'string' || !TRACEPARENT.test(offered) || !fromTrustedProxy(request)) return undefined;
      const state = request.headers['tracestate'];
      return { traceparent: offered, ...(typeof state === 'string' && { tracestate: state }) };
    },
  };
}
