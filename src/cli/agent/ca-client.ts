/**
 * What the agent asks of the CA, over HTTP(S): discovery (RFC 8414), a
 * client credentials token (RFC 6749 section 4.4, client_secret_basic),
 * `POST /ca/sign`, `POST /ca/renew` over mutual TLS, the trust bundle and
 * CRLs. Each failure is classified here, once: unreachable or 5xx/429 is
 * `CaUnavailableError` (try again), a refusal is `CaRefusalError`, a
 * revoked certificate is `CertificateRevokedError`.
 */
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { rootCertificates } from 'node:tls';
import { AgentStopped, CaRefusalError, CaUnavailableError, CertificateRevokedError } from './errors.ts';

/** RFC 9457 type of the CA's refusal to renew a revoked certificate. */
export const REVOKED_PROBLEM = 'urn:portcullis:problem:certificate-revoked';
const PROBLEM_PREFIX = 'urn:portcullis:problem:';
/** No honest answer of the CA is near this; a larger one is cut off. */
const MAX_BODY_BYTES = 1_048_576;

export interface Issued {
  /** Leaf first, then the intermediate (application/pem-certificate-chain). */
  readonly chainPem: string;
  readonly serial: string;
}

export interface AgentCa {
  /** The token endpoint, and the origin of the mTLS listener when one is advertised. */
  discover(): Promise<{ readonly tokenEndpoint: string; readonly mtlsOrigin: string | undefined }>;
  accessToken(tokenEndpoint: string, clientId: string, secret: string): Promise<string>;
  sign(request: { readonly csrPem: string; readonly ttl?: string; readonly enrolmentToken?: string; readonly accessToken?: string }): Promise<Issued>;
  /** Over mutual TLS with `certificate`; `trust` is the PEM bundle the server must chain to (public roots are trusted too). */
  renew(url: string, request: { readonly csrPem: string; readonly certificate: { readonly chainPem: string; readonly keyPem: string }; readonly trust: string }): Promise<Issued>;
  bundle(): Promise<string>;
  /** The DER CRL of the CA certificate with this key identifier (hex). */
  crl(keyId: string): Promise<Buffer>;
}

interface Answer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
}

interface Call {
  readonly method: 'GET' | 'POST';
  readonly headers?: Record<string, string>;
  readonly body?: string;
  readonly tls?: { readonly cert: string; readonly key: string; readonly ca: string[] };
}

export class HttpCa implements AgentCa {
  readonly #base: string;
  readonly #timeoutMs: number;
  readonly #signal: AbortSignal | undefined;

  /** `caUrl`: the server's base URL (its issuer); `timeoutMs` bounds each request; `signal` abandons the one in flight (AgentStopped). */
  constructor(caUrl: URL, options: { readonly timeoutMs?: number; readonly signal?: AbortSignal } = {}) {
    this.#base = caUrl.href.replace(/\/+$/, '');
    this.#timeoutMs = options.timeoutMs ?? 30_000;
    this.#signal = options.signal;
  }

  async discover(): Promise<{ tokenEndpoint: string; mtlsOrigin: string | undefined }> {
    const answer = await this.#send(`${this.#base}/.well-known/oauth-authorization-server`, { method: 'GET' }, 'discovery');
    if (answer.status !== 200) throw refusal(answer, 'discovery');
    const metadata = json(answer.body, 'the discovery document');
    const tokenEndpoint = metadata['token_endpoint'];
    if (typeof tokenEndpoint !== 'string') throw new CaRefusalError('bad_metadata', 'the discovery document names no token_endpoint');
    const aliases = metadata['mtls_endpoint_aliases'];
    const alias = aliases !== null && typeof aliases === 'object' ? Object.values(aliases as Record<string, unknown>).find((value) => typeof value === 'string') : undefined;
    let mtlsOrigin: string | undefined;
    if (typeof alias === 'string') {
      try {
        mtlsOrigin = new URL(alias).origin;
      } catch {
        mtlsOrigin = undefined;
      }
    }
    return { tokenEndpoint, mtlsOrigin };
  }

