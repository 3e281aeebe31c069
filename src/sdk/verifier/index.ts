/**
 * The resource-server SDK: verify Portcullis's access tokens (RFC 9068)
 * with their DPoP (RFC 9449) or certificate (RFC 8705) binding, scopes and
 * the issuer's revocation signals; adapters for Fastify, Express and
 * node:http; a DPoP-signing fetch for clients.
 *
 * Rule: imports only its own files, `node:` built-ins and `jose`.
 */
export { createVerifier, type Verifier, type VerifierOptions, type VerifyFailure, type VerifyOptions, type VerifyResult, type VerifySuccess } from './verifier.ts';
export { ACCESS_TOKEN_ALGORITHMS, type AccessTokenAlgorithm, type AccessTokenClaims, type Confirmation } from './access-token.ts';
export { DPOP_ALGORITHMS, type DpopNonceSource } from './dpop.ts';
export { VERIFY_ERRORS, type VerifyErrorCode } from './errors.ts';
export type { AuthScheme } from './challenge.ts';
export type { HeaderSource, VerifyRequest } from './request.ts';
export type { FetchLike } from './jwks.ts';
export type { MaxAgeBounds } from './cache-control.ts';
export { certificateThumbprint } from './certificate-binding.ts';
export { RevocationList, type RevocableToken, type RevocationListOptions, type SecurityEventSource } from './revocations.ts';
export { fastifyVerifier, type FastifyVerifierOptions, type FastifyInstanceLike, type FastifyReplyLike, type FastifyRequestLike } from './fastify.ts';
export { createVerifierMiddleware, type AuthenticatedRequest, type NextFunction, type NodeRequestLike, type NodeResponseLike, type VerifierMiddlewareOptions } from './middleware.ts';
export { createDPoPFetch, type DPoPFetch, type DPoPFetchOptions, type DPoPKeyPair, type DPoPRequestInit } from './dpop-fetch.ts';
