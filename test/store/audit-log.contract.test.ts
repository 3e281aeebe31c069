/**
 * The AuditLogStore contract (src/store/ports.ts) together with the ledger's
 * stored-tree layout (src/audit/tree.ts), written once and run against every
 * durable driver available in this run. The tree nodes a driver persists
 * must give exactly the roots and proofs that the pure RFC 9162 reference
 * functions (src/audit/merkle/) compute from the leaves, at every size.
 *
 * Randomised tests draw from one seeded generator; a failure prints its seed
 * (rerun with PORTCULLIS_TEST_SEED=<seed>).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import type { AuditAppendPlan, AuditLogStore, StoredCheckpoint, StoredCosignature, TreeNodeAddress } from '../../src/store/ports.ts';
import { MAX_APPEND_BATCH, MAX_ENTRY_PAGE } from '../../src/store/audit-log-rules.ts';
import { SqliteDatabase } from '../../src/store/sqlite/database.ts';
import { openSqliteDurableStore } from '../../src/store/sqlite/durable-store.ts';
import { appendPlan, storedConsistencyProof, storedInclusionProof, storedRootHash } from '../../src/audit/tree.ts';
import { EMPTY_ROOT, consistencyProof, inclusionProof, leafHash, rootHash, verifyConsistency, verifyInclusion } from '../../src/audit/merkle/index.ts';
import { durableDrivers, type DurableDriver, type DurableFixture } from './drivers.ts';
import { openDurableWithSql, type DurableSqlFixture } from '../support/durable-sql.ts';
import { testDatabaseUrl } from '../support/services.ts';
import { within } from '../support/process.ts';

const PEERS = 4;
const SEED = Number(process.env['PORTCULLIS_TEST_SEED'] ?? randomInt(2 ** 31));
const T0 = Date.UTC(2026, 0, 1);

const hex = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
const hexes = (list: readonly Uint8Array[]): string[] => list.map(hex);
const text = (value: string): Uint8Array => new TextEncoder().encode(value);

/** mulberry32: small, seedable, good enough to pick batch sizes and bytes. */
function generator(seed: number) {
  let state = seed >>> 0;
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (min: number, max: number): number => min + Math.floor(next() * (max - min + 1));
  return {
    int,
    bytes: (length: number): Uint8Array => Uint8Array.from({ length }, () => int(0, 255)),
    /** A non-empty entry of 1..64 arbitrary bytes (NUL and 0xff included). */
    entry: (): Uint8Array => Uint8Array.from({ length: int(1, 64) }, () => int(0, 255)),
    pick: <T>(list: readonly T[]): T => list[int(0, list.length - 1)]!,
  };
}

/** Runs `tasks` with at most `width` in flight (a Postgres pool answers in parallel). */
async function inParallel(tasks: readonly (() => Promise<void>)[], width = 8): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(width, tasks.length) }, async () => {
      while (next < tasks.length) await tasks[next++]!();
    }),
  );
}

const range = (from: number, to: number): number[] => Array.from({ length: Math.max(0, to - from) }, (_, i) => from + i);

/** Every stored row, paged as the contract allows (at most 1000 per call). */
async function readAll(log: AuditLogStore, size: number) {
  const rows = [];
  for (let start = 0; start < size; start += MAX_ENTRY_PAGE) rows.push(...(await log.entries(start, size)));
  return rows;
}

/** The hash every complete subtree (level, index) must have for these leaf hashes, or undefined beyond them. */
function referenceNode(leafHashes: readonly Uint8Array[], { level, index }: TreeNodeAddress): Uint8Array | undefined {
  const width = 2 ** level;
  const end = (index + 1) * width;
  return end > leafHashes.length ? undefined : rootHash(leafHashes.slice(index * width, end));
}

/** Every complete subtree of a tree of `size` leaves, plus the next address on each level (not stored yet). */
function allAddresses(size: number): TreeNodeAddress[] {
  const addresses: TreeNodeAddress[] = [];
  for (let level = 0; 2 ** level <= Math.max(1, size); level++) {
    for (let index = 0; index <= Math.floor(size / 2 ** level); index++) addresses.push({ level, index });
  }
  return addresses;
}

/** Root, every inclusion proof and every consistency proof of the tree of `size` leaves, against the reference. */
async function assertTreeOfSize(log: AuditLogStore, leafHashes: readonly Uint8Array[], size: number, seed: number): Promise<void> {
  const leaves = leafHashes.slice(0, size);
  const root = rootHash(leaves);
  const rootsBelow = range(0, size + 1).map((m) => rootHash(leafHashes.slice(0, m)));
  const where = `(size ${size}, seed ${seed})`;
  assert.equal(hex(await storedRootHash(log, size)), hex(root), `root ${where}`);
  await inParallel([
    ...range(0, size).map((index) => async () => {
      const stored = await storedInclusionProof(log, index, size);
      assert.equal(hex(stored.leafHash), hex(leaves[index]!), `leaf hash of ${index} ${where}`);
      assert.deepEqual(hexes(stored.proof), hexes(inclusionProof(index, leaves)), `inclusion proof of ${index} ${where}`);
      assert.ok(verifyInclusion(stored.leafHash, index, size, stored.proof, root), `inclusion proof of ${index} verifies ${where}`);
    }),
    ...range(0, size + 1).map((oldSize) => async () => {
      const stored = await storedConsistencyProof(log, oldSize, size);
      assert.deepEqual(hexes(stored), hexes(consistencyProof(oldSize, leaves)), `consistency proof ${oldSize} -> ${size} ${where}`);
      assert.ok(verifyConsistency(oldSize, size, rootsBelow[oldSize]!, root, stored), `consistency proof ${oldSize} -> ${size} verifies ${where}`);
    }),
  ]);
}

