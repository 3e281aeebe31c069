/**
 * The throttle in front of a credential check, read from the failure
 * aggregator's per-network, per-minute count: once a network has sent
 * `limit` wrong credentials of one kind this window, the check is not even
 * tried until the window ends. Nothing but the end of the window resets the
 * count, so a right credential guessed (or known) in between does not buy the
 * next guess (OWASP Authentication Cheat Sheet, "Protect against automated
 * attacks"). The caller answers 429 with Retry-After (RFC 6585 section 4,
 * RFC 9110 section 10.2.3).
 */
import type { AggregatedFailureType, FailureAggregator } from './failure-aggregator.ts';

/** Whole seconds to wait when this network is over the limit for this kind of failure; undefined while it is not. */
export async function throttledFor(
  failures: Pick<FailureAggregator, 'count' | 'retryAfterMs'>,
  type: AggregatedFailureType,
  ip: string | undefined,
  limit: number,
): Promise<number | undefined> {
  if ((await failures.count(type, ip)) < limit) return undefined;
  return Math.max(1, Math.ceil(failures.retryAfterMs() / 1000));
}
