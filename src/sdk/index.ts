/**
 * `portcullis/sdk`: the public surface for code that runs beside or inside
 * Portcullis without being part of the server: plugins, relying parties,
 * scripts against the admin API. Published through package.json "exports"
 * and tested from the packed tarball (test/packages/).
 *
 * Empty for now. The next issues fill it with what such code compiles
 * against: the plugin manifest and the hook-point handler types (allow,
 * deny, modify, pass), the domain-event types a subscriber receives, and
 * client helpers. Everything exported here is public API and follows semver.
 *
 * Rule: this module, like `portcullis/audit/merkle`, imports no store,
 * config, server or key material; what it re-exports must load from the
 * installed package without the server (test/packages/ checks its import
 * graph).
 */

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
