/**
 * How long from asking for an erasure until every recipient has been told
 * (issue 15: "Erasure time to delivered for 10 recipients: p99 over 100
 * erasures. Aim < 60 s.")
 *
 *   node --disable-warning=ExperimentalWarning bench/privacy-erasure.ts
 *     [--erasures 100] [--recipients 10]
 *     [--driver sqlite|postgres]      default: sqlite, and postgres+redis if URLs are given
 *     [--database postgres://...]     default: PORTCULLIS_TEST_DATABASE_URL
 *     [--redis redis://...]           default: PORTCULLIS_TEST_REDIS_URL
 *
 * One Portcullis in this process (the serve profile: listener, outbox
 * worker, privacy job) on a temporary data directory, and one HTTP receiver
 * on loopback (privacy.notifyPrivateNetworks) standing for the recipients:
 * `--recipients` clients, each registered with its erasure_notification_uri
 * there, answering 202. For each erasure, untimed: a new user, made a
 * recipient's data subject for every client (DataRecipients.record, what a
 * code issuance records). Timed: from Erasures.request (admin channel, no
 * grace) until the erasure record shows every recipient `delivered`, heard
 * through the events hub (privacy.recipient.notified), so nothing polls.
 * Checked after each erasure: the receiver got exactly one SET per client
 * naming the user; after the run, one SET's signature is verified against
 * the server's JWKS (jose).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLocalJWKSet, decodeJwt, jwtVerify } from 'jose';
import { loadConfig, type ConfigInput } from '../src/config/index.ts';
import { validateClientMetadata } from '../src/oauth/index.ts';
import { startPortcullis, type RunningPortcullis } from '../src/server/lifecycle.ts';
import { giveUpAfter, machine, median, option, percentile, positiveInteger, round2, runSql, table, writeResult } from './lib.ts';

const settings = {
  erasures: positiveInteger('erasures', 100),
  recipients: positiveInteger('recipients', 10),
};
const onlyDriver = option('driver');
if (onlyDriver !== undefined && onlyDriver !== 'sqlite' && onlyDriver !== 'postgres') throw new Error(`--driver must be sqlite or postgres, got "${onlyDriver}"`);
const databaseUrl = option('database') ?? (process.env['PORTCULLIS_TEST_DATABASE_URL'] || undefined);
const redisUrl = option('redis') ?? (process.env['PORTCULLIS_TEST_REDIS_URL'] || undefined);
const AIM_MS = 60_000;
giveUpAfter('privacy-erasure', 20 * 60_000);

/** The recipients' side: every SET received, by the user it names. */
class Receiver {
  readonly received = new Map<string, { aud: string; set: string }[]>();
  #server: Server | undefined;
  url = '';

  async start(): Promise<void> {
    this.#server = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        const set = Buffer.concat(chunks).toString('utf8');
        const claims = decodeJwt(set) as { aud?: string; sub_id?: { sub?: string } };
        const sub = claims.sub_id?.sub ?? 'unknown';
        const list = this.received.get(sub) ?? [];
        list.push({ aud: String(claims.aud), set });
        this.received.set(sub, list);
        // RFC 8935 section 2.2: accepted.
        response.writeHead(202).end();
      });
    });
    await new Promise<void>((resolve) => this.#server!.listen(0, '127.0.0.1', resolve));
    const address = this.#server.address();
    if (address === null || typeof address !== 'object') throw new Error('the receiver has no address');
    this.url = `http://127.0.0.1:${address.port}/erasure`;
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.#server?.close(() => resolve()));
  }
}

