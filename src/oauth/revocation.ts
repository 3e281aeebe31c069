/**
 * Token revocation (RFC 7009). The client authenticates as it registered
 * (a public client by its client_id); an invalid, unknown or already
 * expired token is answered 200 like a revoked one (section 2.2), but a
 * token issued to another client is refused (section 2.1).
 */
import type { DomainEvents } from '../events/index.ts';
import type { AccessTokens } from './access-tokens.ts';
import type { ClientAuthenticator } from './client-auth.ts';
import type { ClientCertificate } from './mtls.ts';
import { OAuthError } from './errors.ts';
import { oauthParams } from './params.ts';
import type { RefreshTokens } from './refresh-tokens.ts';
import type { RequestAudit } from './grants/grant.ts';

const TOKEN_TYPE_HINTS = new Set(['access_token', 'refresh_token']);

export class RevocationEndpoint {
  readonly #clientAuthenticator: ClientAuthenticator;
  readonly #accessTokens: AccessTokens;
  readonly #refreshTokens: RefreshTokens;
  readonly #events: DomainEvents;

  constructor(options: { clientAuthenticator: ClientAuthenticator; accessTokens: AccessTokens; refreshTokens: RefreshTokens; events: DomainEvents }) {
    this.#clientAuthenticator = options.clientAuthenticator;
    this.#accessTokens = options.accessTokens;
    this.#refreshTokens = options.refreshTokens;
    this.#events = options.events;
  }

  async handle(request: { body: unknown; authorization: string | undefined; audit: RequestAudit; clientCertificate?: ClientCertificate }): Promise<void> {
    const params = oauthParams(request.body);
    const { client } = await this.#clientAuthenticator.authenticate({
      authorization: request.authorization,
      body: params.values,
      audit: request.audit,
      ...(request.clientCertificate !== undefined && { clientCertificate: request.clientCertificate }),
    });
    const token = params.values['token'];
    if (token === undefined) throw new OAuthError('invalid_request', 'token is required.');
    const hint = params.values['token_type_hint'];
    // Section 2.2.1: an unknown hint is this error; a known one is only a hint.
    if (hint !== undefined && !TOKEN_TYPE_HINTS.has(hint)) throw new OAuthError('unsupported_token_type', 'token_type_hint must be access_token or refresh_token.');
    const claims = await this.#accessTokens.decode(token);
    if (claims === null) return this.#revokeRefreshToken(token, client.client_id, request.audit);
    if (claims.client_id !== client.client_id) throw new OAuthError('unauthorized_client', 'This token was not issued to this client.');
    if (await this.#accessTokens.revoke(claims)) {
      await this.#events.emit({
        type: 'token.revoked',
        outcome: 'success',
        clientId: client.client_id,
        actorService: client.client_id,
        ...request.audit,
        detail: { kind: 'access_token', jti: claims.jti, reason: 'client_request' },
      });
    }
  }

  /**
   * Section 2.1: revoking a refresh token also invalidates the access tokens
   * of the same grant.
   */
  async #revokeRefreshToken(token: string, clientId: string, audit: RequestAudit): Promise<void> {
    const live = await this.#refreshTokens.inspect(token);
    if (live === null) return;
    if (live.grant.clientId !== clientId) throw new OAuthError('unauthorized_client', 'This token was not issued to this client.');
    const revoked = await this.#refreshTokens.revokeFamily(live.familyId, 'client_request', { token, clientId });
    if (revoked === null) return;
    for (const accessToken of revoked.accessTokens) await this.#accessTokens.revokeJti(accessToken.jti, accessToken.exp);
    await this.#events.emit({
      type: 'token.revoked',
      outcome: 'success',
      actorUserId: revoked.grant.userId,
      clientId,
      actorService: clientId,
      ...audit,
      detail: { kind: 'refresh_token', family: live.familyId, reason: 'client_request', accessRevoked: revoked.accessTokens.length },
    });
  }
}
