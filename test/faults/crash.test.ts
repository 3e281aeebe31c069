/**
 * No acknowledged write is lost (issue 16). A burst of sign-ins and token
 * grants (each of which writes an audit entry: `auth.login.succeeded`,
 * `token.issued` with the token's jti) runs from bounded loops on loopback
 * against `portcullis serve` as a process, and in the middle of it:
 *
 * 1. the server is killed with SIGKILL (embedded SQLite), then started
 *    again on the same data directory;
 * 2. its PostgreSQL (a throwaway cluster of the test's own, with the local
 *    SQLite hot store) is stopped with `pg_ctl stop -m immediate`; requests
 *    meanwhile are answered 503, never 500; the cluster is started again.
 *
 * Afterwards every acknowledged request has its effect: a sign-in that was
 * answered with its redirect to /account has a session its cookie still
 * opens (`/account/session.json`) and a login entry in the ledger; a token
 * that was answered 200 has its `token.issued` entry (by jti) in the ledger;
 * and `portcullis audit verify` (the real binary) passes (after the kill,
 * also on the ledger as the kill left it, before the restart). While
 * PostgreSQL is down every sign-in and token grant is a 503 with
 * Retry-After; once it is back, grants and a sign-in succeed again
 * without restarting the server.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { decodeJwt } from 'jose';
import { BrowserlessClient, csrfField } from '../support/browserless-client.ts';
import { initDeployment, runCli } from '../support/cli.ts';
import { startOwnPostgres, type OwnPostgres } from '../support/own-postgres.ts';
import { freePort, runBinary, spawnServe, within, type ServeProcess } from '../support/process.ts';

const WORKERS = 6;
/** Each worker's loop is bounded: the burst never runs on without a fault. */
const MAX_PER_WORKER = 400;
const PASSWORD = 'a long enough passphrase here';
/**
 * The sign-in throttle counts every attempt on an account, successful or
 * not (and those a store outage refused), and gates the account from its
 * 10th attempt in 15 minutes: each person is tried at most
 * SIGN_INS_PER_USER times, by a browser from an address of its own.
 */
const USERS = Array.from({ length: 12 }, (_, index) => `person${index}@example.com`);
const SIGN_INS_PER_USER = 8;
/** Signs in once after the outage, to show sign-in works again. */
const AFTERWARDS = 'afterwards@example.com';

interface Client {
  readonly id: string;
  readonly secret: string;
}

/** What one answered request should have left behind. */
type Acknowledged = { readonly kind: 'token'; readonly jti: string } | { readonly kind: 'sign-in'; readonly email: string; readonly browser: BrowserlessClient };

interface Answer {
  readonly kind: 'token' | 'sign-in';
  readonly status: number;
  readonly phase: string;
  readonly error?: string;
  readonly retryAfter?: string | null;
}

