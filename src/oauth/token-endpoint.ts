/**
 * The token endpoint (RFC 6749 section 3.2), as a pipeline: read the
 * parameters, authenticate the client, run the grant. Each grant lives in
 * grants/ with its own rules; this file only dispatches.
 */
import type { DomainEvents } from '../events/index.ts';
import type { AccessTokens } from './access-tokens.ts';
import type { AuthorizationCodes } from './authorization/codes.ts';
import type { AuthenticatedClient, ClientAuthenticator } from './client-auth.ts';
import { OAuthError } from './errors.ts';
import { authorizationCodeGrant } from './grants/authorization-code.ts';
import { clientCredentialsGrant } from './grants/client-credentials.ts';
import { refreshTokenGrant } from './grants/refresh-token.ts';
import type { IdTokens } from './id-tokens.ts';
import { checkResources, oauthParams, type OAuthParams } from './params.ts';
import type { RefreshTokens } from './refresh-tokens.ts';
import type { TokenTargets } from './targets.ts';

/** RFC 6749 section 5.1. */
export interface TokenResponse {
  readonly access_token: string;
  readonly token_type: 'Bearer' | 'DPoP';
  readonly expires_in: number;
  readonly scope?: string;
  readonly refresh_token?: string;
  readonly id_token?: string;
}

/** Who asked, for the audit entries a grant writes. */
export interface RequestAudit {
  readonly requestId?: string;
  readonly traceId?: string;
  readonly ip?: string;
}

/** Whether a user's sign-in still stands: codes and refreshes are bound to it. */
export interface SignInLiveness {
  sessionIsLive(sessionHandle: string): Promise<boolean>;
  /** `grantedAt` (ms): when the user signed in for the grant; grants from before an administrator's reset are refused. */
  userIsActive(userId: string, grantedAt?: number): Promise<boolean>;
}

export interface GrantServices {
  readonly accessTokens: AccessTokens;
  readonly idTokens: IdTokens;
  readonly refreshTokens: RefreshTokens;
  readonly codes: AuthorizationCodes;
  readonly events: DomainEvents;
  readonly liveness: SignInLiveness;
  readonly defaultAudience: string;
  /** Registered resources: the `resource` parameter and the audience of API scopes (RFC 8707). */
  readonly targets: TokenTargets;
}

export interface GrantContext {
  readonly authenticated: AuthenticatedClient;
  readonly services: GrantServices;
  readonly audit: RequestAudit;
  /** The thumbprint of the request's verified DPoP proof, if it carried one (RFC 9449 section 5). */
  readonly dpopJkt?: string;
}

export type Grant = (params: OAuthParams, context: GrantContext) => Promise<TokenResponse>;

const GRANTS: Readonly<Record<string, Grant>> = {
  authorization_code: authorizationCodeGrant,
  refresh_token: refreshTokenGrant,
  client_credentials: clientCredentialsGrant,
};

export const SUPPORTED_GRANT_TYPES = Object.keys(GRANTS);

export interface TokenEndpointOptions {
  readonly clientAuthenticator: ClientAuthenticator;
  readonly services: GrantServices;
}

export interface TokenRequest {
  readonly body: unknown;
  readonly authorization: string | undefined;
  readonly audit: RequestAudit;
  readonly dpopJkt?: string;
}

export class TokenEndpoint {
  readonly #options: TokenEndpointOptions;

  constructor(options: TokenEndpointOptions) {
    this.#options = options;
  }

  async handle(request: TokenRequest): Promise<TokenResponse> {
    const params = oauthParams(request.body);
    const grantType = params.values['grant_type'];
    if (grantType === undefined) throw new OAuthError('invalid_request', 'grant_type is required.');
    const grant = Object.hasOwn(GRANTS, grantType) ? GRANTS[grantType] : undefined;
    // Authenticate before answering about the grant type, so an
    // unauthenticated caller learns nothing but "authenticate".
    const authenticated = await this.#options.clientAuthenticator.authenticate({ authorization: request.authorization, body: params.values, audit: request.audit });
    if (grant === undefined) throw new OAuthError('unsupported_grant_type', 'This server does not support that grant_type.');
    // RFC 9449 section 5.2: a client registered for DPoP always sends a proof.
    if (authenticated.client.dpop_bound_access_tokens && request.dpopJkt === undefined) throw new OAuthError('invalid_request', 'This client must send a DPoP proof.');
    // RFC 8707 section 2, for every grant: a resource must be a registered one.
    await this.#options.services.targets.registered(checkResources(params.resources));
    return grant(params, { authenticated, services: this.#options.services, audit: request.audit, ...(request.dpopJkt !== undefined && { dpopJkt: request.dpopJkt }) });
  }
}
