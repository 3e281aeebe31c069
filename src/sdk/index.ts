/**
 * `portcullis/sdk`: the public surface for code that runs beside Portcullis
 * without being part of the server. Published through package.json
 * "exports" and tested from the packed tarball (test/packages/).
 *
 * - the resource-server SDK (`verifier/`): `createVerifier` checks
 *   Portcullis's JWT access tokens (RFC 9068) with their DPoP (RFC 9449) or
 *   certificate (RFC 8705) binding, scopes and revocation signals; Fastify
 *   and Express / node:http adapters; `createDPoPFetch` for clients;
 * - the security-signals vocabulary (`security-events.ts`): event type
 *   URIs, subject identifiers and the verified SET shape, shared with the
 *   transmitter and `portcullis/sdk/signals`.
 *
 * Everything exported here is public API and follows semver.
 *
 * Rule: this module, like `portcullis/audit/merkle`, imports no store,
 * config, server or key material: only its own files, `node:` built-ins and
 * the npm packages `jose` and `ws` (test/architecture.test.ts); what it
 * re-exports must load from the installed package without the server
 * (test/packages/ checks its import graph).
 */
export * from './verifier/index.ts';
export {
  CAEP_EVENT_TYPE,
  DELIVERY_METHODS,
  PORTCULLIS_EVENT_TYPE,
  RISC_EVENT_TYPE,
  SECURITY_EVENT_TYPES,
  SET_MEDIA_TYPE,
  SET_TYP,
  SIGNAL_SOCKET_CLOSE,
  SSF_EVENT_TYPE,
  type SecurityEventToken,
  type SecurityEventTypeName,
  type SecurityEventTypeUri,
  type SubjectIdentifier,
} from './security-events.ts';
