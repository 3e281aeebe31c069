/**
 * The built-in certificate authority: a root and an intermediate (ECDSA
 * P-256, RFC 5280 profile), keys sealed by the vault; X509-SVIDs issued
 * from PKCS#10 CSRs under the SPIFFE policy (policy.ts); renewal of a
 * current certificate; revocation with a signed CRL per CA certificate;
 * rotation of the intermediate; trust bundles. Every issue, renewal and
 * revocation is a domain event, so the audit ledger records it.
 *
 * Issuing touches only the certificate's own record: instances issue in
 * parallel. CA records change rarely (init, rotation, revocation, CRL
 * refresh) and are re-read by every instance on their events and on a
 * short poll.
 */
import { createHash, createPublicKey, generateKeyPairSync, randomUUID, type KeyObject } from 'node:crypto';
import type { KeyVault } from '../crypto/index.ts';
import type { DomainEvents, EventContext, EventSubscriptions } from '../events/index.ts';
import { freshFor } from '../events/index.ts';
import type { Clock, RecordStore } from '../store/index.ts';
import { bundlePem, clientTrust, spiffeBundle, type SpiffeBundle } from './bundles.ts';
import { loadAuthority, served, type LoadedAuthority } from './chain.ts';
import { crlDue, resignCrl } from './crl-signing.ts';
import { AuthorityError } from './errors.ts';
import { grantNames, type GrantedNames } from './policy.ts';
import { INITIALISATION_ID, authorityRecords, certificateRecords, initialisationRecords, type AuthorityCollection, type AuthorityRecord, type CertificateCollection, type CertificateRecord } from './records.ts';
import { buildCertificate, certificateFacts, distinguishedName, newSerial, serialHex } from './x509/certificate.ts';
import { buildCrl, type RevocationReason } from './x509/crl.ts';
import { parseCertificateRequest } from './x509/csr.ts';
import { CertificateRequestError } from './x509/errors.ts';
import type { KeyKind } from './x509/keys.ts';
import { toPem } from './x509/pem.ts';

const YEAR_MS = 365 * 86_400_000;
const ROOT_LIFETIME_MS = 10 * YEAR_MS;
const INTERMEDIATE_LIFETIME_MS = YEAR_MS;
/** Certificates start a minute early, so a verifier whose clock is a little behind accepts a fresh one. */
const BACKDATE_MS = 60_000;
/** The shortest lifetime an issued certificate may have. */
const MIN_LIFETIME_MS = 60_000;
/** How often CA records are re-read without an event (the CLI revokes and rotates from another process). */
const POLL_MS = 1000;

export interface CertificateAuthorityOptions {
  readonly records: RecordStore;
  readonly vault: KeyVault;
  readonly clock: Clock;
  readonly events: DomainEvents;
  /** Other instances' revocations and rotations arrive here (a re-read follows). */
  readonly subscriptions?: EventSubscriptions;
  /** The issuer URL: CRL distribution points are under it. */
  readonly issuer: string;
  readonly trustDomain: string;
  readonly defaultTtlMs: number;
  readonly maxTtlMs: number;
  readonly crlTtlMs: number;
}

export interface IssuedCertificate {
  readonly serial: string;
  readonly spiffeId: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** The certificate and the intermediate that signed it, PEM, leaf first (no root: the verifier has it). */
  readonly chainPem: string;
  readonly certificatePem: string;
  readonly sha256: string;
}

export interface IssueRequest {
  /** PEM or DER PKCS#10. */
  readonly csr: string | Uint8Array;
  /** The names the caller may have: `spiffe://...`, `dns:...`, `ip:...`. */
  readonly allowed: readonly string[];
  readonly ttlMs?: number;
  /** `client:ID` or `enrolment:JTI`, recorded with the certificate. */
  readonly requestedBy: string;
  readonly context?: EventContext;
  /** Runs once the request passed policy, before anything is signed (an enrolment token is used up here, not by a CSR mistake). */
  readonly beforeSigning?: () => Promise<void>;
}

export interface CertificateSummary extends CertificateRecord {
  readonly serial: string;
}

