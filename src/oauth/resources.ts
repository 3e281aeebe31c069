/**
 * Resource servers (the APIs tokens are for), registered by an operator:
 * each has an absolute URI, the scopes it defines, optionally the JWS
 * algorithm its access tokens are signed with, and the clients that act
 * for it (which may introspect tokens issued for it, RFC 7662 section 4).
 *
 * An API scope exists only as the scope of one resource: a scope name
 * belongs to at most one resource, so the resource a scope is for is known
 * from the scope alone (RFC 9700 section 2.3: access tokens restricted to
 * the audience they are for). Uniqueness is kept by a claim record per scope
 * (`oauth_resource_scopes/<scope>`, create-if-absent), so two operators
 * creating resources with the same scope at once cannot both win.
 */
import type { DomainEvents } from '../events/index.ts';
import { Type } from '@sinclair/typebox';
import { algorithmsFor, isAlgorithmFor, type ResourceTokenAlgorithm } from '../crypto/index.ts';
import { collection, typeboxCodec, type Clock, type Codec, type Collection, type RecordStore } from '../store/index.ts';
import { PRIVACY_SCOPE, USER_SCOPES } from './scopes.ts';

const RESOURCES = 'oauth_resources';
const SCOPE_CLAIMS = 'oauth_resource_scopes';
/** Longest resource URI accepted (record ids stay small). */
export const MAX_RESOURCE_URI_LENGTH = 512;
const MAX_SCOPES = 50;
const MAX_CLIENTS = 20;
/** RFC 6749 section 3.3 scope-token. */
const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]{1,128}$/;

/** Algorithms an operator may pin a resource's access tokens to. */
export const RESOURCE_TOKEN_ALGORITHMS: readonly ResourceTokenAlgorithm[] = algorithmsFor('resourceToken');
export type { ResourceTokenAlgorithm };

export interface ResourceServer {
  /** RFC 8707 section 2: an absolute URI without a fragment; compared as an exact string. */
  readonly uri: string;
  readonly scopes: readonly string[];
  /** Access tokens for this resource are signed with this algorithm; default: `tokens.signingAlgorithm`. */
  readonly accessTokenAlg?: ResourceTokenAlgorithm;
  /** Clients that act for this resource server: they may introspect tokens whose audience it is. */
  readonly clients: readonly string[];
  /** ms since the epoch. */
  readonly createdAt: number;
}

/** As stored: `clients` is absent in records made before resources had clients (none). */
type StoredResource = Omit<ResourceServer, 'clients'> & { readonly clients?: readonly string[] };

const resourceCodec: Codec<StoredResource> = typeboxCodec(
  Type.Object({
    uri: Type.String(),
    scopes: Type.Array(Type.String()),
    accessTokenAlg: Type.Optional(Type.Union(RESOURCE_TOKEN_ALGORITHMS.map((alg) => Type.Literal(alg)))),
    clients: Type.Optional(Type.Array(Type.String())),
    createdAt: Type.Number(),
  }),
);

/** Which resource holds a scope (scope names are unique across resources). */
interface ScopeClaim {
  readonly uri: string;
}

const scopeClaimCodec: Codec<ScopeClaim> = typeboxCodec(Type.Object({ uri: Type.String() }));

export interface NewResourceServer {
  readonly uri: string;
  readonly scopes: readonly string[];
  readonly accessTokenAlg?: string;
  readonly clients?: readonly string[];
}

export type ResourceRegistryErrorCode = 'invalid' | 'exists' | 'scope_taken' | 'not_found';

/** A refusal safe to show an operator (it names the URI or scope at fault). */
export class ResourceRegistryError extends Error {
  override readonly name = 'ResourceRegistryError';
  readonly code: ResourceRegistryErrorCode;
  /** For `scope_taken`: the resource URI the scope's claim names (its resource may still be being written). */
  readonly claimedBy: string | undefined;
  constructor(code: ResourceRegistryErrorCode, message: string, claimedBy?: string) {
    super(message);
    this.code = code;
    this.claimedBy = claimedBy;
  }
}

/** Why `uri` cannot name a resource, or undefined when it can (RFC 8707 section 2). */
export function resourceUriProblem(uri: string): string | undefined {
  if (uri.length === 0 || uri.length > MAX_RESOURCE_URI_LENGTH) return `must be 1 to ${MAX_RESOURCE_URI_LENGTH} characters`;
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    return 'must be an absolute URI (RFC 8707 section 2), like https://api.example.com';
  }
  if (uri.includes('#') || url.hash !== '') return 'must not contain a fragment (RFC 8707 section 2)';
  if (url.username !== '' || url.password !== '') return 'must not contain a user name or password';
  if (/[\s\x00-\x1f\x7f]/.test(uri)) return 'must not contain spaces or control characters';
  return undefined;
}

