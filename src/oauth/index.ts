/**
 * The OAuth 2.1 / OpenID Connect authorization server: clients, client
 * authentication, grants, tokens, introspection, revocation, discovery.
 */
export { OAuthError, OAUTH_ERROR_CODES, type OAuthErrorCode } from './errors.ts';
export { createAuthorizationServer, type AuthorizationServer } from './authorization-server.ts';
export { ENDPOINT_PATHS, endpointUrl } from './discovery.ts';
export { AccessTokens, ACCESS_TOKEN_TYPE, type AccessTokenClaims } from './access-tokens.ts';
export { ClientRegistry, isApproved, type OAuthClient } from './clients.ts';
export { ClientMetadataError, validateClientMetadata, type ClientMetadata } from './client-metadata.ts';
export { OIDC_SCOPES, PRIVACY_SCOPE, USER_SCOPE_NAMES } from './scopes.ts';
export { AuthorizationPageError } from './authorization/request.ts';
export type { AuthorizeOutcome, SignedIn } from './authorization/authorizer.ts';
export type { Consent } from './authorization/consents.ts';
export { sessionIdClaim } from './user-tokens.ts';
export { OAUTH_HOOKS, OAUTH_HOOK_POINTS, ID_TOKEN_CLAIMS_HOOK, METADATA_STEP_HOOK, REGISTRATION_POLICY_HOOK, STORED_CONSENT_HOOK, USERINFO_CLAIMS_HOOK } from './hooks.ts';
export { ClientRegistryError } from './clients.ts';
export { pickClientMetadata, redirectUriProblem, usesClientSecret } from './client-metadata.ts';
export { DpopVerifier, DPOP_ALGORITHMS } from './dpop.ts';
export { certificateThumbprint, type ClientCertificate } from './mtls.ts';
export { LogoutRequestError, LogoutService, type LogoutAudit, type LogoutRequest } from './logout.ts';
export { BACKCHANNEL_LOGOUT_TOPIC, backchannelLogoutKey, type BackchannelLogoutPayload } from './backchannel-logout.ts';
export { ResourceRegistry, ResourceRegistryError, RESOURCE_TOKEN_ALGORITHMS, resourceUriProblem, type ResourceServer } from './resources.ts';
export { RefreshGrantSchema } from './refresh-tokens.ts';
