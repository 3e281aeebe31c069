/**
 * How fast does the offline verifier check a log, compared with the floor
 * of hashing every entry once? Entries per second and MB/s of verifyLog over
 * an in-memory log of realistic audit events, with and without the
 * canonical-JSON check, next to a plain loop of
 * `createHash('sha256').update(entry).digest()` over the same bytes.
 *
 *   node bench/audit-verify.ts [--entries 1000000] [--rounds 3]
 *     [--checkpoint-every 100000] [--batch 1000]
 *
 * The log is generated in memory first (untimed): canonical JSON events of
 * about 250 bytes, each a view into a few large buffers (as rows read from a
 * store would be), and a signed checkpoint every --checkpoint-every entries
 * plus one at the end, so verifyLog recomputes and compares a root at each.
 * The source yields batches of --batch entries, as a store reading pages
 * would. Every round runs the three measurements once, the order rotating
 * from round to round so that drift of the machine falls on all of them;
 * the table shows medians over rounds.
 *
 * Verifying hashes each entry once (its leaf) plus one interior node per
 * entry on average (a tree of n leaves has n - 1 of them), so even with
 * nothing else to do it costs about two raw hashes per entry.
 */
import { createHash, randomBytes } from 'node:crypto';
import canonicalize from 'canonicalize';
import { generateSignerKey, parseSignerKey, parseVerifierKey, signCheckpoint } from '../src/audit/checkpoint/index.ts';
import { foldSubtrees, leafHash, nodeHash } from '../src/audit/merkle/index.ts';
import { verifyLog, type VerifyEntry, type VerifyReport, type VerifySource } from '../src/audit/verify.ts';
import { machine, median, positiveInteger, table, writeResult } from './lib.ts';

const entryCount = positiveInteger('entries', 1_000_000);
const rounds = positiveInteger('rounds', 3);
const checkpointEvery = positiveInteger('checkpoint-every', 100_000);
const batchSize = positiveInteger('batch', 1000);

const ORIGIN = 'audit.bench.example/portcullis';
const TYPES = ['auth.login.succeeded', 'auth.login.failed', 'token.issued', 'token.refreshed', 'session.revoked', 'consent.granted'];
const CLIENTS = ['admin-console', 'billing-api', 'mobile-app', 'partner-portal', 'reports-worker', 'support-desk'];

// ---------------------------------------------------------------------------
// The log (untimed)

/**
 * One audit event, written directly in RFC 8785 canonical form (keys in
 * code-unit order, JSON.stringify strings and numbers), which is how the
 * ledger stores it; a sample is checked against canonicalize below.
 */
function eventJson(i: number, random: Buffer): string {
  const actor = random.toString('base64url', 0, 32); // 43 characters: a keyed pseudonym
  const traceId = random.toString('hex', 32, 48);
  const requestId = random.toString('base64url', 48, 57);
  const time = new Date(Date.UTC(2026, 0, 1) + i * 1500).toISOString();
  const type = TYPES[i % TYPES.length]!;
  const detail = i % 3 === 0 ? '{"amr":["pwd","otp"]}' : '{"amr":["pwd"]}';
  return `{"actor":${JSON.stringify(actor)},"client":${JSON.stringify(CLIENTS[i % CLIENTS.length])},"detail":${detail},"outcome":"success","requestId":${JSON.stringify(requestId)},"time":${JSON.stringify(time)},"traceId":${JSON.stringify(traceId)},"type":${JSON.stringify(type)},"v":1}`;
}

interface Log {
  readonly entries: Uint8Array[];
  readonly rows: VerifyEntry[];
  readonly checkpoints: string[];
  readonly bytes: number;
  readonly logKey: ReturnType<typeof parseVerifierKey>;
}

function generateLog(count: number): Log {
  const keys = generateSignerKey(ORIGIN);
  const signer = parseSignerKey(keys.signerKey);
  const encoder = new TextEncoder();
  const entries: Uint8Array[] = [];
  const checkpoints: string[] = [];
  // The tree is built here with merkle's own functions (a stack of complete
  // subtrees), independently of the verifier's code, to sign the checkpoints.
  const stack: Uint8Array[] = [];
  const CHUNK = 16 * 1024 * 1024;
  let chunk = new Uint8Array(CHUNK);
  let offset = 0;
  let bytes = 0;
  const random = randomBytes(60 * 1024);
  for (let i = 0; i < count; i++) {
    if (i % 1024 === 0) randomBytes(random.length).copy(random);
    const slot = (i % 1024) * 60;
    const json = eventJson(i, random.subarray(slot, slot + 60));
    if (CHUNK - offset < json.length * 3) {
      chunk = new Uint8Array(CHUNK);
      offset = 0;
    }
    const { written } = encoder.encodeInto(json, chunk.subarray(offset));
    const entry = chunk.subarray(offset, offset + written);
    offset += written;
    bytes += written;
    entries.push(entry);
    let node = leafHash(entry);
    for (let carry = i + 1; carry % 2 === 0; carry /= 2) node = nodeHash(stack.pop()!, node);
    stack.push(node);
    const size = i + 1;
    if (size % checkpointEvery === 0 || size === count) checkpoints.push(signCheckpoint({ origin: ORIGIN, size, rootHash: foldSubtrees(stack), time: 1_780_000_000 + size }, signer));
  }
  for (const sample of [0, count >> 1, count - 1]) {
    const text = new TextDecoder().decode(entries[sample]);
    if (canonicalize(JSON.parse(text)) !== text) throw new Error(`generated entry ${sample} is not canonical: ${text}`);
  }
  return { entries, rows: entries.map((entry, index) => ({ index, entry })), checkpoints, bytes, logKey: parseVerifierKey(keys.verifierKey) };
}

