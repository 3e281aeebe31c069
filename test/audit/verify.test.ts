/**
 * The offline log verifier (src/audit/verify.ts) over synthetic in-memory
 * logs: intact logs of many shapes verify; every kind of tampering is caught
 * with the right problem kind and the first bad index; a property test
 * checks that any single modification fails and is located no later than
 * where it was made.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import canonicalize from 'canonicalize';
import { formatCheckpoint, generateSignerKey, parseSignerKey, parseVerifierKey, signCheckpoint, signNote, type NoteSigner } from '../../src/audit/checkpoint/index.ts';
import { leafHash, rootHash } from '../../src/audit/merkle/index.ts';
import { PROBLEMS_PER_KIND, isCanonicalJson, verifyLog, type VerifyEntry, type VerifyOptions, type VerifyProblemKind, type VerifyReport, type VerifySource } from '../../src/audit/verify.ts';

const ORIGIN = 'audit.example.com/portcullis';
const LOG_KEY = generateSignerKey(ORIGIN);
const LOG_SIGNER = parseSignerKey(LOG_KEY.signerKey);
const LOG_VERIFIER = parseVerifierKey(LOG_KEY.verifierKey);
const TIME = 1_780_000_000;
const encoder = new TextEncoder();

/** The bytes of entry `i`: canonical JSON, distinct for every i. */
function makeEntry(i: number, extra = ''): Uint8Array {
  return encoder.encode(canonicalize({ type: 'auth.login.succeeded', v: 1, seq: i, actor: `user-${i % 7}${extra}`, detail: { ok: i % 2 === 0 } }));
}

function makeEntries(n: number): Uint8Array[] {
  return Array.from({ length: n }, (_, i) => makeEntry(i));
}

/** A signed checkpoint of the tree of `entries` at `size`. */
function checkpointAt(entries: readonly Uint8Array[], size: number, signer: NoteSigner = LOG_SIGNER, time = TIME + size): string {
  return signCheckpoint({ origin: signer.name, size, rootHash: rootHash(entries.slice(0, size).map(leafHash)), time }, signer);
}

interface SourceSpec {
  /** Entries in stream order: bytes (indexed by position) or explicit { index, entry }. */
  readonly entries: readonly (Uint8Array | VerifyEntry)[];
  readonly checkpoints?: readonly string[];
  /** Defaults to the number of entries. */
  readonly size?: number;
  /** Stored level-0 nodes by index; absent: the source has no storedLeafHashes. */
  readonly storedLeafHashes?: readonly (Uint8Array | undefined)[];
  /** Yield batches of this many entries; 0: one entry per item. */
  readonly batch?: number;
}

/** A VerifySource over arrays, as an export file or a store would present them. */
function sourceOf(spec: SourceSpec): VerifySource {
  const entries: VerifyEntry[] = spec.entries.map((item, position) => (item instanceof Uint8Array ? { index: position, entry: item } : item));
  const batch = spec.batch ?? 3;
  const source: VerifySource = {
    size: async () => spec.size ?? entries.length,
    checkpoints: async () => spec.checkpoints ?? [],
    async *entries() {
      if (batch === 0) yield* entries;
      else for (let i = 0; i < entries.length; i += batch) yield entries.slice(i, i + batch);
    },
  };
  const stored = spec.storedLeafHashes;
  if (stored !== undefined) source.storedLeafHashes = async (start, end) => Array.from({ length: end - start }, (_, i) => stored[start + i]);
  return source;
}

function verify(spec: SourceSpec, options: Partial<VerifyOptions> = {}): Promise<VerifyReport> {
  return verifyLog(sourceOf(spec), { logKey: LOG_VERIFIER, ...options });
}

/** The problems of one kind, with a readable failure message listing all of them. */
function problemsOf(report: VerifyReport, kind: VerifyProblemKind): VerifyReport['problems'] {
  const found = report.problems.filter((problem) => problem.kind === kind);
  assert.ok(found.length > 0, `expected a ${kind} problem, got ${JSON.stringify(report.problems, null, 1)}`);
  return found;
}

function assertKinds(report: VerifyReport, kinds: readonly VerifyProblemKind[]): void {
  assert.equal(report.ok, false);
  assert.deepEqual([...new Set(report.problems.map((problem) => problem.kind))].sort(), [...kinds].sort(), JSON.stringify(report.problems, null, 1));
}

/** A log of n entries with checkpoints at `sizes`, its leaf hashes, and a spec over it. */
function intactLog(n: number, sizes: readonly number[]) {
  const entries = makeEntries(n);
  const leafHashes = entries.map(leafHash);
  const checkpoints = sizes.map((size) => checkpointAt(entries, size));
  return { entries, leafHashes, checkpoints };
}

