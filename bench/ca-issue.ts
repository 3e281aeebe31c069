/**
 * How fast does the built-in CA turn a CSR into a signed chain? Certificates
 * per second, in-process (CertificateAuthority.issue on the embedded SQLite
 * store, with its ledger entry) and over HTTP (POST /ca/sign with a
 * ca:issue access token, on a real Portcullis in a child process), against
 * the raw node:crypto ECDSA P-256 sign rate in the same run. The aim:
 * issued/s >= 0.25 x signs/s.
 *
 *   node bench/ca-issue.ts [--rounds 5] [--duration 3] [--concurrency 8]
 *
 * Issuing one certificate is more than one signature: the CSR's signature
 * is verified (an ECDSA verify costs about twice a sign), the certificate
 * is built and signed, its record written, and its ledger entry made
 * durable before the answer. The raw side is one loop of synchronous
 * `crypto.sign('sha256', 400 bytes, P-256 key)`; the CA sides run
 * `concurrency` loops. The order of the sides flips every round (ABBA), and
 * the table reports medians over rounds.
 */
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { auditedEvents, openLedger } from '../src/audit/index.ts';
import { KeyVault } from '../src/crypto/index.ts';
import { loadConfig } from '../src/config/index.ts';
import { CertificateAuthority } from '../src/pki/index.ts';
import { openStores, systemClock } from '../src/store/index.ts';
import { startChild, URL_LINE } from './children.ts';
import { giveUpAfter, machine, median, positiveInteger, round2, table, writeResult } from './lib.ts';

const GOAL = 0.25;
const SPIFFE_ID = 'spiffe://bench.test/ns/bench/sa/worker';
const rounds = positiveInteger('rounds', 5);
const seconds = positiveInteger('duration', 3);
const concurrency = positiveInteger('concurrency', 8);
giveUpAfter('ca-issue', 15 * 60_000);

const scratch = mkdtempSync(join(tmpdir(), 'portcullis-bench-ca-'));
process.on('exit', () => rmSync(scratch, { recursive: true, force: true }));
// The CSR comes from Debian's openssl, as a workload's would.
execFileSync('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(scratch, 'key.pem'), '-out', join(scratch, 'csr.pem'), '-subj', '/CN=bench', '-addext', `subjectAltName=URI:${SPIFFE_ID}`], { stdio: 'ignore' });
const csr = readFileSync(join(scratch, 'csr.pem'), 'utf8');

/** Operations per second of `loops` loops of `operation` for `seconds`. */
async function rate(loops: number, operation: () => unknown): Promise<number> {
  const deadline = performance.now() + seconds * 1000;
  let done = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: loops }, async () => {
      while (performance.now() < deadline) {
        await operation();
        done += 1;
      }
    }),
  );
  return done / ((performance.now() - start) / 1000);
}

// Raw: the machine's ECDSA P-256 signing rate, one core.
const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const tbs = randomBytes(400);
const raw = () => rate(1, () => sign('sha256', tbs, { key: privateKey, dsaEncoding: 'der' }));

// In-process: the CA on the embedded store, as `serve` opens it.
const config = loadConfig({ env: {}, overrides: { dataDir: join(scratch, 'data'), pki: { trustDomain: 'bench.test' } } });
const stores = await openStores(config);
await stores.durable.migrate();
const vault = KeyVault.generate();
const ledger = await openLedger({ log: stores.durable.auditLog, records: stores.durable.records, vault, issuer: config.issuer, clock: systemClock, audit: config.audit });
const authority = await CertificateAuthority.open({ records: stores.durable.records, vault, clock: systemClock, events: auditedEvents(ledger), issuer: config.issuer, trustDomain: 'bench.test', defaultTtlMs: 86_400_000, maxTtlMs: 86_400_000, crlTtlMs: 3_600_000 });
await authority.initialise({ keepRootOffline: false });
const inProcess = () => rate(concurrency, () => authority.issue({ csr, allowed: [SPIFFE_ID], requestedBy: 'bench' }));

// Over HTTP: a real server in a child process.
const server = await startChild('portcullis', [join(import.meta.dirname, 'servers', 'portcullis-ca.ts')], { ...process.env, PORTCULLIS_LOG_LEVEL: 'warn', BENCH_CA_SPIFFE_ID: SPIFFE_ID }, /^ready /, ['--disable-warning=ExperimentalWarning'], 60_000);
const ready = JSON.parse(server.ready.slice('ready '.length)) as { url: string; client: { id: string; secret: string } };
if (!URL_LINE.test(ready.url)) throw new Error(`not a URL: ${ready.url}`);
const dispatcher = new Agent({ connections: concurrency });
const tokenResponse = await request(`${ready.url}/token`, {
  method: 'POST',
  dispatcher,
  headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${ready.client.id}:${ready.client.secret}`).toString('base64')}` },
  body: 'grant_type=client_credentials&scope=ca%3Aissue',
});
const { access_token: accessToken } = (await tokenResponse.body.json()) as { access_token: string };
const body = JSON.stringify({ csr });
const overHttp = () =>
  rate(concurrency, async () => {
    const response = await request(`${ready.url}/ca/sign`, { method: 'POST', dispatcher, headers: { 'content-type': 'application/json', authorization: `Bearer ${accessToken}` }, body });
    await response.body.text();
    if (response.statusCode !== 201) throw new Error(`POST /ca/sign answered ${response.statusCode}`);
  });

const sides = { raw, 'in-process': inProcess, http: overHttp } as const;
type Side = keyof typeof sides;
const results: Record<Side, number[]> = { raw: [], 'in-process': [], http: [] };
// Warm-up of each side.
for (const side of Object.keys(sides) as Side[]) await sides[side]();
for (let round = 0; round < rounds; round++) {
  const order = (Object.keys(sides) as Side[])[round % 2 === 0 ? 'slice' : 'reverse']();
  for (const side of order) results[side].push(await sides[side]());
}

await dispatcher.close();
await server.stop();
await ledger.close();
await stores.close();

const rawMedian = median(results.raw);
const rows = (Object.keys(sides) as Side[]).map((side) => [side, Math.round(median(results[side])), round2(median(results[side]) / rawMedian)]);
console.log(table(['side', 'per second (median)', 'ratio to raw sign'], rows));
const ratios = { inProcess: median(results['in-process']) / rawMedian, http: median(results.http) / rawMedian };
console.log(`goal: issued/s >= ${GOAL} x raw ECDSA P-256 signs/s -> in-process ${ratios.inProcess >= GOAL ? 'met' : 'missed'}, http ${ratios.http >= GOAL ? 'met' : 'missed'}`);
console.log(writeResult('ca-issue', { machine: machine(), rounds, seconds, concurrency, results, ratios }));