function sourceOf(log: Log): VerifySource {
  return {
    size: async () => log.rows.length,
    checkpoints: async () => log.checkpoints,
    async *entries() {
      for (let i = 0; i < log.rows.length; i += batchSize) yield log.rows.slice(i, i + batchSize);
    },
  };
}

// ---------------------------------------------------------------------------
// Measurements

type Measurement = 'verify' | 'verify, checkCanonical false' | 'raw SHA-256';
const MEASUREMENTS: readonly Measurement[] = ['verify', 'verify, checkCanonical false', 'raw SHA-256'];

function rawSha256(entries: readonly Uint8Array[]): number {
  let sink = 0;
  for (const entry of entries) sink ^= createHash('sha256').update(entry).digest()[0]!;
  return sink;
}

interface Timing {
  /** Wall-clock seconds: what a user waits. */
  readonly seconds: number;
  /** CPU seconds of the process (user + system, GC threads included): steadier than wall time on a shared machine. */
  readonly cpuSeconds: number;
}

async function run(log: Log, measurement: Measurement): Promise<Timing> {
  const cpuStart = process.cpuUsage();
  const start = process.hrtime.bigint();
  if (measurement === 'raw SHA-256') {
    rawSha256(log.entries);
  } else {
    const report: VerifyReport = await verifyLog(sourceOf(log), { logKey: log.logKey, checkCanonical: measurement === 'verify' });
    if (!report.ok || report.entries !== log.entries.length || report.latest?.size !== log.entries.length) {
      throw new Error(`the intact log did not verify: ${JSON.stringify(report.problems.slice(0, 3))}`);
    }
  }
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const cpu = process.cpuUsage(cpuStart);
  return { seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6 };
}

const generateStart = process.hrtime.bigint();
const log = generateLog(entryCount);
const generateSeconds = Number(process.hrtime.bigint() - generateStart) / 1e9;
const megabytes = log.bytes / 1e6;
console.log(
  `${entryCount} entries, ${(log.bytes / entryCount).toFixed(0)} bytes each on average (${megabytes.toFixed(1)} MB), ${log.checkpoints.length} checkpoints; generated in ${generateSeconds.toFixed(1)} s`,
);

// A short warm-up of each path, so the first timed round is not the JIT's.
const warm: Log = { ...log, entries: log.entries.slice(0, 20_000), rows: log.rows.slice(0, 20_000), checkpoints: [] };
for (const measurement of MEASUREMENTS) {
  if (measurement === 'raw SHA-256') rawSha256(warm.entries);
  else await verifyLog(sourceOf(warm), { logKey: warm.logKey, checkCanonical: measurement === 'verify' });
}

const timings = new Map<Measurement, Timing[]>(MEASUREMENTS.map((measurement) => [measurement, []]));
for (let round = 0; round < rounds; round++) {
  for (let k = 0; k < MEASUREMENTS.length; k++) {
    const measurement = MEASUREMENTS[(round + k) % MEASUREMENTS.length]!;
    const timing = await run(log, measurement);
    timings.get(measurement)!.push(timing);
    console.log(`round ${round + 1}/${rounds}: ${measurement} ${timing.seconds.toFixed(2)} s (CPU ${timing.cpuSeconds.toFixed(2)} s)`);
  }
}

const round3 = (value: number) => Math.round(value * 1000) / 1000;
const medianOf = (measurement: Measurement, field: keyof Timing) => median(timings.get(measurement)!.map((timing) => timing[field]));
const rawRate = entryCount / medianOf('raw SHA-256', 'seconds');
const rawCpuRate = entryCount / medianOf('raw SHA-256', 'cpuSeconds');
const rows = MEASUREMENTS.map((measurement) => {
  const medianSeconds = medianOf(measurement, 'seconds');
  const medianCpuSeconds = medianOf(measurement, 'cpuSeconds');
  const entriesPerSecond = entryCount / medianSeconds;
  return {
    measurement,
    medianSeconds: round3(medianSeconds),
    entriesPerSecond: Math.round(entriesPerSecond),
    megabytesPerSecond: Math.round((megabytes / medianSeconds) * 10) / 10,
    ratioToRawSha256: round3(entriesPerSecond / rawRate),
    medianCpuSeconds: round3(medianCpuSeconds),
    cpuRatioToRawSha256: round3(entryCount / medianCpuSeconds / rawCpuRate),
    seconds: timings.get(measurement)!.map((timing) => round3(timing.seconds)),
    cpuSeconds: timings.get(measurement)!.map((timing) => round3(timing.cpuSeconds)),
  };
});

console.log(`\nmedians of ${rounds} rounds, ${entryCount} entries of ${(log.bytes / entryCount).toFixed(0)} bytes on average`);
console.log(
  table(
    ['measurement', 'median s', 'entries/s', 'MB/s', 'vs raw SHA-256', 'CPU s', 'vs raw (CPU)'],
    rows.map((row) => [
      row.measurement,
      row.medianSeconds.toFixed(2),
      row.entriesPerSecond.toLocaleString('en-US'),
      row.megabytesPerSecond.toFixed(1),
      row.ratioToRawSha256.toFixed(2),
      row.medianCpuSeconds.toFixed(2),
      row.cpuRatioToRawSha256.toFixed(2),
    ]),
  ),
);
const file = writeResult('audit-verify', {
  benchmark: 'audit-verify',
  at: new Date().toISOString(),
  machine: machine(),
  settings: { entries: entryCount, rounds, checkpointEvery, batchSize, averageEntryBytes: log.bytes / entryCount, checkpoints: log.checkpoints.length },
  rows,
});
console.log(`wrote ${file}`);
