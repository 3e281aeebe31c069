/**
 * How fast do the retention rules go through a deployment? Records (users,
 * sessions, notice records) processed per second by the privacy job's
 * retention pass (src/privacy/retention.ts) over --users accounts with
 * --sessions sessions each, on the embedded stores (SQLite durable and hot)
 * and on PostgreSQL + Redis when their URLs are given.
 *
 *   node --disable-warning=ExperimentalWarning bench/privacy-retention.ts
 *     [--users 20000] [--sessions 1] [--rounds 3]
 *     [--database postgres://...]  default: PORTCULLIS_TEST_DATABASE_URL
 *     [--redis redis://...]        default: PORTCULLIS_TEST_REDIS_URL
 *
 * In-process services as `serve` builds them (no listener, no timers), a
 * test clock, rules ipPseudonymiseDays 7, sessionDays 30 and
 * inactiveAccountDays 400 (checked for every user, due for none: an erasure
 * costs what bench/ measures elsewhere, and a notice needs SMTP). Accounts
 * are made once (no password: argon2 is not what is measured); each round
 * gives every account --sessions new sessions, untimed, then times three
 * runs of the job, each with the clock moved on:
 *   scan   (+1 day):  every rule looks, none has anything to do;
 *   pseudo (+7 days): every session's IP becomes a keyed pseudonym (a
 *                     compare-and-set per session);
 *   drop   (+23 days): every session is past sessionDays: ended (tokens,
 *                     back-channel logout) and dropped, two ledger entries each.
 * Each run must report the changes it was set up for (all sessions, or
 * none), so the figure is of the path described. records/s = the run's
 * recordsScanned over its wall time; changes/s likewise for what it changed.
 * Medians over rounds; the heap after each run shows memory stays flat
 * (users are read a page of 500 at a time).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { loadConfig } from '../src/config/index.ts';
import { PROFILES, startServices, type PortcullisRuntime } from '../src/runtime/index.ts';
import { deleteRedisKeys } from '../test/support/services.ts';
import { ManualClock } from '../test/support/clock.ts';
import { giveUpAfter, machine, median, option, positiveInteger, round2, runSql, table, writeResult } from './lib.ts';

const settings = {
  users: positiveInteger('users', 20_000),
  sessions: positiveInteger('sessions', 1),
  rounds: positiveInteger('rounds', 3),
  databaseUrl: option('database') ?? (process.env['PORTCULLIS_TEST_DATABASE_URL'] || undefined),
  redisUrl: option('redis') ?? (process.env['PORTCULLIS_TEST_REDIS_URL'] || undefined),
};
const DAY = 24 * 60 * 60_000;
const LEASE_KEY = 'privacy:job-lease';
const SEED_CONCURRENCY = 32;
const PASSES = [
  { name: 'scan', advanceDays: 1, changes: (report: RetentionCounts) => report.ipsPseudonymised + report.sessionsDropped, expected: 0 },
  { name: 'pseudo', advanceDays: 7, changes: (report: RetentionCounts) => report.ipsPseudonymised, expected: 1 },
  { name: 'drop', advanceDays: 23, changes: (report: RetentionCounts) => report.sessionsDropped, expected: 1 },
] as const;

interface RetentionCounts {
  readonly recordsScanned: number;
  readonly ipsPseudonymised: number;
  readonly sessionsDropped: number;
}

interface PassResult {
  readonly seconds: number;
  readonly records: number;
  readonly changes: number;
  readonly heapMiB: number;
}

interface Deployment {
  readonly name: string;
  readonly env: Record<string, string>;
  readonly cleanups: (() => Promise<void>)[];
}

giveUpAfter('privacy-retention', 60 * 60_000);

async function deployments(): Promise<Deployment[]> {
  const list: Deployment[] = [{ name: 'sqlite', env: {}, cleanups: [] }];
  if (settings.databaseUrl !== undefined && settings.redisUrl !== undefined) {
    const schema = `portcullis_bench_${randomBytes(6).toString('hex')}`;
    const keyPrefix = `portcullis:bench:${randomBytes(6).toString('hex')}:`;
    await runSql(settings.databaseUrl, `CREATE SCHEMA ${schema}`);
    const url = settings.databaseUrl;
    const redis = settings.redisUrl;
    list.push({
      name: 'postgres+redis',
      env: { PORTCULLIS_DATABASE_URL: url, PORTCULLIS_DATABASE_SCHEMA: schema, PORTCULLIS_REDIS_URL: redis, PORTCULLIS_REDIS_KEY_PREFIX: keyPrefix },
      cleanups: [() => runSql(url, `DROP SCHEMA IF EXISTS ${schema} CASCADE`), () => deleteRedisKeys(redis, keyPrefix)],
    });
  }
  return list;
}

/** Runs `work` over 0..count-1, `concurrency` at a time. */
async function inParallel(count: number, concurrency: number, work: (index: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, async () => {
    while (next < count) await work(next++);
  }));
}

