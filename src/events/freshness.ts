/**
 * How long a cache may keep what it read. With a deployment-wide bus
 * connected, another instance's change arrives as an event, and the poll is
 * only the fallback for an event that was lost; otherwise (embedded, where
 * the CLI writes from another process, or the bus is down) the cache polls
 * at its own short interval, as before events existed.
 */
import type { EventSubscriptions } from './hub.ts';

/**
 * The fallback poll while events arrive: a lost message (Redis pub/sub is at
 * most once, and a publish can fail while the subscription stays up) is
 * noticed within this time. Short enough to bound a missed revocation, long
 * enough that a busy token is re-read once in thousands of checks.
 */
export const FALLBACK_POLL_MS = 5_000;

/** A cache's freshness, read at each use (the bus may drop or come back). */
export function freshFor(events: Pick<EventSubscriptions, 'deploymentWide'> | undefined, pollMs: number): () => number {
  return () => (events?.deploymentWide === true && pollMs > 0 ? Math.max(pollMs, FALLBACK_POLL_MS) : pollMs);
}