describe('no acknowledged write is lost', () => {
  const dirs: string[] = [];
  const processes: ServeProcess[] = [];
  let postgres: OwnPostgres | undefined;
  after(async () => {
    for (const serve of processes) if (serve.child.exitCode === null && serve.child.signalCode === null) serve.child.kill('SIGKILL');
    await postgres?.remove();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  /** A deployment (users and a client made through the CLI) and a way to start `portcullis serve` on it. */
  async function deployment(prefix: string, config: Record<string, unknown>) {
    const port = await freePort();
    const issuer = `http://127.0.0.1:${port}`;
    const { dir, configFile } = await initDeployment(prefix, { issuer, port, log: { level: 'info' }, identity: { maxSessionsPerUser: 1000 }, trustProxy: ['loopback'], ...config });
    dirs.push(dir);
    for (const email of [...USERS, AFTERWARDS]) {
      const created = await runCli(['user', 'create', '--config', configFile, '--email', email, '--password-stdin'], `${PASSWORD}\n`);
      assert.equal(created.code, 0, created.err.join('\n'));
    }
    const made = await runCli(['client', 'create', '--config', configFile, '--name', 'Crash probe', '--grant-type', 'client_credentials', '--json']);
    assert.equal(made.code, 0, made.err.join('\n'));
    const created = JSON.parse(made.out.join('\n')) as { client_id: string; client_secret: string };
    const client: Client = { id: created.client_id, secret: created.client_secret };
    const serve = async (): Promise<ServeProcess> => {
      const started = await spawnServe(['--config', configFile], { cwd: dir, env: {} });
      processes.push(started);
      return started;
    };
    return { issuer, dir, configFile, client, serve };
  }

  it('kill -9 of the server (embedded SQLite) in the middle of a burst', async () => {
    const { issuer, dir, configFile, client, serve } = await deployment('portcullis-crash-', {});
    let server = await serve();
    const burst = new Burst(issuer, client);
    await burst.until(() => burst.acknowledged.length >= 60);
    server.child.kill('SIGKILL');
    burst.enter('killed');
    await within(server.stop(), 10_000, 'the killed server to exit');
    await burst.stop();
    const before = burst.acknowledged.length;
    const lost = burst.answers.filter((answer) => answer.status === 0).length;
    assert.ok(before >= 60 && lost >= 1, `the kill came in the middle of the burst (${before} acknowledged, ${lost} requests cut off)`);
    // The ledger as the kill left it, before any restart could repair it, verifies.
    await verifyAudit(dir, configFile);

    server = await serve();
    const checked = await checkEffects(issuer, burst.acknowledged, async () => {
      assert.equal(await server.stop(), 0);
      return ledger(configFile);
    });
    await verifyAudit(dir, configFile);
    console.log(`kill -9: ${before} acknowledged before the kill (${count(burst.acknowledged, 'token')} tokens, ${count(burst.acknowledged, 'sign-in')} sign-ins), ${lost} cut off by it; ${checked} effects checked after the restart`);
  });

  it('PostgreSQL stopped hard (pg_ctl stop -m immediate) in the middle of a burst', async () => {
    postgres = await startOwnPostgres();
    const { issuer, dir, configFile, client, serve } = await deployment('portcullis-pg-crash-', { database: { url: postgres.url } });
    let server = await serve();
    const burst = new Burst(issuer, client);
    await burst.until(() => burst.acknowledged.length >= 60);
    burst.enter('stopping');
    await postgres.stopImmediately();
    const beforeStop = burst.acknowledged.length;
    burst.enter('down');
    await burst.until((answers) => answers.filter((answer) => answer.phase === 'down').length >= 30);
    burst.enter('starting');
    await postgres.start();
    burst.enter('back');
    await within(
      burst.until((answers) => answers.filter((answer) => answer.phase === 'back' && answer.status === 200).length >= 10),
      20_000,
      'requests to succeed again after PostgreSQL is back',
    );
    await burst.stop();
    assert.ok(await burst.signIn(issuer, AFTERWARDS, '10.99.0.1', 'afterwards'), `sign-in works again: ${burst.summary()}`);

    const { answers } = burst;
    const odd = answers.filter((answer) => answer.status !== 200 && answer.status !== 303 && answer.status !== 503);
    assert.deepEqual(odd.map((answer) => `${answer.phase} ${answer.kind} ${answer.status}`), [], `every answer is a success or a 503: no 500, no lost connection (${burst.summary()}; first: ${odd[0]?.error})`);
    const down = answers.filter((answer) => answer.phase === 'down');
    assert.ok(down.length >= 30);
    assert.deepEqual(
      down.filter((answer) => answer.status !== 503),
      [],
      'while PostgreSQL is down, every sign-in and every token grant is a 503',
    );
    const refusals = answers.filter((answer) => answer.status === 503);
    assert.deepEqual(refusals.filter((answer) => !(Number(answer.retryAfter) >= 1)), [], 'each 503 says when to retry (Retry-After)');
    assert.ok(refusals.filter((answer) => answer.kind === 'token').every((answer) => answer.error === 'temporarily_unavailable'), 'a refused token request is temporarily_unavailable');

    // The server is restarted too, so that what is checked comes from the stores, not from its memory.
    assert.equal(await server.stop(), 0);
    server = await serve();
    const checked = await checkEffects(issuer, burst.acknowledged, async () => {
      assert.equal(await server.stop(), 0);
      return ledger(configFile);
    });
    await verifyAudit(dir, configFile);
    console.log(`pg immediate stop: ${beforeStop} acknowledged before the stop, ${burst.acknowledged.length} in all; ${refusals.length} answered 503 (${down.length} while down); ${checked} effects checked`);
  });
});

function count(acknowledged: readonly Acknowledged[], kind: Acknowledged['kind']): number {
  return acknowledged.filter((entry) => entry.kind === kind).length;
}

/** `WORKERS` loops alternating sign-ins and token grants until stop() (or MAX_PER_WORKER each). */
class Burst {
  readonly acknowledged: Acknowledged[] = [];
  readonly answers: Answer[] = [];
  #phase = 'before';
  #running = true;
  #signIns = 0;
  readonly #loops: Promise<void>[];

  constructor(issuer: string, client: Client) {
    this.#loops = Array.from({ length: WORKERS }, async (_, worker) => {
      for (let round = 0; round < MAX_PER_WORKER && this.#running; round += 1) {
        const phase = this.#phase;
        const person = (round + worker) % 3 === 0 ? this.#nextPerson() : undefined;
        if (person !== undefined) await this.signIn(issuer, person, `10.${worker}.${round >> 8}.${round & 255}`, phase);
        else await this.#grant(issuer, client, phase);
      }
    });
  }

  /** The next person with sign-ins left, round the list; none once every one has had SIGN_INS_PER_USER. */
  #nextPerson(): string | undefined {
    if (this.#signIns >= USERS.length * SIGN_INS_PER_USER) return undefined;
    const person = USERS[this.#signIns % USERS.length];
    this.#signIns += 1;
    return person;
  }

  enter(phase: string): void {
    this.#phase = phase;
  }

  /** Resolves once `done(answers)` holds (bounded: fails if every loop has ended first). */
  async until(done: (answers: readonly Answer[]) => boolean): Promise<void> {
    let ended = false;
    void Promise.all(this.#loops).then(() => (ended = true));
    while (!done(this.answers)) {
      if (ended) throw new Error(`the burst ended before the condition held: ${this.summary()}`);
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  /** How many answers of each status came in each phase, and the first error of each. */
  summary(): string {
    const counts = new Map<string, { count: number; error?: string | undefined }>();
    for (const answer of this.answers) {
      const key = `${answer.phase} ${answer.kind} ${answer.status}`;
      const seen = counts.get(key) ?? { count: 0, error: answer.error };
      counts.set(key, { ...seen, count: seen.count + 1 });
    }
    return [...counts].map(([key, { count, error }]) => `${key}: ${count}${error !== undefined ? ` (${error.slice(0, 300)})` : ''}`).join('; ');
  }

  async stop(): Promise<void> {
    this.#running = false;
    await Promise.all(this.#loops);
  }

  async #grant(issuer: string, client: Client, phase: string): Promise<void> {
    try {
      const response = await fetch(`${issuer}/token`, {
        method: 'POST',
        headers: { authorization: `Basic ${Buffer.from(`${client.id}:${client.secret}`).toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'client_credentials' }).toString(),
      });
      const body = (await response.json()) as { access_token?: string; error?: string };
      this.answers.push({ kind: 'token', status: response.status, phase, retryAfter: response.headers.get('retry-after'), ...(body.error !== undefined && { error: body.error }) });
      if (response.status === 200) this.acknowledged.push({ kind: 'token', jti: String(decodeJwt(body.access_token!).jti) });
    } catch (error) {
      // The server died under the request: it may or may not have done it, and it said nothing.
      this.answers.push({ kind: 'token', status: 0, phase, error: String(error) });
    }
  }

  /**
   * From an address of its own (the server trusts the loopback proxy): the
   * sign-in throttle counts every attempt, including those a store outage
   * refused with 503, and would otherwise lock the one loopback address out.
   */
  async signIn(issuer: string, email: string, ip: string, phase: string): Promise<boolean> {
    const browser = new BrowserlessClient(issuer, { ip });
    try {
      const form = await browser.get('/login');
      if (form.status !== 200) {
        this.answers.push({ kind: 'sign-in', status: form.status, phase, error: form.body.slice(0, 200) });
        return false;
      }
      const answer = await browser.post('/login', { _csrf: csrfField(form.body)!, email, password: PASSWORD });
      // The acknowledgment of a sign-in is its redirect to the account page, with the session cookie.
      const signedIn = answer.status === 303 && answer.location === '/account';
      this.answers.push({ kind: 'sign-in', status: signedIn ? 303 : answer.status, phase, retryAfter: answer.headers.get('retry-after'), ...(!signedIn && { error: `${answer.status} ${answer.location ?? ''} ${answer.body.replace(/<[^>]*>/g, ' ').replace(/\s+/g, ' ').slice(0, 300)}` }) });
      if (signedIn) this.acknowledged.push({ kind: 'sign-in', email, browser });
      return signedIn;
    } catch (error) {
      this.answers.push({ kind: 'sign-in', status: 0, phase, error: String(error) });
      return false;
    }
  }
}

interface LedgerEntry {
  readonly type?: string;
  readonly actor?: string;
  readonly detail?: Record<string, unknown>;
}

/** Every entry of the deployment's ledger, through `portcullis audit export`. */
async function ledger(configFile: string): Promise<LedgerEntry[]> {
  const exported = await runCli(['audit', 'export', '--config', configFile]);
  assert.equal(exported.code, 0, exported.err.join('\n'));
  return exported.out
    .join('\n')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as LedgerEntry | { entry: LedgerEntry })
    .map((line) => ('entry' in line ? line.entry : line));
}

/**
 * Each acknowledged sign-in's cookie still opens its session; then (the
 * server stopped by `entries`) the ledger holds a `token.issued` entry for
 * each acknowledged token, and at least as many logins per person as were
 * acknowledged. Returns how many requests' effects were checked (a session
 * and a token entry each).
 */
async function checkEffects(issuer: string, acknowledged: readonly Acknowledged[], entries: () => Promise<LedgerEntry[]>): Promise<number> {
  let checked = 0;
  const signIns = acknowledged.filter((entry) => entry.kind === 'sign-in');
  for (const signIn of signIns) {
    const session = await signIn.browser.get('/account/session.json');
    assert.equal(session.status, 200, `the session of an acknowledged sign-in of ${signIn.email} still exists: ${session.body}`);
    assert.equal((JSON.parse(session.body) as { email: string }).email, signIn.email);
    checked += 1;
  }
  const ledgerEntries = await entries();
  const issued = new Set(ledgerEntries.filter((entry) => entry.type === 'token.issued').map((entry) => entry.detail?.['jti']));
  for (const token of acknowledged) {
    if (token.kind !== 'token') continue;
    assert.ok(issued.has(token.jti), `the token ${token.jti} was answered 200, so its token.issued entry is in the ledger`);
    checked += 1;
  }
  const logins = ledgerEntries.filter((entry) => entry.type === 'auth.login.succeeded').length;
  assert.ok(logins >= signIns.length, `${signIns.length} acknowledged sign-ins, ${logins} login entries in the ledger`);
  return checked;
}

/** `portcullis audit verify` (the real binary) on the deployment passes. */
async function verifyAudit(dir: string, configFile: string): Promise<void> {
  const verified = await runBinary(['audit', 'verify', '--config', configFile], { cwd: dir, timeoutMs: 30_000 });
  assert.equal(verified.code, 0, `audit verify: ${verified.stdout} ${verified.stderr}`);
}
