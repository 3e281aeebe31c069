/**
 * What does Portcullis' mTLS listener cost per new client connection?
 * Full mTLS handshakes per second (client certificate required, verified
 * against the CA bundle and its CRL) on the Portcullis mTLS listener,
 * against a bare `node:tls` server with the same certificate and the same
 * settings, in the same run. The aim: ratio >= 0.9.
 *
 *   node bench/mtls-handshakes.ts [--rounds 5] [--duration 5] [--warmup 1]
 *     [--concurrency 8] [--node-flag --cpu-prof ...]
 *
 * One operation: a new TCP connection, the TLS 1.3 handshake with a client
 * certificate, one `GET /healthz` (`Connection: close`) and its answer, so
 * the server's check of the client certificate, which TLS 1.3 makes after
 * the client's side of the handshake is done, is inside the measured
 * time. `concurrency` loops in this process (test/support/tls-client.ts)
 * make one after the other. Certificates (a P-256 CA, server and client)
 * are made by openssl in a temporary directory.
 *
 * Sides, each a child process with the same node flags:
 * - bare: servers/bare-tls.ts, the same options object as the listener's;
 * - portcullis: servers/portcullis-mtls.ts, `startPortcullis` with
 *   `tls.mtlsPort` and the same certificate files.
 * Rounds alternate which side goes first (ABBA), each run after a warm-up
 * of the same side; medians over rounds.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { cpuMicros, startChild, URL_LINE, type Child } from './children.ts';
import { giveUpAfter, machine, median, options, percentile, portcullisChildEnvironment, positiveInteger, round2, table, writeResult } from './lib.ts';
import { OpensslCa } from '../test/support/openssl-ca.ts';
import { tlsGet, type TlsTarget } from '../test/support/tls-client.ts';

const settings = {
  rounds: positiveInteger('rounds', 5),
  durationSeconds: positiveInteger('duration', 5),
  warmupSeconds: positiveInteger('warmup', 1),
  concurrency: positiveInteger('concurrency', 8),
  nodeFlags: ['--disable-warning=ExperimentalWarning', ...options('node-flag')],
};
const GOAL = 0.9;

interface Run {
  readonly handshakesPerSecond: number;
  readonly handshakes: number;
  readonly latencyMs: { readonly p50: number; readonly p99: number };
  /** Server CPU time per handshake; null without /proc. */
  readonly cpuMicrosPerHandshake: number | null;
}

process.once('SIGINT', () => process.exit(130));
giveUpAfter('mtls-handshakes', (settings.rounds * 2 * (settings.durationSeconds + settings.warmupSeconds + 5) + 120) * 1000);

