/** Small helpers shared by the benchmark scripts. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import autocannon, { type Result as LoadResult } from 'autocannon';
import pg from 'pg';
import { loadConfig } from '../src/config/index.ts';

/** Nearest-rank percentile (p in 0..100) of numbers; sorts a copy. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1]!;
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** What a reader needs to judge whether two result files are comparable. */
export function machine(): Record<string, unknown> {
  return { node: process.version, platform: process.platform, arch: process.arch, cpus: cpus().length, cpuModel: cpus()[0]?.model, loadavg: loadavg() };
}

/** Writes bench/results/<name>-<timestamp>.json and returns its path. */
export function writeResult(name: string, data: unknown): string {
  const directory = join(import.meta.dirname, 'results');
  mkdirSync(directory, { recursive: true });
  const path = join(directory, `${name}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(path, `${JSON.stringify(data, null, 2)}\n`);
  return path;
}

/** A plain fixed-width text table: numeric cells right-aligned, text left-aligned. */
export function table(header: readonly string[], rows: readonly (readonly (string | number)[])[]): string {
  const cells = [header, ...rows].map((row) => row.map((cell) => String(cell)));
  const widths = header.map((_, column) => Math.max(...cells.map((row) => row[column]?.length ?? 0)));
  const numeric = /^[\d.,/ -]+$/;
  const line = (row: readonly string[]) =>
    row.map((cell, column) => (numeric.test(cell) ? cell.padStart(widths[column]!) : cell.padEnd(widths[column]!))).join('  ').trimEnd();
  return [line(cells[0]!), widths.map((width) => '-'.repeat(width)).join('  '), ...cells.slice(1).map(line)].join('\n');
}

/** `--name value` from argv, or the fallback. */
export function option(name: string, fallback: string): string;
export function option(name: string, fallback?: string): string | undefined;
export function option(name: string, fallback?: string): string | undefined {
  const index = process.argv.indexOf(`--${name}`);
  return index >= 0 && index + 1 < process.argv.length ? process.argv[index + 1] : fallback;
}

/** Every value of a repeatable `--name value` option. */
export function options(name: string): string[] {
  return process.argv.flatMap((arg, index) => (arg === `--${name}` && index + 1 < process.argv.length ? [process.argv[index + 1]!] : []));
}

export function positiveInteger(name: string, fallback: number): number {
  const raw = option(name, String(fallback));
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value <= 0) throw new Error(`--${name} must be a positive integer, got "${raw}"`);
  return value;
}

export function round2(value: number): number {
  return Math.round(value * 100) / 100;
}

/** Runs one statement on a connection of its own (creating and dropping a bench schema). */
export async function runSql(url: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

/** One autocannon run, summarised the same way by every HTTP benchmark. */
export interface LoadRun {
  readonly requestsPerSecond: number;
  readonly requests: number;
  readonly latencyMs: { readonly p50: number; readonly p99: number; readonly mean: number };
  /** Server CPU time (user + system) per response; null where /proc is missing. */
  readonly cpuMicrosPerRequest: number | null;
}

/**
 * Requests per second as the total over the real duration rather than
 * autocannon's mean of per-second samples (it does not depend on where the
 * sample boundaries fall); latencies as recorded per response.
 */
export function summariseLoad(result: { readonly requests: { readonly total: number }; readonly duration: number }, latencies: readonly number[], cpuBefore: number | null, cpuAfter: number | null): LoadRun {
  return {
    requestsPerSecond: Math.round(result.requests.total / result.duration),
    requests: result.requests.total,
    latencyMs: {
      p50: round2(percentile(latencies, 50)),
      p99: round2(percentile(latencies, 99)),
      mean: round2(latencies.reduce((sum, value) => sum + value, 0) / latencies.length),
    },
    cpuMicrosPerRequest: cpuBefore === null || cpuAfter === null ? null : round2((cpuAfter - cpuBefore) / result.requests.total),
  };
}

/**
 * The environment of a benchmark's Portcullis children: this process's,
 * without any PORTCULLIS_* of the caller's (so "default Portcullis" means the
 * defaults), quiet logs, plus the run's own settings; and the argon2id
 * parameters that configuration gives.
 */
export function portcullisChildEnvironment(extra: Readonly<Record<string, string>>): {
  baseEnv: Record<string, string | undefined>;
  portcullisEnv: Record<string, string | undefined>;
  argon2: { memoryCostKiB: number; timeCost: number; parallelism: number };
} {
  const baseEnv = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('PORTCULLIS_')));
  const portcullisEnv = { ...baseEnv, PORTCULLIS_LOG_LEVEL: 'warn', ...extra };
  const identity = loadConfig({ env: portcullisEnv, overrides: { dataDir: '/nonexistent', port: 0 } }).identity;
  return { baseEnv, portcullisEnv, argon2: { memoryCostKiB: identity.passwordMemoryCostKiB, timeCost: identity.passwordTimeCost, parallelism: identity.passwordParallelism } };
}

/** Ends the process if a benchmark overruns its budget (a hung child must not hang the run). */
export function giveUpAfter(name: string, budgetMs: number): void {
  setTimeout(() => {
    console.error(`${name}: gave up after ${budgetMs / 1000} s`);
    process.exit(1);
  }, budgetMs).unref();
}

/**
 * Form POSTs to `url` from `connections` autocannon connections for
 * `seconds`; every answer must be a 200 (else it throws, naming `label`).
 * Resolves with autocannon's result and each response's latency (ms).
 */
export async function formPostLoad(options: {
  readonly label: string;
  readonly url: string;
  readonly body: string;
  readonly authorization: string;
  readonly connections: number;
  readonly pipelining: number;
  readonly seconds: number;
}): Promise<{ readonly result: LoadResult; readonly latencies: number[] }> {
  const latencies: number[] = [];
  let notOk = 0;
  // autocannon.d.ts declares only what overhead.ts uses; these options exist.
  const request = {
    url: options.url,
    method: 'POST',
    body: options.body,
    headers: { authorization: options.authorization, 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    connections: options.connections,
    pipelining: options.pipelining,
    duration: options.seconds,
  };
  const run = autocannon(request);
  run.on('response', (_client, status, _bytes, responseTimeMs) => {
    if (status !== 200) notOk += 1;
    latencies.push(responseTimeMs);
  });
  const result = await run;
  if (result.errors + result.timeouts + result.non2xx + notOk > 0) throw new Error(`${options.label}: ${result.errors} errors, ${result.timeouts} timeouts, ${result.non2xx + notOk} answers other than 200`);
  return { result, latencies };
}

/**
 * `--driver sqlite|postgres` (default: both, PostgreSQL when a URL is known)
 * and `--database URL` (default PORTCULLIS_TEST_DATABASE_URL), checked.
 */
export function driverSelection(): { onlyDriver: 'sqlite' | 'postgres' | undefined; databaseUrl: string | undefined } {
  const onlyDriver = option('driver');
  if (onlyDriver !== undefined && onlyDriver !== 'sqlite' && onlyDriver !== 'postgres') throw new Error(`--driver must be sqlite or postgres, got "${onlyDriver}"`);
  const databaseUrl = option('database') ?? (process.env['PORTCULLIS_TEST_DATABASE_URL'] || undefined);
  if (onlyDriver === 'postgres' && databaseUrl === undefined) throw new Error('--driver postgres needs --database or PORTCULLIS_TEST_DATABASE_URL');
  return { onlyDriver, databaseUrl };
}
