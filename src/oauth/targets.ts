/**
 * Where a token may go: the `resource` parameters of a request (RFC 8707)
 * and its API scopes, checked against the registered resource servers.
 *
 * - Every `resource` must be a registered resource (RFC 8707 section 2:
 *   otherwise `invalid_target`).
 * - Every API scope must be a scope of a registered resource; with
 *   `resource` parameters, a scope of one of those (else `invalid_scope`).
 * - The audience is the requested resources or, without any, the resources
 *   that own the requested API scopes (RFC 9700 section 2.3: a token is
 *   restricted to the resource servers it is for). No API scope and no
 *   resource: the caller's default audience (the issuer, for userinfo).
 */
import type { SigningAlgorithm } from '../tokens/index.ts';
import { OAuthError } from './errors.ts';
import type { ResourceRegistry, ResourceServer } from './resources.ts';
import { USER_SCOPES } from './scopes.ts';

export interface TokenTarget {
  /** The resources the token is for; empty means the default audience. */
  readonly audience: readonly string[];
}

export class TokenTargets {
  readonly #resources: ResourceRegistry;
  readonly #defaultAlgorithm: SigningAlgorithm;

  /** `defaultAlgorithm`: `tokens.signingAlgorithm`, what a resource without --access-token-alg gets. */
  constructor(options: { resources: ResourceRegistry; defaultAlgorithm: SigningAlgorithm }) {
    this.#resources = options.resources;
    this.#defaultAlgorithm = options.defaultAlgorithm;
  }

  /** RFC 8707 section 2: each resource parameter names a registered resource. */
  async registered(resources: readonly string[]): Promise<ResourceServer[]> {
    const found: ResourceServer[] = [];
    for (const uri of resources) {
      const resource = await this.#resources.get(uri);
      if (resource === null) throw new OAuthError('invalid_target', 'The resource is not one this server issues tokens for.');
      found.push(resource);
    }
    return found;
  }

  /**
   * The audience of a token carrying `scopes` for `resources` (see the
   * module comment). `clientScopes`: the client's registered scopes, which
   * bound the resources it may name (left out where a grant already did).
   */
  async resolve(scopes: readonly string[], resources: readonly string[], clientScopes?: readonly string[]): Promise<TokenTarget> {
    const requested = await this.registered(resources);
    const owners: string[] = [];
    for (const scope of scopes) {
      if (USER_SCOPES.has(scope)) continue;
      const owner = await this.#resources.ownerOf(scope);
      if (owner === null) throw new OAuthError('invalid_scope', `The scope ${scope.slice(0, 64)} is not offered by this server.`);
      if (requested.length > 0 && !resources.includes(owner)) throw new OAuthError('invalid_scope', `The scope ${scope.slice(0, 64)} is not a scope of the requested resource.`);
      if (!owners.includes(owner)) owners.push(owner);
    }
    // RFC 8707 section 2 and RFC 9700 section 2.3: a client may name only a
    // resource it was granted a scope of (`clientScopes`, its registration);
    // any other is refused, never put in `aud` of an empty-scope token.
    if (clientScopes !== undefined) {
      const allowed = new Set(await Promise.all(clientScopes.filter((scope) => !USER_SCOPES.has(scope)).map((scope) => this.#resources.ownerOf(scope))));
      if (resources.some((uri) => !allowed.has(uri))) throw new OAuthError('invalid_target', 'This client was granted no scope of that resource.');
    }
    const audience = requested.length > 0 ? [...resources] : owners;
    await this.algorithmFor(audience);
    return { audience };
  }

  /** Of `scopes`, those that belong to one of `resources` (an omitted scope with a resource, RFC 6749 section 3.3 and RFC 8707). */
  async scopesOf(scopes: readonly string[], resources: readonly string[]): Promise<string[]> {
    const kept: string[] = [];
    for (const scope of scopes) {
      const owner = USER_SCOPES.has(scope) ? null : await this.#resources.ownerOf(scope);
      if (owner !== null && resources.includes(owner)) kept.push(scope);
    }
    return kept;
  }

  /**
   * The algorithm the audience's access tokens are signed with: the one the
   * resources registered (--access-token-alg) or, for those that did not,
   * the server default. Resources that need different ones cannot share a
   * token (a verifier pinned to one algorithm would refuse it).
   */
  async algorithmFor(audience: readonly string[]): Promise<SigningAlgorithm> {
    const algorithms = new Set<SigningAlgorithm>();
    for (const uri of audience) algorithms.add((await this.#resources.get(uri))?.accessTokenAlg ?? this.#defaultAlgorithm);
    if (algorithms.size > 1) throw new OAuthError('invalid_target', 'These resources need access tokens signed with different algorithms; ask for one resource at a time.');
    return algorithms.values().next().value ?? this.#defaultAlgorithm;
  }

  /** Whether `clientId` acts for one of the resources in `audience` (RFC 7662 section 4). */
  async actsFor(clientId: string, audience: string | readonly string[]): Promise<boolean> {
    for (const uri of typeof audience === 'string' ? [audience] : audience) {
      const resource = await this.#resources.get(uri);
      if (resource !== null && resource.clients.includes(clientId)) return true;
    }
    return false;
  }
}

/** The `aud` claim for an audience: one string, several as an array, none as the default (RFC 7519 section 4.1.3). */
export function audienceClaim(audience: readonly string[], defaultAudience: string): string | string[] {
  return audience.length === 0 ? defaultAudience : audience.length === 1 ? audience[0]! : [...audience];
}
