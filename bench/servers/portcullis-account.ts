/**
 * Portcullis as servers/portcullis.ts runs it (config from the environment,
 * a throwaway data directory), plus one account to sign in with, for
 * bench/login.ts and bench/session-overhead.ts.
 *
 * - BENCH_ACCOUNT_EMAILS (comma-separated) / BENCH_ACCOUNT_PASSWORD: the
 *   accounts, each created through `accounts.createUser` (the password
 *   policy and the configured argon2id parameters apply) before the URL is
 *   printed.
 * - IPC `{ type: 'time-session', id, iterations, warmup }`: times, one call
 *   at a time, `accounts.sessions.resolve(id)` alone, then the whole check
 *   an authenticated route makes (resolve, then `users.byId`), against this
 *   server's own stores; answers `{ type: 'session-timing', ... }` in µs.
 *
 * Prints its URL on stdout once listening; exits on SIGTERM through the
 * product's own graceful shutdown, or when the parent's IPC channel closes.
 */
import { median, percentile } from '../lib.ts';
import { startBenchPortcullis } from './start-portcullis.ts';

const emails = process.env['BENCH_ACCOUNT_EMAILS']?.split(',').filter((email) => email !== '') ?? [];
const password = process.env['BENCH_ACCOUNT_PASSWORD'];
if (emails.length === 0 || password === undefined) throw new Error('set BENCH_ACCOUNT_EMAILS and BENCH_ACCOUNT_PASSWORD');

const { running } = await startBenchPortcullis();
for (const email of emails) await running.identity.accounts.createUser(email, password, { actor: 'bench' });

export interface LookupTiming {
  readonly medianUs: number;
  readonly p99Us: number;
  readonly meanUs: number;
  readonly samples: number;
}

export interface SessionTiming {
  readonly type: 'session-timing';
  readonly hotStore: string;
  readonly durableStore: string;
  /** `sessions.resolve(id)` alone: the hot store read (and a renewal write when one is due). */
  readonly resolve: LookupTiming;
  /** What an authenticated route does: resolve, then `users.byId` on the durable store. */
  readonly check: LookupTiming;
  /** Resolves that came back with a new lastSeenAt (sliding renewal writes, at most one per renew interval). */
  readonly renewals: number;
}

async function time(iterations: number, warmup: number, operation: () => Promise<void>): Promise<LookupTiming> {
  const samples: number[] = [];
  for (let i = 0; i < warmup + iterations; i++) {
    const start = process.hrtime.bigint();
    await operation();
    const elapsedNs = process.hrtime.bigint() - start;
    if (i >= warmup) samples.push(Number(elapsedNs) / 1000);
  }
  const round1 = (value: number) => Math.round(value * 10) / 10;
  return {
    medianUs: round1(median(samples)),
    p99Us: round1(percentile(samples, 99)),
    meanUs: round1(samples.reduce((sum, value) => sum + value, 0) / samples.length),
    samples: samples.length,
  };
}

async function timeSession(id: string, iterations: number, warmup: number): Promise<SessionTiming> {
  const { sessions, users } = running.identity.accounts;
  let lastSeenAt: number | undefined;
  let renewals = 0;
  const resolve = async () => {
    const session = await sessions.resolve(id);
    // A null here would time the cheap "no such session" path instead.
    if (session === null) throw new Error('the session did not resolve');
    if (lastSeenAt !== undefined && session.lastSeenAt !== lastSeenAt) renewals += 1;
    lastSeenAt = session.lastSeenAt;
    return session;
  };
  const resolveTiming = await time(iterations, warmup, async () => {
    await resolve();
  });
  const checkTiming = await time(iterations, warmup, async () => {
    const user = await users.byId((await resolve()).userId);
    if (user === null || user.disabled) throw new Error('the session user is gone');
  });
  return { type: 'session-timing', hotStore: running.stores.hot.driver, durableStore: running.stores.durable.driver, resolve: resolveTiming, check: checkTiming, renewals };
}

process.on('message', (message: { type?: string; id?: string; iterations?: number; warmup?: number }) => {
  if (message.type !== 'time-session' || typeof message.id !== 'string') return;
  timeSession(message.id, message.iterations ?? 5000, message.warmup ?? 500).then(
    (timing) => process.send?.(timing),
    (error: unknown) => process.send?.({ type: 'error', message: String(error) }),
  );
});

process.stdout.write(`${running.url}\n`);