export type RevocationOutcome = 'revoked' | 'already_revoked' | 'unknown';

export class CertificateAuthority {
  readonly trustDomain: string;
  readonly #options: CertificateAuthorityOptions;
  readonly #authorities: AuthorityCollection;
  readonly #certificates: CertificateCollection;
  readonly #trustListeners = new Set<() => void>();
  #loaded: readonly LoadedAuthority[] = [];
  /** Serials of revoked, unexpired certificates: what an mTLS listener refuses (read with the CA records). */
  #revoked: ReadonlySet<string> = new Set();
  /** `id@version` of every CA record as last read; undefined before the first read. */
  #fingerprint: string | undefined;
  #readAt = -Infinity;
  #timer: NodeJS.Timeout | undefined;
  readonly #unsubscribe: (() => void) | undefined;
  readonly #freshMs: () => number;

  private constructor(options: CertificateAuthorityOptions) {
    this.#options = options;
    this.trustDomain = options.trustDomain;
    this.#authorities = authorityRecords(options.records);
    this.#certificates = certificateRecords(options.records);
    this.#freshMs = freshFor(options.subscriptions, POLL_MS);
    this.#unsubscribe = options.subscriptions?.on(['certificate.revoked', 'ca.rotated'], () => this.refresh());
  }

  static async open(options: CertificateAuthorityOptions): Promise<CertificateAuthority> {
    const authority = new CertificateAuthority(options);
    await authority.refresh();
    return authority;
  }

  get initialised(): boolean {
    return this.#loaded.some((authority) => authority.record.active);
  }

