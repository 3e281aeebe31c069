/**
 * Durability of security signals across a crash (issue 13): `portcullis
 * serve` runs as a process; a burst of token revocations is under way when
 * the process is killed with SIGKILL. After a restart on the same data,
 * every revocation that was answered 2xx arrives as a SET on the receiver's
 * poll stream, none twice under different ids, and a SET that was fetched
 * before the crash and not acknowledged comes again with the same `jti`.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { decodeJwt } from 'jose';
import { SECURITY_EVENT_TYPES } from '../../src/sdk/index.ts';
import { initDeployment, runCli } from '../support/cli.ts';
import { freePort, spawnServe, within, type ServeProcess } from '../support/process.ts';

const TOKENS = 120;
const KILL_AFTER = 50;

describe('signals survive kill -9 in the middle of a burst', () => {
  const dirs: string[] = [];
  const processes: ServeProcess[] = [];
  after(async () => {
    for (const serve of processes) if (serve.child.exitCode === null && serve.child.signalCode === null) serve.child.kill('SIGKILL');
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  it('delivers every acknowledged revocation after the restart; repeats carry the same jti', async () => {
    const port = await freePort();
    const issuer = `http://127.0.0.1:${port}`;
    const { dir, configFile } = await initDeployment('portcullis-signal-crash-', { issuer, port, log: { level: 'info' } });
    dirs.push(dir);
    const serve = (): Promise<ServeProcess> => spawnServe(['--config', configFile], { cwd: dir, env: {} }).then((started) => (processes.push(started), started));

    // An API whose tokens are revoked, and a receiver of the signals.
    assert.equal((await runCli(['resource', 'create', '--config', configFile, '--uri', 'https://api.example.com', '--scope', 'api:read'])).code, 0);
    const api = await createClient(configFile, 'api:read');
    const receiver = await createClient(configFile, 'ssf:stream');
    let server = await serve();
    const receiverToken = await token(issuer, receiver, 'ssf:stream');
    const stream = await fetch(`${issuer}/signals/stream`, {
      method: 'POST',
      headers: { authorization: `Bearer ${receiverToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ delivery: { method: 'urn:ietf:rfc:8936' }, events_requested: [SECURITY_EVENT_TYPES.tokensRevoked] }),
    });
    assert.equal(stream.status, 201);
    const streamId = ((await stream.json()) as { stream_id: string }).stream_id;
    const tokens = await Promise.all(Array.from({ length: TOKENS }, () => token(issuer, api, 'api:read')));

    // The burst: revocations from 8 concurrent callers; SIGKILL once KILL_AFTER were answered.
    const answered = new Set<string>();
    let killed = false;
    const queue = [...tokens];
    const callers = Array.from({ length: 8 }, async () => {
      for (let next = queue.shift(); next !== undefined && !killed; next = queue.shift()) {
        try {
          const response = await fetch(`${issuer}/revoke`, { method: 'POST', headers: { authorization: basic(api), 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ token: next }).toString() });
          if (response.ok) answered.add(String(decodeJwt(next).jti));
        } catch {
          // The server died under this request: it may or may not have revoked it.
        }
        if (answered.size >= KILL_AFTER && !killed) {
          killed = true;
          server.child.kill('SIGKILL');
        }
      }
    });
    // Before the kill, one poll fetches some SETs without acknowledging them.
    const early = await pollOnce(issuer, receiverToken, streamId, { returnImmediately: false, maxEvents: 5 }).catch(() => ({}));
    await Promise.all(callers);
    assert.ok(killed, 'the server was killed in the middle of the burst');
    // Resolves once the killed process has exited (a signal, so no exit code).
    await server.stop();
    assert.ok(answered.size >= KILL_AFTER && answered.size < TOKENS, `killed mid-burst (${answered.size} of ${TOKENS} answered)`);
    server = await serve();
    const byRevokedJti = new Map<string, string>();
    const setJtis = new Map<string, string>();
    let acks: string[] = [];
    await within(
      (async () => {
        while ([...answered].some((jti) => !byRevokedJti.has(jti))) {
          const sets = await pollOnce(issuer, receiverToken, streamId, { returnImmediately: false, ack: acks, maxEvents: 100 });
          acks = Object.keys(sets);
          for (const [setJti, set] of Object.entries(sets)) {
            const payload = decodeJwt(set) as { jti: string; txn: string; events: Record<string, { jti?: string[] }> };
            assert.equal(payload.jti, setJti);
            for (const revoked of payload.events[SECURITY_EVENT_TYPES.tokensRevoked]?.jti ?? []) {
              const earlier = byRevokedJti.get(revoked);
              assert.ok(earlier === undefined || earlier === setJti, `revocation ${revoked} arrived under two SET ids`);
              byRevokedJti.set(revoked, setJti);
            }
            setJtis.set(setJti, set);
          }
        }
      })(),
      30_000,
      'every acknowledged revocation to arrive after the restart',
    );
    for (const jti of answered) assert.ok(byRevokedJti.has(jti), `the revocation of ${jti} was answered 2xx, so its SET must arrive`);
    for (const [setJti] of Object.entries(early)) assert.ok(setJtis.has(setJti), 'a SET fetched before the crash and not acknowledged comes again with the same jti');
    await server.stop();
  });
});

interface Client {
  readonly id: string;
  readonly secret: string;
}

async function createClient(configFile: string, scope: string): Promise<Client> {
  const run = await runCli(['client', 'create', '--config', configFile, '--name', `signals ${scope}`, '--grant-type', 'client_credentials', '--scope', scope, '--json']);
  assert.equal(run.code, 0, run.err.join('\n'));
  const created = JSON.parse(run.out.join('\n')) as { client_id: string; client_secret: string };
  return { id: created.client_id, secret: created.client_secret };
}

function basic(client: Client): string {
  return `Basic ${Buffer.from(`${client.id}:${client.secret}`).toString('base64')}`;
}

async function token(issuer: string, client: Client, scope: string): Promise<string> {
  const response = await fetch(`${issuer}/token`, { method: 'POST', headers: { authorization: basic(client), 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ grant_type: 'client_credentials', scope }).toString() });
  assert.equal(response.status, 200, await response.clone().text());
  return ((await response.json()) as { access_token: string }).access_token;
}

async function pollOnce(issuer: string, bearer: string, streamId: string, body: Record<string, unknown>): Promise<Record<string, string>> {
  const response = await fetch(`${issuer}/signals/poll/${streamId}`, { method: 'POST', headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  assert.equal(response.status, 200);
  return ((await response.json()) as { sets: Record<string, string> }).sets;
}
