/**
 * Client authentication at the token, PAR, introspection and revocation
 * endpoints (RFC 6749 section 2.3, RFC 7523 section 2.2 / OIDC Core section 9
 * for private_key_jwt, RFC 8705 section 2 for the TLS client certificate
 * methods). One method per request (RFC 6749 section 2.3: the client MUST
 * NOT use more than one), and it must be the method the client registered
 * (RFC 7591 section 2, token_endpoint_auth_method).
 */
import { createLocalJWKSet, errors as joseErrors, jwtVerify, type JSONWebKeySet } from 'jose';
import { throttledFor, type FailureAggregator } from '../audit/index.ts';
import { algorithmsFor } from '../crypto/index.ts';
import type { Clock, HotStore } from '../store/index.ts';
import type { ClientRegistry, OAuthClient } from './clients.ts';
import type { TokenEndpointAuthMethod } from './client-metadata.ts';
import { OAuthError } from './errors.ts';
import { TLS_SUBJECT_FIELDS, certificateMatchesSubject, isCurrentlyValid, isRegisteredCertificate, type ClientCertificate } from './mtls.ts';

/** RFC 7523 section 2.2. */
export const JWT_BEARER_ASSERTION = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

/** Algorithms a client may sign its assertion with: asymmetric only, never `none` or HMAC (RFC 8725 section 3.1). */
const ASSERTION_ALGORITHMS: readonly string[] = algorithmsFor('clientAssertion');

/** An assertion may live at most this long: a long-lived one is a replayable credential. */
const MAX_ASSERTION_LIFETIME_SECONDS = 600;

const MAX_CLIENT_ID_LENGTH = 256;
const MAX_SECRET_LENGTH = 512;

export interface ClientCredentialsInput {
  /** The Authorization header, if any. */
  readonly authorization: string | undefined;
  /** The form body's parameters (single values; repeated parameters were refused before). */
  readonly body: Readonly<Record<string, string | undefined>>;
  /** Who asked: the network the throttle counts, and the ids of the aggregated ledger entry. */
  readonly audit: { readonly requestId?: string; readonly traceId?: string; readonly ip?: string };
  /** The TLS client certificate of the connection, when there is one (RFC 8705). */
  readonly clientCertificate?: ClientCertificate;
}

/**
 * Failed client authentications one network may cause per minute before the
 * check is skipped (429). A client that has its credential fails none; a
 * misconfigured one fails one per request, and 100 a minute leaves its
 * operator time to see the log.
 */
export const CLIENT_AUTH_FAILURES_PER_MINUTE = 100;

/**
 * Failed authentications of one client_id per minute, from all networks,
 * beyond which only networks with no failure of their own this minute may
 * still try that client: a guesser spread over many networks is stopped,
 * and the real client (which fails none) is not locked out by it.
 */
export const CLIENT_ID_FAILURES_PER_MINUTE = 1000;

export interface ClientAuthenticatorOptions {
  readonly clients: ClientRegistry;
  readonly hot: HotStore;
  readonly clock: Clock;
  /**
   * Audiences a private_key_jwt assertion may name, as its single `aud`
   * string: the issuer identifier, and (during the transition) exactly the
   * token endpoint URL (draft-ietf-oauth-rfc7523bis section 5).
   */
  readonly assertionAudiences: readonly string[];
  /** Counts failed client authentications per network: the throttle reads it, the ledger gets them aggregated. */
  readonly failures: Pick<FailureAggregator, 'record' | 'count' | 'retryAfterMs' | 'tally' | 'countFor'>;
}

export interface AuthenticatedClient {
  readonly client: OAuthClient;
  readonly method: TokenEndpointAuthMethod;
}

interface Presented {
  /** What the request itself carries; `none` is a bare client_id, which a certificate may back (RFC 8705 section 2). */
  readonly method: 'none' | 'client_secret_basic' | 'client_secret_post' | 'private_key_jwt';
  readonly clientId: string;
  readonly secret?: string;
  readonly assertion?: string;
  readonly certificate?: ClientCertificate;
}

/**
 * Registered methods a bare client_id in the body stands for: a public
 * client, or (RFC 8705 section 2: "the client_id parameter is REQUIRED")
 * one that authenticates with its TLS client certificate.
 */