  /**
   * `ca init`: a root and its first intermediate. With `keepRootOffline`,
   * the root's key is returned (for the operator to store offline) and
   * not kept: rotation then needs it back.
   */
  async initialise(options: { readonly keepRootOffline: boolean; readonly context?: EventContext }): Promise<{ readonly rootKeyPem: string | undefined; readonly root: string; readonly intermediate: string }> {
    await this.refresh();
    if (this.#loaded.length > 0) throw new AuthorityError('already_initialised', 'the CA is already initialised; `portcullis ca rotate` makes a new intermediate');
    const now = this.#options.clock();
    const root = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const rootSpki = root.publicKey.export({ type: 'spki', format: 'der' });
    const rootSubject = distinguishedName([
      ['O', this.trustDomain],
      ['CN', `Portcullis root CA (${this.trustDomain})`],
    ]);
    const rootDer = buildCertificate({ serial: newSerial(), subject: rootSubject, spki: rootSpki, notBefore: new Date(now - BACKDATE_MS), notAfter: new Date(now + ROOT_LIFETIME_MS), profile: { kind: 'root' }, selfKey: root.privateKey });
    const rootFacts = certificateFacts(rootDer);
    const rootSigner = { subject: rootSubject, keyId: rootFacts.keyId!, privateKey: root.privateKey };
    // OpenSSL checks the CRL of every CA in the chain (Node sets CRL_CHECK_ALL), so the root publishes one from the start, valid for its lifetime.
    const rootCrl = buildCrl({ issuer: rootSigner, number: 1, thisUpdate: new Date(now), nextUpdate: new Date(rootFacts.notAfter.getTime()), revoked: [] });
    const rootRecord: AuthorityRecord = {
      role: 'root',
      certificate: rootDer.toString('base64'),
      ...(!options.keepRootOffline && { sealedKey: this.#seal(root.privateKey) }),
      createdAt: now,
      notAfter: rootFacts.notAfter.getTime(),
      active: false,
      crl: rootCrl.toString('base64'),
      crlNumber: 1,
      crlNextUpdate: rootFacts.notAfter.getTime(),
    };
    const intermediate = this.#newIntermediate(rootSigner, rootFacts.notAfter.getTime(), now, 1);
    // Each initialisation makes its own root (its own id): only the claim of one fixed record decides between two at once.
    if (!(await initialisationRecords(this.#options.records).create(INITIALISATION_ID, { root: rootFacts.keyId!.toString('hex'), createdAt: now }))) {
      throw new AuthorityError('already_initialised', 'another process initialised the CA at the same time');
    }
    if (!(await this.#authorities.create(rootFacts.keyId!.toString('hex'), rootRecord))) throw new AuthorityError('already_initialised', 'another process initialised the CA at the same time');
    await this.#authorities.create(intermediate.id, intermediate.record);
    await this.#options.events.emit({
      type: 'ca.created',
      outcome: 'success',
      actorService: 'admin',
      ...options.context,
      detail: { trustDomain: this.trustDomain, root: rootFacts.keyId!.toString('hex'), intermediate: intermediate.id, rootOffline: options.keepRootOffline },
    });
    await this.refresh();
    return { rootKeyPem: options.keepRootOffline ? root.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() : undefined, root: rootFacts.keyId!.toString('hex'), intermediate: intermediate.id };
  }

  /**
   * `ca rotate`: a new intermediate signs from now on. The old one stays in
   * the bundles (and its CRL is still served) until every certificate it
   * signed has expired: at most `pki.maxTtl` from now.
   */
  async rotate(options: { readonly rootKey?: KeyObject; readonly context?: EventContext } = {}): Promise<{ readonly intermediate: string; readonly retired: string }> {
    await this.refresh();
    const active = this.#active();
    const root = this.#loaded.find((authority) => authority.record.role === 'root' && authority.facts.keyId?.equals(active.facts.authorityKeyId ?? Buffer.alloc(0)));
    if (root === undefined) throw new AuthorityError('not_initialised', 'the root of the active intermediate is not in the store');
    const rootKey = root.signer?.privateKey ?? options.rootKey;
    if (rootKey === undefined) throw new AuthorityError('root_key_required', 'the root key is kept offline: pass it with --root-key FILE');
    if (root.signer === undefined && !sameKey(rootKey, root.facts.spki)) throw new AuthorityError('root_key_required', 'that key is not the root key of this CA');
    const now = this.#options.clock();
    const next = this.#newIntermediate({ subject: root.facts.subject, keyId: root.facts.keyId!, privateKey: rootKey }, root.record.notAfter, now, this.#loaded.filter((authority) => authority.record.role === 'intermediate').length + 1);
    const retired: AuthorityRecord = { ...active.record, active: false, servedUntil: now + this.#options.maxTtlMs };
    if ((await this.#authorities.update(active.id, active.version, retired)) === null) throw new AuthorityError('already_initialised', 'the CA changed meanwhile; run the rotation again');
    await this.#authorities.create(next.id, next.record);
    await this.#options.events.emit({ type: 'ca.rotated', outcome: 'success', actorService: 'admin', ...options.context, detail: { intermediate: next.id, retired: active.id, retiredServedUntil: new Date(retired.servedUntil!).toISOString() } });
    await this.refresh();
    return { intermediate: next.id, retired: active.id };
  }

  /** Issues an X509-SVID for a CSR, within the names the caller may have. */
  async issue(request: IssueRequest): Promise<IssuedCertificate> {
    const csr = parseCertificateRequest(request.csr);
    const names = grantNames(csr, request.allowed, this.trustDomain);
    const ttlMs = this.#ttl(request.ttlMs);
    await request.beforeSigning?.();
    const issued = await this.#sign(csr.spki, csr.publicKey.kind, names, ttlMs, request.requestedBy);
    await this.#options.events.emit({ type: 'certificate.issued', outcome: 'success', ...request.context, detail: this.#auditDetail(issued, request.requestedBy) });
    return issued;
  }

  /**
   * Renews a current certificate: same SPIFFE ID and names, a new serial
   * and lifetime. `presented` is the DER of the certificate the caller
   * authenticated with over mTLS; a CSR, when given, brings a new key (and
   * may ask for no name the old certificate did not have). The new
   * certificate keeps the original requester (`client:ID`,
   * `enrolment:JTI`), and `authorise` is asked, before anything is signed,
   * whether that requester may still have the names: a deleted client's
   * workloads do not renew for ever.
   */
  async renew(request: {
    readonly presented: Uint8Array;
    readonly csr?: string | Uint8Array;
    readonly context?: EventContext;
    readonly authorise?: (certificate: CertificateSummary) => Promise<void>;
  }): Promise<IssuedCertificate> {
    let facts;
    try {
      facts = certificateFacts(request.presented);
    } catch {
      throw new AuthorityError('unknown_certificate', 'the presented certificate is not an X.509 certificate this CA can read');
    }
    const stored = await this.#certificates.get(facts.serial);
    if (stored === null || stored.data.sha256 !== facts.sha256) throw new AuthorityError('unknown_certificate', 'this CA did not issue the presented certificate');
    const now = this.#options.clock();
    if (stored.data.revokedAt !== undefined) throw new AuthorityError('certificate_revoked', 'the presented certificate is revoked; enrol again');
    if (stored.data.notAfter <= now) throw new AuthorityError('certificate_expired', 'the presented certificate has expired; enrol again');
    // A listener's own certificate is renewed by the listener (a fresh key each time), never through this route.
    if (stored.data.requestedBy === 'instance') throw new AuthorityError('unknown_certificate', 'a Portcullis listener certificate is not renewed through /ca/renew');
    const allowed = [stored.data.spiffeId, ...stored.data.dns.map((name) => `dns:${name}`), ...stored.data.ips.map((ip) => `ip:${ip}`)];
    let spki = facts.spki;
    let kind: KeyKind;
    let names: GrantedNames = { spiffeId: stored.data.spiffeId, dns: stored.data.dns, ips: stored.data.ips };
    if (request.csr !== undefined) {
      const csr = parseCertificateRequest(request.csr);
      if (csr.names.uris.length > 0 || csr.names.dns.length > 0 || csr.names.ips.length > 0) names = grantNames(csr, allowed, this.trustDomain);
      else if (csr.asksForCa) throw new CertificateRequestError('ca_requested', 'the CSR asks to be a CA; this CA issues only end-entity certificates');
      spki = csr.spki;
      kind = csr.publicKey.kind;
    } else {
      kind = keyKindOf(facts.spki);
    }
    await request.authorise?.({ serial: stored.id, ...stored.data });
    const requestedBy = stored.data.requestedBy;
    const issued = await this.#sign(spki, kind, names, this.#options.defaultTtlMs, requestedBy);
    await this.#options.events.emit({ type: 'certificate.renewed', outcome: 'success', ...request.context, detail: { ...this.#auditDetail(issued, requestedBy), previous: facts.serial } });
    return issued;
  }

  /** Revokes by serial; the issuer's CRL is re-signed at once and every instance's mTLS listener re-reads it. */
  async revoke(serial: string, reason: RevocationReason, context: EventContext = {}): Promise<RevocationOutcome> {
    const id = normaliseSerial(serial);
    if (id === undefined) return 'unknown';
    const now = this.#options.clock();
    const outcome = await this.#certificates.mutate<RevocationOutcome>(
      id,
      (current) => {
        if (current === null) return { kind: 'keep', result: 'unknown' };
        if (current.data.revokedAt !== undefined) return { kind: 'keep', result: 'already_revoked' };
        return { kind: 'write', value: { ...current.data, revokedAt: now, reason }, result: 'revoked' };
      },
      { attempts: 5, exhausted: () => 'already_revoked' },
    );
    if (outcome.result !== 'revoked' || outcome.record === null) return outcome.result;
    await this.#resignCrl(outcome.record.data.issuer);
    await this.#options.events.emit({
      type: 'certificate.revoked',
      outcome: 'success',
      actorService: 'admin',
      ...context,
      serial: id,
      detail: { serial: id, spiffeId: outcome.record.data.spiffeId, sha256: outcome.record.data.sha256, reason },
    });
    await this.refresh();
    return 'revoked';
  }

  async certificate(serial: string): Promise<CertificateSummary | undefined> {
    const id = normaliseSerial(serial);
    const stored = id === undefined ? null : await this.#certificates.get(id);
    return stored === null ? undefined : { serial: stored.id, ...stored.data };
  }

  /** Issued certificates in serial order; `expiringWithinMs`: only unrevoked ones that expire that soon (and have not yet); `revoked`: only revoked ones. */
  async list(filter: { readonly expiringWithinMs?: number; readonly revoked?: boolean } = {}): Promise<CertificateSummary[]> {
    const now = this.#options.clock();
    const found: CertificateSummary[] = [];
    let after: string | undefined;
    for (;;) {
      const page = await this.#certificates.list({ limit: 500, ...(after !== undefined && { after }) });
      for (const stored of page) {
        const item = { serial: stored.id, ...stored.data };
        if (filter.revoked === true && item.revokedAt === undefined) continue;
        if (filter.expiringWithinMs !== undefined && (item.revokedAt !== undefined || item.notAfter <= now || item.notAfter > now + filter.expiringWithinMs)) continue;
        found.push(item);
      }
      if (page.length < 500) return found;
      after = page.at(-1)!.id;
    }
  }

  /** PEM of every CA certificate a verifier should trust now: roots and the intermediates still serving. */
  bundlePem(): string {
    return bundlePem(this.#loaded, this.#options.clock());
  }

  /** The SPIFFE bundle: see bundles.ts. */
  spiffeBundle(): SpiffeBundle {
    return spiffeBundle(this.#loaded, this.#options.clock(), Math.floor(this.#options.crlTtlMs / 1000));
  }

  /** The DER CRL of a CA certificate (by key id; default: the active intermediate), re-signed when it nears its nextUpdate. */
  async crl(keyId?: string): Promise<Buffer | undefined> {
    await this.#fresh();
    const authority = keyId === undefined ? this.#activeOrUndefined() : this.#loaded.find((item) => item.id === keyId);
    if (authority === undefined) return undefined;
    if (this.#crlDue(authority)) {
      await this.#resignCrl(authority.id);
      await this.refresh();
    }
    // Read once more, never recurse: a root's CRL runs to the root's end, so near that end (and with the key offline, always) it stays due.
    const current = this.#loaded.find((item) => item.id === authority.id) ?? authority;
    return current.record.crl === undefined ? undefined : Buffer.from(current.record.crl, 'base64');
  }

  /** What an mTLS listener trusts: every served CA certificate, and their CRLs. */
  clientTrust(): { readonly ca: readonly string[]; readonly crl: readonly Buffer[] } {
    return clientTrust(this.#loaded, this.#options.clock());
  }

  /** Whether a serial (hex, as certificates carry it) is revoked and unexpired; from memory, as of the last re-read. */
  isRevoked(serial: string): boolean {
    const id = normaliseSerial(serial);
    return id !== undefined && this.#revoked.has(id);
  }

  onTrustChange(listener: () => void): () => void {
    this.#trustListeners.add(listener);
    return () => this.#trustListeners.delete(listener);
  }

  /** A certificate for this instance's own mTLS listener: the key is made here and never stored. */
  async issueServerCertificate(request: { readonly dnsNames: readonly string[]; readonly ipAddresses: readonly string[] }): Promise<{ cert: string; key: string; notBefore: Date; notAfter: Date }> {
    const pair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const names = { spiffeId: `spiffe://${this.trustDomain}/portcullis/server`, dns: [...request.dnsNames], ips: [...request.ipAddresses] };
    const issued = await this.#sign(pair.publicKey.export({ type: 'spki', format: 'der' }), 'ec-p256', names, this.#options.defaultTtlMs, 'instance');
    await this.#options.events.emit({ type: 'certificate.issued', outcome: 'success', actorService: 'system', detail: this.#auditDetail(issued, 'instance') });
    return { cert: issued.chainPem, key: pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), notBefore: issued.notBefore, notAfter: issued.notAfter };
  }

  /** Re-reads the CA records; trust listeners are told when what they trust changed. */
  async refresh(): Promise<void> {
    const stored = await this.#authorities.list({ limit: 1000 });
    const now = this.#options.clock();
    this.#readAt = now;
    const fingerprint = stored.map((item) => `${item.id}@${item.version}`).join(',');
    const recordsChanged = fingerprint !== this.#fingerprint;
    if (recordsChanged) {
      const previous = new Map(this.#loaded.map((authority) => [authority.id, authority]));
      this.#loaded = stored.map((item) => {
        const known = previous.get(item.id);
        return known !== undefined && known.version === item.version ? known : loadAuthority(item, this.#options.vault);
      });
      this.#fingerprint = fingerprint;
    }
    // Read on every re-read, not only when a CRL was re-signed: a revocation whose re-signing failed (or whose process died in between) is still enforced.
    const revoked = new Set<string>();
    for (const authority of this.#loaded) {
      for (const item of await this.#certificates.findAllBy('revoked_by', authority.id)) if (item.data.notAfter > now) revoked.add(item.id);
    }
    const revokedChanged = revoked.size !== this.#revoked.size || [...revoked].some((serial) => !this.#revoked.has(serial));
    this.#revoked = revoked;
    // Listeners come after open()'s first read, so each change is news to them: the first CA too (`ca init` after they started).
    if (recordsChanged || revokedChanged) for (const listener of this.#trustListeners) listener();
  }

  /** Background upkeep: re-read the CA records, re-sign CRLs before their nextUpdate. */
  start(onError: (error: unknown) => void): void {
    if (this.#timer !== undefined) return;
    this.#timer = setInterval(() => {
      void (async () => {
        await this.refresh();
        for (const authority of this.#loaded) if (authority.signer !== undefined && this.#crlDue(authority) && served(authority, this.#options.clock())) await this.#resignCrl(authority.id);
        await this.refresh();
      })().catch(onError);
    }, POLL_MS);
    this.#timer.unref();
  }

  close(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#unsubscribe?.();
  }

  // -- internals ------------------------------------------------------------

  async #fresh(): Promise<void> {
    if (this.#options.clock() - this.#readAt >= this.#freshMs()) await this.refresh();
  }

  #activeOrUndefined(): LoadedAuthority | undefined {
    return this.#loaded.find((authority) => authority.record.active);
  }

  #active(): LoadedAuthority {
    const active = this.#activeOrUndefined();
    if (active === undefined || active.signer === undefined) throw new AuthorityError('not_initialised', 'the CA is not initialised: run `portcullis ca init`');
    return active;
  }

  #ttl(requested: number | undefined): number {
    if (requested === undefined) return this.#options.defaultTtlMs;
    if (!Number.isSafeInteger(requested) || requested < MIN_LIFETIME_MS) throw new CertificateRequestError('lifetime_too_long', 'a certificate lives at least one minute');
    if (requested > this.#options.maxTtlMs) throw new CertificateRequestError('lifetime_too_long', `the longest lifetime this CA issues is ${Math.floor(this.#options.maxTtlMs / 1000)} seconds (pki.maxTtl)`);
    return requested;
  }

  async #sign(spki: Buffer, keyKind: KeyKind, names: GrantedNames, ttlMs: number, requestedBy: string): Promise<IssuedCertificate> {
    await this.#fresh();
    const active = this.#active();
    const now = this.#options.clock();
    // An intermediate near its end would sign certificates that die with it (or, past it, already invalid ones).
    if (active.record.notAfter - now < MIN_LIFETIME_MS) throw new AuthorityError('not_initialised', 'the signing intermediate has (nearly) expired: run `portcullis ca rotate`');
    const notBefore = Math.max(now - BACKDATE_MS, active.facts.notBefore.getTime());
    // RFC 5280 section 6.1.3: nothing outlives the CA that signed it.
    const notAfter = Math.min(now + ttlMs, active.record.notAfter);
    const serial = newSerial();
    const der = buildCertificate({
      serial,
      subject: distinguishedName([]),
      spki,
      notBefore: new Date(notBefore),
      notAfter: new Date(notAfter),
      issuer: active.signer!,
      profile: { kind: 'workload', names: { uris: [names.spiffeId], dns: names.dns, ips: names.ips }, keyKind, crlUrl: `${this.#options.issuer.replace(/\/$/, '')}/ca/crl/${active.id}` },
    });
    const sha256 = createHash('sha256').update(der).digest('hex');
    const record: CertificateRecord = { spiffeId: names.spiffeId, dns: [...names.dns], ips: [...names.ips], notBefore, notAfter, sha256, issuer: active.id, certificate: der.toString('base64'), requestedBy };
    if (!(await this.#certificates.create(serialHex(serial), record))) throw new Error('a random 127-bit serial collided; this does not happen');
    const certificatePem = toPem('CERTIFICATE', der);
    return { serial: serialHex(serial), spiffeId: names.spiffeId, notBefore: new Date(notBefore), notAfter: new Date(notAfter), certificatePem, chainPem: certificatePem + active.pem, sha256 };
  }

  #auditDetail(issued: IssuedCertificate, requestedBy: string): Record<string, string> {
    return { serial: issued.serial, spiffeId: issued.spiffeId, sha256: issued.sha256, notAfter: issued.notAfter.toISOString(), requestedBy };
  }

  #crlDue(authority: LoadedAuthority): boolean {
    return crlDue(authority, this.#options.clock(), this.#options.crlTtlMs);
  }

  async #resignCrl(keyId: string): Promise<void> {
    const authority = this.#loaded.find((item) => item.id === keyId) ?? (await this.refresh(), this.#loaded.find((item) => item.id === keyId));
    if (authority !== undefined) await resignCrl(authority, { authorities: this.#authorities, certificates: this.#certificates }, this.#options.clock, this.#options.crlTtlMs);
  }

  #newIntermediate(root: { subject: LoadedAuthority['facts']['subject']; keyId: Buffer; privateKey: KeyObject }, rootNotAfter: number, now: number, generation: number): { id: string; record: AuthorityRecord } {
    const pair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const spki = pair.publicKey.export({ type: 'spki', format: 'der' });
    const subject = distinguishedName([
      ['O', this.trustDomain],
      ['CN', `Portcullis intermediate CA ${generation} (${randomUUID().slice(0, 8)})`],
    ]);
    const notAfter = Math.min(now + INTERMEDIATE_LIFETIME_MS, rootNotAfter);
    const der = buildCertificate({ serial: newSerial(), subject, spki, notBefore: new Date(now - BACKDATE_MS), notAfter: new Date(notAfter), profile: { kind: 'intermediate' }, issuer: root });
    const facts = certificateFacts(der);
    const signer = { subject, keyId: facts.keyId!, privateKey: pair.privateKey };
    const crl = buildCrl({ issuer: signer, number: 1, thisUpdate: new Date(now), nextUpdate: new Date(now + this.#options.crlTtlMs), revoked: [] });
    return {
      id: facts.keyId!.toString('hex'),
      record: { role: 'intermediate', certificate: der.toString('base64'), sealedKey: this.#seal(pair.privateKey), createdAt: now, notAfter, active: true, crl: crl.toString('base64'), crlNumber: 1, crlNextUpdate: now + this.#options.crlTtlMs },
    };
  }

  #seal(key: KeyObject): string {
    return this.#options.vault.seal('ca-keys', key.export({ type: 'pkcs8', format: 'der' }));
  }
}

/** A serial as stored: lowercase hex without leading zero octets; undefined when it is not hex. */
export function normaliseSerial(text: string): string | undefined {
  const clean = text.trim().toLowerCase().replace(/:/g, '');
  if (!/^[0-9a-f]{1,40}$/.test(clean)) return undefined;
  return serialHex(Buffer.from(clean.length % 2 === 0 ? clean : `0${clean}`, 'hex'));
}

function sameKey(privateKey: KeyObject, spki: Buffer): boolean {
  return createPublicKey(privateKey).export({ type: 'spki', format: 'der' }).equals(spki);
}

function keyKindOf(spki: Buffer): KeyKind {
  const key = createPublicKey({ key: spki, format: 'der', type: 'spki' });
  if (key.asymmetricKeyType === 'rsa') return 'rsa';
  if (key.asymmetricKeyType === 'ed25519') return 'ed25519';
  return key.asymmetricKeyDetails?.namedCurve === 'secp384r1' ? 'ec-p384' : 'ec-p256';
}
