/**
 * The verifier as a `(req, res, next)` middleware, for Express and plain
 * `node:http` (call it with your handler as `next`). Structurally typed: the
 * SDK imports neither. A verified request gets the VerifySuccess on
 * `req.auth` (or the configured property); a refusal is answered here with
 * its status, WWW-Authenticate (and DPoP-Nonce) headers and a JSON
 * `{ error, error_description }` body; an unexpected error goes to
 * `next(error)` (Express's error handling), or is answered 500 without one.
 */
import { isEncrypted, peerCertificateOf, refusalBody, requestUrl } from './adapter-request.ts';
import type { Verifier, VerifySuccess } from './verifier.ts';

export interface VerifierMiddlewareOptions {
  readonly verifier: Verifier;
  readonly scopes?: readonly string[];
  /** The public origin (`https://api.example.com`); by default from the connection and the Host header. */
  readonly origin?: string;
  /** The request property that receives the VerifySuccess (default `auth`). */
  readonly property?: string;
}

/** The parts of `http.IncomingMessage` (or an Express request) the middleware reads. */
export interface NodeRequestLike {
  readonly method?: string | undefined;
  readonly url?: string | undefined;
  /** Express keeps the full path here when a router is mounted under a prefix. */
  readonly originalUrl?: string;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly socket: unknown;
}

/** The parts of `http.ServerResponse` the middleware uses. */
export interface NodeResponseLike {
  statusCode: number;
  readonly headersSent?: boolean;
  setHeader(name: string, value: string): unknown;
  end(body?: string): unknown;
}

export type NextFunction = (error?: unknown) => void;

/** A request the middleware let through. */
export interface AuthenticatedRequest {
  readonly auth: VerifySuccess;
}

export function createVerifierMiddleware(options: VerifierMiddlewareOptions): (req: NodeRequestLike, res: NodeResponseLike, next?: NextFunction) => void {
  const { verifier } = options;
  const property = options.property ?? 'auth';
  const scopes = options.scopes === undefined ? undefined : { scopes: options.scopes };
  return (req, res, next) => {
    const socket = req.socket;
    const peerCertificate = peerCertificateOf(socket);
    const host = req.headers['host'];
    verifier
      .verify(
        {
          method: req.method ?? 'GET',
          url: requestUrl(options.origin, isEncrypted(socket), typeof host === 'string' ? host : undefined, req.originalUrl ?? req.url ?? '/'),
          headers: req.headers,
          ...(peerCertificate !== undefined && { peerCertificate }),
        },
        scopes,
      )
      .then(
        (result) => {
          if (result.ok) {
            (req as unknown as Record<string, VerifySuccess>)[property] = result;
            try {
              next?.();
            } catch {
              // A plain node:http handler that threw: the request still gets an answer, the process keeps running.
              if (res.headersSent !== true) {
                res.statusCode = 500;
                res.end();
              }
            }
            return;
          }
          res.statusCode = result.status;
          for (const [name, value] of Object.entries(result.headers)) res.setHeader(name, value);
          res.setHeader('content-type', 'application/json; charset=utf-8');
          res.setHeader('cache-control', 'no-store');
          res.end(refusalBody(result));
        },
        (error: unknown) => {
          if (next !== undefined) return next(error);
          res.statusCode = 500;
          res.end();
        },
      );
  };
}
