/**
 * The token endpoint (RFC 6749 section 3.2), as a pipeline: read the
 * parameters, authenticate the client, run the grant. Each grant lives in
 * grants/ with its own rules; this file only dispatches.
 */
import type { AuthenticatedClient, ClientAuthenticator } from './client-auth.ts';
import { usesClientCertificate } from './client-metadata.ts';
import { OAuthError } from './errors.ts';
import { authorizationCodeGrant } from './grants/authorization-code.ts';
import { clientCredentialsGrant } from './grants/client-credentials.ts';
import type { Grant, GrantServices, RequestAudit, TokenResponse } from './grants/grant.ts';
import { refreshTokenGrant } from './grants/refresh-token.ts';
import { certificateThumbprint, type ClientCertificate } from './mtls.ts';
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
  /** The connection's TLS client certificate, when there is one (RFC 8705). */
  readonly clientCertificate?: ClientCertificate;
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
    const authenticated = await this.#options.clientAuthenticator.authenticate({
      authorization: request.authorization,
      body: params.values,
      audit: request.audit,
      ...(request.clientCertificate !== undefined && { clientCertificate: request.clientCertificate }),
    });
    if (grant === undefined) throw new OAuthError('unsupported_grant_type', 'This server does not support that grant_type.');
    // RFC 9449 section 5.2: a client registered for DPoP always sends a proof.
    if (authenticated.client.dpop_bound_access_tokens && request.dpopJkt === undefined) throw new OAuthError('invalid_request', 'This client must send a DPoP proof.');
    const certificate = request.clientCertificate === undefined ? undefined : certificateThumbprint(request.clientCertificate.x509);
    const certificateBinding = boundCertificate(authenticated, certificate, request.dpopJkt);
    // RFC 8707 section 2, for every grant: a resource must be a registered one.
    await this.#options.services.targets.registered(checkResources(params.resources));
    return grant(params, {
      authenticated,
      services: this.#options.services,
      audit: request.audit,
      ...(request.dpopJkt !== undefined && { dpopJkt: request.dpopJkt }),
      ...(certificate !== undefined && { certificateThumbprint: certificate }),
      ...(certificateBinding !== undefined && { certificateBinding }),
    });
  }
}

/**
 * Which certificate the access tokens are bound to (RFC 8705 section 3), if
 * any. A token is bound to one key, never two: a DPoP proof binds it to the
 * proof's key (RFC 9449), and otherwise the connection's certificate binds
 * it when the client registered tls_client_certificate_bound_access_tokens
 * (section 3.4), authenticated with that certificate (section 2), or is a
 * public client, whose only way to sender-constrain its tokens the
 * certificate is (section 4). A client registered for bound tokens that
 * comes without its certificate, or with a DPoP proof instead, is refused
 * (as RFC 9449 section 5.2 refuses a DPoP client that sends no proof).
 */
function boundCertificate(authenticated: AuthenticatedClient, thumbprint: string | undefined, dpopJkt: string | undefined): string | undefined {
  const { client, method } = authenticated;
  if (client.tls_client_certificate_bound_access_tokens) {
    if (thumbprint === undefined) throw new OAuthError('invalid_request', 'This client uses certificate-bound access tokens (RFC 8705 section 3.4): present its TLS client certificate (the mtls_endpoint_aliases of the metadata).');
    if (dpopJkt !== undefined) throw new OAuthError('invalid_request', 'This client uses certificate-bound access tokens; a token is bound to one key, so send no DPoP proof.');
    return thumbprint;
  }
  if (thumbprint === undefined || dpopJkt !== undefined) return undefined;
  return usesClientCertificate(method) || method === 'none' ? thumbprint : undefined;
}
