/**
 * Back-Channel Logout 1.0 through the transactional outbox. When a session
 * ends, one outbox message per client it signed in to is committed before
 * the sign-out answers; the outbox worker (runtime/outbox.ts) delivers them.
 * So a logout token is not lost when the client is away, the server is
 * killed, or a store blinks: the worker retries with backoff, after a
 * restart too, until the client takes it, for 12 attempts (about an hour)
 * or as long as a session may live, whichever ends first. The outbox gives
 * the topic a lane of its own, so a client that hangs delays only logouts.
 *
 * Every copy of one message carries the same `jti`, derived from its
 * idempotency key, so a client that dedupes on `jti` (section 2.6 lets it
 * reject a replay) sees one logout however often it is sent.
 */
import { createHash } from 'node:crypto';
import { OutboundAddressError, postBody } from '../net/index.ts';
import type { Clock, OutboxDelivery } from '../store/index.ts';
import { signJwtAsync, type Keyring } from '../tokens/index.ts';
import type { ClientRegistry } from './clients.ts';

export const BACKCHANNEL_LOGOUT_TOPIC = 'oauth.backchannel-logout';

/** The outbox payload: whom to tell, about which session. */
export interface BackchannelLogoutPayload {
  readonly clientId: string;
  readonly sub: string;
  readonly sid: string;
}

/** One session ends once, so its logout for one client is one message. */
export function backchannelLogoutKey(sid: string, clientId: string): string {
  return `backchannel-logout:${sid}:${clientId}`;
}

/** Section 2.4: the one event a logout token carries. */
const BACKCHANNEL_EVENT = 'http://schemas.openid.net/event/backchannel-logout';
const LOGOUT_TOKEN_TTL_SECONDS = 120;
const DELIVERY_TIMEOUT_MS = 5000;
/** With the outbox's backoff (1 s doubling), 12 attempts span about 68 minutes: a client down longer misses the logout. */
const MAX_ATTEMPTS = 12;
/** How long a client whose endpoint failed is not tried for its other messages. */
const FAIL_FAST_MS = 60_000;
const MAX_FAILING_CLIENTS = 10_000;

/** Not delivered yet; the outbox tries again later. Its message is fit for the outbox's last_error. */
export class LogoutNotDeliveredError extends Error {
  override readonly name = 'LogoutNotDeliveredError';
}

export interface BackchannelDelivererOptions {
  readonly clients: Pick<ClientRegistry, 'get'>;
  readonly keyring: Pick<Keyring, 'signingKey'>;
  readonly issuer: string;
  readonly clock: Clock;
  /** Loopback and private addresses allowed (development); else only public ones. */
  readonly allowPrivateNetworks: boolean;
  /** A message this old is given up, not retried (ms): the longest a session lives. */
  readonly giveUpAfterMs: number;
  /** Told of the first failed attempt of a message and of its end when it is given up; the person is signed out regardless. */
  readonly onDeliveryFailure: (clientId: string, reason: string) => void;
  readonly timeoutMs?: number;
}

function checkPayload(payload: unknown): BackchannelLogoutPayload {
  const value = payload as Partial<BackchannelLogoutPayload> | null;
  if (value === null || typeof value !== 'object' || typeof value.clientId !== 'string' || typeof value.sub !== 'string' || typeof value.sid !== 'string') {
    throw new Error('malformed back-channel logout message in the outbox');
  }
  return value as BackchannelLogoutPayload;
}