const BARE_CLIENT_ID_METHODS: ReadonlySet<TokenEndpointAuthMethod> = new Set(['none', 'tls_client_auth', 'self_signed_tls_client_auth']);

export class ClientAuthenticator {
  readonly #options: ClientAuthenticatorOptions;

  constructor(options: ClientAuthenticatorOptions) {
    this.#options = options;
  }

  /**
   * Authenticates the calling client, or throws OAuthError `invalid_client`
   * (401; with `WWW-Authenticate: Basic` when Basic was tried, RFC 6749
   * section 5.2). Unknown client, wrong secret and wrong method all give the
   * same answer.
   */
  async authenticate(input: ClientCredentialsInput): Promise<AuthenticatedClient> {
    // Every credential check goes through a throttle, read before the check:
    // RFC 6749 section 10.10, the server MUST prevent attackers from guessing
    // client credentials; a right secret does not reset the count.
    // RFC 6585 section 4: 429 with Retry-After.
    const { failures } = this.#options;
    const wait = await throttledFor(failures, 'client.auth.failed', input.audit.ip, CLIENT_AUTH_FAILURES_PER_MINUTE);
    if (wait !== undefined) throw throttled(wait);
    let presented: Presented | undefined;
    try {
      presented = presentedCredentials(input);
      if ((await failures.countFor('client.auth.failed', presented.clientId)) >= CLIENT_ID_FAILURES_PER_MINUTE && (await failures.count('client.auth.failed', input.audit.ip)) > 0) {
        throw throttled(Math.max(1, Math.ceil(failures.retryAfterMs() / 1000)));
      }
      return await this.#check(presented);
    } catch (error) {
      // Unauthenticated failures reach the ledger aggregated per network and
      // minute (security review 11): anyone can send wrong secrets.
      if (error instanceof OAuthError && error.code === 'invalid_client') {
        await failures.record({
          type: 'client.auth.failed',
          outcome: 'denied',
          ...input.audit,
          detail: { reason: error.message.slice(0, 200) },
        });
        if (presented !== undefined) await failures.tally('client.auth.failed', presented.clientId);
      }
      throw error;
    }
  }