/**
 * What the race tests promise: the log holds exactly the appended batches,
 * each at the consecutive indices its append returned, nothing else, and
 * its stored tree is the tree of those entries.
 */
async function assertLogHoldsExactly(log: AuditLogStore, batches: readonly { first: number; entries: readonly Uint8Array[]; recordedAt: number }[]) {
  const total = batches.reduce((sum, batch) => sum + batch.entries.length, 0);
  assert.equal(await log.size(), total);
  const claimed = new Array<number>(total).fill(0);
  for (const batch of batches) for (let k = 0; k < batch.entries.length; k++) claimed[batch.first + k]! += 1;
  assert.deepEqual(claimed, new Array<number>(total).fill(1), 'the returned ranges tile 0..n-1: no gap, no overlap');
  const rows = await readAll(log, total);
  assert.deepEqual(rows.map((row) => row.index), range(0, total), 'every index exactly once, in order');
  for (const batch of batches) {
    batch.entries.forEach((entry, k) => {
      const row = rows[batch.first + k]!;
      assert.equal(hex(row.entry), hex(entry), `entry ${batch.first + k} is the batch's entry ${k}`);
      assert.equal(row.recordedAt, batch.recordedAt);
    });
  }
  const stored = new Set(rows.map((row) => hex(row.entry)));
  const appended = new Set(batches.flatMap((batch) => batch.entries.map(hex)));
  assert.equal(stored.size, total, 'no entry stored twice');
  assert.deepEqual(stored, appended, 'every appended entry present');
  const leafHashes = rows.map((row) => leafHash(row.entry));
  assert.equal(hex(await storedRootHash(log, total)), hex(rootHash(leafHashes)), 'the stored tree is the tree of the stored entries');
  const addresses = allAddresses(total);
  const nodes = await log.nodes(addresses);
  addresses.forEach((address, i) => {
    const expected = referenceNode(leafHashes, address);
    assert.equal(nodes[i] === undefined ? undefined : hex(nodes[i]), expected === undefined ? undefined : hex(expected), `node (${address.level}, ${address.index})`);
  });
}

function checkpoint(size: number, label: string, createdAt = T0): Omit<StoredCheckpoint, 'id'> {
  const root = generator(size * 7919 + label.length).bytes(32);
  return { size, rootHash: root, note: `portcullis.example/log\n${size}\n${Buffer.from(root).toString('base64')}\n\n— ${label} ✓\n`, createdAt };
}

function cosignature(checkpointId: number, witness: string, line = `— ${witness} c2lnbmF0dXJl`): StoredCosignature {
  return { checkpointId, witness, signatureLine: line, cosignedAt: 1_767_225_600, receivedAt: T0 };
}

async function withLog<T>(driver: DurableDriver, peers: number, work: (fx: DurableFixture) => Promise<T>): Promise<T> {
  const fx = await driver.open(peers);
  try {
    return await work(fx);
  } finally {
    await fx.close();
  }
}

