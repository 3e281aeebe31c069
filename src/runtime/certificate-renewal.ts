/**
 * Renews a listener's certificate before it expires: at two thirds of its
 * lifetime a new one is asked for, checked and swapped in. A third of the
 * lifetime is left to retry a failure (cert-manager's default renewBefore is
 * the same third); a failure keeps the current certificate serving and is
 * retried with exponential backoff until one succeeds.
 */
import type { Clock } from '../store/index.ts';
import type { CertificateInfo, TlsMaterial } from './tls.ts';
import type { IssuedServerCertificate } from './listener-authority.ts';
import { MAX_TIMER_MS } from './tls-watch.ts';

export type RenewalEvent =
  | { readonly kind: 'renewed'; readonly certificate: CertificateInfo; readonly nextAt: Date }
  | { readonly kind: 'failed'; readonly reason: string; readonly attempt: number; readonly retryInMs: number };

export interface RenewalOptions {
  /** Asks for a new certificate (the CA's issueServerCertificate). */
  readonly issue: () => Promise<IssuedServerCertificate>;
  /** Checks it and swaps it in (Listener#setSecureContext); throws to refuse it. */
  readonly install: (material: TlsMaterial) => CertificateInfo;
  readonly clock: Clock;
  readonly report: (event: RenewalEvent) => void;
  /** Backoff after a failure: the first wait, doubled each time up to the last. */
  readonly retry?: { readonly firstMs: number; readonly maxMs: number };
}

export interface CertificateRenewal {
  /** Stops the timer; an issuance in flight is dropped when it answers. */
  close(): void;
}

const DEFAULT_RETRY = { firstMs: 1000, maxMs: 5 * 60_000 };

/** When a certificate valid over notBefore..notAfter is due for renewal (ms since the epoch). */
export function renewalTime(validity: { readonly notBefore: Date; readonly notAfter: Date }): number {
  const from = validity.notBefore.getTime();
  return from + Math.floor(((validity.notAfter.getTime() - from) * 2) / 3);
}

/** Schedules the renewal of `current` (the certificate serving now), and of each one after it. */
export function scheduleRenewal(current: CertificateInfo, options: RenewalOptions): CertificateRenewal {
  const { issue, install, clock, report } = options;
  const retry = options.retry ?? DEFAULT_RETRY;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  let failures = 0;

  // setTimeout fires at once past 2^31 - 1 ms (about 24.8 days); a 90-day
  // certificate renews after 60, so a long wait is taken in steps.
  const at = (when: number) => {
    const delay = Math.max(0, when - clock());
    timer = delay > MAX_TIMER_MS ? setTimeout(() => at(when), MAX_TIMER_MS).unref() : setTimeout(() => void renew(), delay).unref();
  };

  const renew = async () => {
    timer = undefined;
    if (closed) return;
    try {
      const issued = await issue();
      if (closed) return;
      // The schedule follows the certificate itself, not what the issuer says about it.
      const certificate = install({ cert: Buffer.from(issued.cert), key: Buffer.from(issued.key) });
      failures = 0;
      const nextAt = renewalTime(certificate);
      report({ kind: 'renewed', certificate, nextAt: new Date(nextAt) });
      at(nextAt);
    } catch (error) {
      if (closed) return;
      const retryInMs = Math.min(retry.maxMs, retry.firstMs * 2 ** failures);
      failures += 1;
      report({ kind: 'failed', reason: error instanceof Error ? error.message : 'issuance failed', attempt: failures, retryInMs });
      at(clock() + retryInMs);
    }
  };

  at(renewalTime(current));
  return {
    close() {
      closed = true;
      clearTimeout(timer);
    },
  };
}
