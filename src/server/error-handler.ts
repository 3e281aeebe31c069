import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { errorRegistry, HttpError, codeForStatus, problemType, type ErrorCode } from './errors.ts';
import { AuditBackpressureError, AuditRequestError } from '../audit/index.ts';
import { HookUnavailableError } from '../hooks/index.ts';
import { OAuthError } from '../oauth/index.ts';
import { StoreUnavailableError } from '../store/index.ts';

/** Route config key: OAuth endpoints answer RFC 6749 errors instead of problem+json. */
export interface PortcullisRouteConfig {
  errorFormat?: 'problem' | 'oauth';
  /** Cross-origin API endpoint: CORS headers on every answer, errors included. */
  cors?: boolean;
  /** The only body media types this route takes: any other is 415 before the body is parsed. */
  accepts?: readonly string[];
}

/** Body media types the server may parse, to name those a route takes in a 415. */
const KNOWN_MEDIA_TYPES = ['application/x-www-form-urlencoded', 'application/json', 'text/plain', 'application/jwt'] as const;

/** The media types a route takes: its `accepts`, else those its plugin has a parser for. */
function acceptedMediaTypes(request: FastifyRequest): readonly string[] {
  const declared = (request.routeOptions.config as PortcullisRouteConfig | undefined)?.accepts;
  if (declared !== undefined) return declared;
  return KNOWN_MEDIA_TYPES.filter((type) => request.server.hasContentTypeParser(type));
}

/**
 * RFC 9110 section 15.5.16: a 415 for a body of a type the route does not
 * take, checked before parsing (so a broken JSON body to a text/plain route
 * is a 415, not a 400: first-hour D15), naming the types it takes.
 */
export function refuseUnacceptedMediaType(request: FastifyRequest, _reply: FastifyReply, done: (error?: Error) => void): void {
  const declared = (request.routeOptions.config as PortcullisRouteConfig | undefined)?.accepts;
  const contentType = request.headers['content-type'];
  if (declared === undefined || contentType === undefined) return done();
  const essence = contentType.split(';')[0]!.trim().toLowerCase();
  if (declared.includes(essence)) return done();
  done(new HttpError('unsupported_media_type', unsupportedMediaTypeDetail(declared)));
}

function unsupportedMediaTypeDetail(accepted: readonly string[]): string {
  return accepted.length === 0 ? 'This endpoint takes no request body.' : `This endpoint accepts ${accepted.join(' or ')} only.`;
}

/** Fastify's own client-error codes, mapped to ours with a message for people. */
const FASTIFY_CLIENT_ERRORS: Record<string, { code: ErrorCode; detail: string }> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: { code: 'unsupported_media_type', detail: 'This endpoint does not accept that Content-Type.' },
  FST_ERR_CTP_BODY_TOO_LARGE: { code: 'body_too_large', detail: 'The request body is larger than this server accepts.' },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: { code: 'bad_request', detail: 'Content-Length does not match the body.' },
  FST_ERR_CTP_EMPTY_JSON_BODY: { code: 'malformed_body', detail: 'The JSON body is empty.' },
  FST_ERR_CTP_INVALID_JSON_BODY: { code: 'malformed_body', detail: 'The body is not valid JSON.' },
  FST_ERR_BAD_URL: { code: 'bad_request', detail: 'The request URL is malformed.' },
};

interface ClientAnswer {
  readonly code: ErrorCode;
  readonly detail: string;
  readonly headers: Readonly<Record<string, string>>;
}

/**
 * Turns any error into what the client may see. Only errors we raised
 * (HttpError) or recognise carry a detail of their own; anything else becomes
 * a generic 500 whose detail names nothing internal (no stack, SQL, path).
 */