  async accessToken(tokenEndpoint: string, clientId: string, secret: string): Promise<string> {
    // RFC 6749 section 2.3.1: each part form-urlencoded before Basic encoding.
    const basic = Buffer.from(`${formEncode(clientId)}:${formEncode(secret)}`).toString('base64');
    const answer = await this.#send(
      tokenEndpoint,
      { method: 'POST', headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'ca:issue' }).toString() },
      'the token endpoint',
    );
    if (answer.status !== 200) throw refusal(answer, 'the token endpoint');
    const token = json(answer.body, 'the token response')['access_token'];
    if (typeof token !== 'string') throw new CaRefusalError('bad_token_response', 'the token endpoint answered no access_token');
    return token;
  }

  async sign(request: { csrPem: string; ttl?: string; enrolmentToken?: string; accessToken?: string }): Promise<Issued> {
    const body = JSON.stringify({ csr: request.csrPem, ...(request.ttl !== undefined && { ttl: request.ttl }), ...(request.enrolmentToken !== undefined && { enrolment_token: request.enrolmentToken }) });
    const headers: Record<string, string> = { 'content-type': 'application/json', ...(request.accessToken !== undefined && { authorization: `Bearer ${request.accessToken}` }) };
    const answer = await this.#send(`${this.#base}/ca/sign`, { method: 'POST', headers, body }, '/ca/sign');
    return issued(answer, '/ca/sign');
  }

  async renew(url: string, request: { csrPem: string; certificate: { chainPem: string; keyPem: string }; trust: string }): Promise<Issued> {
    const answer = await this.#send(
      url,
      { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ csr: request.csrPem }), tls: { cert: request.certificate.chainPem, key: request.certificate.keyPem, ca: [request.trust, ...rootCertificates] } },
      '/ca/renew',
    );
    if (answer.status === 403 && problemType(answer) === REVOKED_PROBLEM) throw new CertificateRevokedError('the CA refused to renew a revoked certificate');
    return issued(answer, '/ca/renew');
  }

  async bundle(): Promise<string> {
    const answer = await this.#send(`${this.#base}/ca/bundle`, { method: 'GET' }, '/ca/bundle');
    if (answer.status !== 200) throw refusal(answer, '/ca/bundle');
    const text = answer.body.toString('utf8');
    if (!text.includes('-----BEGIN CERTIFICATE-----')) throw new CaRefusalError('bad_bundle', '/ca/bundle answered no PEM certificate');
    return text;
  }

  async crl(keyId: string): Promise<Buffer> {
    const answer = await this.#send(`${this.#base}/ca/crl/${encodeURIComponent(keyId)}`, { method: 'GET' }, '/ca/crl');
    if (answer.status !== 200) throw refusal(answer, '/ca/crl');
    return answer.body;
  }

  #send(url: string, call: Call, what: string): Promise<Answer> {
    let target: URL;
    try {
      target = new URL(url);
    } catch {
      return Promise.reject(new CaRefusalError('bad_url', `${what}: ${url} is not a URL`));
    }
    const secure = target.protocol === 'https:';
    if (!secure && call.tls !== undefined) return Promise.reject(new CaRefusalError('bad_url', `${what}: ${target.origin} is not https, so it cannot be mutual TLS`));
    const send = secure ? httpsRequest : httpRequest;
    return new Promise<Answer>((resolve, reject) => {
      const request = send(
        target,
        {
          method: call.method,
          // One connection per call: nothing is kept open while the agent sleeps, and a renewal never reuses a TLS session of the old certificate.
          agent: false,
          headers: { accept: 'application/pem-certificate-chain, application/json, application/problem+json, */*', ...call.headers, ...(call.body !== undefined && { 'content-length': String(Buffer.byteLength(call.body)) }) },
          ...(call.tls !== undefined && { cert: call.tls.cert, key: call.tls.key, ca: call.tls.ca }),
          timeout: this.#timeoutMs,
          ...(this.#signal !== undefined && { signal: this.#signal }),
        },
        (response) => {
          const chunks: Buffer[] = [];
          let size = 0;
          response.on('data', (chunk: Buffer) => {
            size += chunk.length;
            if (size > MAX_BODY_BYTES) {
              response.destroy();
              reject(new CaRefusalError('body_too_large', `${what} answered more than 1 MiB`));
              return;
            }
            chunks.push(chunk);
          });
          response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks) }));
          response.on('error', (error) => reject(transportError(error, what, target)));
        },
      );
      request.on('timeout', () => request.destroy(Object.assign(new Error('no answer in time'), { code: 'ETIMEDOUT' })));
      request.on('error', (error) => reject(transportError(error, what, target)));
      request.end(call.body);
    });
  }
}

