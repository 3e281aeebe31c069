/**
 * The agent's loop: enrol once (an enrolment token, or an access token of
 * a client with `ca:issue`), then renew over mutual TLS at two thirds of
 * each certificate's lifetime with a new key, until stopped. While the CA
 * cannot be reached it keeps the current files and tries again with
 * backoff; a revoked certificate ends it (exit 3).
 *
 * Everything it touches comes in through `AgentOptions` (the CA, the
 * clock, the sleep, the random source, the hook), so a test can drive the
 * schedule with a fake clock against a real server.
 */
import { X509Certificate, generateKeyPairSync } from 'node:crypto';
import { buildCertificateRequest, certificateFacts, readCrl, toPem } from '../../pki/index.ts';
import { backoffDelay, type BackoffPolicy } from './backoff.ts';
import type { AgentCa, Issued } from './ca-client.ts';
import { AGENT_EXIT, AgentExit, AgentStopped, CaRefusalError, CaUnavailableError, CertificateRevokedError } from './errors.ts';
import { material, readMaterial, writeMaterial, type Material } from './files.ts';

export type AgentCredentials = { readonly kind: 'token'; readonly token: string } | { readonly kind: 'client'; readonly clientId: string; readonly secret: string };

export interface AgentNames {
  readonly spiffeId: string;
  readonly dns: readonly string[];
  readonly ips: readonly string[];
}

export interface AgentOptions {
  readonly ca: AgentCa;
  /** Where the agent finds the CA (for messages). */
  readonly caUrl: string;
  readonly credentials: AgentCredentials;
  readonly names: AgentNames;
  readonly outDir: string;
  /** Lifetime asked of /ca/sign ("24h"); renewals get the CA's default. */
  readonly ttl?: string;
  /** Where to renew; default: the mTLS endpoint the discovery document advertises, + /ca/renew. */
  readonly renewUrl?: string;
  /** Enrol (or renew now, when DIR holds a valid certificate) and return. */
  readonly once: boolean;
  readonly backoff: BackoffPolicy;
  /** How often the CRL is read to notice a revocation before the next renewal (0: only at renewal). */
  readonly crlIntervalMs: number;
  /** After each write of the files; a failure is logged, never fatal. */
  readonly afterWrite?: () => Promise<string | undefined>;
  readonly clock: () => number;
  /** Resolves after `ms`, or rejects with AgentStopped once `signal` aborts. */
  readonly sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  readonly random: () => number;
  /** One line per event (stdout) and per problem (stderr). */
  readonly out: (line: string) => void;
  readonly err: (line: string) => void;
}

/** When a certificate is renewed: two thirds into its lifetime. */
export function renewalTime(notBefore: number, notAfter: number): number {
  return notBefore + Math.floor(((notAfter - notBefore) * 2) / 3);
}

const iso = (ms: number) => new Date(ms).toISOString();
const seconds = (ms: number) => `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)}s`;

export class Agent {
  readonly #options: AgentOptions;
  #discovered: Awaited<ReturnType<AgentCa['discover']>> | undefined;

  constructor(options: AgentOptions) {
    this.#options = options;
  }

  /** Runs until `signal` aborts (resolves) or the agent must end (rejects with AgentExit). */
  async run(signal: AbortSignal): Promise<void> {
    try {
      await this.#run(signal);
    } catch (error) {
      if (error instanceof AgentStopped) return;
      throw error;
    }
  }