for (const driver of durableDrivers) {
  describe(`AuditLogStore contract: ${driver.name}`, () => {
    it('an empty log has size 0, no entries, no checkpoints and the empty-tree root', async () => {
      await withLog(driver, 1, async ({ store }) => {
        const log = store.auditLog;
        assert.equal(await log.size(), 0);
        assert.deepEqual(await log.entries(0, 10), []);
        assert.deepEqual(await log.nodes([{ level: 0, index: 0 }]), [undefined]);
        assert.equal(await log.latestCheckpoint(), null);
        assert.equal(await log.checkpointOfSize(0), null);
        assert.deepEqual(await log.checkpoints(), []);
        assert.equal(hex(await storedRootHash(log, 0)), hex(EMPTY_ROOT));
        assert.deepEqual(await storedConsistencyProof(log, 0, 0), []);
      });
    });

    it('append returns consecutive first indices; size and entries follow, byte for byte', async () => {
      await withLog(driver, 1, async ({ store }) => {
        const log = store.auditLog;
        const everyByte = Uint8Array.from({ length: 256 }, (_, i) => i);
        const big = generator(SEED).bytes(64 * 1024);
        const backing = text('0123456789abcdefghijklmnopqrstuvwxyz');
        const batches = [
          { entries: [text('{"event":"login","user":"ünïcødé ✓"}'), everyByte, Uint8Array.of(0)], recordedAt: T0 },
          { entries: [big], recordedAt: Number.MAX_SAFE_INTEGER },
          // A view with a byte offset and a Buffer: drivers must store exactly the viewed bytes.
          { entries: [backing.subarray(10, 16), Buffer.from('buffer entry'), Uint8Array.of(0xff, 0x00, 0xff)], recordedAt: 0 },
        ];
        const firsts = [];
        for (const batch of batches) {
          firsts.push(await log.append(batch.entries, batch.recordedAt, appendPlan));
          assert.equal(await log.size(), firsts.at(-1)! + batch.entries.length);
        }
        assert.deepEqual(firsts, [0, 3, 4]);
        const expected = batches.flatMap((batch) => batch.entries.map((entry) => ({ entry: new Uint8Array(entry), recordedAt: batch.recordedAt }))).map((row, index) => ({ index, ...row }));
        assert.deepEqual(await log.entries(0, 7), expected, 'plain Uint8Array bytes, recordedAt exact');
        assert.equal(hex((await log.entries(4, 5))[0]!.entry), hex(text('abcdef')));
        assert.deepEqual(await log.entries(2, 5), expected.slice(2, 5));
        assert.deepEqual(await log.entries(5, 1000), expected.slice(5), 'a range past the end stops at the size');
        assert.deepEqual(await log.entries(3, 3), []);
        assert.deepEqual(await log.entries(7, 9), []);
        assert.deepEqual(await log.entries(Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER), []);
        const leafNodes = await log.nodes(range(0, 7).map((index) => ({ level: 0, index })));
        assert.deepEqual(leafNodes.map((hash) => hash && hex(hash)), expected.map((row) => hex(leafHash(row.entry))), 'level 0 holds the leaf hashes');
      });
    });

    it(`entries returns at most ${MAX_ENTRY_PAGE} rows per call`, async () => {
      await withLog(driver, 1, async ({ store }) => {
        const log = store.auditLog;
        const entries = range(0, MAX_ENTRY_PAGE + 100).map((i) => text(`entry ${i}`));
        assert.equal(await log.append(entries, T0, appendPlan), 0);
        const page = await log.entries(0, entries.length);
        assert.equal(page.length, MAX_ENTRY_PAGE);
        assert.deepEqual(page.map((row) => row.index), range(0, MAX_ENTRY_PAGE));
        assert.equal((await log.entries(0, Number.MAX_SAFE_INTEGER)).length, MAX_ENTRY_PAGE);
        const rest = await log.entries(MAX_ENTRY_PAGE, Number.MAX_SAFE_INTEGER);
        assert.deepEqual(rest.map((row) => row.index), range(MAX_ENTRY_PAGE, entries.length));
        assert.equal(hex(rest.at(-1)!.entry), hex(entries.at(-1)!));
      });
    });

    it('refuses bad arguments with RangeError/TypeError before touching the database', async () => {
      await withLog(driver, 1, async ({ store }) => {
        const log = store.auditLog;
        const one = [text('x')];
        await log.append(one, T0, appendPlan);
        const refusals: [string, () => Promise<unknown>, new (...args: never[]) => Error][] = [
          ['empty batch', () => log.append([], T0, appendPlan), RangeError],
          ['batch over the limit', () => log.append(new Array<Uint8Array>(MAX_APPEND_BATCH + 1).fill(one[0]!), T0, appendPlan), RangeError],
          ['negative recordedAt', () => log.append(one, -1, appendPlan), TypeError],
          ['fractional recordedAt', () => log.append(one, 1.5, appendPlan), TypeError],
          ['NaN recordedAt', () => log.append(one, Number.NaN, appendPlan), TypeError],
          ['unsafe recordedAt', () => log.append(one, 2 ** 53, appendPlan), TypeError],
          ['empty entry', () => log.append([text('ok'), new Uint8Array(0)], T0, appendPlan), TypeError],
          ['string entry', () => log.append(['text' as unknown as Uint8Array], T0, appendPlan), TypeError],
          ['null entry', () => log.append([null as unknown as Uint8Array], T0, appendPlan), TypeError],
          ['negative start', () => log.entries(-1, 2), RangeError],
          ['end before start', () => log.entries(3, 2), RangeError],
          ['fractional start', () => log.entries(0.5, 2), RangeError],
          ['infinite end', () => log.entries(0, Number.POSITIVE_INFINITY), RangeError],
          ['NaN start', () => log.entries(Number.NaN, 1), RangeError],
          ['negative level', () => log.nodes([{ level: -1, index: 0 }]), RangeError],
          ['level 64', () => log.nodes([{ level: 0, index: 0 }, { level: 64, index: 0 }]), RangeError],
          ['negative index', () => log.nodes([{ level: 0, index: -1 }]), RangeError],
          ['fractional index', () => log.nodes([{ level: 0, index: 1.5 }]), RangeError],
          ['zero checkpoint limit', () => log.checkpoints({ limit: 0 }), TypeError],
          ['fractional checkpoint limit', () => log.checkpoints({ limit: 2.5 }), TypeError],
        ];
        for (const [what, call, type] of refusals) await assert.rejects(call(), type, what);
        assert.equal(await log.size(), 1, 'no refused append changed the log');
        assert.deepEqual((await log.entries(0, 10)).map((row) => hex(row.entry)), [hex(one[0]!)]);
        // On a closed store any query fails; the same calls must still answer
        // with the argument error, so the check runs before the database.
        await store.close();
        await assert.rejects(log.size(), (error: unknown) => !(error instanceof RangeError) && !(error instanceof TypeError), 'a closed store refuses queries');
        for (const [what, call, type] of refusals) await assert.rejects(call(), type, `${what} (closed store)`);
      });
    });

    it('nodes answers in the order asked, undefined where no node is stored', async () => {
      await withLog(driver, 1, async ({ store }) => {
        const log = store.auditLog;
        const rng = generator(SEED + 1);
        const entries = range(0, 60).map(() => rng.entry());
        await log.append(entries, T0, appendPlan);
        const leafHashes = entries.map(leafHash);
        assert.deepEqual(await log.nodes([]), []);
        const asked = [
          { level: 5, index: 0 },
          { level: 0, index: 59 },
          { level: 0, index: 60 },
          { level: 2, index: 14 },
          { level: 2, index: 15 },
          { level: 5, index: 0 },
          { level: 6, index: 0 },
          { level: 63, index: 0 },
          { level: 0, index: Number.MAX_SAFE_INTEGER },
        ];
        const answer = await log.nodes(asked);
        assert.deepEqual(answer.map((hash) => hash && hex(hash)), asked.map((address) => referenceNode(leafHashes, address)).map((hash) => hash && hex(hash)));
        // More addresses than one statement takes, shuffled, with repeats.
        const many = allAddresses(60).flatMap((address) => [address, address]);
        for (let i = many.length - 1; i > 0; i--) {
          const j = rng.int(0, i);
          [many[i], many[j]] = [many[j]!, many[i]!];
        }
        assert.ok(many.length > 200);
        const hashes = await log.nodes(many);
        assert.equal(hashes.length, many.length);
        many.forEach((address, i) => {
          const expected = referenceNode(leafHashes, address);
          assert.equal(hashes[i] && hex(hashes[i]), expected && hex(expected), `node (${address.level}, ${address.index})`);
        });
      });
    });

    it('an append that fails stores nothing: no entry, no node, no size change', async () => {
      await withLog(driver, 1, async ({ store }) => {
        const log = store.auditLog;
        await log.append([text('a'), text('b'), text('c')], T0, appendPlan);
        const failing: AuditAppendPlan[] = [
          // extend throws after reading the frontier
          { frontier: (size) => appendPlan.frontier(size), extend: () => { throw new Error('plan failed'); } },
          // a node that is already stored: the insert fails after the entries went in
          {
            frontier: (size) => appendPlan.frontier(size),
            extend: (size, hashes, entries) => [...appendPlan.extend(size, hashes, entries), { level: 0, index: 0, hash: new Uint8Array(32) }],
          },
          // a frontier node that does not exist
          { frontier: () => [{ level: 40, index: 0 }], extend: (size, hashes, entries) => appendPlan.extend(size, hashes, entries) },
        ];
        for (const plan of failing) await assert.rejects(log.append([text('d'), text('e')], T0 + 1, plan));
        assert.equal(await log.size(), 3);
        assert.deepEqual(await log.entries(3, 10), []);
        assert.deepEqual(await log.nodes([{ level: 0, index: 3 }, { level: 1, index: 1 }]), [undefined, undefined]);
        assert.equal(await log.append([text('d'), text('e')], T0 + 2, appendPlan), 3, 'the next append gets the same index');
        const all = ['a', 'b', 'c', 'd', 'e'].map(text);
        assert.equal(hex(await storedRootHash(log, 5)), hex(rootHash(all.map(leafHash))));
      });
    });

    it('stored roots and proofs equal the reference at every size (random batches of 1..7, up to 70 leaves)', async (t) => {
      t.diagnostic(`seed ${SEED}`);
      await withLog(driver, 1, async ({ store }) => {
        const log = store.auditLog;
        const rng = generator(SEED + 2);
        const leafHashes: Uint8Array[] = [];
        const checkedWhenCurrent = new Set<number>();
        while (leafHashes.length < 70) {
          const batch = range(0, Math.min(rng.int(1, 7), 70 - leafHashes.length)).map(() => rng.entry());
          assert.equal(await log.append(batch, T0 + leafHashes.length, appendPlan), leafHashes.length);
          leafHashes.push(...batch.map(leafHash));
          const size = leafHashes.length;
          assert.equal(await log.size(), size);
          // Every smaller tree still answers from the nodes stored so far...
          await inParallel(
            range(0, size).map((smaller) => async () => {
              assert.equal(hex(await storedRootHash(log, smaller)), hex(rootHash(leafHashes.slice(0, smaller))), `root of ${smaller} at size ${size} (seed ${SEED})`);
            }),
          );
          // ...and the current one gives every proof, as soon as the append returns.
          await assertTreeOfSize(log, leafHashes, size, SEED);
          checkedWhenCurrent.add(size);
        }
        // The full matrix at the final size: every (index, size) and (oldSize, size)
        // for the sizes in between batches (stored nodes never change, so the
        // sizes checked above need no second look).
        for (let size = 1; size <= 70; size++) if (!checkedWhenCurrent.has(size)) await assertTreeOfSize(log, leafHashes, size, SEED);
      });
    });

    it('a 3000-leaf log in batches of about 250 agrees with the reference on sampled sizes and proofs', async (t) => {
      t.diagnostic(`seed ${SEED}`);
      await withLog(driver, 1, async ({ store }) => {
        const log = store.auditLog;
        const rng = generator(SEED + 3);
        const total = 3000;
        const leafHashes: Uint8Array[] = [];
        const boundaries: number[] = [];
        while (leafHashes.length < total) {
          const batch = range(0, Math.min(rng.int(200, 300), total - leafHashes.length)).map(() => rng.entry());
          assert.equal(await log.append(batch, T0, appendPlan), leafHashes.length);
          leafHashes.push(...batch.map(leafHash));
          boundaries.push(leafHashes.length);
        }
        assert.equal(await log.size(), total);
        const sizes = [...new Set([1, 2, 3, 255, 256, 257, 1023, 1024, 1025, 2047, 2048, 2049, 2999, total, ...boundaries, ...range(0, 3).map(() => rng.int(1, total))])].sort((a, b) => a - b);
        const roots = new Map(sizes.map((size) => [size, rootHash(leafHashes.slice(0, size))]));
        const checks: (() => Promise<void>)[] = [];
        for (const size of sizes) {
          const leaves = leafHashes.slice(0, size);
          const root = roots.get(size)!;
          checks.push(async () => assert.equal(hex(await storedRootHash(log, size)), hex(root), `root of ${size}`));
          for (const index of new Set([0, size - 1, rng.int(0, size - 1)])) {
            checks.push(async () => {
              const stored = await storedInclusionProof(log, index, size);
              assert.deepEqual(hexes(stored.proof), hexes(inclusionProof(index, leaves)), `inclusion of ${index} in ${size} (seed ${SEED})`);
              assert.ok(verifyInclusion(stored.leafHash, index, size, stored.proof, root));
            });
          }
          // The reference hashes every leaf below `size` per proof, so a few per size:
          // the edges (empty proofs), the previous sampled size, one at random.
          const previous = sizes.filter((s) => s < size).at(-1) ?? 0;
          for (const oldSize of new Set([0, size, previous, size - 1, rng.int(1, size)])) {
            checks.push(async () => {
              const stored = await storedConsistencyProof(log, oldSize, size);
              assert.deepEqual(hexes(stored), hexes(consistencyProof(oldSize, leaves)), `consistency ${oldSize} -> ${size} (seed ${SEED})`);
              assert.ok(verifyConsistency(oldSize, size, roots.get(oldSize) ?? rootHash(leafHashes.slice(0, oldSize)), root, stored));
            });
          }
        }
        await inParallel(checks);
      });
    });

    it(`300 concurrent appends over ${PEERS} handles get disjoint consecutive ranges: no gap, no duplicate, no lost entry`, async (t) => {
      t.diagnostic(`seed ${SEED}`);
      await withLog(driver, PEERS, async ({ stores }) => {
        const rng = generator(SEED + 4);
        const calls = range(0, 300).map((call) => ({
          entries: range(0, rng.int(1, 3)).map((k) => text(`{"call":${call},"k":${k},"r":"${hex(rng.bytes(4))}"}`)),
          recordedAt: T0 + call,
        }));
        const firsts = await Promise.all(calls.map((call, i) => stores[i % stores.length]!.auditLog.append(call.entries, call.recordedAt, appendPlan)));
        await assertLogHoldsExactly(stores[0]!.auditLog, calls.map((call, i) => ({ ...call, first: firsts[i]! })));
        for (const store of stores) assert.equal(await store.auditLog.size(), await stores[0]!.auditLog.size(), 'every handle sees the same size');
      });
    });

    it('checkpoints get increasing ids; latest, newest of a size, and pages in id order', async () => {
      await withLog(driver, PEERS, async ({ store, stores }) => {
        const log = store.auditLog;
        const added: StoredCheckpoint[] = [];
        for (const [size, label] of [[0, 'a'], [1, 'b'], [2, 'c'], [2, 'd'], [5, 'e'], [2, 'f'], [9, 'g']] as const) {
          const input = checkpoint(size, label, label === 'e' ? Number.MAX_SAFE_INTEGER : T0 + added.length);
          const stored = await log.addCheckpoint(input);
          assert.deepEqual(stored, { id: stored.id, ...input }, 'addCheckpoint echoes what it stored');
          if (added.length > 0) assert.ok(stored.id > added.at(-1)!.id, 'ids increase');
          added.push(stored);
          assert.deepEqual(await log.latestCheckpoint(), stored);
        }
        assert.deepEqual(await log.checkpointOfSize(2), added[5], 'the newest of that size');
        assert.deepEqual(await log.checkpointOfSize(0), added[0]);
        assert.deepEqual(await log.checkpointOfSize(5), added[4]);
        assert.equal(await log.checkpointOfSize(3), null);
        assert.deepEqual(await log.checkpoints(), added);
        const paged: StoredCheckpoint[] = [];
        for (let afterId: number | undefined; ; ) {
          const page = await log.checkpoints(afterId === undefined ? { limit: 3 } : { afterId, limit: 3 });
          assert.ok(page.length <= 3);
          if (page.length === 0) break;
          paged.push(...page);
          afterId = page.at(-1)!.id;
        }
        assert.deepEqual(paged, added);
        assert.deepEqual(await log.checkpoints({ afterId: added[3]!.id }), added.slice(4));
        assert.deepEqual(await log.checkpoints({ afterId: added.at(-1)!.id }), []);
        // Concurrent adds from every handle: distinct ids, every one listed.
        const concurrent = await Promise.all(range(0, 40).map((i) => stores[i % stores.length]!.auditLog.addCheckpoint(checkpoint(100 + i, `race ${i}`))));
        assert.equal(new Set(concurrent.map((c) => c.id)).size, 40);
        assert.ok(concurrent.every((c) => c.id > added.at(-1)!.id));
        assert.deepEqual(await log.checkpoints({ afterId: added.at(-1)!.id }), [...concurrent].sort((a, b) => a.id - b.id));
        // The page size is capped at 1000.
        for (let i = 0; i < 1000; i++) await log.addCheckpoint(checkpoint(200, `bulk ${i}`));
        const capped = await log.checkpoints({ limit: 5000 });
        assert.equal(capped.length, 1000);
        assert.deepEqual(capped.slice(0, added.length), added);
        assert.equal((await log.checkpoints({ afterId: capped.at(-1)!.id, limit: 1000 })).length, added.length + 40, 'the rest on the next page');
      });
    });

    it('cosignatures: one per (checkpoint, witness), a repeat changes nothing, listed in byte order of witness', async () => {
      await withLog(driver, PEERS, async ({ store, stores }) => {
        const log = store.auditLog;
        const first = await log.addCheckpoint(checkpoint(4, 'first'));
        const second = await log.addCheckpoint(checkpoint(5, 'second'));
        // Case and punctuation differ between byte order and natural-language
        // collations: the order must not depend on the database's locale.
        const witnesses = ['witness.example/b+0badc0de', 'Witness.example/a+00000001', 'witness.example/a+ffffffff', 'w_z+12345678', 'w-z+12345678', 'W.z+12345678', 'äpfel+00000002', 'zeta+00000003'];
        for (const witness of witnesses) assert.equal(await log.addCosignature(cosignature(first.id, witness)), true, witness);
        assert.equal(await log.addCosignature(cosignature(first.id, witnesses[0]!, '— a different line')), false, 'a repeat is refused');
        assert.equal(await log.addCosignature({ ...cosignature(first.id, witnesses[1]!), cosignedAt: 1 }), false);
        const expected = [...witnesses].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))).map((witness) => cosignature(first.id, witness));
        assert.deepEqual(await log.cosignatures(first.id), expected, 'sorted by witness, first line kept');
        assert.deepEqual(await log.cosignatures(second.id), []);
        assert.equal(await log.addCosignature(cosignature(second.id, witnesses[0]!)), true, 'the same witness on another checkpoint');
        assert.deepEqual(await log.cosignatures(second.id), [cosignature(second.id, witnesses[0]!)]);
        assert.deepEqual(await log.cosignatures(second.id + 1000), []);
        // Racing repeats from every handle: exactly one is stored.
        const results = await Promise.all(
          range(0, 40).map((i) => stores[i % stores.length]!.auditLog.addCosignature(cosignature(second.id, 'racer+00000000', `— racer line ${i}`))),
        );
        const winners = results.flatMap((won, i) => (won ? [i] : []));
        assert.equal(winners.length, 1);
        const racer = (await log.cosignatures(second.id)).find((row) => row.witness === 'racer+00000000');
        assert.equal(racer?.signatureLine, `— racer line ${winners[0]}`);
      });
    });

    it('subject index: append writes the rows with the entries; subjectEntries pages them in index order', async () => {
      await withLog(driver, 1, async ({ store }) => {
        const log = store.auditLog;
        const alice = 'alice-pseudonym';
        const bob = 'bob-pseudonym';
        // Unindexed entries first: an append without subjects indexes nothing.
        assert.equal(await log.append([text('a0'), text('a1')], T0, appendPlan), 0);
        assert.equal(await log.append([text('x2'), text('x3'), text('x4'), text('x5')], T0 + 1, appendPlan, [[alice], [alice, bob], [], [bob, bob, alice]]), 2);
        const entriesOf = async (subject: string, options?: { after?: number; limit?: number }) => (await log.subjectEntries(subject, options)).map((row) => row.index);
        assert.deepEqual(await entriesOf(alice), [2, 3, 5]);
        assert.deepEqual(await entriesOf(bob), [3, 5], 'a subject named twice in one entry is indexed once');
        assert.deepEqual(await entriesOf('nobody'), []);
        const [row] = await log.subjectEntries(alice, { after: 2, limit: 1 });
        assert.deepEqual(row, { index: 3, entry: text('x3'), recordedAt: T0 + 1 }, 'the entry row itself, as entries() returns it');
        assert.deepEqual(await entriesOf(alice, { after: 3 }), [5]);
        assert.deepEqual(await entriesOf(alice, { after: 5 }), []);
        // Subjects compare byte for byte: no case folding, no locale.
        await log.append([text('x6')], T0, appendPlan, [['Alice-pseudonym']]);
        assert.deepEqual(await entriesOf(alice), [2, 3, 5]);
        // Pages of at most 1000, resumed after the last index seen.
        const many = range(0, MAX_ENTRY_PAGE + 50).map((i) => text(`bulk ${i}`));
        const first = await log.append(many, T0, appendPlan, many.map(() => ['bulk']));
        const page = await entriesOf('bulk', { limit: 5000 });
        assert.deepEqual(page, range(first, first + MAX_ENTRY_PAGE));
        assert.deepEqual(await entriesOf('bulk', { after: page.at(-1)!, limit: 1000 }), range(first + MAX_ENTRY_PAGE, first + many.length));
        assert.equal((await log.subjectEntries('bulk')).length, 100, 'the default page is 100');
      });
    });

    it('subject index: forgetSubject drops the rows only; indexSubject adds rows for existing entries, once', async () => {
      await withLog(driver, 1, async ({ store }) => {
        const log = store.auditLog;
        const entries = range(0, 6).map((i) => text(`entry ${i}`));
        await log.append(entries, T0, appendPlan, entries.map((_, i) => (i % 2 === 0 ? ['carol'] : ['dave'])));
        assert.equal(await log.forgetSubject('carol'), 3);
        assert.equal(await log.forgetSubject('carol'), 0, 'idempotent');
        assert.deepEqual(await log.subjectEntries('carol'), []);
        assert.deepEqual((await log.subjectEntries('dave')).map((row) => row.index), [1, 3, 5], 'other subjects keep theirs');
        assert.deepEqual((await readAll(log, 6)).map((row) => hex(row.entry)), entries.map(hex), 'every entry stays');
        // The backfill: new rows only, existing entries only.
        assert.equal(await log.indexSubject('carol', [0, 2, 2, 4, 6, 1000]), 3, 'indices 6 and 1000 are beyond the log');
        assert.equal(await log.indexSubject('carol', [0, 2, 4]), 0, 'a second run adds nothing');
        assert.equal(await log.indexSubject('dave', [1, 2]), 1, 'dave had 1 already');
        assert.equal(await log.indexSubject('dave', []), 0);
        assert.deepEqual((await log.subjectEntries('carol')).map((row) => row.index), [0, 2, 4]);
        assert.deepEqual((await log.subjectEntries('dave')).map((row) => row.index), [1, 2, 3, 5]);
      });
    });

    it('subject index: refuses bad arguments before touching the database', async () => {
      await withLog(driver, 1, async ({ store }) => {
        const log = store.auditLog;
        const one = [text('x')];
        const refusals: [string, () => Promise<unknown>, new (...args: never[]) => Error][] = [
          ['subjects not parallel to entries', () => log.append([text('a'), text('b')], T0, appendPlan, [['s']]), TypeError],
          ['subjects not an array', () => log.append(one, T0, appendPlan, 's' as never), TypeError],
          ['an entry\'s subjects not an array', () => log.append(one, T0, appendPlan, ['s'] as never), TypeError],
          ['empty subject', () => log.append(one, T0, appendPlan, [['']]), TypeError],
          ['non-string subject', () => log.append(one, T0, appendPlan, [[7 as never]]), TypeError],
          ['overlong subject', () => log.append(one, T0, appendPlan, [['s'.repeat(257)]]), TypeError],
          ['lone surrogate', () => log.append(one, T0, appendPlan, [['\ud800']]), TypeError],
          ['too many subjects', () => log.append(one, T0, appendPlan, [range(0, 17).map(String)]), TypeError],
          ['subjectEntries of ""', () => log.subjectEntries(''), TypeError],
          ['negative after', () => log.subjectEntries('s', { after: -1 }), RangeError],
          ['fractional after', () => log.subjectEntries('s', { after: 1.5 }), RangeError],
          ['zero limit', () => log.subjectEntries('s', { limit: 0 }), TypeError],
          ['negative index', () => log.indexSubject('s', [-1]), RangeError],
          ['fractional index', () => log.indexSubject('s', [0.5]), RangeError],
          ['indexSubject of ""', () => log.indexSubject('', [0]), TypeError],
          ['forgetSubject of ""', () => log.forgetSubject(''), TypeError],
        ];
        for (const [what, call, type] of refusals) await assert.rejects(call(), type, what);
        assert.equal(await log.size(), 0, 'no refused append changed the log');
      });
    });

    describe('at the database, below the port', () => {
      let db: DurableSqlFixture;
      before(async () => {
        db = await openDurableWithSql(driver.name, testDatabaseUrl);
      });
      after(async () => {
        await db.close();
      });

      it('migration 3 creates the same tables, an empty head and the same constraints', async () => {
        const rows = await db.query<{ version: number; name: string }>('SELECT version, name FROM portcullis_migrations WHERE version = 3');
        assert.deepEqual(rows.map((row) => ({ version: Number(row.version), name: row.name })), [{ version: 3, name: 'audit ledger' }]);
        const head = await db.query<{ id: number | string; size: number | string }>('SELECT id, size FROM audit_head');
        assert.deepEqual(head.map((row) => [Number(row.id), Number(row.size)]), [[1, 0]], 'one head row, size 0');
        const tables = {
          audit_entries: ['idx', 'entry', 'recorded_at'],
          audit_nodes: ['level', 'idx', 'hash'],
          audit_head: ['id', 'size'],
          audit_checkpoints: ['id', 'size', 'root_hash', 'note', 'created_at'],
          audit_cosignatures: ['checkpoint_id', 'witness', 'signature_line', 'cosigned_at', 'received_at'],
        };
        for (const [table, columns] of Object.entries(tables)) assert.deepEqual(await db.columns(table), columns, table);
        await assert.rejects(db.query('INSERT INTO audit_head (id, size) VALUES (2, 0)'), 'a second head row is refused');
        assert.equal(await db.store.auditLog.size(), 0);
        await assert.rejects(db.store.auditLog.addCosignature(cosignature(987_654, 'orphan+00000000')), 'a cosignature needs its checkpoint');
        const big = await db.store.auditLog.addCheckpoint({ ...checkpoint(2 ** 40, 'big'), createdAt: Number.MAX_SAFE_INTEGER });
        assert.deepEqual(await db.store.auditLog.checkpointOfSize(2 ** 40), big, 'sizes and times beyond 32 bits round-trip');
      });

      it('migration 6 creates the subject index; its rows commit with the entries or not at all', async () => {
        const rows = await db.query<{ version: number; name: string }>('SELECT version, name FROM portcullis_migrations WHERE version = 6');
        assert.deepEqual(rows.map((row) => ({ version: Number(row.version), name: row.name })), [{ version: 6, name: 'audit subject index' }]);
        assert.deepEqual(await db.columns('audit_subjects'), ['subject', 'idx']);
        // The database refuses one subject: the append must fail whole.
        if (driver.name === 'sqlite') {
          await db.query("CREATE TRIGGER poison_subject BEFORE INSERT ON audit_subjects WHEN NEW.subject = 'poison' BEGIN SELECT RAISE(ABORT, 'poisoned'); END");
        } else {
          await db.query("CREATE FUNCTION poison_subject() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN IF NEW.subject = ''poison'' THEN RAISE EXCEPTION ''poisoned''; END IF; RETURN NEW; END'");
          await db.query('CREATE TRIGGER poison_subject BEFORE INSERT ON audit_subjects FOR EACH ROW EXECUTE FUNCTION poison_subject()');
        }
        try {
          const log = db.store.auditLog;
          const size = await log.size();
          await assert.rejects(log.append([text('kept out'), text('also out')], T0, appendPlan, [['fine'], ['poison']]), /poisoned/);
          assert.equal(await log.size(), size, 'no entry was added');
          assert.deepEqual(await log.entries(size, size + 10), []);
          assert.deepEqual(await log.subjectEntries('fine'), [], 'nor an index row');
          assert.equal(await log.append([text('next')], T0, appendPlan, [['fine']]), size, 'the next append takes the same index');
          assert.deepEqual((await log.subjectEntries('fine')).map((row) => row.index), [size]);
        } finally {
          await db.query(driver.name === 'sqlite' ? 'DROP TRIGGER poison_subject' : 'DROP TRIGGER poison_subject ON audit_subjects');
        }
      });

      it('refuses UPDATE and DELETE of entries (append-only trigger)', async () => {
        const log = db.store.auditLog;
        const first = await log.size();
        await log.append([text('one'), text('two'), text('three')], T0, appendPlan);
        const stored = await log.entries(0, 100);
        const refused = [
          `UPDATE audit_entries SET recorded_at = recorded_at + 1 WHERE idx = ${first}`,
          'UPDATE audit_entries SET entry = entry',
          `DELETE FROM audit_entries WHERE idx = ${first + 2}`,
          'DELETE FROM audit_entries',
          // An upsert's DO UPDATE is an UPDATE: the trigger fires for it too.
          `INSERT INTO audit_entries (idx, entry, recorded_at) SELECT idx, entry, 0 FROM audit_entries WHERE idx = ${first} ON CONFLICT (idx) DO UPDATE SET recorded_at = excluded.recorded_at`,
          ...(driver.name === 'postgres' ? ['TRUNCATE audit_entries', 'TRUNCATE audit_entries CASCADE'] : []),
        ];
        for (const sql of refused) await assert.rejects(db.query(sql), /append-only/, sql);
        assert.deepEqual(await log.entries(0, 100), stored, 'nothing changed');
        assert.equal(await log.append([text('four')], T0, appendPlan), first + 3, 'the log still appends');
      });

      // Regression: SQLite's REPLACE deletes the old row without firing DELETE
      // triggers (recursive_triggers is off), so `INSERT OR REPLACE` rewrote
      // an entry in place until migration 3 got a BEFORE INSERT trigger.
      if (driver.name === 'sqlite') {
        it(
          'refuses INSERT OR REPLACE over an existing entry',
          async () => {
            const log = db.store.auditLog;
            const index = await log.append([text('original')], T0, appendPlan);
            const [original] = await log.entries(index, index + 1);
            await assert.rejects(db.query(`INSERT OR REPLACE INTO audit_entries (idx, entry, recorded_at) VALUES (${index}, X'ff', 0)`), /append-only|constraint/i);
            await assert.rejects(db.query(`REPLACE INTO audit_entries (idx, entry, recorded_at) VALUES (${index}, X'fe', 0)`), /append-only|constraint/i);
            assert.deepEqual(await log.entries(index, index + 1), [original]);
          },
        );
      }
    });
  });
}

