/**
 * The pushed authorization request endpoint (RFC 9126 section 2). The
 * client authenticates as at the token endpoint; the request is checked
 * exactly as /authorize would check it (section 2.1), and errors come back
 * as JSON (section 2.3) instead of a redirect.
 */
import type { ClientAuthenticator } from './client-auth.ts';
import type { ClientCertificate } from './mtls.ts';
import { OAuthError, OAUTH_ERROR_CODES, type OAuthErrorCode } from './errors.ts';
import { oauthParams } from './params.ts';
import type { PushedRequests } from './authorization/pushed-requests.ts';
import { resolvedAudience } from './authorization/authorizer.ts';
import type { TokenTargets } from './targets.ts';
import type { RequestAudit } from './grants/grant.ts';
import { AuthorizationPageError, AuthorizationResponseError, checkAuthorizationRequest, verifiedRedirect } from './authorization/request.ts';

/** Parameters that authenticate the client (RFC 6749 section 2.3.1, RFC 7523 section 2.2). */
const CLIENT_CREDENTIALS = new Set(['client_secret', 'client_assertion', 'client_assertion_type']);

export class ParEndpoint {
  readonly #clientAuthenticator: ClientAuthenticator;
  readonly #pushed: PushedRequests;

  readonly #targets: TokenTargets;

  constructor(options: { clientAuthenticator: ClientAuthenticator; pushed: PushedRequests; targets: TokenTargets }) {
    this.#targets = options.targets;
    this.#clientAuthenticator = options.clientAuthenticator;
    this.#pushed = options.pushed;
  }

  /** `dpopJkt`: the thumbprint of the request's verified DPoP proof, if it carried one. */
  async handle(request: { body: unknown; authorization: string | undefined; audit: RequestAudit; dpopJkt?: string; clientCertificate?: ClientCertificate }): Promise<{ request_uri: string; expires_in: number }> {
    const params = oauthParams(request.body);
    // RFC 9449 section 10.1: a DPoP proof at the PAR endpoint binds the code
    // to its key, as dpop_jkt would; if both are sent they must agree.
    if (request.dpopJkt !== undefined) {
      if (params.values['dpop_jkt'] !== undefined && params.values['dpop_jkt'] !== request.dpopJkt) throw new OAuthError('invalid_dpop_proof', 'dpop_jkt does not match the key of the DPoP proof.');
    }
    const { client } = await this.#clientAuthenticator.authenticate({
      authorization: request.authorization,
      body: params.values,
      audit: request.audit,
      ...(request.clientCertificate !== undefined && { clientCertificate: request.clientCertificate }),
    });
    if (params.values['client_id'] !== undefined && params.values['client_id'] !== client.client_id) throw new OAuthError('invalid_request', 'client_id does not match the authenticated client.');
    // Section 2.1: a request_uri cannot itself be pushed.
    if (params.values['request_uri'] !== undefined) throw new OAuthError('invalid_request', 'request_uri is not allowed here.');
    // The client's credentials authenticated this request; they are not
    // authorization parameters, and never wait in the hot store.
    const authorizationParams = Object.fromEntries(Object.entries(params.values).filter(([name]) => !CLIENT_CREDENTIALS.has(name)));
    const withClient = { values: { ...authorizationParams, client_id: client.client_id, ...(request.dpopJkt !== undefined && { dpop_jkt: request.dpopJkt }) }, resources: params.resources };
    try {
      const checked = checkAuthorizationRequest(withClient, { ...verifiedRedirect(withClient, client), pushed: true });
      // RFC 8707 section 2: the resources and API scopes are checked here too.
      await resolvedAudience(this.#targets, checked, client);
    } catch (error) {
      if (error instanceof AuthorizationPageError) throw new OAuthError('invalid_request', error.message);
      if (error instanceof AuthorizationResponseError) {
        const code: OAuthErrorCode = (OAUTH_ERROR_CODES as readonly string[]).includes(error.code) ? (error.code as OAuthErrorCode) : 'invalid_request';
        throw new OAuthError(code, error.message);
      }
      throw error;
    }
    const requestUri = await this.#pushed.push({ clientId: client.client_id, params: withClient });
    return { request_uri: requestUri, expires_in: this.#pushed.ttlSeconds };
  }
}