  async #run(signal: AbortSignal): Promise<void> {
    const options = this.#options;
    let current = this.#existing();
    // A daemon that could never renew should say so before it uses up a token.
    const renewUrl = options.once ? undefined : await this.#attempts(() => this.#renewUrl(), signal);
    if (current === undefined) current = await this.#attempts(() => this.#enrol(), signal);
    else if (options.once) current = await this.#renewOrEnrol(current, await this.#attempts(() => this.#renewUrl(), signal), signal);
    else options.out(`using ${serialOf(current)} until ${iso(notAfterOf(current))}; renewal at ${iso(renewalTime(notBeforeOf(current), notAfterOf(current)))}`);
    if (options.once) return;
    let nextCrlCheck = options.clock();
    for (;;) {
      const now = options.clock();
      const renewAt = renewalTime(notBeforeOf(current), notAfterOf(current));
      if (now >= renewAt) {
        current = await this.#renewOrEnrol(current, renewUrl!, signal);
        continue;
      }
      const crlDue = options.crlIntervalMs > 0 && nextCrlCheck < renewAt;
      if (crlDue && now >= nextCrlCheck) {
        await this.#checkCrl(current);
        nextCrlCheck = options.clock() + options.crlIntervalMs;
        continue;
      }
      await options.sleep((crlDue ? Math.min(renewAt, nextCrlCheck) : renewAt) - now, signal);
    }
  }

  /** The valid material in DIR, if any (else the reason is one line, and the agent enrols). */
  #existing(): Material | undefined {
    const found = readMaterial(this.#options.outDir);
    if (found.kind === 'none') return undefined;
    if (found.kind === 'unusable') {
      this.#options.err(`portcullis agent: the files in ${this.#options.outDir} are not usable (${found.reason}); enrolling`);
      return undefined;
    }
    if (notAfterOf(found.material) <= this.#options.clock()) {
      this.#options.err(`portcullis agent: certificate ${serialOf(found.material)} expired at ${iso(notAfterOf(found.material))}; enrolling`);
      return undefined;
    }
    return found.material;
  }

  /**
   * Runs `attempt` until it succeeds: while the CA is unavailable, waits
   * with backoff (one line per wait); other failures end the agent.
   * `expiresAt`: give up waiting when the certificate being renewed expires.
   */
  async #attempts<T>(attempt: () => Promise<T>, signal: AbortSignal, expiresAt?: number): Promise<T> {
    const options = this.#options;
    for (let failures = 0; ; failures += 1) {
      if (signal.aborted) throw new AgentStopped();
      try {
        return await attempt();
      } catch (error) {
        if (error instanceof CaRefusalError) throw new AgentExit(AGENT_EXIT.refused, error.message);
        if (!(error instanceof CaUnavailableError)) throw error;
        if (options.once) throw new AgentExit(AGENT_EXIT.unavailable, `${error.message}; try again later`);
        if (expiresAt !== undefined && options.clock() >= expiresAt) throw new ExpiredWhileWaiting();
        const wait = Math.max(backoffDelay(failures, options.backoff, options.random), Math.min(error.retryAfterMs ?? 0, options.backoff.capMs));
        options.err(`retrying in ${seconds(wait)}: ${error.message}`);
        await options.sleep(expiresAt === undefined ? wait : Math.max(0, Math.min(wait, expiresAt - options.clock())), signal);
      }
    }
  }

  async #renewUrl(): Promise<string> {
    if (this.#options.renewUrl !== undefined) return this.#options.renewUrl;
    const { mtlsOrigin } = await this.#discovery();
    if (mtlsOrigin === undefined) {
      throw new AgentExit(AGENT_EXIT.refused, `${this.#options.caUrl} advertises no mutual TLS endpoint (mtls_endpoint_aliases; the server's tls.mtlsPort), so the certificate could not be renewed: enable it, or pass --renew-url`);
    }
    return `${mtlsOrigin}${new URL(this.#options.caUrl).pathname.replace(/\/+$/, '')}/ca/renew`;
  }

  async #discovery(): Promise<Awaited<ReturnType<AgentCa['discover']>>> {
    this.#discovered ??= await this.#options.ca.discover();
    return this.#discovered;
  }

  async #enrol(): Promise<Material> {
    const { ca, credentials, names, ttl } = this.#options;
    const trust = await ca.bundle();
    const { keyPem, csrPem } = newKeyAndRequest(names);
    let issued: Issued;
    if (credentials.kind === 'token') {
      issued = await ca.sign({ csrPem, enrolmentToken: credentials.token, ...(ttl !== undefined && { ttl }) });
    } else {
      const { tokenEndpoint } = await this.#discovery();
      const accessToken = await ca.accessToken(tokenEndpoint, credentials.clientId, credentials.secret);
      issued = await ca.sign({ csrPem, accessToken, ...(ttl !== undefined && { ttl }) });
    }
    const next = this.#accept(issued, keyPem, trust);
    this.#options.out(`enrolled ${serialOf(next)} ${names.spiffeId} until ${iso(notAfterOf(next))}`);
    await this.#afterWrite();
    return next;
  }

  /** Renews; a certificate that expired meanwhile is replaced by enrolling again (client credentials) or ends the agent. */
  async #renewOrEnrol(current: Material, renewUrl: string, signal: AbortSignal): Promise<Material> {
    try {
      return await this.#attempts(() => this.#renew(current, renewUrl), signal, notAfterOf(current));
    } catch (error) {
      if (!(error instanceof ExpiredWhileWaiting)) throw error;
      if (this.#options.credentials.kind !== 'client') throw new AgentExit(AGENT_EXIT.expired, `certificate ${serialOf(current)} expired at ${iso(notAfterOf(current))} before it could be renewed; enrol again`);
      this.#options.err(`portcullis agent: certificate ${serialOf(current)} expired before it could be renewed; enrolling again`);
      return this.#attempts(() => this.#enrol(), signal);
    }
  }

  async #renew(current: Material, renewUrl: string): Promise<Material> {
    const { ca } = this.#options;
    const trust = await ca.bundle();
    const { keyPem, csrPem } = newKeyAndRequest(this.#options.names);
    let issued: Issued;
    try {
      issued = await ca.renew(renewUrl, { csrPem, certificate: { chainPem: current.chainPem, keyPem: current.keyPem }, trust });
    } catch (error) {
      if (error instanceof CertificateRevokedError) throw this.#revoked(current);
      // Over TLS 1.3 the listener's "certificate revoked" alert often arrives as a reset connection, and
      // a listener may refuse a revoked certificate in other ways: the CA's CRL says whether that is why.
      if ((error instanceof CaRefusalError || error instanceof CaUnavailableError) && (await this.#listedInCrl(current))) throw this.#revoked(current);
      throw error;
    }
    const next = this.#accept(issued, keyPem, trust);
    this.#options.out(`renewed ${serialOf(next)} (was ${serialOf(current)}) until ${iso(notAfterOf(next))}`);
    await this.#afterWrite();
    return next;
  }

  #revoked(current: Material): AgentExit {
    return new AgentExit(AGENT_EXIT.revoked, `certificate ${serialOf(current)} is revoked; enrol again`);
  }

  async #checkCrl(current: Material): Promise<void> {
    if (await this.#listedInCrl(current)) throw this.#revoked(current);
  }

  /** Whether the CRL of the certificate's issuer (signature checked) lists it; false when it cannot be read. */
  async #listedInCrl(current: Material): Promise<boolean> {
    const facts = certificateFacts(current.leaf.raw);
    if (facts.authorityKeyId === undefined || current.issuer === undefined) return false;
    try {
      const crl = readCrl(await this.#options.ca.crl(facts.authorityKeyId.toString('hex')), current.issuer);
      return crl.revoked.some((entry) => entry.serial === facts.serial);
    } catch (error) {
      if (error instanceof CaUnavailableError || error instanceof CaRefusalError || error instanceof TypeError) return false;
      throw error;
    }
  }

  /** Checks what the CA answered (our key, our SPIFFE ID, chained to the bundle), then writes the three files. */
  #accept(issued: Issued, keyPem: string, trust: string): Material {
    let next: Material;
    try {
      next = material(issued.chainPem, keyPem);
    } catch (error) {
      throw new AgentExit(AGENT_EXIT.refused, `the CA answered a certificate that does not fit the request: ${(error as Error).message}`);
    }
    const uris = certificateFacts(next.leaf.raw).names.uris;
    if (uris.length !== 1 || uris[0] !== this.#options.names.spiffeId) throw new AgentExit(AGENT_EXIT.refused, `the CA answered a certificate for ${uris.join(', ') || 'no SPIFFE ID'}, not ${this.#options.names.spiffeId}`);
    if (!chainsTo(next, trust)) throw new AgentExit(AGENT_EXIT.refused, 'the CA answered a certificate that does not chain to its own bundle (/ca/bundle)');
    try {
      writeMaterial(this.#options.outDir, { chainPem: next.chainPem, keyPem, bundlePem: trust });
    } catch (error) {
      throw new AgentExit(AGENT_EXIT.refused, `could not write to ${this.#options.outDir}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
    return next;
  }

  async #afterWrite(): Promise<void> {
    const failure = await this.#options.afterWrite?.();
    if (failure !== undefined) this.#options.err(`portcullis agent: --exec-on-renew failed: ${failure}`);
  }
}

/** Thrown inside the retry loop when the certificate being renewed expired meanwhile. */
class ExpiredWhileWaiting extends Error {}

/** A new ECDSA P-256 key and a CSR for it with exactly these names (a renewal rotates the key too). */
export function newKeyAndRequest(names: AgentNames): { readonly keyPem: string; readonly csrPem: string } {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const csr = buildCertificateRequest({ privateKey, names: { uris: [names.spiffeId], dns: names.dns, ips: names.ips } });
  return { keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), csrPem: toPem('CERTIFICATE REQUEST', csr) };
}

/** The leaf is signed by the chain's intermediate, which a certificate of the bundle issued (or is one). */
function chainsTo(next: Material, trust: string): boolean {
  if (next.issuer === undefined || !next.leaf.checkIssued(next.issuer) || !next.leaf.verify(next.issuer.publicKey)) return false;
  const anchors = trust.split(/(?=-----BEGIN CERTIFICATE-----)/).filter((block) => block.includes('-----BEGIN CERTIFICATE-----')).map((block) => new X509Certificate(block));
  const intermediate = next.issuer;
  return anchors.some((anchor) => anchor.raw.equals(intermediate.raw) || (intermediate.checkIssued(anchor) && intermediate.verify(anchor.publicKey)));
}

function serialOf(current: Material): string {
  return certificateFacts(current.leaf.raw).serial;
}

function notBeforeOf(current: Material): number {
  return Date.parse(current.leaf.validFrom);
}

function notAfterOf(current: Material): number {
  return Date.parse(current.leaf.validTo);
}