export function classifyError(error: FastifyError | Error): ClientAnswer {
  if (error instanceof HttpError) return { code: error.code, detail: error.detail, headers: error.headers };
  if (error instanceof OAuthError) return { code: error.code, detail: error.message, headers: error.headers };
  if (error instanceof AuditRequestError) return { code: 'bad_request', detail: error.message, headers: {} };
  // A plugin or hook that could not answer: the server's fault, passing (the breaker half-opens), so 503 and a retry.
  if (error instanceof HookUnavailableError) return { code: 'service_unavailable', detail: error.message, headers: error.retryable ? { 'retry-after': '1' } : {} };
  // A store that does not answer (issue 16): the server's state, not the client's mistake; 503 and when to come back.
  if (error instanceof StoreUnavailableError) {
    return { code: 'service_unavailable', detail: 'A store this request needs is not answering; try again shortly.', headers: { 'retry-after': String(error.retryAfterSeconds ?? 1) } };
  }
  if (error instanceof AuditBackpressureError) {
    return { code: 'service_unavailable', detail: 'The audit log is busy; try again shortly.', headers: { 'retry-after': String(error.retryAfterSeconds) } };
  }
  const fastifyError = error as FastifyError;
  const known = fastifyError.code ? FASTIFY_CLIENT_ERRORS[fastifyError.code] : undefined;
  if (known) return { ...known, headers: {} };
  if (fastifyError.validation) {
    const first = fastifyError.validation[0];
    const where = first?.instancePath ? ` at ${first.instancePath}` : '';
    return { code: 'validation_failed', detail: `Invalid ${fastifyError.validationContext ?? 'request'}${where}: ${first?.message ?? 'invalid value'}.`, headers: {} };
  }
  if (error instanceof SyntaxError && fastifyError.statusCode === 400) {
    return { code: 'malformed_body', detail: 'The body is not valid JSON.', headers: {} };
  }
  const status = fastifyError.statusCode;
  if (status !== undefined && status >= 400 && status < 500) {
    const code = codeForStatus(status);
    return { code, detail: `${errorRegistry[code].title}.`, headers: {} };
  }
  return { code: 'internal_error', detail: 'The server could not complete the request. Quote the request id when reporting it.', headers: {} };
}

export function errorHandler(error: FastifyError | Error, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  let answer = classifyError(error);
  if ((error as FastifyError).code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
    const accepted = acceptedMediaTypes(request);
    answer = { ...answer, detail: unsupportedMediaTypeDetail(accepted) };
  }
  const spec = errorRegistry[answer.code];
  if (error instanceof HookUnavailableError) {
    // Already logged and audited where the hook failed (hook.fault): one line here, no stack per refused request.
    request.log.warn({ errorCode: answer.code, point: error.point }, 'request refused: a hook could not answer');
  } else if (error instanceof StoreUnavailableError) {
    // The store's breaker logs its going down and coming back once each (runtime/services.ts); a refused request is
    // not an error of its own, and its stack says nothing the transition did not.
    request.log.debug({ errorCode: answer.code, driver: error.driver }, 'request refused: a store is not answering');
  } else if (spec.status >= 500) {
    // A server fault, not the client's: the stack goes to the log (never to
    // the client) so an operator can find it by request id.
    request.log.error({ err: error, stack: error.stack, errorCode: answer.code }, 'request failed');
  } else {
    request.log.info({ errorCode: answer.code, status: spec.status }, 'request refused');
  }
  return sendError(request, reply, answer);
}

/**
 * What Node's HTTP parser refuses (a bad request line, an unknown method, a
 * header too large, a timeout) never reaches Fastify's routing: this writes
 * the answer on the socket, as a problem+json with the same security
 * headers and a request id, instead of Fastify's bare default.
 */
export function writeClientError(error: NodeJS.ErrnoException, socket: { destroyed: boolean; writable: boolean; end(data: string): void }, headers: Readonly<Record<string, string>>, requestId: string): void {
  if (error.code === 'ECONNRESET' || socket.destroyed || !socket.writable) return;
  const code: ErrorCode = error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 'request_timeout' : error.code === 'HPE_HEADER_OVERFLOW' ? 'header_too_large' : 'bad_request';
  const spec = errorRegistry[code];
  const body = JSON.stringify({ type: problemType(code), title: spec.title, status: spec.status, detail: `${spec.title}: the server could not read this HTTP request.`, request_id: requestId });
  const lines = [
    `HTTP/1.1 ${spec.status} ${spec.title}`,
    'content-type: application/problem+json; charset=utf-8',
    `content-length: ${Buffer.byteLength(body)}`,
    `x-request-id: ${requestId}`,
    ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
    'connection: close',
  ];
  socket.end(`${lines.join('\r\n')}\r\n\r\n${body}`);
}

export function sendError(request: FastifyRequest, reply: FastifyReply, answer: ClientAnswer): FastifyReply {
  const spec = errorRegistry[answer.code];
  reply.code(spec.status).headers(answer.headers).header('cache-control', 'no-store');
  const format = (request.routeOptions.config as PortcullisRouteConfig | undefined)?.errorFormat;
  if (format === 'oauth') {
    // RFC 6749 section 5.2: a JSON object with `error` and `error_description`.
    return reply.type('application/json; charset=utf-8').send({ error: spec.oauth, error_description: answer.detail, request_id: request.id });
  }
  // RFC 9457 section 3: problem details.
  return reply.type('application/problem+json; charset=utf-8').send({
    type: problemType(answer.code),
    title: spec.title,
    status: spec.status,
    detail: answer.detail,
    request_id: request.id,
  });
}
