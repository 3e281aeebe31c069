/**
 * The token endpoint (RFC 6749 section 3.2), as a pipeline: read the
 * parameters, authenticate the client, run the grant. Each grant lives in
 * grants/ with its own rules; this file only dispatches.
 */
import type { ClientAuthenticator } from './client-auth.ts';
import { OAuthError } from './errors.ts';
import { authorizationCodeGrant } from './grants/authorization-code.ts';
import { clientCredentialsGrant } from './grants/client-credentials.ts';
import type { Grant, GrantServices, RequestAudit, TokenResponse } from './grants/grant.ts';
import { refreshTokenGrant } from './grants/refresh-token.ts';
import { checkResources, oauthParams } from './params.ts';

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