export function backchannelLogoutDeliverer(options: BackchannelDelivererOptions): (message: OutboxDelivery, signal: AbortSignal) => Promise<void> {
  const giveUp = (clientId: string, reason: string): void => options.onDeliveryFailure(clientId, `${reason}; not retried`);
  // Clients whose endpoint just failed: their other messages wait for their
  // own backoff without a request each, so one client that hangs costs the
  // logout lane one timeout a minute, not one per session that used it.
  const failing = new Map<string, { readonly until: number; readonly message: number }>();
  return async (message, signal) => {
    let logout: BackchannelLogoutPayload;
    try {
      logout = checkPayload(message.payload);
    } catch {
      // Nothing to retry: no attempt could ever deliver it.
      return giveUp('(unknown)', 'malformed message');
    }
    let reason: string;
    try {
      const outcome = await attempt(options, logout, message, signal, failing);
      if (outcome.done) return outcome.reason === undefined ? undefined : giveUp(logout.clientId, outcome.reason);
      reason = outcome.reason;
    } catch (error) {
      // The client registry unreadable, the client's signing algorithm retired: retried, but not for ever.
      reason = error instanceof Error ? error.message.slice(0, 80) : 'error';
    }
    if (message.attempt >= MAX_ATTEMPTS || options.clock() - message.createdAt >= options.giveUpAfterMs) return giveUp(logout.clientId, `${reason} after ${message.attempt} attempts`);
    if (message.attempt === 1) options.onDeliveryFailure(logout.clientId, `${reason}; retried with backoff`);
    throw new LogoutNotDeliveredError(`not delivered: ${reason}`);
  };
}

/** One try: done (delivered, or given up with a reason), or a reason to try again. */
async function attempt(
  options: BackchannelDelivererOptions,
  logout: BackchannelLogoutPayload,
  message: OutboxDelivery,
  signal: AbortSignal,
  failing: Map<string, { readonly until: number; readonly message: number }>,
): Promise<{ readonly done: true; readonly reason?: string } | { readonly done: false; readonly reason: string }> {
  const client = await options.clients.get(logout.clientId);
  const uri = client?.backchannel_logout_uri;
  if (client === null || uri === undefined) return { done: true, reason: 'the client no longer has a backchannel_logout_uri' };
  const failed = failing.get(logout.clientId);
  // The message that failed is retried on its own backoff; the client's others wait.
  if (failed !== undefined && failed.until > options.clock() && failed.message !== message.id) return { done: false, reason: 'its endpoint failed moments ago' };
  failing.delete(logout.clientId);
  const token = await logoutToken(options, logout, client.id_token_signed_response_alg, message.idempotencyKey);
  let reason: string;
  try {
    // Section 2.5: a form POST, no redirects followed.
    const { status } = await postBody(uri, new URLSearchParams({ logout_token: token }).toString(), 'application/x-www-form-urlencoded', {
      publicOnly: !options.allowPrivateNetworks,
      timeoutMs: options.timeoutMs ?? DELIVERY_TIMEOUT_MS,
      signal,
    });
    if (status === 200 || status === 204) return { done: true };
    // Section 2.8: a 400 says the client could not log out with this token; a copy of it would fare no better.
    if (status >= 400 && status < 500 && status !== 408 && status !== 429) return { done: true, reason: `HTTP ${status}` };
    reason = `HTTP ${status}`;
  } catch (error) {
    if (error instanceof OutboundAddressError) return { done: true, reason: 'refused: not a public address' };
    reason = signal.aborted ? 'timed out' : error instanceof Error ? error.message.slice(0, 80) : 'error';
  }
  if (failing.size >= MAX_FAILING_CLIENTS) failing.delete(failing.keys().next().value!);
  failing.set(logout.clientId, { until: options.clock() + FAIL_FAST_MS, message: message.id });
  return { done: false, reason };
}

/** Sections 2.4 and 2.6: a signed logout token, fresh `iat`/`exp` on every attempt, one `jti` for every copy. */
function logoutToken(options: BackchannelDelivererOptions, logout: BackchannelLogoutPayload, algorithm: Parameters<Keyring['signingKey']>[0], idempotencyKey: string): Promise<string> {
  const iat = Math.floor(options.clock() / 1000);
  return signJwtAsync(
    options.keyring.signingKey(algorithm),
    {
      iss: options.issuer,
      aud: logout.clientId,
      iat,
      exp: iat + LOGOUT_TOKEN_TTL_SECONDS,
      jti: createHash('sha256').update(idempotencyKey).digest('base64url').slice(0, 22),
      sub: logout.sub,
      // Section 2.4: sub and sid both, so a client can end one session or every one of the user's.
      sid: logout.sid,
      events: { [BACKCHANNEL_EVENT]: {} },
    },
    { typ: 'logout+jwt' },
  );
}
