/**
 * The vocabulary of Portcullis's security signals, shared by the
 * transmitter (src/signals/) and the receivers' SDK (`portcullis/sdk`,
 * `portcullis/sdk/signals`): event type URIs, subject identifiers and the
 * shape of a verified Security Event Token.
 *
 * - SET: RFC 8417. The SSF 1.0 profile puts the subject in a top-level
 *   `sub_id` claim (SSF 1.0 section 4.1, RFC 9493) and adds `txn`.
 * - CAEP 1.0 and RISC 1.0 event types; Portcullis's own events under
 *   `urn:portcullis:secevent:event-type:` (a URN: nothing to dereference).
 *
 * Imports nothing: a public entry.
 */

export const CAEP_EVENT_TYPE = 'https://schemas.openid.net/secevent/caep/event-type/';
export const RISC_EVENT_TYPE = 'https://schemas.openid.net/secevent/risc/event-type/';
export const SSF_EVENT_TYPE = 'https://schemas.openid.net/secevent/ssf/event-type/';
export const PORTCULLIS_EVENT_TYPE = 'urn:portcullis:secevent:event-type:';

/** Every event type the transmitter can send, by short name. */
export const SECURITY_EVENT_TYPES = {
  // CAEP 1.0 section 3
  sessionRevoked: `${CAEP_EVENT_TYPE}session-revoked`,
  credentialChange: `${CAEP_EVENT_TYPE}credential-change`,
  tokenClaimsChange: `${CAEP_EVENT_TYPE}token-claims-change`,
  assuranceLevelChange: `${CAEP_EVENT_TYPE}assurance-level-change`,
  // RISC 1.0 section 2
  accountDisabled: `${RISC_EVENT_TYPE}account-disabled`,
  accountEnabled: `${RISC_EVENT_TYPE}account-enabled`,
  accountPurged: `${RISC_EVENT_TYPE}account-purged`,
  credentialCompromise: `${RISC_EVENT_TYPE}credential-compromise`,
  identifierChanged: `${RISC_EVENT_TYPE}identifier-changed`,
  sessionsRevoked: `${RISC_EVENT_TYPE}sessions-revoked`,
  // SSF 1.0 sections 8.1.4 and 8.1.5: stream management's own events
  verification: `${SSF_EVENT_TYPE}verification`,
  streamUpdated: `${SSF_EVENT_TYPE}stream-updated`,
  // Portcullis
  keyRotated: `${PORTCULLIS_EVENT_TYPE}key-rotated`,
  certificateRevoked: `${PORTCULLIS_EVENT_TYPE}certificate-revoked`,
  trustBundleUpdated: `${PORTCULLIS_EVENT_TYPE}trust-bundle-updated`,
  clientDeleted: `${PORTCULLIS_EVENT_TYPE}client-deleted`,
  tokensRevoked: `${PORTCULLIS_EVENT_TYPE}tokens-revoked`,
  // Privacy choices an application must honour from then on (issue 15): "do
  // not sell or share" (CCPA 1798.120, Global Privacy Control) and consent
  // per purpose (GDPR Art. 7(3): a withdrawal stops the processing it covered).
  privacyOptOutChanged: `${PORTCULLIS_EVENT_TYPE}privacy-opt-out-changed`,
  privacyConsentChanged: `${PORTCULLIS_EVENT_TYPE}privacy-consent-changed`,
} as const;

export type SecurityEventTypeName = keyof typeof SECURITY_EVENT_TYPES;
export type SecurityEventTypeUri = (typeof SECURITY_EVENT_TYPES)[SecurityEventTypeName];

/**
 * Subject identifiers (RFC 9493 section 3, SSF 1.0 section 3). `jwt_id`
 * names one token (SSF 1.0 section 3.2.2); `session_id` names one sign-in
 * session by the `sid` its tokens carry (OpenID Connect Front-Channel and
 * Back-Channel Logout use the same `sid`).
 */
export type SubjectIdentifier =
  | { readonly format: 'iss_sub'; readonly iss: string; readonly sub: string }
  | { readonly format: 'email'; readonly email: string }
  | { readonly format: 'opaque'; readonly id: string }
  | { readonly format: 'jwt_id'; readonly iss: string; readonly jti: string }
  | { readonly format: 'session_id'; readonly iss: string; readonly sid: string };

/** The claims of a verified SET (RFC 8417 section 2.2, SSF 1.0 section 4). */
export interface SecurityEventToken {
  readonly iss: string;
  readonly jti: string;
  readonly iat: number;
  readonly aud: string | readonly string[];
  /** Groups the SETs of one cause (RFC 8417 section 2.2). */
  readonly txn?: string;
  readonly sub_id?: SubjectIdentifier;
  /** Event type URI -> that event's members (one event per SET, SSF 1.0 section 4.1.1). */
  readonly events: Readonly<Record<string, Readonly<Record<string, unknown>>>>;
}

/** The JWS `typ` of a SET (RFC 8417 section 2.3). */
export const SET_TYP = 'secevent+jwt';
export const SET_MEDIA_TYPE = 'application/secevent+jwt';

/** Delivery methods (SSF 1.0 section 6.1.1); the WebSocket stream is Portcullis's own. */
export const DELIVERY_METHODS = {
  push: 'urn:ietf:rfc:8935',
  poll: 'urn:ietf:rfc:8936',
  websocket: 'urn:portcullis:ssf:delivery:websocket',
} as const;

/**
 * WebSocket close codes of `/signals/ws` (RFC 6455 section 7.4): what the
 * client should do next.
 */
export const SIGNAL_SOCKET_CLOSE = {
  /** The server is stopping: reconnect with `?after=`. */
  goingAway: 1001,
  /** The client broke the protocol (a frame it may not send, a bad ack): fix the client. */
  protocolError: 1002,
  /** The credential was revoked or expired, or the stream is gone or disabled: do not retry with it. */
  policyViolation: 1008,
  /** A frame from the client was larger than the server reads. */
  messageTooBig: 1009,
  /** The client read too slowly (the server's send buffer passed its limit): reconnect later with `?after=`. */
  tryAgainLater: 1013,
} as const;