describe('intact logs', () => {
  const shapes: [number, number[]][] = [
    [0, []],
    [0, [0]],
    [1, [1]],
    [1, [0, 1]],
    [2, [1, 2]],
    [3, [1, 2, 3]],
    [7, [4, 7]],
    [8, [8]],
    [9, [3, 8, 9]],
    [100, [1, 10, 64, 99, 100]],
    [1000, [512, 513, 999]], // entries past the last checkpoint are not yet signed: fine
    [1025, [1, 1024, 1025]],
  ];
  for (const [n, sizes] of shapes) {
    it(`${n} entries, checkpoints at [${sizes.join(', ')}]`, async () => {
      const log = intactLog(n, sizes);
      for (const batch of [0, 1, 7]) {
        const report = await verify({ entries: log.entries, checkpoints: log.checkpoints, storedLeafHashes: log.leafHashes, batch });
        assert.deepEqual(report.problems, []);
        assert.equal(report.ok, true);
        assert.equal(report.entries, n);
        assert.equal(report.checkpointsChecked, sizes.length);
        assert.equal(report.firstBadIndex, undefined);
        assert.equal(report.problemsOmitted, 0);
        if (sizes.length === 0) {
          assert.equal(report.latest, undefined);
        } else {
          const largest = Math.max(...sizes);
          assert.equal(report.latest?.size, largest);
          assert.equal(report.latest?.origin, ORIGIN);
          assert.equal(report.latestNote, log.checkpoints[sizes.indexOf(largest)]);
        }
      }
    });
  }

  it('reads an intact log in one pass and never asks for stored leaf hashes', async () => {
    const log = intactLog(100, [50, 100]);
    const source = sourceOf({ entries: log.entries, checkpoints: log.checkpoints });
    const calls = { entries: 0, storedLeafHashes: 0 };
    const entries = source.entries.bind(source);
    const report = await verifyLog(
      {
        ...source,
        entries: () => {
          calls.entries++;
          return entries();
        },
        storedLeafHashes: async () => {
          calls.storedLeafHashes++;
          return log.leafHashes;
        },
      },
      { logKey: LOG_VERIFIER },
    );
    assert.equal(report.ok, true);
    assert.deepEqual(calls, { entries: 1, storedLeafHashes: 0 });
  });

  it('checks the same checkpoint twice, stored and trusted, and checkpoints in any order', async () => {
    const log = intactLog(50, [10, 20, 50]);
    const report = await verify({ entries: log.entries, checkpoints: [...log.checkpoints].reverse() }, { trusted: [log.checkpoints[1]!, log.checkpoints[2]!] });
    assert.equal(report.ok, true, JSON.stringify(report.problems));
    assert.equal(report.checkpointsChecked, 5);
    assert.equal(report.latest?.size, 50);
  });

  it('accepts checkpoints carrying extra signatures (witness cosignatures)', async () => {
    const entries = makeEntries(20);
    const witness = parseSignerKey(generateSignerKey('witness.example.com/w1').signerKey);
    const body = formatCheckpoint({ origin: ORIGIN, size: 20, rootHash: rootHash(entries.map(leafHash)), time: TIME });
    const report = await verify({ entries, checkpoints: [signNote(body, [LOG_SIGNER, witness])] });
    assert.equal(report.ok, true, JSON.stringify(report.problems));
  });

  it('handles entries larger than its scratch buffer', async () => {
    const entries = makeEntries(10);
    entries[4] = encoder.encode(canonicalize({ big: 'x'.repeat(20_000), seq: 4 }));
    entries[7] = encoder.encode(canonicalize({ bigger: 'é'.repeat(40_000), seq: 7 }));
    const report = await verify({ entries, checkpoints: [checkpointAt(entries, 5), checkpointAt(entries, 10)] });
    assert.equal(report.ok, true, JSON.stringify(report.problems));
  });

  it('reports progress every 65,536 entries and at the end', async () => {
    const n = 70_000;
    const entries = Array.from({ length: n }, (_, i) => encoder.encode(`{"seq":${i}}`));
    const calls: [number, number][] = [];
    const report = await verify({ entries, batch: 1000 }, { onProgress: (done, total) => calls.push([done, total]) });
    assert.equal(report.ok, true);
    assert.deepEqual(calls, [
      [65_536, n],
      [n, n],
    ]);
  });

  it('reports progress once for an empty log', async () => {
    const calls: [number, number][] = [];
    await verify({ entries: [] }, { onProgress: (done, total) => calls.push([done, total]) });
    assert.deepEqual(calls, [[0, 0]]);
  });
});