function isAlgorithm(value: string): value is ResourceTokenAlgorithm {
  return isAlgorithmFor('resourceToken', value);
}

export interface ResourceChangeContext {
  readonly actor: string;
  readonly requestId?: string;
}

export class ResourceRegistry {
  readonly #resources: Collection<StoredResource>;
  readonly #scopeClaims: Collection<ScopeClaim>;
  readonly #events: DomainEvents;
  readonly #clock: Clock;
  readonly #cacheMs: () => number;
  readonly #cache = new Map<string, { value: ResourceServer | null; readAt: number }>();
  readonly #scopeCache = new Map<string, { owner: string | null; readAt: number }>();
  /** Grows with every forget: a read that started before one is not cached (it may be stale). */
  #generation = 0;

  /**
   * `cacheMs`: how long a read may be served from memory (default 1000; a
   * function when it depends on whether events arrive, src/events
   * freshness.ts): a resource another instance (or the CLI) creates or
   * deletes takes effect here within this time, or at once through its
   * event (`forget`).
   */
  constructor(options: { records: RecordStore; events: DomainEvents; clock: Clock; cacheMs?: number | (() => number) }) {
    this.#resources = collection(options.records, { name: RESOURCES, codec: resourceCodec });
    this.#scopeClaims = collection(options.records, { name: SCOPE_CLAIMS, codec: scopeClaimCodec });
    this.#events = options.events;
    this.#clock = options.clock;
    const cacheMs = options.cacheMs ?? 1000;
    this.#cacheMs = typeof cacheMs === 'number' ? () => cacheMs : cacheMs;
  }

