/**
 * Re-signing a CA certificate's CRL (RFC 5280 section 5) with what is
 * revoked now, by compare-and-set on the CA record, so concurrent
 * revocations on several instances each end up in the CRL.
 */
import type { Clock } from '../store/index.ts';
import type { LoadedAuthority } from './chain.ts';
import type { AuthorityCollection, CertificateCollection } from './records.ts';
import { buildCrl, type RevocationReason } from './x509/crl.ts';

/** Compare-and-set rounds a re-signing may lose to concurrent ones before it gives up. */
const CRL_WRITE_ATTEMPTS = 32;

/** Whether a CRL must be re-signed: missing, or its nextUpdate less than half of `crlTtlMs` away. */
export function crlDue(authority: LoadedAuthority, now: number, crlTtlMs: number): boolean {
  const next = authority.record.crlNextUpdate;
  return authority.record.crl === undefined || next === undefined || next - now < crlTtlMs / 2;
}

/**
 * Re-signs the CRL of `authority` (nothing when its key is offline).
 * Expired entries are dropped (RFC 5280 section 3.3); an intermediate's
 * nextUpdate is `crlTtlMs` away, a root's is the root's end.
 */
export async function resignCrl(authority: LoadedAuthority, stores: { readonly authorities: AuthorityCollection; readonly certificates: CertificateCollection }, clock: Clock, crlTtlMs: number): Promise<void> {
  const signer = authority.signer;
  if (signer === undefined) return;
  await stores.authorities.mutate(
    authority.id,
    async (current) => {
      if (current === null) return { kind: 'keep', result: undefined };
      // Read after the CA record, in every round: a round that lost to another re-signing must see the revocation that one was for.
      const now = clock();
      const revoked = (await stores.certificates.findAllBy('revoked_by', authority.id)).filter((item) => item.data.notAfter > now);
      const nextUpdate = authority.record.role === 'root' ? current.data.notAfter : now + crlTtlMs;
      const number = current.data.crlNumber + 1;
      const der = buildCrl({
        issuer: signer,
        number,
        thisUpdate: new Date(now),
        nextUpdate: new Date(nextUpdate),
        revoked: revoked.map((item) => ({ serial: item.id, revokedAt: new Date(item.data.revokedAt!), reason: (item.data.reason ?? 'unspecified') as RevocationReason })),
      });
      return { kind: 'write', value: { ...current.data, crl: der.toString('base64'), crlNumber: number, crlNextUpdate: nextUpdate }, result: undefined };
    },
    {
      // Each round one writer wins, and every winner re-read the revoked list: as many rounds as writers at once, with room.
      attempts: CRL_WRITE_ATTEMPTS,
      exhausted: () => {
        throw new Error(`the CRL could not be re-signed: other writers won ${CRL_WRITE_ATTEMPTS} times in a row (the revocation stands and is enforced; the CRL follows at the next re-signing)`);
      },
    },
  );
}