/**
 * SQLite in one process serialises appends by itself (node:sqlite is
 * synchronous), so the peers above never interleave; separate processes on
 * one file are what BEGIN IMMEDIATE has to serialise.
 */
describe('AuditLogStore: sqlite appends from several processes on one file', () => {
  const PROCESSES = 4;
  const APPENDS = 40;

  const moduleUrl = (relative: string) => pathToFileURL(join(import.meta.dirname, relative)).href;
  // Each worker appends as soon as the parent says go, then prints its ranges.
  const worker = `
    import { SqliteDatabase } from ${JSON.stringify(moduleUrl('../../src/store/sqlite/database.ts'))};
    import { openSqliteDurableStore } from ${JSON.stringify(moduleUrl('../../src/store/sqlite/durable-store.ts'))};
    import { appendPlan } from ${JSON.stringify(moduleUrl('../../src/audit/tree.ts'))};
    const store = openSqliteDurableStore(new SqliteDatabase({ path: process.env.AUDIT_DB }));
    const worker = Number(process.env.AUDIT_WORKER);
    const appends = Number(process.env.AUDIT_APPENDS);
    process.stdout.write('ready\\n');
    process.stdin.once('data', async () => {
      const batches = [];
      for (let call = 0; call < appends; call++) {
        const entries = Array.from({ length: 1 + ((worker + call) % 3) }, (_, k) => new TextEncoder().encode('{"worker":' + worker + ',"call":' + call + ',"k":' + k + '}'));
        const recordedAt = worker * 1000 + call;
        batches.push({ first: await store.auditLog.append(entries, recordedAt, appendPlan), entries: entries.map((e) => Buffer.from(e).toString('hex')), recordedAt });
      }
      await store.close();
      process.stdout.write(JSON.stringify(batches) + '\\n');
    });`;

  it(`${PROCESSES} processes x ${APPENDS} appends: disjoint consecutive ranges and one consistent tree`, async (t) => {
    // Made here, not in the describe body: a filtered run (--test-name-pattern) would leave it behind.
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-audit-race-'));
    const path = join(dir, 'portcullis.db');
    const parent = openSqliteDurableStore(new SqliteDatabase({ path }));
    try {
      await parent.migrate();
      const children = range(0, PROCESSES).map((i) =>
        spawn(process.execPath, ['--disable-warning=ExperimentalWarning', '--input-type=module', '--eval', worker], {
          env: { PATH: process.env['PATH'] ?? '', AUDIT_DB: path, AUDIT_WORKER: String(i), AUDIT_APPENDS: String(APPENDS) },
        }),
      );
      const outputs = children.map((child) => {
        let stderr = '';
        child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
        const lines = createInterface({ input: child.stdout });
        const ready = new Promise<void>((resolve) => lines.once('line', () => resolve()));
        const result = new Promise<string>((resolve, reject) => {
          const seen: string[] = [];
          lines.on('line', (line) => seen.push(line));
          child.once('exit', (code) => (code === 0 ? resolve(seen.at(-1) ?? '') : reject(new Error(`worker exited with ${code}: ${stderr}`))));
        });
        return { child, ready, result };
      });
      await within(Promise.all(outputs.map((o) => o.ready)), 20_000, 'workers ready');
      for (const { child } of outputs) child.stdin.end('go\n');
      const results = await within(Promise.all(outputs.map((o) => o.result)), 30_000, 'workers done');
      const batches = results.flatMap((line) =>
        (JSON.parse(line) as { first: number; entries: string[]; recordedAt: number }[]).map((batch) => ({
          ...batch,
          entries: batch.entries.map((entry) => new Uint8Array(Buffer.from(entry, 'hex'))),
        })),
      );
      assert.equal(batches.length, PROCESSES * APPENDS);
      // How much the workers interleaved (3 would mean they ran one after another).
      const workers = [...batches].sort((a, b) => a.first - b.first).map((batch) => Math.floor(batch.recordedAt / 1000));
      t.diagnostic(`${workers.filter((w, i) => i > 0 && w !== workers[i - 1]).length} switches between workers in index order`);
      await assertLogHoldsExactly(parent.auditLog, batches);
    } finally {
      await parent.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
