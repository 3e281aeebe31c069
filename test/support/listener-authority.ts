/**
 * A ListenerAuthority for tests (the built-in CA is not there yet): an
 * openssl CA's bundle and CRL as client trust, server certificates issued
 * by `openssl ca` with the lifetime the test asks for, and a way to make
 * the next issuance fail or wait.
 */
import type { IssuedServerCertificate, ListenerAuthority } from '../../src/runtime/index.ts';
import type { OpensslCa } from './openssl-ca.ts';

type IssueRequest = Parameters<ListenerAuthority['issueServerCertificate']>[0];

export class TestAuthority implements ListenerAuthority {
  readonly ca: OpensslCa;
  /** Lifetime of an issued server certificate. */
  lifetimeMs: number;
  /** Every issuance asked for, in order. */
  readonly requests: IssueRequest[] = [];
  /** Serial numbers of the issued certificates, in order. */
  readonly serials: string[] = [];
  #trust: { ca: readonly string[]; crl: readonly Buffer[] };
  readonly #listeners = new Set<() => void>();
  readonly #interceptors: ((issue: () => Promise<IssuedServerCertificate>) => Promise<IssuedServerCertificate>)[] = [];

  constructor(ca: OpensslCa, options: { readonly lifetimeMs?: number; readonly trust?: { ca: readonly string[]; crl: readonly Buffer[] } } = {}) {
    this.ca = ca;
    this.lifetimeMs = options.lifetimeMs ?? 86_400_000;
    this.#trust = options.trust ?? { ca: [ca.cert], crl: [ca.crl()] };
  }

  clientTrust(): { readonly ca: readonly string[]; readonly crl: readonly Buffer[] } {
    return this.#trust;
  }

  onClientTrustChange(listener: () => void): () => void {
    const own = () => listener();
    this.#listeners.add(own);
    return () => this.#listeners.delete(own);
  }

  /** How many trust listeners are subscribed (a stopped listener unsubscribes). */
  get subscribers(): number {
    return this.#listeners.size;
  }

  /** Changes what clientTrust() answers, then tells every listener (the contract's order). */
  setTrust(trust: { ca: readonly string[]; crl: readonly Buffer[] }): void {
    this.#trust = trust;
    for (const listener of this.#listeners) listener();
  }

  /** The next issuance goes through `interceptor`, which may fail it, delay it, or let it run (`issue()`). */
  interceptNext(interceptor: (issue: () => Promise<IssuedServerCertificate>) => Promise<IssuedServerCertificate>): void {
    this.#interceptors.push(interceptor);
  }

  async issueServerCertificate(request: IssueRequest): Promise<IssuedServerCertificate> {
    this.requests.push(request);
    const issue = async () => {
      // openssl ca takes whole seconds: the lifetime starts at the current second.
      const notBefore = new Date(Math.floor(Date.now() / 1000) * 1000);
      const notAfter = new Date(notBefore.getTime() + this.lifetimeMs);
      const issued = this.ca.issue('listener', { kind: 'server', ipAddresses: request.ipAddresses, dnsNames: request.dnsNames, notBefore, notAfter });
      this.serials.push(issued.serialNumber);
      return { cert: issued.cert + this.ca.cert, key: issued.key, notBefore, notAfter };
    };
    const interceptor = this.#interceptors.shift();
    return interceptor === undefined ? issue() : interceptor(issue);
  }
}