/** `concurrency` loops of new mTLS connections until the deadline; every answer must be a 200. */
async function drive(server: Child, target: TlsTarget, seconds: number): Promise<Run> {
  const latencies: number[] = [];
  const cpuBefore = cpuMicros(server.pid);
  const start = performance.now();
  const deadline = start + seconds * 1000;
  await Promise.all(
    Array.from({ length: settings.concurrency }, async () => {
      while (performance.now() < deadline) {
        const began = performance.now();
        const exchange = await tlsGet(target);
        if (exchange.status !== 200) throw new Error(`${server.name}: status ${exchange.status}`);
        latencies.push(performance.now() - began);
      }
    }),
  );
  const elapsedSeconds = (performance.now() - start) / 1000;
  const cpuAfter = cpuMicros(server.pid);
  return {
    handshakesPerSecond: Math.round(latencies.length / elapsedSeconds),
    handshakes: latencies.length,
    latencyMs: { p50: round2(percentile(latencies, 50)), p99: round2(percentile(latencies, 99)) },
    cpuMicrosPerHandshake: cpuBefore === null || cpuAfter === null ? null : round2((cpuAfter - cpuBefore) / latencies.length),
  };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-bench-mtls-'));
  const children: Child[] = [];
  try {
    const ca = OpensslCa.create(join(dir, 'ca'), 'Bench CA');
    const server = ca.issue('server', { kind: 'server', ipAddresses: ['127.0.0.1'] });
    const client = ca.issue('client', { kind: 'client' });
    const crlFile = join(dir, 'ca.crl');
    writeFileSync(crlFile, ca.crl());
    const files = { BENCH_MTLS_CA_FILE: ca.certFile, BENCH_MTLS_CRL_FILE: crlFile };
    const { baseEnv, portcullisEnv } = portcullisChildEnvironment({
      PORTCULLIS_TLS_MTLS_PORT: '0',
      PORTCULLIS_TLS_MTLS_CERT_FILE: server.certFile,
      PORTCULLIS_TLS_MTLS_KEY_FILE: server.keyFile,
      ...files,
    });
    const bare = await startChild('bare', [join(import.meta.dirname, 'servers', 'bare-tls.ts')], { ...baseEnv, ...files, BENCH_TLS_CERT_FILE: server.certFile, BENCH_TLS_KEY_FILE: server.keyFile }, URL_LINE, settings.nodeFlags);
    children.push(bare);
    const portcullis = await startChild('portcullis', [join(import.meta.dirname, 'servers', 'portcullis-mtls.ts')], portcullisEnv, URL_LINE, settings.nodeFlags, 60_000);
    children.push(portcullis);
    const targetOf = (child: Child): TlsTarget => ({ port: Number(new URL(child.ready).port), ca: ca.cert, client: { cert: client.cert, key: client.key } });
    // Both must present the same certificate, and answer the same body.
    const [a, b] = await Promise.all([tlsGet(targetOf(bare)), tlsGet(targetOf(portcullis))]);
    if (a.serverSerial !== b.serverSerial || a.body !== b.body || a.alpn !== b.alpn) throw new Error(`the sides differ: ${a.serverSerial}/${b.serverSerial} ${a.body}/${b.body} ${a.alpn}/${b.alpn}`);
    console.log(`mTLS handshake + GET /healthz: ${settings.rounds} rounds of ${settings.durationSeconds} s per server (after ${settings.warmupSeconds} s warm-up), ${settings.concurrency} loops`);

    const rounds: { round: number; order: string[]; bare: Run; portcullis: Run; ratio: number }[] = [];
    for (let round = 1; round <= settings.rounds; round += 1) {
      const order = round % 2 === 1 ? [bare, portcullis] : [portcullis, bare];
      const runs = new Map<string, Run>();
      for (const side of order) {
        await drive(side, targetOf(side), settings.warmupSeconds);
        runs.set(side.name, await drive(side, targetOf(side), settings.durationSeconds));
      }
      const result = { round, order: order.map((side) => side.name), bare: runs.get('bare')!, portcullis: runs.get('portcullis')!, ratio: 0 };
      result.ratio = round2(result.portcullis.handshakesPerSecond / result.bare.handshakesPerSecond);
      rounds.push(result);
      console.log(`round ${round} (${result.order.join(', ')}): bare ${result.bare.handshakesPerSecond}/s, portcullis ${result.portcullis.handshakesPerSecond}/s, ratio ${result.ratio}`);
    }

    const summary = (side: 'bare' | 'portcullis') => ({
      handshakesPerSecond: median(rounds.map((round) => round[side].handshakesPerSecond)),
      p50: round2(median(rounds.map((round) => round[side].latencyMs.p50))),
      p99: round2(median(rounds.map((round) => round[side].latencyMs.p99))),
      cpu: round2(median(rounds.map((round) => round[side].cpuMicrosPerHandshake ?? Number.NaN))),
    });
    const bareSummary = summary('bare');
    const portcullisSummary = summary('portcullis');
    const ratio = round2(portcullisSummary.handshakesPerSecond / bareSummary.handshakesPerSecond);
    const ratios = rounds.map((round) => round.ratio);
    console.log(
      `\n${table(
        ['server', 'handshakes/s (median)', 'p50 ms', 'p99 ms', 'server CPU µs/handshake'],
        [
          ['bare node:tls', bareSummary.handshakesPerSecond, bareSummary.p50, bareSummary.p99, round2(bareSummary.cpu)],
          ['portcullis mTLS', portcullisSummary.handshakesPerSecond, portcullisSummary.p50, portcullisSummary.p99, round2(portcullisSummary.cpu)],
        ],
      )}`,
    );
    console.log(`\nratio portcullis / bare: ${ratio} (rounds ${Math.min(...ratios)} to ${Math.max(...ratios)}); aim >= ${GOAL}: ${ratio >= GOAL ? 'met' : 'NOT met'}`);
    console.log(`server CPU per handshake: bare ${round2(bareSummary.cpu)} µs, portcullis ${round2(portcullisSummary.cpu)} µs (x${round2(portcullisSummary.cpu / bareSummary.cpu)})`);
    console.log(`results: ${writeResult('mtls-handshakes', { settings, machine: machine(), rounds, bare: bareSummary, portcullis: portcullisSummary, ratio, goal: GOAL })}`);
  } finally {
    for (const child of children) await child.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
