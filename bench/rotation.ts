/**
 * Does rotating the mTLS listener's certificate and client trust disturb
 * the traffic it carries? The rotation test (test/runtime/mtls-rotation.test.ts)
 * at bench scale: 1 000 keep-alive connections making requests back to
 * back plus loops of new handshakes, across 50 rotations, against the same
 * load without rotations in the same run. The aims: 0 failed requests, 0
 * reset connections, 0 failed handshakes; p99 latency during rotation close
 * to p99 without.
 *
 *   node bench/rotation.ts [--rounds 2] [--connections 1000] [--rotations 50]
 *     [--handshake-loops 4] [--node-flag --cpu-prof ...]
 *
 * The server is servers/portcullis-mtls.ts in a child process. A run is
 * `rotations + 1` count-bounded rounds (test/support/rotation-load.ts): a
 * round ends once every connection has had a request answered and each
 * handshake loop made a handshake; between rounds the rotation runs make
 * the child swap in a new certificate (setSecureContext, as a renewal
 * does) and, every other time, announce a client trust change (a second
 * CA and its CRL in the bundle, then out again), over IPC, waiting for the
 * child's answer; the baseline runs do nothing there. Runs alternate
 * baseline and rotation (ABBA over `rounds`); latencies are those of the
 * keep-alive requests; medians over runs of each kind.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { startChild, URL_LINE, type Child } from './children.ts';
import { giveUpAfter, machine, median, options, percentile, portcullisChildEnvironment, positiveInteger, round2, table, writeResult } from './lib.ts';
import { OpensslCa, type IssuedFiles } from '../test/support/openssl-ca.ts';
import { runRotationLoad } from '../test/support/rotation-load.ts';
import type { TlsTarget } from '../test/support/tls-client.ts';

const settings = {
  rounds: positiveInteger('rounds', 2),
  connections: positiveInteger('connections', 1000),
  rotations: positiveInteger('rotations', 50),
  handshakeLoops: positiveInteger('handshake-loops', 4),
  nodeFlags: ['--disable-warning=ExperimentalWarning', ...options('node-flag')],
};

interface Run {
  readonly kind: 'baseline' | 'rotation';
  readonly seconds: number;
  readonly requests: number;
  readonly failedRequests: number;
  readonly resets: number;
  readonly handshakes: number;
  readonly failedHandshakes: number;
  readonly latencyMs: { readonly p50: number; readonly p99: number; readonly max: number };
  readonly errors: readonly string[];
}

process.once('SIGINT', () => process.exit(130));
giveUpAfter('rotation', (settings.rounds * 2 * 120 + 120) * 1000);

/** Asks the child to rotate and resolves once it says the new context is in force. */
function rotator(child: Child, certificates: readonly IssuedFiles[]): (rotation: number) => Promise<void> {
  return (rotation) =>
    new Promise((resolve, reject) => {
      const next = certificates[(rotation - 1) % certificates.length]!;
      const onMessage = (message: { rotated?: number; failed?: number; reason?: string }) => {
        if (message.rotated === rotation) resolve();
        else if (message.failed === rotation) reject(new Error(`rotation ${rotation} failed: ${message.reason}`));
        else return;
        child.process.off('message', onMessage);
      };
      child.process.on('message', onMessage);
      child.process.send({ rotate: rotation, certFile: next.certFile, keyFile: next.keyFile, trust: rotation % 2 === 0 });
    });
}

