/**
 * `portcullis/sdk/mtls`: mutual TLS for Node services that hold a
 * certificate of Portcullis's built-in CA (a SPIFFE X509-SVID).
 *
 * - createMtlsAgent: an `https.Agent` (and a `connect` function for
 *   undici) that presents the workload's certificate and reloads it when
 *   the files change;
 * - createMtlsServerOptions: server options that require a client
 *   certificate, and `attach(server)` to reload a running server;
 * - spiffeIdOf, parseSpiffeId, allowSpiffeIds, requireSpiffeId: who the
 *   peer is, and whether it may go on.
 *
 * Rule: like every public entry, this directory imports only its own files
 * and `node:` built-ins (test/architecture.test.ts, test/packages/).
 */
export { createMtlsAgent, MtlsAgent, type ConnectCallback, type ConnectOptions, type MtlsAgentOptions } from './agent.ts';
export { createMtlsServerOptions, type MtlsServerConfig, type MtlsServerOptions } from './server.ts';
export { allowSpiffeIds, requireSpiffeId, SpiffeIdForbiddenError, type SpiffeIdPredicate } from './allow.ts';
export { spiffeIdOf } from './peer.ts';
export { isSpiffeId, parseSpiffeId, type SpiffeId } from './spiffe-id.ts';
export { MtlsMaterialError, type MtlsFiles } from './material.ts';
export type { ReloadEvent, ReloadOptions } from './watch.ts';