describe('modified entries', () => {
  const n = 40;
  const sizes = [10, 20, 30, 40];

  it('names the modified entry exactly from the stored leaf hashes', async () => {
    const log = intactLog(n, sizes);
    const entries = [...log.entries];
    entries[23] = makeEntry(23, '-edited'); // still canonical: only the hashes can tell
    const report = await verify({ entries, checkpoints: log.checkpoints, storedLeafHashes: log.leafHashes });
    assertKinds(report, ['root_mismatch']);
    const mismatches = problemsOf(report, 'root_mismatch');
    assert.deepEqual(
      mismatches.map((problem) => [problem.checkpointSize, problem.index]),
      [
        [30, 23],
        [40, 23],
      ],
    );
    assert.equal(report.firstBadIndex, 23);
    assert.equal(report.latest?.size, 20);
    assert.match(mismatches[0]!.message, /entry 23 differs from its stored leaf hash/);
  });

  it('without stored leaf hashes, gives the range after the last good checkpoint', async () => {
    const log = intactLog(n, sizes);
    const entries = [...log.entries];
    entries[23] = makeEntry(23, '-edited');
    const report = await verify({ entries, checkpoints: log.checkpoints });
    assertKinds(report, ['root_mismatch']);
    assert.equal(report.firstBadIndex, 20);
    const [first] = problemsOf(report, 'root_mismatch');
    assert.equal(first!.index, 20);
    assert.match(first!.message, /lies in \[20, 30\)/);
  });

  it('gives the range when the attacker rewrote the stored leaf hash too', async () => {
    const log = intactLog(n, sizes);
    const entries = [...log.entries];
    entries[23] = makeEntry(23, '-edited');
    const storedLeafHashes = [...log.leafHashes];
    storedLeafHashes[23] = leafHash(entries[23]);
    const report = await verify({ entries, checkpoints: log.checkpoints, storedLeafHashes });
    assert.equal(report.firstBadIndex, 20);
    assert.match(problemsOf(report, 'root_mismatch')[0]!.message, /lies in \[20, 30\).*node rows were rewritten/);
  });

  it('treats a missing stored leaf hash as a difference', async () => {
    const log = intactLog(n, sizes);
    const entries = [...log.entries];
    entries[5] = makeEntry(5, '-edited');
    const storedLeafHashes = log.leafHashes.map((hash, index) => (index === 5 ? undefined : hash));
    const report = await verify({ entries, checkpoints: log.checkpoints, storedLeafHashes });
    assert.equal(report.firstBadIndex, 5);
  });

  it('finds the first of two modified entries', async () => {
    const log = intactLog(n, sizes);
    const entries = [...log.entries];
    entries[33] = makeEntry(33, '-edited');
    entries[12] = makeEntry(12, '-edited');
    const report = await verify({ entries, checkpoints: log.checkpoints, storedLeafHashes: log.leafHashes });
    assert.equal(report.firstBadIndex, 12);
    assert.equal(report.latest?.size, 10);
  });

  it('localises across many chunks of stored leaf hashes', async () => {
    const big = intactLog(10_000, [1000, 10_000]);
    const entries = [...big.entries];
    entries[9_321] = makeEntry(9_321, '-edited');
    const report = await verify({ entries, checkpoints: big.checkpoints, storedLeafHashes: big.leafHashes, batch: 500 });
    assert.equal(report.firstBadIndex, 9_321);
  });
});