async function run(kind: Run['kind'], target: TlsTarget, rotate: (rotation: number) => Promise<void>): Promise<Run> {
  const started = performance.now();
  const result = await runRotationLoad({
    target,
    connections: settings.connections,
    handshakeLoops: settings.handshakeLoops,
    rounds: settings.rotations + 1,
    between: kind === 'rotation' ? rotate : () => undefined,
  });
  const sorted = [...result.latenciesMs].sort((a, b) => a - b);
  return {
    kind,
    seconds: round2((performance.now() - started) / 1000),
    requests: result.requests,
    failedRequests: result.failedRequests,
    resets: result.resets,
    handshakes: result.handshakes,
    failedHandshakes: result.failedHandshakes,
    latencyMs: { p50: round2(percentile(sorted, 50)), p99: round2(percentile(sorted, 99)), max: round2(sorted.at(-1) ?? Number.NaN) },
    errors: result.errors,
  };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-bench-rotation-'));
  let child: Child | undefined;
  try {
    const ca = OpensslCa.create(join(dir, 'ca'), 'Bench CA');
    const extra = OpensslCa.create(join(dir, 'extra'), 'Second bench CA');
    const first = ca.issue('server', { kind: 'server', ipAddresses: ['127.0.0.1'] });
    const certificates = Array.from({ length: settings.rotations }, (_, index) => ca.issue(`rotation-${index + 1}`, { kind: 'server', ipAddresses: ['127.0.0.1'] }));
    const client = ca.issue('client', { kind: 'client' });
    const crlFile = join(dir, 'ca.crl');
    const extraCrlFile = join(dir, 'extra.crl');
    writeFileSync(crlFile, ca.crl());
    writeFileSync(extraCrlFile, extra.crl());
    const { portcullisEnv } = portcullisChildEnvironment({
      PORTCULLIS_TLS_MTLS_PORT: '0',
      PORTCULLIS_TLS_MTLS_CERT_FILE: first.certFile,
      PORTCULLIS_TLS_MTLS_KEY_FILE: first.keyFile,
      BENCH_MTLS_CA_FILE: ca.certFile,
      BENCH_MTLS_CRL_FILE: crlFile,
      BENCH_MTLS_EXTRA_CA_FILE: extra.certFile,
      BENCH_MTLS_EXTRA_CRL_FILE: extraCrlFile,
    });
    child = await startChild('portcullis', [join(import.meta.dirname, 'servers', 'portcullis-mtls.ts')], portcullisEnv, URL_LINE, settings.nodeFlags, 60_000);
    const target: TlsTarget = { port: Number(new URL(child.ready).port), ca: ca.cert, client: { cert: client.cert, key: client.key } };
    const rotate = rotator(child, certificates);
    console.log(`${settings.connections} keep-alive connections + ${settings.handshakeLoops} handshake loops, ${settings.rotations + 1} rounds per run; ${settings.rounds * 2} runs alternating baseline and rotation (${settings.rotations} rotations each)`);

    const runs: Run[] = [];
    for (let round = 1; round <= settings.rounds; round += 1) {
      for (const kind of round % 2 === 1 ? (['baseline', 'rotation'] as const) : (['rotation', 'baseline'] as const)) {
        const result = await run(kind, target, rotate);
        runs.push(result);
        console.log(
          `${kind}: ${result.requests} requests in ${result.seconds} s, ${result.handshakes} handshakes; failed requests ${result.failedRequests}, resets ${result.resets}, failed handshakes ${result.failedHandshakes}; p50 ${result.latencyMs.p50} ms, p99 ${result.latencyMs.p99} ms${result.errors.length > 0 ? `; errors: ${result.errors.join('; ')}` : ''}`,
        );
      }
    }

    const of = (kind: Run['kind']) => runs.filter((result) => result.kind === kind);
    const summary = (kind: Run['kind']) => ({
      requests: of(kind).reduce((sum, result) => sum + result.requests, 0),
      failedRequests: of(kind).reduce((sum, result) => sum + result.failedRequests, 0),
      resets: of(kind).reduce((sum, result) => sum + result.resets, 0),
      handshakes: of(kind).reduce((sum, result) => sum + result.handshakes, 0),
      failedHandshakes: of(kind).reduce((sum, result) => sum + result.failedHandshakes, 0),
      p50: round2(median(of(kind).map((result) => result.latencyMs.p50))),
      p99: round2(median(of(kind).map((result) => result.latencyMs.p99))),
    });
    const baseline = summary('baseline');
    const rotation = summary('rotation');
    console.log(
      `\n${table(
        ['run', 'requests', 'failed requests', 'resets', 'handshakes', 'failed handshakes', 'p50 ms', 'p99 ms'],
        [
          ['baseline', baseline.requests, baseline.failedRequests, baseline.resets, baseline.handshakes, baseline.failedHandshakes, baseline.p50, baseline.p99],
          [`rotation (${settings.rotations} per run)`, rotation.requests, rotation.failedRequests, rotation.resets, rotation.handshakes, rotation.failedHandshakes, rotation.p50, rotation.p99],
        ],
      )}`,
    );
    const failures = rotation.failedRequests + rotation.resets + rotation.failedHandshakes;
    const p99Ratio = round2(rotation.p99 / baseline.p99);
    console.log(`\nfailures during rotation: ${failures} (aim 0: ${failures === 0 ? 'met' : 'NOT met'}); p99 during rotation / without: ${p99Ratio}`);
    console.log(`results: ${writeResult('rotation', { settings, machine: machine(), runs, baseline, rotation, p99Ratio, failures })}`);
    if (failures > 0) process.exitCode = 1;
  } finally {
    await child?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