async function runDriver(driver: 'sqlite' | 'postgres'): Promise<{ driver: string; ms: number[] }> {
  const dataDir = mkdtempSync(join(tmpdir(), 'portcullis-bench-erasure-'));
  const schema = `bench_erasure_${randomBytes(4).toString('hex')}`;
  const receiver = new Receiver();
  await receiver.start();
  let running: RunningPortcullis | undefined;
  try {
    const overrides: ConfigInput = { port: 0, dataDir, log: { level: 'warn' }, privacy: { notifyPrivateNetworks: true } };
    const env: Record<string, string> = {};
    if (driver === 'postgres') {
      await runSql(databaseUrl!, `CREATE SCHEMA ${schema}`);
      Object.assign(env, { PORTCULLIS_DATABASE_URL: databaseUrl!, PORTCULLIS_DATABASE_SCHEMA: schema, PORTCULLIS_REDIS_URL: redisUrl!, PORTCULLIS_REDIS_KEY_PREFIX: `${schema}:` });
    }
    const config = loadConfig({ env, overrides });
    running = await startPortcullis(config, { logDestination: { write: () => true } as unknown as NodeJS.WritableStream });
    const oauth = running.authorizationServer;
    const erasure = running.runtime.get('erasure');
    const clientIds: string[] = [];
    for (let i = 0; i < settings.recipients; i++) {
      const metadata = validateClientMetadata({ client_name: `bench recipient ${i}`, redirect_uris: ['https://app.example/cb'], erasure_notification_uri: receiver.url }, { allowedScopes: ['openid'] });
      clientIds.push((await oauth.clients.register(metadata, { actor: 'bench' }, { approved: true })).client.client_id);
    }
    // Heard through the hub: each recipient's delivery is one privacy.recipient.notified event. Every event is
    // counted by its erasure from the start, so a delivery that lands before request() resolves (and so before
    // the erasure's id is known here) is not missed.
    const notified = new Map<string, number>();
    const waiters = new Map<string, () => void>();
    running.events.on('privacy.recipient.notified', (event) => {
      const erasureId = String(event.detail?.['erasure'] ?? '');
      const count = (notified.get(erasureId) ?? 0) + 1;
      notified.set(erasureId, count);
      if (count === settings.recipients) waiters.get(erasureId)?.();
    });
    const identity = running.identity;
    const times: number[] = [];
    for (let n = 0; n < settings.erasures; n++) {
      const user = await identity.accounts.createUser(`erasure-bench-${n}-${randomBytes(4).toString('hex')}@example.test`, null, { actor: 'bench' });
      for (const clientId of clientIds) await oauth.recipients.record(user.id, clientId);
      const start = performance.now();
      const outcome = await erasure.erasures.request(user.id, { channel: 'admin', actorService: 'bench' }, { grace: false });
      const id = outcome.erasure.id;
      if ((notified.get(id) ?? 0) < settings.recipients) {
        await new Promise<void>((resolve) => waiters.set(id, resolve));
        waiters.delete(id);
      }
      notified.delete(id);
      const record = await erasure.erasures.get(id);
      if (record?.recipients.some((recipient) => recipient.state !== 'delivered')) throw new Error(`erasure ${n}: every recipient was notified, but its record says otherwise`);
      times.push(performance.now() - start);
      const sets = receiver.received.get(user.id) ?? [];
      if (sets.length !== settings.recipients || new Set(sets.map((set) => set.aud)).size !== settings.recipients) throw new Error(`erasure ${n}: the receiver got ${sets.length} SETs for ${settings.recipients} clients`);
    }
    // One SET, verified as a recipient would.
    const jwks = (await (await fetch(`${running.url}/jwks`)).json()) as { keys: object[] };
    const sample = [...receiver.received.values()][0]![0]!;
    const verified = await jwtVerify(sample.set, createLocalJWKSet(jwks as never), { issuer: config.issuer, audience: sample.aud, typ: 'secevent+jwt' });
    const events = verified.payload['events'] as Record<string, unknown> | undefined;
    if (events?.['https://schemas.openid.net/secevent/risc/event-type/account-purged'] === undefined) throw new Error('the SET is not account-purged');
    return { driver: driver === 'sqlite' ? 'sqlite' : 'postgres+redis', ms: times };
  } finally {
    await running?.stop();
    await receiver.close();
    rmSync(dataDir, { recursive: true, force: true });
    if (driver === 'postgres') await runSql(databaseUrl!, `DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => undefined);
  }
}

const drivers: ('sqlite' | 'postgres')[] = onlyDriver !== undefined ? [onlyDriver] : databaseUrl !== undefined && redisUrl !== undefined ? ['sqlite', 'postgres'] : ['sqlite'];
const results = [];
for (const driver of drivers) results.push(await runDriver(driver));
const rows = results.map((result) => [result.driver, settings.erasures, settings.recipients, round2(median(result.ms)), round2(percentile(result.ms, 99)), round2(Math.max(...result.ms)), percentile(result.ms, 99) < AIM_MS ? 'met' : 'NOT met']);
console.log(table(['deployment', 'erasures', 'recipients each', 'p50 ms', 'p99 ms', 'max ms', `aim p99 < ${AIM_MS / 1000} s`], rows));
console.log(`results: ${writeResult('privacy-erasure', { machine: machine(), settings, results })}`);