describe('deleted, inserted and reordered entries', () => {
  const n = 30;
  const sizes = [10, 20, 30];

  it('a deleted entry leaves a gap', async () => {
    const log = intactLog(n, sizes);
    const entries: VerifyEntry[] = log.entries.map((entry, index) => ({ index, entry })).filter(({ index }) => index !== 14);
    const report = await verify({ entries, checkpoints: log.checkpoints, size: n });
    const [gap] = problemsOf(report, 'gap');
    assert.equal(gap!.index, 14);
    assert.match(gap!.message, /entry 14 is missing/);
    assert.equal(report.firstBadIndex, 14);
    assertKinds(report, ['gap', 'size_mismatch', 'rollback', 'root_mismatch']);
  });

  it('several deleted entries: one gap per hole', async () => {
    const log = intactLog(n, sizes);
    const deleted = new Set([3, 4, 5, 17]);
    const entries: VerifyEntry[] = log.entries.map((entry, index) => ({ index, entry })).filter(({ index }) => !deleted.has(index));
    const report = await verify({ entries, checkpoints: log.checkpoints, size: n });
    assert.deepEqual(
      problemsOf(report, 'gap').map((problem) => problem.index),
      [3, 17],
    );
    assert.equal(report.firstBadIndex, 3);
  });

  it('a deleted entry with the indices renumbered is caught by the roots', async () => {
    const log = intactLog(n, sizes);
    const entries = log.entries.filter((_, index) => index !== 14);
    const report = await verify({ entries, checkpoints: log.checkpoints, storedLeafHashes: log.leafHashes });
    assertKinds(report, ['root_mismatch', 'rollback']);
    assert.equal(report.firstBadIndex, 14);
  });

  it('an inserted entry with a repeated index is a duplicate', async () => {
    const log = intactLog(n, sizes);
    const entries: VerifyEntry[] = log.entries.map((entry, index) => ({ index, entry }));
    entries.splice(8, 0, { index: 7, entry: makeEntry(7, '-forged') });
    const report = await verify({ entries, checkpoints: log.checkpoints, size: n });
    const [duplicate] = problemsOf(report, 'duplicate');
    assert.equal(duplicate!.index, 7);
    assert.equal(report.firstBadIndex, 7);
  });

  it('an inserted entry with the later indices shifted is caught by the roots and the size', async () => {
    const log = intactLog(n, sizes);
    const entries = [...log.entries];
    entries.splice(12, 0, makeEntry(1000));
    const report = await verify({ entries, checkpoints: log.checkpoints, size: n, storedLeafHashes: log.leafHashes });
    assertKinds(report, ['root_mismatch', 'size_mismatch']);
    assert.equal(report.firstBadIndex, 12);
    assert.equal(problemsOf(report, 'size_mismatch')[0]!.index, n);
    // And when the head was moved along too, the roots alone still tell.
    const moved = await verify({ entries, checkpoints: log.checkpoints, size: n + 1 });
    assertKinds(moved, ['root_mismatch']);
    assert.equal(moved.firstBadIndex, 10);
  });

  it('two swapped entries in an export are out of order', async () => {
    const log = intactLog(n, sizes);
    const entries: VerifyEntry[] = log.entries.map((entry, index) => ({ index, entry }));
    [entries[5], entries[16]] = [entries[16]!, entries[5]!];
    const report = await verify({ entries, checkpoints: log.checkpoints });
    assert.deepEqual(
      problemsOf(report, 'out_of_order').map((problem) => problem.index),
      [6, 5],
    );
    assert.equal(report.problems.filter((problem) => problem.kind === 'gap').length, 0);
    assert.equal(report.firstBadIndex, 5);
  });

  it('two adjacent swapped entries give one out_of_order', async () => {
    const log = intactLog(n, sizes);
    const entries: VerifyEntry[] = log.entries.map((entry, index) => ({ index, entry }));
    [entries[8], entries[9]] = [entries[9]!, entries[8]!];
    const report = await verify({ entries, checkpoints: log.checkpoints });
    assert.deepEqual(
      report.problems.filter((problem) => problem.kind !== 'root_mismatch').map((problem) => [problem.kind, problem.index]),
      [['out_of_order', 8]],
    );
    assert.equal(report.firstBadIndex, 8);
  });

  it('two swapped contents under unchanged indices are caught by the roots, exactly', async () => {
    const log = intactLog(n, sizes);
    const entries = [...log.entries];
    [entries[5], entries[16]] = [entries[16]!, entries[5]!];
    const report = await verify({ entries, checkpoints: log.checkpoints, storedLeafHashes: log.leafHashes });
    assertKinds(report, ['root_mismatch']);
    assert.equal(report.firstBadIndex, 5);
  });

  it('reports invalid indices and non-byte entries of a malformed source without throwing', async () => {
    const log = intactLog(6, [6]);
    const entries: VerifyEntry[] = log.entries.map((entry, index) => ({ index, entry }));
    entries[2] = { index: Number.NaN, entry: log.entries[2]! };
    entries[4] = { index: 4, entry: 'not bytes' as unknown as Uint8Array };
    const report = await verify({ entries, checkpoints: log.checkpoints });
    assert.equal(problemsOf(report, 'bad_index')[0]!.index, 2);
    assert.equal(problemsOf(report, 'bad_entry')[0]!.index, 4);
    assert.equal(report.firstBadIndex, 2);
  });
});

