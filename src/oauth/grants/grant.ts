/**
 * What a grant is given and what it answers: the shapes shared by the token
 * endpoint (which dispatches) and the grants (which run). A module of its own
 * so that neither side imports the other's implementation.
 */
import type { DomainEvents } from '../../events/index.ts';
import type { AccessTokens } from '../access-tokens.ts';
import type { AuthorizationCodes } from '../authorization/codes.ts';
import type { AuthenticatedClient } from '../client-auth.ts';
import type { IdTokens } from '../id-tokens.ts';
import type { OAuthParams } from '../params.ts';
import type { RefreshTokens } from '../refresh-tokens.ts';
import type { TokenTargets } from '../targets.ts';
import type { TokenResponse } from '../token-response.ts';

export type { TokenResponse };

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
  /**
   * The person used a grant now (a refresh): activity, for the retention
   * rule on inactive accounts (privacy.retention.inactiveAccountDays), so an
   * app that keeps them signed in keeps their account. At most one write a day.
   */
  usedBy?(userId: string): Promise<void>;
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
  /** RFC 8705 section 3.1: the `x5t#S256` of the connection's TLS client certificate, if it presented one. */
  readonly certificateThumbprint?: string;
  /** The same thumbprint when the access tokens are bound to that certificate (token-endpoint.ts decides); never with dpopJkt. */
  readonly certificateBinding?: string;
}

export type Grant = (params: OAuthParams, context: GrantContext) => Promise<TokenResponse>;

