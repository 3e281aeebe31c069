/**
 * A CA certificate held in memory: parsed once, with its signer (subject,
 * key id and, when the key is here, the private key).
 */
import { createPrivateKey, type KeyObject } from 'node:crypto';
import type { KeyVault } from '../crypto/index.ts';
import type { StoredRecord } from '../store/index.ts';
import type { AuthorityRecord } from './records.ts';
import { certificateFacts, type CertificateFacts, type Signer } from './x509/certificate.ts';
import { toPem } from './x509/pem.ts';

export interface LoadedAuthority {
  readonly id: string;
  readonly version: number;
  readonly record: AuthorityRecord;
  readonly der: Buffer;
  readonly pem: string;
  readonly facts: CertificateFacts;
  /** Absent for a root kept offline. */
  readonly signer: Signer | undefined;
}

export function loadAuthority(stored: StoredRecord<AuthorityRecord>, vault: KeyVault): LoadedAuthority {
  const der = Buffer.from(stored.data.certificate, 'base64');
  const facts = certificateFacts(der);
  let privateKey: KeyObject | undefined;
  if (stored.data.sealedKey !== undefined) privateKey = createPrivateKey({ key: Buffer.from(vault.open('ca-keys', stored.data.sealedKey)), format: 'der', type: 'pkcs8' });
  return {
    id: stored.id,
    version: stored.version,
    record: stored.data,
    der,
    pem: toPem('CERTIFICATE', der),
    facts,
    signer: privateKey === undefined ? undefined : { subject: facts.subject, keyId: facts.keyId ?? Buffer.alloc(0), privateKey },
  };
}

/** Whether a CA certificate still belongs in the trust bundles at `now`. */
export function served(authority: LoadedAuthority, now: number): boolean {
  if (authority.record.notAfter <= now) return false;
  return authority.record.servedUntil === undefined || authority.record.servedUntil > now;
}
