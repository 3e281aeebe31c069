/**
 * What verifiers trust, from the CA certificates in memory: the PEM bundle,
 * the SPIFFE bundle (SPIFFE Trust Domain and Bundle specification, section
 * 4) and an mTLS listener's trust. A CA certificate is in them while it is
 * served (chain.ts): a retired intermediate until what it signed expired.
 */
import { createPublicKey } from 'node:crypto';
import { served, type LoadedAuthority } from './chain.ts';

export interface SpiffeBundle {
  readonly keys: readonly Record<string, unknown>[];
  readonly spiffe_sequence: number;
  readonly spiffe_refresh_hint: number;
}

/** PEM of every CA certificate a verifier should trust now: roots and the intermediates still serving. */
export function bundlePem(authorities: readonly LoadedAuthority[], now: number): string {
  return authorities.filter((authority) => served(authority, now)).map((authority) => authority.pem).join('');
}

/** A JWK Set whose X.509 authorities have `use: x509-svid` and exactly one certificate in `x5c` (section 4.2.1). */
export function spiffeBundle(authorities: readonly LoadedAuthority[], now: number, refreshHintSeconds: number): SpiffeBundle {
  return {
    keys: authorities
      .filter((authority) => served(authority, now))
      .map((authority) => ({ ...(createPublicKey({ key: authority.facts.spki, format: 'der', type: 'spki' }).export({ format: 'jwk' }) as Record<string, unknown>), use: 'x509-svid', x5c: [authority.der.toString('base64')] })),
    spiffe_sequence: bundleSequence(authorities, now),
    spiffe_refresh_hint: Math.max(1, refreshHintSeconds),
  };
}

/** Every served CA certificate, and their CRLs. */
export function clientTrust(authorities: readonly LoadedAuthority[], now: number): { readonly ca: readonly string[]; readonly crl: readonly Buffer[] } {
  const current = authorities.filter((authority) => served(authority, now));
  return { ca: current.map((authority) => authority.pem), crl: current.flatMap((authority) => (authority.record.crl === undefined ? [] : [Buffer.from(authority.record.crl, 'base64')])) };
}

/**
 * Section 4.1.1: the sequence only grows. The bundle changes when a CA
 * certificate is made (createdAt) or leaves it (servedUntil or notAfter
 * passed): the latest such moment, in seconds.
 */
function bundleSequence(authorities: readonly LoadedAuthority[], now: number): number {
  let latest = 0;
  for (const { record } of authorities) {
    latest = Math.max(latest, record.createdAt);
    for (const leftAt of [record.servedUntil, record.notAfter]) if (leftAt !== undefined && leftAt <= now) latest = Math.max(latest, leftAt);
  }
  return Math.floor(latest / 1000);
}
