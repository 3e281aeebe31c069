/**
 * `portcullis/sdk/signals`: the receiver side of the OpenID Shared Signals
 * Framework 1.0 for Node services.
 *
 * - verifySecurityEventToken: one SET checked (RFC 8417, SSF 1.0 section 4),
 *   with the transmitter's keys from createSsfKeySet (discovery, cache,
 *   rate-limited refetch on an unknown kid);
 * - createPushHandler: an RFC 8935 push endpoint, for node:http and Fetch-API servers;
 * - createPollClient: an RFC 8936 poll client, one poll or a long-polling loop;
 * - createSignalSocket: Portcullis's WebSocket stream (`/signals/ws`).
 *
 * Each client is a SignalSource (`onEvent(listener) => unsubscribe`), acknowledges
 * a SET only once its listeners resolved, and passes each jti to them once.
 *
 * Rule: this directory imports only its own files, its sibling SDK files
 * (`../security-events.ts`, `../mtls/`), `node:` built-ins, `jose` and `ws`
 * (test/architecture.test.ts, test/packages/).
 */
export { verifySecurityEventToken, SET_ALGORITHMS, type VerifySetOptions } from './verify.ts';
export { createSsfKeySet, staticKeySet, SsfKeySet, type SetKeySource, type SsfKeySetOptions } from './keys.ts';
export { fetchSsfConfiguration, type SsfConfiguration } from './configuration.ts';
export { SET_ERROR_CODES, SetVerificationError, SignalsUnavailableError, type SetErrorCode } from './errors.ts';
export { createPushHandler, type PushHandler, type PushHandlerOptions } from './push.ts';
export { createPollClient, PollRequestError, type PollClient, type PollClientOptions, type PollResult } from './poll.ts';
export { createSignalSocket, SignalSocketError, type SignalSocket, type SignalSocketClose, type SignalSocketErrorCode, type SignalSocketOptions, type SocketTlsMaterial } from './socket.ts';
export type { BackoffOptions } from './backoff.ts';
export type { TokenProvider } from './token.ts';
export type { JtiCacheOptions } from './dedup.ts';
export type { SecurityEventListener, SignalSource } from './listeners.ts';
export type { FetchLike, HttpOptions } from './fetch.ts';
export type { SecurityEventToken, SubjectIdentifier } from '../security-events.ts';
