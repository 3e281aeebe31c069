/**
 * The audit HTTP API against a real listening server: a client that trusts
 * only the log key checks checkpoints and proofs with the reference Merkle
 * functions; bad ranges are clear 400s; entries need the admin token; no
 * secret sent in a request ever reaches an entry.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { cosign, generateCosignatureKey, openCheckpoint, parseCosignatureSignerKey, parseVerifierKey } from '../../src/audit/checkpoint/index.ts';
import { leafHash, verifyConsistency, verifyInclusion } from '../../src/audit/merkle/index.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

const ADMIN_TOKEN = 'admin-7f3a9c2e-0b1d-4e5f-8a6b-c4d2e1f0a9b8';
const witnessKey = generateCosignatureKey('witness.example.org');
const fromBase64 = (text: string) => new Uint8Array(Buffer.from(text, 'base64'));

interface EntriesBody {
  size: number;
  entries: { index: number; entry: Record<string, unknown>; entryBase64: string }[];
}

describe('audit HTTP API', () => {
  let server: TestServer;
  const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };
  const get = (path: string, headers: Record<string, string> = {}) => fetch(`${server.url}${path}`, { headers });

  before(async () => {
    server = await startTestServer({ env: { PORTCULLIS_ADMIN_TOKEN: ADMIN_TOKEN, PORTCULLIS_AUDIT_WITNESSES: witnessKey.verifierKey } });
  });
  after(async () => {
    await server.close();
  });

  async function checkpointNow(): Promise<{ size: number; rootHash: Uint8Array; note: string }> {
    const stored = await server.running.ledger.signCheckpoint();
    const note = await (await get(`/audit/checkpoint?size=${stored.size}`)).text();
    const key = parseVerifierKey((await (await get('/audit/key')).text()).trim());
    return { ...openCheckpoint(note, key), note };
  }

  it('serves a signed checkpoint from the first start, verifiable with the published key', async () => {
    const response = await get('/audit/checkpoint');
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^text\/plain/);
    const key = parseVerifierKey((await (await get('/audit/key')).text()).trim());
    const checkpoint = openCheckpoint(await response.text(), key);
    assert.equal(checkpoint.origin, key.name);
    assert.ok(checkpoint.size >= 0);
  });

  it('proves every entry is in the log and the log only grew, to a client holding only the key', async () => {
    for (let i = 0; i < 5; i++) await server.running.ledger.record({ type: 'token.issued', outcome: 'success', requestId: `api-${i}` });
    const older = await checkpointNow();
    for (let i = 5; i < 12; i++) await server.running.ledger.record({ type: 'token.issued', outcome: 'success', requestId: `api-${i}` });
    const newer = await checkpointNow();

    const body = (await (await get(`/audit/entries?start=0&end=${newer.size}`, admin)).json()) as EntriesBody;
    for (const { index, entryBase64 } of body.entries) {
      const proof = (await (await get(`/audit/proof/inclusion?index=${index}&size=${newer.size}`)).json()) as { leafHash: string; proof: string[] };
      const leaf = leafHash(fromBase64(entryBase64));
      assert.deepEqual(fromBase64(proof.leafHash), leaf);
      assert.ok(verifyInclusion(leaf, index, newer.size, proof.proof.map(fromBase64), newer.rootHash), `entry ${index}`);
    }
    const consistency = (await (await get(`/audit/proof/consistency?from=${older.size}&to=${newer.size}`)).json()) as { proof: string[] };
    assert.ok(verifyConsistency(older.size, newer.size, older.rootHash, newer.rootHash, consistency.proof.map(fromBase64)));

    const listed = (await (await get('/audit/checkpoints?limit=1000')).json()) as { checkpoints: { size: number; note: string }[] };
    assert.ok(listed.checkpoints.some((checkpoint) => checkpoint.note === older.note));
  });

  it('answers bad ranges with a clear 400 problem and changes nothing', async () => {
    const size = await server.running.ledger.size();
    const cases = [
      `/audit/proof/inclusion?index=${size}&size=${size}`,
      `/audit/proof/inclusion?index=0&size=${size + 1}`,
      '/audit/proof/inclusion?index=-1&size=2',
      '/audit/proof/inclusion?index=0',
      '/audit/proof/inclusion?index=1.5&size=2',
      '/audit/proof/inclusion?index=0&size=99999999999999999999',
      '/audit/proof/inclusion?index=00&size=2',
      `/audit/proof/consistency?from=2&to=1`,
      `/audit/proof/consistency?from=0&to=${size + 1}`,
      '/audit/proof/consistency?from=abc&to=1',
      '/audit/checkpoint?size=x',
      '/audit/checkpoints?after=-3',
    ];
    for (const path of cases) {
      const response = await get(path);
      assert.equal(response.status, 400, path);
      assert.match(response.headers.get('content-type') ?? '', /^application\/problem\+json/);
      const problem = (await response.json()) as { detail: string; request_id: string };
      assert.ok(problem.detail.length > 0 && problem.request_id.length > 0, path);
    }
    for (const path of ['/audit/entries?start=5&end=2', '/audit/entries?start=0&end=1001', `/audit/entries?start=0&end=${size + 5}`]) {
      assert.equal((await get(path, admin)).status, 400, path);
    }
    assert.equal((await get('/audit/checkpoint?size=987654')).status, 404);
    assert.equal(await server.running.ledger.size(), size, 'a refused request records nothing');
  });

  it('refuses entries without the admin token (401 with a bearer challenge) and records the attempts, aggregated', async () => {
    const before = await server.running.ledger.size();
    const missing = await get('/audit/entries?start=0&end=1');
    assert.equal(missing.status, 401);
    assert.equal(missing.headers.get('www-authenticate'), 'Bearer realm="portcullis-admin"');
    const wrong = await get('/audit/entries?start=0&end=1', { authorization: `Bearer ${ADMIN_TOKEN.slice(0, -1)}x` });
    assert.equal(wrong.status, 401);
    assert.match(wrong.headers.get('www-authenticate') ?? '', /error="invalid_token"/);
    // Security review 11: failures are counted per network and minute; the
    // first of a window is written (count 1), the second only counted (two
    // entries only if a minute boundary fell between the two calls).
    const size = await server.running.ledger.size();
    const body = (await (await get(`/audit/entries?start=${before}&end=${size}`, admin)).json()) as EntriesBody;
    const recorded = body.entries.map(({ entry }) => [entry['type'], entry['outcome'], (entry['detail'] as Record<string, unknown>)['count']]);
    assert.ok(recorded.length >= 1 && recorded.length <= 2, `${recorded.length} entries`);
    for (const row of recorded) assert.deepEqual(row, ['admin.auth.failed', 'denied', 1]);
  });

  it('signs a checkpoint on demand for the admin only', async () => {
    const sign = (headers: Record<string, string>) => fetch(`${server.url}/audit/checkpoint`, { method: 'POST', headers });
    const size = await server.running.ledger.size();
    assert.equal((await sign({})).status, 401);
    const response = await sign(admin);
    assert.equal(response.status, 201);
    const key = parseVerifierKey((await (await get('/audit/key')).text()).trim());
    const checkpoint = openCheckpoint(await response.text(), key);
    assert.ok(checkpoint.size >= size, 'it covers the log as it was before the refused attempt (counted, aggregated: security review 11)');
  });

  it('accepts a trusted witness cosignature once, serves it, and refuses forgeries', async () => {
    const checkpoint = await checkpointNow();
    const witness = parseCosignatureSignerKey(witnessKey.signerKey);
    const line = cosign(checkpoint.note, witness, Math.floor(Date.now() / 1000));
    const post = (body: string, type = 'text/plain') => fetch(`${server.url}/audit/cosignatures`, { method: 'POST', headers: { 'content-type': type }, body });

    const first = await post(checkpoint.note + line);
    assert.equal(first.status, 201);
    assert.equal((await post(checkpoint.note + line)).status, 200);
    assert.ok((await (await get(`/audit/checkpoint?size=${checkpoint.size}`)).text()).endsWith(line));

    const stranger = parseCosignatureSignerKey(generateCosignatureKey('witness.example.org').signerKey);
    assert.equal((await post(checkpoint.note + cosign(checkpoint.note, stranger, 1))).status, 400);
    assert.equal((await post('hello\n')).status, 400);
    assert.equal((await post(JSON.stringify({ note: checkpoint.note }), 'application/json')).status, 415);
    assert.equal((await post(`${checkpoint.note}${'x'.repeat(20_000)}`)).status, 413);
  });

  it('never lets a secret sent in a request reach an entry', async () => {
    const secrets = ['s3cr3t-bearer-9f8e7d6c5b4a', 'sess-cookie-0a1b2c3d4e5f', 'refresh-token-feedfacecafe', 'password-Tr0ub4dor&3'];
    const start = await server.running.ledger.size();
    await get(`/audit/entries?start=0&end=1&access_token=${secrets[2]}`, { authorization: `Bearer ${secrets[0]}`, cookie: `__Host-portcullis=${secrets[1]}` });
    await get('/audit/entries?start=0&end=1', { authorization: `Basic ${Buffer.from(`admin:${secrets[3]}`).toString('base64')}` });
    await fetch(`${server.url}/audit/cosignatures`, { method: 'POST', headers: { 'content-type': 'text/plain', authorization: `Bearer ${secrets[0]}` }, body: `password=${secrets[3]}\n` });
    await get(`/audit/entries?start=0&end=1`, admin);
    const end = await server.running.ledger.size();
    assert.ok(end > start);
    const body = (await (await get(`/audit/entries?start=${start}&end=${end}`, admin)).json()) as EntriesBody;
    const text = JSON.stringify(body.entries.map(({ entryBase64 }) => Buffer.from(entryBase64, 'base64').toString('utf8')));
    for (const secret of [...secrets, ADMIN_TOKEN]) assert.ok(!text.includes(secret), `a secret reached the log: ${secret.slice(0, 6)}…`);
  });
});