  async #check(presented: Presented): Promise<AuthenticatedClient> {
    const refuse = (description: string) =>
      new OAuthError('invalid_client', description, presented.method === 'client_secret_basic' ? { headers: { 'www-authenticate': 'Basic realm="portcullis", charset="UTF-8"' } } : {});
    const client = await this.#options.clients.get(presented.clientId);
    const registered = client?.token_endpoint_auth_method;
    if (client === null || (registered !== presented.method && !(presented.method === 'none' && BARE_CLIENT_ID_METHODS.has(registered!)))) {
      throw refuse('Client authentication failed.');
    }
    switch (client.token_endpoint_auth_method) {
      case 'none':
        return { client, method: 'none' };
      case 'client_secret_basic':
      case 'client_secret_post':
        if (!this.#options.clients.verifySecret(client, presented.secret!)) throw refuse('Client authentication failed.');
        return { client, method: client.token_endpoint_auth_method };
      case 'private_key_jwt':
        await this.#verifyAssertion(client, presented.assertion!, refuse);
        return { client, method: 'private_key_jwt' };
      case 'tls_client_auth':
        checkCertificateSubject(client, presented.certificate, refuse);
        return { client, method: 'tls_client_auth' };
      case 'self_signed_tls_client_auth':
        checkSelfSignedCertificate(client, presented.certificate, this.#options.clock(), refuse);
        return { client, method: 'self_signed_tls_client_auth' };
    }
  }

  /** RFC 7523 section 3: iss = sub = client_id, aud names us (one string), exp required, jti used once. */
  async #verifyAssertion(client: OAuthClient, assertion: string, refuse: (description: string) => OAuthError): Promise<void> {
    if (client.jwks === undefined) throw refuse('Client authentication failed.');
    const now = this.#options.clock();
    let payload: Record<string, unknown>;
    try {
      ({ payload } = await jwtVerify(assertion, createLocalJWKSet(client.jwks as JSONWebKeySet), {
        algorithms: [...ASSERTION_ALGORITHMS],
        issuer: client.client_id,
        subject: client.client_id,
        requiredClaims: ['exp', 'jti', 'aud'],
        currentDate: new Date(now),
        clockTolerance: 5,
      }));
    } catch (error) {
      if (error instanceof joseErrors.JOSEError) throw refuse(`The client assertion is not valid (${assertionProblem(error)}).`);
      throw error;
    }
    // draft-ietf-oauth-rfc7523bis section 5: aud MUST be a single string, the
    // issuer identifier (or the token endpoint URL while clients move over).
    // jose accepts an array if any element matches: an assertion a malicious
    // server obtained for itself could then name us too (audience injection).
    const aud = payload['aud'];
    if (typeof aud !== 'string' || !this.#options.assertionAudiences.includes(aud)) throw refuse('The client assertion is not valid (aud must be this server\'s issuer identifier, as one string).');
    const exp = payload['exp'] as number;
    const jti = payload['jti'];
    if (typeof jti !== 'string' || jti.length === 0 || jti.length > 256) throw refuse('The client assertion needs a jti.');
    if (exp * 1000 - now > MAX_ASSERTION_LIFETIME_SECONDS * 1000) throw refuse(`The client assertion must expire within ${MAX_ASSERTION_LIFETIME_SECONDS} seconds.`);
    // RFC 7523 section 3 item 7: a jti is accepted once. It is remembered
    // until the assertion expires, after which exp refuses it anyway.
    const ttlMs = Math.max(1, Math.ceil(exp * 1000 - now) + 5000);
    const first = await this.#options.hot.setIfAbsent(`oauth:client-assertion:${client.client_id}:${jti}`, '1', ttlMs);
    if (!first) throw refuse('The client assertion was already used.');
  }
}

/**
 * RFC 8705 section 2.1: the certificate chains to a CA the listener trusts
 * (TLS checked the chain and the validity period: the socket is
 * `authorized`), and carries the one subject name the client registered
 * (section 2.1.2). No certificate, an untrusted one or another name is a
 * failed client authentication like a wrong secret.
 */
function checkCertificateSubject(client: OAuthClient, certificate: ClientCertificate | undefined, refuse: (description: string) => OAuthError): void {
  if (certificate === undefined) throw refuse('Client authentication failed: this client authenticates with a TLS client certificate (RFC 8705 section 2), and the connection presented none.');
  if (!certificate.chainVerified) throw refuse('Client authentication failed: the TLS client certificate is not issued by a CA this server trusts.');
  const field = TLS_SUBJECT_FIELDS.find((candidate) => client[candidate] !== undefined);
  if (field === undefined || !certificateMatchesSubject(certificate.x509, field, client[field]!)) {
    throw refuse(`Client authentication failed: the TLS client certificate does not carry the registered ${field ?? 'subject'}.`);
  }
}

/**
 * RFC 8705 section 2.2: the certificate need not chain to anything (TLS
 * may call it unauthorized), but it must be one the client registered
 * (an x5c of its JWK Set, section 2.2.2) and, since no CA vouches for its
 * dates, be within its validity period by our clock.
 */
function checkSelfSignedCertificate(client: OAuthClient, certificate: ClientCertificate | undefined, now: number, refuse: (description: string) => OAuthError): void {
  if (certificate === undefined) throw refuse('Client authentication failed: this client authenticates with a TLS client certificate (RFC 8705 section 2), and the connection presented none.');
  if (!isRegisteredCertificate(certificate.x509, client.jwks)) throw refuse('Client authentication failed: the TLS client certificate is not one this client registered.');
  if (!isCurrentlyValid(certificate.x509, now)) throw refuse('Client authentication failed: the TLS client certificate is expired or not yet valid.');
}

/** RFC 6585 section 4: 429 with Retry-After; the credential was not checked. */
function throttled(retryAfterSeconds: number): OAuthError {
  return new OAuthError('temporarily_unavailable', 'Too many failed client authentications; try again later.', { headers: { 'retry-after': String(retryAfterSeconds) } });
}

function assertionProblem(error: joseErrors.JOSEError): string {
  if (error instanceof joseErrors.JWTExpired) return 'expired';
  if (error instanceof joseErrors.JWTClaimValidationFailed) return `claim ${error.claim} is wrong or missing`;
  if (error instanceof joseErrors.JOSEAlgNotAllowed) return 'algorithm not allowed';
  if (error instanceof joseErrors.JWKSNoMatchingKey) return 'no registered key matches';
  if (error instanceof joseErrors.JWSSignatureVerificationFailed) return 'bad signature';
  return 'malformed';
}

/**
 * What the request presents, checked for shape before any lookup. Exactly
 * one of: Basic header, client_secret in the body, client_assertion, or a
 * bare client_id (public client).
 */
function presentedCredentials(input: ClientCredentialsInput): Presented {
  const { body } = input;
  const basic = input.authorization !== undefined && /^basic /i.test(input.authorization) ? parseBasic(input.authorization) : undefined;
  const used = [basic !== undefined, body['client_secret'] !== undefined, body['client_assertion'] !== undefined || body['client_assertion_type'] !== undefined].filter(Boolean).length;
  if (used > 1) throw new OAuthError('invalid_request', 'Use exactly one client authentication method.');
  if (basic !== undefined) {
    if (body['client_id'] !== undefined && body['client_id'] !== basic.clientId) throw new OAuthError('invalid_request', 'client_id in the body does not match the Authorization header.');
    return { method: 'client_secret_basic', clientId: basic.clientId, secret: basic.secret };
  }
  if (body['client_assertion_type'] !== undefined || body['client_assertion'] !== undefined) {
    if (body['client_assertion_type'] !== JWT_BEARER_ASSERTION) throw new OAuthError('invalid_request', `client_assertion_type must be ${JWT_BEARER_ASSERTION}.`);
    const assertion = body['client_assertion'];
    if (assertion === undefined || assertion.length === 0 || assertion.length > 8192) throw new OAuthError('invalid_request', 'client_assertion is missing or too long.');
    const clientId = body['client_id'] ?? assertionIssuer(assertion);
    return { method: 'private_key_jwt', clientId: checkClientId(clientId), assertion };
  }
  const clientId = body['client_id'];
  if (clientId === undefined) throw new OAuthError('invalid_client', 'Client authentication is required.');
  if (body['client_secret'] !== undefined) {
    const secret = body['client_secret'];
    if (secret.length === 0 || secret.length > MAX_SECRET_LENGTH) throw new OAuthError('invalid_client', 'Client authentication failed.');
    return { method: 'client_secret_post', clientId: checkClientId(clientId), secret };
  }
  return { method: 'none', clientId: checkClientId(clientId), ...(input.clientCertificate !== undefined && { certificate: input.clientCertificate }) };
}

/**
 * RFC 6749 section 2.3.1: the id and secret are each form-urlencoded
 * (Appendix B) before being joined by a colon and base64-encoded.
 */
function parseBasic(header: string): { clientId: string; secret: string } {
  const encoded = header.slice(6).trim();
  const malformed = () => new OAuthError('invalid_client', 'The Basic authorization header is malformed.', { headers: { 'www-authenticate': 'Basic realm="portcullis", charset="UTF-8"' } });
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(encoded) || encoded.length > 2048) throw malformed();
  const decoded = Buffer.from(encoded, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon === -1) throw malformed();
  try {
    const clientId = formDecode(decoded.slice(0, colon));
    const secret = formDecode(decoded.slice(colon + 1));
    if (clientId.length === 0 || clientId.length > MAX_CLIENT_ID_LENGTH || secret.length === 0 || secret.length > MAX_SECRET_LENGTH) throw malformed();
    return { clientId, secret };
  } catch {
    throw malformed();
  }
}

function formDecode(value: string): string {
  return decodeURIComponent(value.replaceAll('+', ' '));
}

function checkClientId(clientId: string): string {
  if (clientId.length === 0 || clientId.length > MAX_CLIENT_ID_LENGTH) throw new OAuthError('invalid_client', 'Client authentication failed.');
  return clientId;
}

/** The unverified `iss` of an assertion, to find whose keys verify it (RFC 7523 section 3 item 1: iss is the client_id). */
function assertionIssuer(assertion: string): string {
  try {
    const payload = JSON.parse(Buffer.from(assertion.split('.')[1] ?? '', 'base64url').toString('utf8')) as { iss?: unknown };
    if (typeof payload.iss === 'string') return payload.iss;
  } catch {
    // fall through
  }
  throw new OAuthError('invalid_client', 'The client assertion is malformed.');
}