describe('index sequence', () => {
  const entry = makeEntry(0);
  const indexSource = (indices: readonly number[]): SourceSpec => ({ entries: indices.map((index) => ({ index, entry })), size: indices.length });

  it('property: gaps are exactly the holes below the largest index, duplicates exactly the repeats', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.nat({ max: 40 }), { maxLength: 60 }), async (indices) => {
        const report = await verify(indexSource(indices), { checkCanonical: false });
        const seen = new Set<number>();
        let repeats = 0;
        for (const index of indices) {
          if (seen.has(index)) repeats++;
          seen.add(index);
        }
        const holeStarts: number[] = [];
        const largest = Math.max(-1, ...indices);
        for (let index = 0; index <= largest; index++) if (!seen.has(index) && (index === 0 || seen.has(index - 1))) holeStarts.push(index);
        const kinds = (kind: VerifyProblemKind) => report.problems.filter((problem) => problem.kind === kind);
        assert.deepEqual(
          kinds('gap').map((problem) => problem.index),
          holeStarts,
        );
        assert.equal(kinds('duplicate').length, repeats);
        const sequential = indices.every((index, position) => index === position);
        assert.equal(report.ok, sequential, JSON.stringify(report.problems));
        if (!sequential) {
          const firstWrong = indices.findIndex((index, position) => index !== position);
          assert.ok(report.firstBadIndex !== undefined && report.firstBadIndex <= firstWrong, `${report.firstBadIndex} > ${firstWrong}`);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('a shuffled export stays cheap: the order check gives up after 10,000 anomalies', async () => {
    const n = 60_000;
    const indices = Array.from({ length: n }, (_, i) => i);
    let seed = 42;
    for (let i = n - 1; i > 0; i--) {
      seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
      const j = seed % (i + 1);
      [indices[i], indices[j]] = [indices[j]!, indices[i]!];
    }
    const started = performance.now();
    const report = await verify({ ...indexSource(indices), batch: 1000 }, { checkCanonical: false });
    assert.ok(performance.now() - started < 5000);
    assert.equal(report.ok, false);
    assert.ok(report.problems.length <= PROBLEMS_PER_KIND * 2);
    assert.ok(report.problems.some((problem) => /index check stopped/.test(problem.message)));
    assert.ok(report.problemsOmitted > 0);
  });
});

describe('non-canonical entries', () => {
  const cases: [string, Uint8Array][] = [
    ['a space added', encoder.encode('{"seq": 3,"type":"x","v":1}')],
    ['keys out of order', encoder.encode('{"type":"x","seq":3,"v":1}')],
    ['a number not in shortest form', encoder.encode('{"seq":3.0,"type":"x","v":1}')],
    ['a needless escape', encoder.encode('{"seq":3,"type":"\\u0078","v":1}')],
    ['a duplicate key', encoder.encode('{"seq":3,"seq":3,"type":"x","v":1}')],
    ['a lone surrogate', encoder.encode('{"seq":3,"type":"\\ud800","v":1}')],
    ['invalid UTF-8', Uint8Array.of(0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d)],
    ['a byte order mark', encoder.encode('\ufeff{"seq":3}')],
    ['not JSON', encoder.encode('{"seq":3')],
    ['an array', encoder.encode('[1,2,3]')],
    ['a string', encoder.encode('"text"')],
    ['null', encoder.encode('null')],
    ['empty', new Uint8Array(0)],
    ['a trailing newline', encoder.encode('{"seq":3}\n')],
  ];
  for (const [name, bytes] of cases) {
    it(`finds an entry with ${name}`, async () => {
      const log = intactLog(6, []);
      const entries = [...log.entries];
      entries[3] = bytes;
      // Checkpoints signed over the edited log: only the form check can tell.
      const report = await verify({ entries, checkpoints: [checkpointAt(entries, 6)] });
      assertKinds(report, ['bad_entry']);
      assert.equal(report.firstBadIndex, 3);
      assert.equal(problemsOf(report, 'bad_entry')[0]!.index, 3);
    });
  }

  it('accepts canonical entries with escapes, unicode, numbers and integer-like keys', async () => {
    const values = [{ '10': 1, '9': 2, a: [1e21, 1e-7, -0.5, 0], s: '\u0000"\\/\u2028é😀' }, { '': null, z: { y: { x: true } } }, {}];
    const entries = values.map((value) => encoder.encode(canonicalize(value)));
    const report = await verify({ entries, checkpoints: [checkpointAt(entries, 3)] });
    assert.equal(report.ok, true, JSON.stringify(report.problems));
  });

  it('checkCanonical false skips the form check; the roots still prove the entries', async () => {
    const log = intactLog(6, [6]);
    const entries = [...log.entries];
    entries[3] = encoder.encode(' ' + new TextDecoder().decode(entries[3]));
    const signedOver = await verify({ entries, checkpoints: [checkpointAt(entries, 6)] }, { checkCanonical: false });
    assert.equal(signedOver.ok, true);
    const edited = await verify({ entries, checkpoints: log.checkpoints, storedLeafHashes: log.leafHashes }, { checkCanonical: false });
    assertKinds(edited, ['root_mismatch']);
    assert.equal(edited.firstBadIndex, 3);
  });

  it(`lists at most ${PROBLEMS_PER_KIND} problems of a kind and counts the rest`, async () => {
    const entries = Array.from({ length: PROBLEMS_PER_KIND + 50 }, (_, i) => encoder.encode(`{"seq": ${i}}`));
    const report = await verify({ entries });
    assert.equal(report.problems.length, PROBLEMS_PER_KIND);
    assert.equal(report.problemsOmitted, 50);
    assert.equal(report.firstBadIndex, 0);
  });
});

describe('isCanonicalJson (the fast path must agree with canonicalize)', () => {
  const reference = (text: string): boolean => {
    try {
      return canonicalize(JSON.parse(text)) === text;
    } catch {
      return false;
    }
  };

  it('agrees on hand-picked spellings', () => {
    const texts = [
      '{}',
      '[]',
      'null',
      '-0',
      '0',
      '1e999',
      '1E+21',
      '1e+21',
      '"\\ud800"',
      '"\\uD800"',
      '"\\ud83d\\ude00"',
      '"😀"',
      '"\\u00e9"',
      '"é"',
      '"\\u001f"',
      '"\\u001F"',
      '"\\\\ud"',
      '{"10":1,"9":2}',
      '{"9":2,"10":1}',
      '{"__proto__":1,"a":2}',
      '{"a":2,"__proto__":1}',
      '{"toJSON":"x"}',
      '{"a":1,"a":1}',
      '{"\u20ac":1,"\ud83d\ude00":2}',
      '{"\ud83d\ude00":2,"\u20ac":1}',
      `${'['.repeat(20_000)}${']'.repeat(20_000)}`,
    ];
    for (const text of texts) assert.equal(isCanonicalJson(text), reference(text), text.slice(0, 40));
  });

  it('agrees on random JSON values in canonical, JSON.stringify, reordered and spaced spellings', () => {
    const key = fc.oneof(fc.string({ unit: 'binary', maxLength: 3 }), fc.nat({ max: 12 }).map(String), fc.constantFrom('', 'a', 'B', '__proto__', 'toJSON'));
    const { json } = fc.letrec<{ json: unknown }>((tie) => ({
      json: fc.oneof(
        { depthSize: 'small' },
        fc.constant(null),
        fc.boolean(),
        fc.integer(),
        fc.double(),
        fc.string({ unit: 'binary', maxLength: 6 }),
        fc.string({ unit: 'binary-ascii', maxLength: 6 }),
        fc.array(tie('json'), { maxLength: 4 }),
        fc.dictionary(key, tie('json'), { maxKeys: 5 }),
      ),
    }));
    const reorder = (value: unknown): unknown => {
      if (Array.isArray(value)) return value.map(reorder);
      if (typeof value !== 'object' || value === null) return value;
      const entries = Object.entries(value).reverse();
      const copy: Record<string, unknown> = {};
      for (const [name, child] of entries) Object.defineProperty(copy, name, { value: reorder(child), enumerable: true, writable: true, configurable: true });
      return copy;
    };
    fc.assert(
      fc.property(json, (value) => {
        const spellings = [JSON.stringify(value), JSON.stringify(reorder(value)), JSON.stringify(value, null, 1)];
        try {
          const canonical = canonicalize(value);
          if (canonical !== undefined) spellings.push(canonical);
        } catch {
          // no canonical form (a lone surrogate): the other spellings still count
        }
        for (const text of spellings) assert.equal(isCanonicalJson(text), reference(text), text);
      }),
      { numRuns: 1000 },
    );
  });
});

describe('forged checkpoints', () => {
  const n = 20;

  it('a checkpoint signed with another key of the same name', async () => {
    const log = intactLog(n, [10, 20]);
    const forger = parseSignerKey(generateSignerKey(ORIGIN).signerKey);
    const report = await verify({ entries: log.entries, checkpoints: [...log.checkpoints, checkpointAt(log.entries, 15, forger)] });
    assertKinds(report, ['bad_signature']);
    assert.equal(problemsOf(report, 'bad_signature')[0]!.checkpointSize, 15);
    assert.equal(report.firstBadIndex, undefined);
    assert.equal(report.checkpointsChecked, 3);
  });

  it('a checkpoint with an altered root under the original signature', async () => {
    const log = intactLog(n, [10, 20]);
    const note = log.checkpoints[1]!;
    const [origin, size, root, ...rest] = note.split('\n');
    const altered = [origin, size, Buffer.from(rootHash(makeEntries(20).reverse().map(leafHash))).toString('base64'), ...rest].join('\n');
    assert.notEqual(altered, note);
    assert.equal(root!.length, 44);
    const report = await verify({ entries: log.entries, checkpoints: [log.checkpoints[0]!, altered] });
    assertKinds(report, ['bad_signature']);
    assert.equal(report.latest?.size, 10);
  });

  it('a checkpoint signed by the log key for another origin', async () => {
    const log = intactLog(n, [20]);
    const body = formatCheckpoint({ origin: 'other.example.com/log', size: 20, rootHash: rootHash(log.leafHashes), time: TIME });
    const report = await verify({ entries: log.entries, checkpoints: [...log.checkpoints, signNote(body, [LOG_SIGNER])] });
    assertKinds(report, ['wrong_origin']);
  });

  it('a malformed note', async () => {
    const log = intactLog(n, [20]);
    const report = await verify({ entries: log.entries, checkpoints: [...log.checkpoints, 'not a note', 42 as unknown as string] });
    assertKinds(report, ['malformed_checkpoint']);
    assert.equal(problemsOf(report, 'malformed_checkpoint').length, 2);
  });

  it('two checkpoints of one size with different roots (the key signed two histories)', async () => {
    const log = intactLog(n, [10, 20]);
    const fork = [...log.entries];
    fork[15] = makeEntry(15, '-fork');
    const report = await verify({ entries: log.entries, checkpoints: [...log.checkpoints, checkpointAt(fork, 20)] });
    assertKinds(report, ['inconsistent_checkpoints', 'root_mismatch']);
    assert.equal(problemsOf(report, 'inconsistent_checkpoints')[0]!.checkpointSize, 20);
    assert.equal(report.latest?.size, 20);
  });
});

describe('rolled-back logs', () => {
  const n = 40;
  const sizes = [10, 20, 30, 40];

  it('a log shorter than a checkpoint it signed', async () => {
    const log = intactLog(n, sizes);
    const spec = { entries: log.entries.slice(0, 33), checkpoints: log.checkpoints };
    const report = await verify(spec);
    assertKinds(report, ['rollback']);
    const [rollback] = problemsOf(report, 'rollback');
    assert.equal(rollback!.checkpointSize, 40);
    // Without stored leaf hashes, entries 30..32 are not proven either.
    assert.equal(rollback!.index, 30);
    assert.match(rollback!.message, /entries from 33 on were removed; entries \[30, 33\) are unproven too/);
    assert.equal(report.latest?.size, 30);
    // With them, the prefix checks out and the first missing entry is exact.
    const exact = await verify({ ...spec, storedLeafHashes: log.leafHashes });
    assert.equal(exact.firstBadIndex, 33);
    assert.equal(problemsOf(exact, 'rollback')[0]!.index, 33);
  });

  it('with the stored checkpoints rolled back too, a trusted checkpoint still tells', async () => {
    const log = intactLog(n, sizes);
    const spec = { entries: log.entries.slice(0, 25), checkpoints: log.checkpoints.slice(0, 2) };
    assert.equal((await verify(spec)).ok, true); // nothing left in the log to contradict it
    const report = await verify(spec, { trusted: [log.checkpoints[2]!] });
    assertKinds(report, ['rollback']);
    const [rollback] = problemsOf(report, 'rollback');
    assert.equal(rollback!.trusted, true);
    assert.equal(rollback!.checkpointSize, 30);
    assert.equal(report.firstBadIndex, 20);
    assert.equal((await verify({ ...spec, storedLeafHashes: log.leafHashes }, { trusted: [log.checkpoints[2]!] })).firstBadIndex, 25);
  });

  it('rolled back and re-grown (a fork): the trusted checkpoint no longer matches', async () => {
    const log = intactLog(n, sizes);
    const forked = [...log.entries.slice(0, 25), ...Array.from({ length: 20 }, (_, i) => makeEntry(25 + i, '-fork'))];
    const report = await verify({ entries: forked, checkpoints: [...log.checkpoints.slice(0, 2), checkpointAt(forked, 45)] }, { trusted: [log.checkpoints[2]!] });
    assertKinds(report, ['root_mismatch']);
    const [mismatch] = problemsOf(report, 'root_mismatch');
    assert.equal(mismatch!.trusted, true);
    assert.equal(mismatch!.checkpointSize, 30);
    assert.equal(report.firstBadIndex, 20);
  });

  it('a trusted checkpoint that does not verify with the log key', async () => {
    const log = intactLog(n, sizes);
    const other = parseSignerKey(generateSignerKey('other.example.com/log').signerKey);
    const report = await verify({ entries: log.entries, checkpoints: log.checkpoints }, { trusted: [checkpointAt(log.entries, 40, other), 'garbage'] });
    assertKinds(report, ['trusted_unverifiable']);
    assert.equal(problemsOf(report, 'trusted_unverifiable').length, 2);
  });

  it('a truncated log whose head still claims the old size', async () => {
    const log = intactLog(n, [10, 20]);
    const report = await verify({ entries: log.entries.slice(0, 35), checkpoints: log.checkpoints, size: n });
    assertKinds(report, ['size_mismatch']);
    const [mismatch] = problemsOf(report, 'size_mismatch');
    assert.equal(mismatch!.index, 35);
    assert.match(mismatch!.message, /claims 40 entries but holds 35/);
  });

  it('more entries than the head claims', async () => {
    const log = intactLog(n, [10, 20]);
    const report = await verify({ entries: log.entries, checkpoints: log.checkpoints, size: 37 });
    assertKinds(report, ['size_mismatch']);
    assert.equal(report.firstBadIndex, 37);
  });

  it('an invalid claimed size', async () => {
    const log = intactLog(5, [5]);
    const report = await verify({ entries: log.entries, checkpoints: log.checkpoints, size: -1 });
    assertKinds(report, ['size_mismatch']);
  });
});

describe('property: any single modification fails and is located no later than it was made', () => {
  type Modification =
    | { kind: 'edit'; at: number }
    | { kind: 'noncanonical'; at: number }
    | { kind: 'delete'; at: number }
    | { kind: 'delete_renumber'; at: number }
    | { kind: 'duplicate'; at: number }
    | { kind: 'insert_shift'; at: number }
    | { kind: 'swap'; at: number; other: number }
    | { kind: 'truncate'; at: number };

  const arbitraryCase = fc
    .integer({ min: 1, max: 150 })
    .chain((n) =>
      fc.record({
        n: fc.constant(n),
        sizes: fc.uniqueArray(fc.integer({ min: 0, max: n - 1 }), { maxLength: 5 }),
        modification: fc.oneof(
          fc.constantFrom('edit', 'noncanonical', 'delete', 'delete_renumber', 'duplicate', 'insert_shift', 'truncate').chain((kind) =>
            fc.integer({ min: 0, max: n - 1 }).map((at) => ({ kind, at })),
          ),
          fc
            .tuple(fc.integer({ min: 0, max: n - 1 }), fc.integer({ min: 0, max: n - 1 }))
            .map(([a, b]): Modification => (a === b ? { kind: 'edit', at: a } : { kind: 'swap', at: Math.min(a, b), other: Math.max(a, b) })),
        ),
        withStoredLeafHashes: fc.boolean(),
        batch: fc.constantFrom(0, 1, 4, 64),
      }),
    );

  it('holds for random logs', async () => {
    await fc.assert(
      fc.asyncProperty(arbitraryCase, async ({ n, sizes, modification, withStoredLeafHashes, batch }) => {
        // The final size is always signed, so every entry is covered by a checkpoint.
        const log = intactLog(n, [...sizes, n]);
        let entries: VerifyEntry[] = log.entries.map((entry, index) => ({ index, entry }));
        let size = n;
        const { at } = modification;
        switch (modification.kind) {
          case 'edit':
            entries[at] = { index: at, entry: makeEntry(at, '-edited') };
            break;
          case 'noncanonical':
            entries[at] = { index: at, entry: encoder.encode(`${new TextDecoder().decode(log.entries[at])} `) };
            break;
          case 'delete':
            entries.splice(at, 1);
            break;
          case 'delete_renumber':
            entries = entries.filter((_, index) => index !== at).map(({ entry }, index) => ({ index, entry }));
            size = n - 1;
            break;
          case 'duplicate':
            entries.splice(at + 1, 0, { index: at, entry: makeEntry(at, '-copy') });
            break;
          case 'insert_shift':
            entries.splice(at, 0, { index: at, entry: makeEntry(at, '-inserted') });
            entries = entries.map(({ entry }, index) => ({ index, entry }));
            size = n + 1;
            break;
          case 'swap':
            [entries[at], entries[modification.other]] = [entries[modification.other]!, entries[at]!];
            if (at % 2 === 0) entries = entries.map(({ entry }, index) => ({ index, entry })); // contents swapped under unchanged indices
            break;
          case 'truncate':
            entries = entries.slice(0, at);
            size = at;
            break;
        }
        const report = await verify({ entries, checkpoints: log.checkpoints, size, batch, ...(withStoredLeafHashes ? { storedLeafHashes: log.leafHashes } : {}) });
        assert.equal(report.ok, false);
        assert.ok(report.firstBadIndex !== undefined && report.firstBadIndex <= at, `firstBadIndex ${report.firstBadIndex} > ${at}: ${JSON.stringify(report.problems)}`);
        if (withStoredLeafHashes && (modification.kind === 'edit' || modification.kind === 'insert_shift' || modification.kind === 'delete_renumber')) {
          assert.equal(report.firstBadIndex, at);
        }
      }),
      { numRuns: 300 },
    );
  });
});
