/**
 * Exponential backoff with jitter for attempts at an unreachable CA: the
 * n-th wait (from 0) is drawn from [b/2, b] with b = min(cap, initial * 2^n)
 * ("equal jitter"), so waits grow while agents that lost the CA together do
 * not come back in step.
 */
export interface BackoffPolicy {
  readonly initialMs: number;
  readonly capMs: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { initialMs: 1000, capMs: 60_000 };

/** The wait before attempt `attempt + 1`; `random` is in [0, 1). */
export function backoffDelay(attempt: number, policy: BackoffPolicy, random: () => number): number {
  const ceiling = Math.min(policy.capMs, policy.initialMs * 2 ** Math.min(attempt, 30));
  return Math.round(ceiling / 2 + (ceiling / 2) * random());
}