  /**
   * Registers a resource. Its scopes must be new: not an OpenID scope, not a
   * scope of another resource. Audited as `resource.created`.
   */
  async create(input: NewResourceServer, context: ResourceChangeContext): Promise<ResourceServer> {
    const problem = resourceUriProblem(input.uri);
    if (problem !== undefined) throw new ResourceRegistryError('invalid', `resource URI ${input.uri.slice(0, 80)} ${problem}`);
    const scopes = [...new Set(input.scopes)];
    if (scopes.length === 0) throw new ResourceRegistryError('invalid', 'a resource needs at least one scope (--scope)');
    if (scopes.length > MAX_SCOPES) throw new ResourceRegistryError('invalid', `a resource has at most ${MAX_SCOPES} scopes`);
    for (const scope of scopes) {
      if (!SCOPE_TOKEN.test(scope)) throw new ResourceRegistryError('invalid', `scope ${JSON.stringify(scope.slice(0, 40))} is not a scope name (RFC 6749 section 3.3: printable ASCII, no space, quote or backslash)`);
      if (USER_SCOPES.has(scope)) throw new ResourceRegistryError('invalid', `scope ${scope} is ${scope === PRIVACY_SCOPE ? 'the privacy scope about the signed-in user' : 'an OpenID Connect scope'}; a resource defines API scopes of its own`);
    }
    if (input.accessTokenAlg !== undefined && !isAlgorithm(input.accessTokenAlg)) throw new ResourceRegistryError('invalid', `access token algorithm ${input.accessTokenAlg.slice(0, 20)} is not one of ${RESOURCE_TOKEN_ALGORITHMS.join(', ')}`);
    const clients = [...new Set(input.clients ?? [])];
    if (clients.length > MAX_CLIENTS) throw new ResourceRegistryError('invalid', `a resource has at most ${MAX_CLIENTS} clients`);
    if ((await this.#resources.get(input.uri)) !== null) throw new ResourceRegistryError('exists', `resource ${input.uri} already exists`);
    // Claim each scope first (create-if-absent): a scope another resource
    // holds, or wins meanwhile, stops this one, and our claims are undone.
    const claimed: string[] = [];
    for (const scope of scopes) {
      if (!(await this.#scopeClaims.create(scope, { uri: input.uri }))) {
        await this.#release(claimed, input.uri);
        const owner = (await this.#scopeClaims.get(scope))?.data.uri;
        throw new ResourceRegistryError('scope_taken', `scope ${scope} already belongs to resource ${owner ?? '(another resource)'}; scope names are unique across resources`, owner);
      }
      claimed.push(scope);
    }
    const resource: ResourceServer = {
      uri: input.uri,
      scopes,
      ...(input.accessTokenAlg !== undefined && { accessTokenAlg: input.accessTokenAlg }),
      clients,
      createdAt: this.#clock(),
    };
    if (!(await this.#resources.create(input.uri, resource))) {
      await this.#release(claimed, input.uri);
      throw new ResourceRegistryError('exists', `resource ${input.uri} already exists`);
    }
    this.forget(input.uri, scopes);
    await this.#events.emit({
      type: 'resource.created',
      outcome: 'success',
      resource: { uri: input.uri, scopes },
      actorService: context.actor,
      ...(context.requestId !== undefined && { requestId: context.requestId }),
      detail: { uri: input.uri.slice(0, 256), scopes: scopes.join(' ').slice(0, 256), alg: resource.accessTokenAlg ?? null, clients: clients.length },
    });
    return resource;
  }

  async get(uri: string): Promise<ResourceServer | null> {
    if (typeof uri !== 'string' || uri.length === 0 || uri.length > MAX_RESOURCE_URI_LENGTH) return null;
    const now = performance.now();
    const cacheMs = this.#cacheMs();
    const cached = this.#cache.get(uri);
    if (cached !== undefined && now - cached.readAt < cacheMs) return cached.value;
    const generation = this.#generation;
    const record = await this.#resources.get(uri);
    const value = record === null ? null : { ...record.data, clients: record.data.clients ?? [] };
    // Unknown URIs are cached too, but the map is bounded.
    if (cacheMs > 0 && generation === this.#generation) {
      if (this.#cache.size >= 1000) this.#cache.delete(this.#cache.keys().next().value!);
      this.#cache.set(uri, { value, readAt: now });
    }
    return value;
  }

  /** The URI of the resource that defines `scope`, or null (an OpenID scope, or no such scope). */
  async ownerOf(scope: string): Promise<string | null> {
    if (!SCOPE_TOKEN.test(scope)) return null;
    const now = performance.now();
    const cacheMs = this.#cacheMs();
    const cached = this.#scopeCache.get(scope);
    if (cached !== undefined && now - cached.readAt < cacheMs) return cached.owner;
    const generation = this.#generation;
    const claim = await this.#scopeClaims.get(scope);
    // A claim whose resource is gone (a create that failed half-way) owns nothing.
    const owner = claim === null || (await this.get(claim.data.uri)) === null ? null : claim.data.uri;
    if (cacheMs > 0 && generation === this.#generation) {
      if (this.#scopeCache.size >= 1000) this.#scopeCache.delete(this.#scopeCache.keys().next().value!);
      this.#scopeCache.set(scope, { owner, readAt: now });
    }
    return owner;
  }

  /** Every resource, in URI order. */
  async list(): Promise<ResourceServer[]> {
    const all: ResourceServer[] = [];
    let after: string | undefined;
    for (;;) {
      const page = await this.#resources.list({ ...(after !== undefined && { after }), limit: 500 });
      all.push(...page.map((record) => ({ ...record.data, clients: record.data.clients ?? [] })));
      if (page.length < 500) return all;
      after = page.at(-1)!.id;
    }
  }

  /** Every API scope, for checking what an operator grants a client. */
  async allScopes(): Promise<string[]> {
    return (await this.list()).flatMap((resource) => resource.scopes);
  }

  /**
   * Deletes the resource and frees its scopes; false when there was none.
   * Tokens already issued for it live on until they expire. Audited as
   * `resource.deleted`.
   */
  async delete(uri: string, context: ResourceChangeContext): Promise<boolean> {
    const record = await this.#resources.get(uri);
    if (record === null) return false;
    if (!(await this.#resources.delete(uri, record.version))) return false;
    await this.#release(record.data.scopes, uri);
    this.forget(uri, record.data.scopes);
    await this.#events.emit({
      type: 'resource.deleted',
      outcome: 'success',
      resource: { uri, scopes: record.data.scopes },
      actorService: context.actor,
      ...(context.requestId !== undefined && { requestId: context.requestId }),
      detail: { uri: uri.slice(0, 256), scopes: record.data.scopes.join(' ').slice(0, 256) },
    });
    return true;
  }

  /** Frees scope claims held for `uri` (never another resource's). */
  async #release(scopes: readonly string[], uri: string): Promise<void> {
    for (const scope of scopes) {
      const claim = await this.#scopeClaims.get(scope);
      if (claim !== null && claim.data.uri === uri) await this.#scopeClaims.delete(scope, claim.version);
    }
  }

  /** Drops what is cached of a resource that changed (here, or on another instance: its event). */
  forget(uri: string, scopes: readonly string[]): void {
    this.#generation += 1;
    this.#cache.delete(uri);
    for (const scope of scopes) this.#scopeCache.delete(scope);
  }

  /** Drops everything cached (events may have been missed). */
  forgetAll(): void {
    this.#generation += 1;
    this.#cache.clear();
    this.#scopeCache.clear();
  }
}
