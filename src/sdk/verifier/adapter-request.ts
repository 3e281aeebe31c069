/**
 * What the adapters share: the URL a client called, built from a fixed
 * public origin when the application knows it (behind a proxy it must: the
 * Host header is the client's to choose, and DPoP compares `htu` against
 * this URL), and the peer certificate of a TLS socket.
 */
import type { X509Certificate } from 'node:crypto';

/** `origin` + path, or the socket's scheme and the Host header when no origin is configured. */
export function requestUrl(origin: string | undefined, encrypted: boolean, host: string | undefined, path: string): string {
  const base = origin ?? `${encrypted ? 'https' : 'http'}://${host ?? 'invalid.invalid'}`;
  return `${base.replace(/\/+$/, '')}${path.startsWith('/') ? path : `/${path}`}`;
}

interface SocketLike {
  readonly encrypted?: boolean;
  getPeerX509Certificate?(): X509Certificate | undefined;
}

/**
 * The client certificate of a TLS socket, verified by TLS or not: possession
 * of its key is what the handshake proved, and RFC 8705 section 3 binds the
 * token to the certificate itself (self-signed ones included).
 */
export function peerCertificateOf(socket: unknown): X509Certificate | undefined {
  const tls = socket as SocketLike | undefined;
  return typeof tls?.getPeerX509Certificate === 'function' ? tls.getPeerX509Certificate() : undefined;
}

export function isEncrypted(socket: unknown): boolean {
  return (socket as SocketLike | undefined)?.encrypted === true;
}

/** The JSON body of a refusal: OAuth's error and error_description (RFC 6749 section 5.2 shape). */
export function refusalBody(failure: { readonly error?: string; readonly code: string; readonly description: string }): string {
  return JSON.stringify({ error: failure.error ?? failure.code, error_description: failure.description });
}
