import { it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { KEY_PURPOSES, KeyVault, MasterKeyError, type KeyPurpose } from '../../src/crypto/index.ts';

const MASTER_KEY = new Uint8Array(32).map((_, i) => i + 1);

/**
 * What the code before the crypto core (282426e, tokens/master-key.ts
 * deriveKey) derived from the master key 0x01..0x20: HKDF-SHA256, info
 * `portcullis/<purpose>`. A changed byte would orphan every stored MAC and
 * pseudonym of an upgraded deployment.
 */
const DERIVED_BY_282426E: Readonly<Record<KeyPurpose, string>> = {
  'client-secrets': 'b16a16bc190848fcbdb95ed2c2003a79d312646c0144c6d26a18068898dcdf7b',
  'refresh-token-hashes': '04a8ee948c3ef7cac2fd85d19c3dfa7f74535b5328cab31b2f20c9e22199ad20',
  'dpop-nonces': '438cbe356f92bc22df8e5fdd49912b82d208588f2f1db774031250501d709dd4',
  'device-cookies': '4413da82fe6277787f56f288e314ac23dfe4cefb30b5b0c99a10e9f587657305',
  'recovery-codes': 'eb46f45d8cbfeccd8c871abc1e629c2855a8395f75352174fad30b6bd77467a2',
  csrf: 'c95cc6a212349ea2b11ff724b8fbb0f12f1e8b4214ebc4340fabd312fb7045d6',
  'log-pseudonyms': 'cb9ecdfeab2b55b751018a0370b0336d265cdb0aa2237491b3e1495f8d26f2c3',
  'audit-ip-pseudonyms': '478bcec52d40b7357df7ae84f954e59ac6ad825ab8de8496504529a1c88cb827',
  // Added with the privacy workflows (issue 15): pinned from their first build.
  'privacy-subjects': '6946a52c324e709d02a72310a501dd307e9aadb2288e77bbe99d45ffb2b2cfb2',
  'stored-ip-pseudonyms': 'efcffa83f7b427c4d439eeedabda6aa27153c3a7408f3d5425e1856ce20d7c8b',
};

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');

it('derives the same key for a purpose every time, and the same key as before the crypto core', () => {
  const vault = KeyVault.fromBytes(MASTER_KEY);
  assert.deepEqual(Object.keys(DERIVED_BY_282426E).sort(), [...KEY_PURPOSES].sort(), 'a test vector for every purpose');
  for (const purpose of KEY_PURPOSES) {
    assert.equal(hex(vault.derive(purpose)), DERIVED_BY_282426E[purpose], purpose);
    assert.equal(hex(KeyVault.fromBytes(MASTER_KEY).derive(purpose)), DERIVED_BY_282426E[purpose], `${purpose}, another vault over the same key`);
  }
});

it('separates purposes and master keys', () => {
  const vault = KeyVault.generate();
  const keys = KEY_PURPOSES.map((purpose) => hex(vault.derive(purpose)));
  assert.equal(new Set(keys).size, KEY_PURPOSES.length, 'no two purposes share a key');
  assert.notEqual(hex(KeyVault.generate().derive('csrf')), hex(vault.derive('csrf')), 'another master key, another key');
});

it('hands out a copy: a caller that wipes its key does not wipe anyone else’s', () => {
  const vault = KeyVault.generate();
  const first = vault.derive('csrf');
  const expected = hex(first);
  first.fill(0);
  assert.equal(hex(vault.derive('csrf')), expected);
  const bytes = new Uint8Array(randomBytes(32));
  const copied = KeyVault.fromBytes(bytes);
  const before = hex(copied.derive('csrf'));
  bytes.fill(0);
  assert.equal(hex(copied.derive('csrf')), before, 'fromBytes copies the master key');
});

it('refuses a purpose that is not in the list, even through a cast, and odd lengths', () => {
  const vault = KeyVault.generate();
  assert.throws(() => vault.derive('session-secrets' as KeyPurpose), TypeError);
  assert.throws(() => vault.derive('seal/signing-keys' as KeyPurpose), TypeError, 'a seal key is not handed out');
  assert.throws(() => vault.derive('csrf', 8), RangeError);
  assert.equal(vault.derive('csrf', 64).length, 64);
});

it('does not leak the master key through JSON, util.inspect, Object.keys, String or structured clone', () => {
  const vault = KeyVault.fromBytes(MASTER_KEY);
  const spellings = [hex(MASTER_KEY), Buffer.from(MASTER_KEY).toString('base64'), Buffer.from(MASTER_KEY).toString('base64url'), [...MASTER_KEY].join(',')];
  const shown = [
    JSON.stringify(vault),
    JSON.stringify({ vault }),
    inspect(vault, { showHidden: true, depth: Infinity }),
    inspect({ nested: vault }, { showHidden: true, depth: Infinity }),
    vault.toString(),
    [vault].join(""),
    JSON.stringify(Object.keys(vault)),
    JSON.stringify(Object.getOwnPropertyNames(vault)),
    JSON.stringify(Object.entries(vault)),
  ];
  for (const text of shown) {
    for (const spelling of spellings) assert.ok(!text.includes(spelling), `${text} shows the key`);
  }
  assert.deepEqual(Object.keys(vault), []);
  assert.deepEqual(Object.getOwnPropertyNames(vault), []);
  assert.deepEqual(Object.getOwnPropertySymbols(vault), []);
  const prototypeMembers = Object.getOwnPropertyNames(Object.getPrototypeOf(vault)).sort();
  assert.deepEqual(prototypeMembers, ['constructor', 'derive', 'open', 'seal', 'toJSON', 'toString'], 'no getter of the key');
  // A structured clone (worker messages) copies no private field.
  assert.throws(() => structuredClone(vault).derive('csrf'));
});

it('refuses a master key of the wrong size', () => {
  assert.throws(() => KeyVault.fromBytes(new Uint8Array(16)), MasterKeyError);
  assert.throws(() => KeyVault.fromBytes(new Uint8Array(33)), MasterKeyError);
});

it('loads the key from the setting or from an owner-only file, and creates the file once', () => {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-vault-'));
  try {
    const encoded = Buffer.from(MASTER_KEY).toString('base64url');
    assert.equal(hex(KeyVault.load({ masterKey: encoded, masterKeyFile: join(dir, 'absent.key') }).derive('csrf')), DERIVED_BY_282426E.csrf);
    assert.throws(() => KeyVault.load({ masterKey: `${encoded}=`, masterKeyFile: join(dir, 'absent.key') }), MasterKeyError);

    const file = join(dir, 'keys', 'master.key');
    assert.throws(() => KeyVault.load({ masterKeyFile: file }), MasterKeyError, 'load never creates');
    const created = KeyVault.loadOrCreate({ masterKeyFile: file });
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const text = readFileSync(file, 'utf8');
    const again = KeyVault.loadOrCreate({ masterKeyFile: file });
    assert.equal(readFileSync(file, 'utf8'), text, 'an existing key is kept');
    assert.equal(hex(again.derive('csrf')), hex(created.derive('csrf')));

    chmodSync(file, 0o644);
    assert.throws(() => KeyVault.load({ masterKeyFile: file }), /readable by other users/);
    const shared = join(dir, 'other.key');
    writeFileSync(shared, 'not a key\n', { mode: 0o600 });
    assert.throws(() => KeyVault.load({ masterKeyFile: shared }), MasterKeyError);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
