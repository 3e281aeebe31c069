/**
 * A receiver of what Portcullis delivers to the outside (issue 16, the
 * outbox fault tests), on a loopback port: SETs pushed to a stream's
 * endpoint (RFC 8935) at `/push`, erasure notices at an
 * erasure_notification_uri (`/notices`), and back-channel logout tokens at
 * a backchannel_logout_uri (`/logout`: a form whose `logout_token` field is
 * the JWT, OIDC Back-Channel Logout 1.0 section 2.5). Every POST that
 * arrives is kept with its body, its decoded JWT (jti, claims, header) and
 * whether it was accepted. The test says what it answers meanwhile:
 *
 * - `up`: 202 Accepted (`/logout`: 200 OK, Back-Channel Logout section 2.8);
 * - `fail`: 503 at once;
 * - `hang`: nothing for `hangMs`, then 503 (a sender with a shorter
 *   deadline gives up first).
 *
 * `onAccepted` runs right after an acceptance is written (a test kills the sender
 * there: it delivered, and has not yet recorded it).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { decodeJwt, decodeProtectedHeader } from 'jose';

export type ReceiverMode = 'up' | 'fail' | 'hang';
export type DeliveryPath = '/push' | '/notices' | '/logout';
const PATHS: readonly string[] = ['/push', '/notices', '/logout'] satisfies DeliveryPath[];

export interface Arrival {
  readonly path: DeliveryPath;
  readonly body: string;
  readonly jti: string;
  /**
   * The JWT's claims and protected header, as JSON (what a receiver
   * compares). A logout token's without `iat` and `exp`: those are fresh on
   * every attempt by design (a logout token must be recent, section 2.6),
   * while everything else, `jti` included, is the same on every copy.
   */
  readonly content: string;
  readonly claims: Record<string, unknown>;
  readonly accepted: boolean;
  /** The receiver's `label` when it arrived (the test's phase). */
  readonly label: string;
  /** When it arrived (performance.now()). */
  readonly at: number;
}

export interface DeliveryReceiver {
  readonly base: string;
  readonly arrivals: Arrival[];
  mode: ReceiverMode;
  hangMs: number;
  /** Recorded with each arrival. */
  label: string;
  onAccepted: ((arrival: Arrival) => void) | undefined;
  /** Requests held by `hang` now. */
  readonly hanging: number;
  /** What arrived at `path` and was accepted (202; 200 at `/logout`). */
  accepted(path: DeliveryPath): Arrival[];
  close(): Promise<void>;
}

export async function startDeliveryReceiver(): Promise<DeliveryReceiver> {
  let hanging = 0;
  const timers = new Set<NodeJS.Timeout>();
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      if (req.method !== 'POST' || !PATHS.includes(path)) return void res.writeHead(404).end();
      const at = path as DeliveryPath;
      const body = Buffer.concat(chunks).toString('utf8');
      // A logout token comes as a form field (section 2.5); a SET is the body itself (RFC 8935 section 2).
      const jwt = at === '/logout' ? (new URLSearchParams(body).get('logout_token') ?? '') : body;
      const claims = decodeJwt(jwt) as Record<string, unknown>;
      // A logout token's iat and exp are fresh per attempt by design: left out of what copies must share.
      const compared = at === '/logout' ? Object.fromEntries(Object.entries(claims).filter(([name]) => name !== 'iat' && name !== 'exp')) : claims;
      const arrive = (accepted: boolean): Arrival => {
        const arrival: Arrival = { path: at, body, jti: String(claims['jti']), content: JSON.stringify({ header: decodeProtectedHeader(jwt), claims: compared }), claims, accepted, label: receiver.label, at: performance.now() };
        receiver.arrivals.push(arrival);
        return arrival;
      };
      if (receiver.mode === 'up') {
        // Back-Channel Logout section 2.8: the RP answers 200 OK (or 204); a SET receiver 202 (RFC 8935 section 2.2).
        res.writeHead(at === '/logout' ? 200 : 202).end();
        const arrival = arrive(true);
        receiver.onAccepted?.(arrival);
      } else if (receiver.mode === 'fail') {
        arrive(false);
        res.writeHead(503).end();
      } else {
        arrive(false);
        hanging += 1;
        const timer = setTimeout(() => {
          timers.delete(timer);
          hanging -= 1;
          if (!res.destroyed) res.writeHead(503).end();
        }, receiver.hangMs);
        timers.add(timer);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const receiver: DeliveryReceiver = {
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    arrivals: [],
    mode: 'up',
    hangMs: 1500,
    label: '',
    onAccepted: undefined,
    get hanging() {
      return hanging;
    },
    accepted: (path) => receiver.arrivals.filter((arrival) => arrival.path === path && arrival.accepted),
    close: () =>
      new Promise((resolve) => {
        for (const timer of timers) clearTimeout(timer);
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  return receiver;
}