async function measure(deployment: Deployment): Promise<{ passes: Record<string, PassResult[]>; seedSeconds: number }> {
  const dataDir = mkdtempSync(join(tmpdir(), 'portcullis-bench-retention-'));
  const clock = new ManualClock(Date.now());
  const config = loadConfig({
    env: { ...Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('PORTCULLIS_'))), ...deployment.env },
    overrides: {
      dataDir,
      port: 0,
      log: { level: 'silent' },
      privacy: { retention: { inactiveAccountDays: 400, inactiveNoticeDays: 30, sessionDays: 30, ipPseudonymiseDays: 7, interval: '1h' } },
      identity: { sessionIdleTimeoutMs: 400 * DAY, sessionAbsoluteTimeoutMs: 400 * DAY, maxSessionsPerUser: Math.max(10, settings.sessions) },
    },
  });
  const silent = new Writable({ write: (_chunk, _encoding, done) => done() });
  let runtime: PortcullisRuntime | undefined;
  try {
    runtime = await startServices({ config, profile: { ...PROFILES.serve(config), maintenance: false, hooks: false }, clock: clock.now, logDestination: silent }, ['privacy']);
    const { accounts } = runtime.get('identity');
    const privacy = runtime.get('erasure');
    const hot = runtime.get('stores').hot;

    const seedStart = performance.now();
    const ids: string[] = new Array<string>(settings.users);
    await inParallel(settings.users, SEED_CONCURRENCY, async (i) => {
      ids[i] = (await accounts.users.create(`bench-retention-${i}@example.test`, null, clock.now())).id;
    });
    const seedSeconds = (performance.now() - seedStart) / 1000;

    const run = async () => {
      await hot.delete(LEASE_KEY);
      const start = performance.now();
      const report = await privacy.runJob();
      const seconds = (performance.now() - start) / 1000;
      if (report === null) throw new Error('the job did not get its lease');
      return { report: report.retention, seconds };
    };
    await run(); // warm-up: nothing to do but look
    const passes: Record<string, PassResult[]> = Object.fromEntries(PASSES.map((pass) => [pass.name, []]));
    for (let round = 0; round < settings.rounds; round++) {
      clock.advance(100 * DAY);
      await inParallel(settings.users * settings.sessions, SEED_CONCURRENCY, (i) => accounts.sessions.create(ids[i % settings.users]!, { amr: ['pwd'], device: 'Firefox on Linux', ip: '198.51.100.0' }));
      for (const pass of PASSES) {
        clock.advance(pass.advanceDays * DAY);
        const { report, seconds } = await run();
        const changes = pass.changes(report);
        const expected = pass.expected * settings.users * settings.sessions;
        if (changes !== expected || !report.complete) throw new Error(`${deployment.name} ${pass.name}: ${changes} changes, expected ${expected} (${JSON.stringify(report)})`);
        passes[pass.name]!.push({ seconds: round2(seconds), records: report.recordsScanned, changes, heapMiB: round2(process.memoryUsage().heapUsed / 2 ** 20) });
        console.log(`  ${deployment.name} round ${round + 1} ${pass.name}: ${report.recordsScanned} records in ${seconds.toFixed(2)} s`);
      }
    }
    return { passes, seedSeconds: round2(seedSeconds) };
  } finally {
    await runtime?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

const results: Record<string, unknown> = {};
const rows: (string | number)[][] = [];
for (const deployment of await deployments()) {
  try {
    console.log(`${deployment.name}: ${settings.users} users, ${settings.sessions} session(s) each, ${settings.rounds} rounds`);
    const { passes, seedSeconds } = await measure(deployment);
    results[deployment.name] = { seedSeconds, passes };
    for (const pass of PASSES) {
      const runs = passes[pass.name]!;
      const recordsPerSecond = median(runs.map((run) => run.records / run.seconds));
      const changesPerSecond = median(runs.map((run) => run.changes / run.seconds));
      rows.push([deployment.name, pass.name, runs[0]!.records, Math.round(recordsPerSecond), pass.expected === 0 ? '-' : Math.round(changesPerSecond), median(runs.map((run) => run.seconds)), Math.max(...runs.map((run) => run.heapMiB))]);
    }
  } finally {
    for (const cleanup of deployment.cleanups) await cleanup();
  }
}
console.log();
console.log(table(['deployment', 'pass', 'records', 'records/s', 'changes/s', 'median s', 'heap MiB'], rows));
console.log(`\nresults: ${writeResult('privacy-retention', { settings: { ...settings, databaseUrl: settings.databaseUrl !== undefined, redisUrl: settings.redisUrl !== undefined }, machine: machine(), results })}`);
