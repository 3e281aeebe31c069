/**
 * The built-in CA as the mTLS listener sees it (ListenerAuthority): the CA
 * bundle plus the certificates clients registered for RFC 8705
 * self_signed_tls_client_auth (section 2.2: a self-signed certificate is
 * trusted as itself), its revocations, and the listener's own certificate.
 *
 * Revocation is enforced per connection (`refuses`), not with CRLs in the
 * TLS context: once any CRL is set, OpenSSL wants one for every certificate
 * of every chain (Node sets X509_V_FLAG_CRL_CHECK_ALL), and a self-signed
 * client certificate has no issuer to publish one. The listener checks each
 * new connection's certificate as the handshake completes, before a byte of
 * HTTP is read, and again for every open connection when trust changes, so
 * a revoked certificate's connections close too.
 */
import { createHash, type X509Certificate } from 'node:crypto';
import type { EventSubscriptions } from '../events/index.ts';
import type { ClientRegistry } from '../oauth/index.ts';
import { isSelfIssued, selfSignedClientProblem, toPem, type CertificateAuthority } from '../pki/index.ts';
import type { ListenerAuthority } from './listener-authority.ts';

/** How often registered self-signed client certificates are read again without an event. */
const SELF_SIGNED_POLL_MS = 5_000;

export interface CaListenerAuthority extends ListenerAuthority {
  /** Reads the registered self-signed client certificates again (at start, and on client events). */
  reload(): Promise<void>;
  close(): void;
}

export async function caListenerAuthority(options: { readonly authority: CertificateAuthority; readonly clients: ClientRegistry; readonly events: EventSubscriptions; readonly onError: (error: unknown) => void }): Promise<CaListenerAuthority> {
  const { authority, clients } = options;
  /** SHA-256 (hex) of each registered self-signed certificate's DER -> its PEM. */
  let selfSigned = new Map<string, string>();
  const listeners = new Set<() => void>();
  const tell = () => {
    for (const listener of listeners) listener();
  };
  const reload = async () => {
    const next = new Map<string, string>();
    let after: string | undefined;
    for (;;) {
      const page = await clients.list({ limit: 500, ...(after !== undefined && { after }) });
      for (const client of page) {
        // Only clients an operator vouched for: a pending registration adds nothing to what the listener trusts.
        if (client.token_endpoint_auth_method !== 'self_signed_tls_client_auth' || client.approved !== true) continue;
        for (const key of client.jwks?.keys ?? []) {
          const first = Array.isArray(key['x5c']) ? (key['x5c'] as unknown[])[0] : undefined;
          if (typeof first !== 'string') continue;
          const der = Buffer.from(first, 'base64');
          // Registration refuses a certificate that could issue others; records from before that rule are checked here.
          if (selfSignedClientProblem(der) !== undefined) continue;
          next.set(createHash('sha256').update(der).digest('hex'), toPem('CERTIFICATE', der));
        }
      }
      if (page.length < 500) break;
      after = page.at(-1)!.client_id;
    }
    const changed = next.size !== selfSigned.size || [...next.keys()].some((key) => !selfSigned.has(key));
    selfSigned = next;
    if (changed) tell();
  };
  await reload();
  // Client registrations made by another instance or the CLI are not all events here: read them again now and then.
  const poll = setInterval(() => {
    reload().catch(options.onError);
  }, SELF_SIGNED_POLL_MS);
  poll.unref();
  const unsubscribeCa = authority.onTrustChange(tell);
  const unsubscribeClients = options.events.on(['client.registered', 'client.updated', 'client.deleted'], () => {
    reload().catch(options.onError);
  });
  return {
    clientTrust: () => ({ ca: [...authority.clientTrust().ca, ...selfSigned.values()], crl: [] }),
    onClientTrustChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    issueServerCertificate: (request) => authority.issueServerCertificate(request),
    refuses(certificate: X509Certificate) {
      if (isSelfIssued(certificate)) return !selfSigned.has(createHash('sha256').update(certificate.raw).digest('hex'));
      return authority.isRevoked(certificate.serialNumber);
    },
    reload,
    close() {
      clearInterval(poll);
      unsubscribeCa();
      unsubscribeClients();
    },
  };
}