/**
 * A connection that failed: the server refused our certificate as revoked
 * (a TLS alert; over TLS 1.3 it often arrives as a reset instead, which the
 * agent then checks against the CRL), refused it otherwise or was itself
 * not trusted (a refusal: trying again will not help), or was not there
 * (ECONNREFUSED, ECONNRESET, a timeout, DNS: try again).
 */
function transportError(error: Error, what: string, target: URL): Error {
  const code = (error as NodeJS.ErrnoException).code ?? '';
  if (code === 'ABORT_ERR') return new AgentStopped('stopped');
  if (/REVOKED/i.test(code)) return new CertificateRevokedError(`${what} refused the certificate as revoked (${code})`);
  if (code.startsWith('ERR_SSL_') && code.includes('ALERT')) return new CaRefusalError(code, `${target.origin} refused the TLS connection (${code})`);
  if (code.startsWith('ERR_TLS_CERT') || /CERT|SIGNATURE|ISSUER/.test(code)) return new CaRefusalError(code, `${target.origin} presented a certificate that is not trusted (${code})`);
  if (code.startsWith('ERR_SSL_')) return new CaRefusalError(code, `${target.origin}: TLS failed (${code})`);
  return new CaUnavailableError(`${what} at ${target.origin} is unreachable (${code === '' ? error.message : code})`);
}

function issued(answer: Answer, what: string): Issued {
  if (answer.status !== 201) throw refusal(answer, what);
  const serial = answer.headers['x-certificate-serial'];
  const chainPem = answer.body.toString('utf8');
  if (typeof serial !== 'string' || !chainPem.includes('-----BEGIN CERTIFICATE-----')) throw new CaRefusalError('bad_answer', `${what} answered 201 without a certificate chain`);
  return { chainPem, serial };
}

function problemType(answer: Answer): string | undefined {
  try {
    const type = (JSON.parse(answer.body.toString('utf8')) as Record<string, unknown>)['type'];
    return typeof type === 'string' ? type : undefined;
  } catch {
    return undefined;
  }
}

/** A non-success answer: 5xx and 429 are worth another attempt; any other is a refusal, named by its problem type or OAuth error. */
function refusal(answer: Answer, what: string): Error {
  if (answer.status >= 500 || answer.status === 429) {
    const retryAfter = Number(answer.headers['retry-after']);
    return new CaUnavailableError(`${what} answered ${answer.status}`, Number.isFinite(retryAfter) && retryAfter >= 0 ? retryAfter * 1000 : undefined);
  }
  let body: Record<string, unknown> = {};
  try {
    const parsed = JSON.parse(answer.body.toString('utf8')) as unknown;
    if (parsed !== null && typeof parsed === 'object') body = parsed as Record<string, unknown>;
  } catch {
    // not JSON: the status says it
  }
  const type = typeof body['type'] === 'string' ? body['type'].replace(PROBLEM_PREFIX, '') : typeof body['error'] === 'string' ? body['error'] : `http-${answer.status}`;
  const detail = typeof body['detail'] === 'string' ? body['detail'] : typeof body['error_description'] === 'string' ? body['error_description'] : `HTTP ${answer.status}`;
  return new CaRefusalError(type, `${what} refused (${answer.status} ${type}): ${printable(detail)}`, answer.status);
}

/** One line of at most 300 printable characters: a server's text never breaks the agent's one-line output. */
function printable(text: string): string {
  const clean = text.replace(/[^\x20-\x7e]+/g, ' ').trim();
  return clean.length > 300 ? `${clean.slice(0, 300)}...` : clean;
}

function json(body: Buffer, what: string): Record<string, unknown> {
  try {
    const parsed = JSON.parse(body.toString('utf8')) as unknown;
    if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) return parsed as Record<string, unknown>;
  } catch {
    // below
  }
  throw new CaRefusalError('bad_json', `${what} is not a JSON object`);
}

function formEncode(text: string): string {
  return new URLSearchParams({ v: text }).toString().slice(2);
}
