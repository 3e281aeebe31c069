/**
 * Portcullis for bench/soak.ts: as servers/portcullis-oauth.ts runs it
 * (config from the environment, a fixed free port so the development issuer
 * is the URL), with the clients, API and accounts of BENCH_OAUTH
 * (./oauth-setup.ts; the web client may refresh), in the data directory
 * BENCH_DATA_DIR that the bench owns: it is kept when this process exits, for
 * `portcullis audit verify` afterwards.
 *
 * Every BENCH_SAMPLE_SECONDS (default 10) it sends its parent, over IPC,
 * `{ type: 'sample', cpuMicros, rssBytes, heapUsedBytes, ..., heapSpacesBytes,
 * loopDelayMs: { p50, p99, max, count } }`: its CPU time so far
 * (process.cpuUsage(), user + system), process.memoryUsage() and the size
 * and use of each V8 heap space at that moment, and the event-loop
 * delay since the previous sample (node:perf_hooks monitorEventLoopDelay,
 * reset at each sample). The histogram records the time between the ticks
 * of its own RESOLUTION_MS timer, so the delay is that minus RESOLUTION_MS
 * (an idle loop gives a few hundredths of a millisecond).
 *
 * Prints `ready {"url", "logKey", "service", "web"}` on stdout once
 * listening (logKey: the audit log's verifier key, to pin when verifying);
 * exits on SIGTERM through the product's own graceful shutdown, or when the
 * parent's IPC channel closes.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { getHeapSpaceStatistics } from 'node:v8';
import { oauthSetupFromEnv, setUpOAuth } from './oauth-setup.ts';
import { startBenchPortcullis } from './start-portcullis.ts';

const RESOLUTION_MS = 10;

const setup = oauthSetupFromEnv();
const dataDir = process.env['BENCH_DATA_DIR'];
if (dataDir === undefined) throw new Error('set BENCH_DATA_DIR');
const sampleMs = Number(process.env['BENCH_SAMPLE_SECONDS'] ?? '10') * 1000;
if (!(sampleMs >= 100)) throw new Error(`BENCH_SAMPLE_SECONDS must be at least 0.1, got ${process.env['BENCH_SAMPLE_SECONDS']}`);

const { running } = await startBenchPortcullis({ fixedPort: true, dataDir });
const clients = await setUpOAuth(running, { ...setup, refresh: true });

const delay = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
delay.enable();
const lateMs = (nanoseconds: number) => Math.max(0, nanoseconds / 1e6 - RESOLUTION_MS);
setInterval(() => {
  const memory = process.memoryUsage();
  const cpu = process.cpuUsage();
  process.send?.({
    type: 'sample',
    cpuMicros: cpu.user + cpu.system,
    rssBytes: memory.rss,
    heapUsedBytes: memory.heapUsed,
    heapTotalBytes: memory.heapTotal,
    externalBytes: memory.external,
    arrayBuffersBytes: memory.arrayBuffers,
    // Which V8 spaces the heap's size is in (new space grows and shrinks with the allocation rate; old space holds what lives on).
    heapSpacesBytes: Object.fromEntries(getHeapSpaceStatistics().map((space) => [space.space_name, { size: space.space_size, used: space.space_used_size }])),
    loopDelayMs: { p50: lateMs(delay.percentile(50)), p99: lateMs(delay.percentile(99)), max: lateMs(delay.max), count: delay.count },
  });
  delay.reset();
}, sampleMs).unref();

process.stdout.write(`ready ${JSON.stringify({ url: running.url, logKey: running.ledger.verifierKey, ...clients })}\n`);
