/**
 * C2SP signed-note, tlog-checkpoint and tlog-cosignature (Ed25519
 * cosignature/v1) as implemented in src/audit/checkpoint/.
 *
 * Vector sources:
 * - golang/mod sumdb/note/note_test.go and note.go (package doc): the
 *   PeterNeumann / EnochRoot keys, the signed "If you think cryptography..."
 *   note, and the malformed-note list of TestOpen.
 * - C2SP/C2SP tlog-checkpoint.md and tlog-cosignature.md: the
 *   example.com/behind-the-sofa checkpoint, the witness.example.com/w1
 *   signature line (no key is published for it, so only its framing is
 *   checked) and the "cosignature/v1 / time 1679315147" message example.
 * - transparency-dev/formats note/note_cosigv1_test.go: the real-world 0x04
 *   witness vkey remora.n621.de+da77ade7+...; witness/witness_test.go: the
 *   Wit1 skey/vkey pair. The Wit1 cosignature below is NOT published: it was
 *   computed independently with pyca/cryptography from the spec text (Wit1's
 *   seed re-encoded as a 0x04 key, the behind-the-sofa body, time
 *   1679315147). Ed25519 is deterministic, so it pins the byte layout.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import fc from 'fast-check';
import {
  NoteError,
  computeKeyId,
  cosign,
  cosignatureMessage,
  cosignatureTimestamp,
  formatCheckpoint,
  formatNote,
  formatSignatureLine,
  generateCosignatureKey,
  generateSignerKey,
  openCheckpoint,
  openNote,
  parseCheckpoint,
  parseCosignatureSignerKey,
  parseCosignatureVerifierKey,
  parseNote,
  parseSignatureLine,
  parseSignerKey,
  parseVerifierKey,
  signCheckpoint,
  signNote,
  verifierKeyFromPublicKey,
  verifyCosignature,
  type NoteErrorCode,
  type NoteSigner,
} from '../../src/audit/checkpoint/index.ts';

// golang/mod sumdb/note/note_test.go
const PETER_VKEY = 'PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW';
const PETER_SKEY = 'PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz';
const ENOCH_VKEY = 'EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop';
const TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
const PETER_SIG = '— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n';
const ENOCH_SIG = '— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n';

// C2SP tlog-checkpoint.md / tlog-cosignature.md
const SOFA_BODY = 'example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n';
const SOFA_LOG_SIG = '— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n';
const SPEC_WITNESS_LINE = '— witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n';

// transparency-dev/formats
const REMORA_VKEY = 'remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2';
const WIT1_VKEY_NOTE = 'Wit1+55ee4561+AVhZSmQj9+SoL+p/nN0Hh76xXmF7QcHfytUrI1XfSClk';
const WIT1_SKEY_NOTE = 'PRIVATE+KEY+Wit1+55ee4561+AeadRiG7XM4XiieCHzD8lxysXMwcViy5nYsoXURWGrlE';
// Wit1's seed as a 0x04 witness key, and its cosignature of SOFA_BODY at 1679315147 (pyca/cryptography).
const WIT1_VKEY = 'Wit1+9b3fb2d5+BFhZSmQj9+SoL+p/nN0Hh76xXmF7QcHfytUrI1XfSClk';
const WIT1_SKEY = 'PRIVATE+KEY+Wit1+9b3fb2d5+BOadRiG7XM4XiieCHzD8lxysXMwcViy5nYsoXURWGrlE';
const WIT1_SOFA_LINE = '— Wit1 mz+y1QAAAABkGFDLM1oW1Cge43o711GHdmI8QPG1MhuOkQO1kJrg6IUc0qRplRuA9XSmt/d3Y7NujslnO7vHC5/XpLwYsn8xvJ8eAQ==\n';

function refuses(run: () => unknown, code: NoteErrorCode): void {
  assert.throws(run, (error: unknown) => {
    assert.ok(error instanceof NoteError, `expected a NoteError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    return true;
  });
}

/** Runs `run`; anything thrown must be a NoteError. */
function onlyNoteErrors(run: () => unknown): void {
  try {
    run();
  } catch (error) {
    if (!(error instanceof NoteError)) throw error;
  }
}

/** Rewrites the raw bytes of a signature line (key ID included). */
function editLine(line: string, edit: (bytes: Uint8Array) => Uint8Array): string {
  const [prefix, name, b64] = line.trimEnd().split(' ');
  return `${prefix} ${name} ${Buffer.from(edit(new Uint8Array(Buffer.from(b64!, 'base64')))).toString('base64')}\n`;
}

const root = (fill: number) => new Uint8Array(32).fill(fill);

/** The key bytes (after the type byte) of a vkey; its base64 may itself contain '+'. */
function publicKeyOf(verifierKey: string): Uint8Array {
  return new Uint8Array(Buffer.from(verifierKey.split('+').slice(2).join('+'), 'base64').subarray(1));
}

describe('signed note: golang.org/x/mod/sumdb/note vectors', () => {
  const peter = parseVerifierKey(PETER_VKEY);
  const enoch = parseVerifierKey(ENOCH_VKEY);

  it('parses the example vkey and skey; the skey derives the vkey', () => {
    assert.equal(peter.name, 'PeterNeumann');
    assert.equal(peter.keyId, 0xc74f20a3);
    assert.equal(enoch.keyId, 0xaf0cfe78);
    const signer = parseSignerKey(PETER_SKEY);
    assert.equal(signer.keyId, 0xc74f20a3);
    assert.equal(signer.verifierKey, PETER_VKEY);
  });

  it('signs the example text to the published note, byte for byte (TestSign)', () => {
    const signer = parseSignerKey(PETER_SKEY);
    assert.equal(signNote(TEXT, [signer]), `${TEXT}\n${PETER_SIG}`);
    // An existing signature by the same key is replaced, not repeated.
    const stale = { name: 'PeterNeumann', keyId: 0xc74f20a3, signature: new Uint8Array([1, 2, 3]) };
    assert.equal(signNote(TEXT, [signer], [stale]), `${TEXT}\n${PETER_SIG}`);
  });

  it('opens with one known key, reports the other signature as unverified (TestOpen)', () => {
    const opened = openNote(`${TEXT}\n${PETER_SIG}${ENOCH_SIG}`, [peter]);
    assert.equal(opened.text, TEXT);
    assert.deepEqual(opened.verified.map((sig) => [sig.name, sig.keyId, sig.verifier]), [['PeterNeumann', 0xc74f20a3, peter]]);
    assert.deepEqual(opened.unverified.map((sig) => [sig.name, sig.keyId]), [['EnochRoot', 0xaf0cfe78]]);
  });

  it('opens with both keys known, in note order', () => {
    const opened = openNote(`${TEXT}\n${PETER_SIG}${ENOCH_SIG}`, [enoch, peter]);
    assert.deepEqual(opened.verified.map((sig) => sig.verifier), [peter, enoch]);
    assert.equal(opened.unverified.length, 0);
  });

  it('refuses a note no known key signed', () => {
    refuses(() => openNote(`${TEXT}\n${PETER_SIG}${ENOCH_SIG}`, []), 'unverified_note');
  });

  it('refuses an ambiguous trust list only when a signature needs it', () => {
    refuses(() => openNote(`${TEXT}\n${ENOCH_SIG}`, [enoch, peter, enoch]), 'ambiguous_key');
    assert.equal(openNote(`${TEXT}\n${PETER_SIG}`, [enoch, peter, enoch]).verified.length, 1);
  });

  it('refuses more than 100 signatures', () => {
    refuses(() => openNote(`${TEXT}\n${PETER_SIG.repeat(101)}`, [peter]), 'malformed_note');
    refuses(() => openNote(`${TEXT}\n${PETER_SIG.repeat(101)}`, []), 'malformed_note');
    assert.equal(openNote(`${TEXT}\n${PETER_SIG.repeat(100)}`, [peter]).verified.length, 1);
  });

  it('refuses the whole note when a known key signature is invalid', () => {
    const corrupted = `${PETER_SIG.slice(0, 60)}ABCD${PETER_SIG.slice(60)}`;
    refuses(() => openNote(`${TEXT}\n${corrupted}`, [peter]), 'invalid_signature');
  });

  it('drops duplicate signatures, keeps distinct unknown ones', () => {
    const enochAbcd = `${ENOCH_SIG.slice(0, 60)}ABCD${ENOCH_SIG.slice(60)}`;
    const opened = openNote(`${TEXT}\n${PETER_SIG}${PETER_SIG}${ENOCH_SIG}${ENOCH_SIG}${enochAbcd}`, [peter]);
    assert.equal(opened.verified.length, 1);
    assert.equal(opened.unverified.length, 2);
  });

  it('refuses the malformed notes of TestOpen', () => {
    for (const message of [
      TEXT,
      `${TEXT}\n`,
      `${TEXT}\n${PETER_SIG.slice(0, -1)}`,
      `\x01${TEXT}\n${PETER_SIG}`,
      `${TEXT}\n— Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=`,
      `${TEXT}\n${PETER_SIG}Unexpected line.\n`,
    ]) {
      refuses(() => openNote(message, [peter]), 'malformed_note');
    }
    const invalidUtf8 = Buffer.concat([Buffer.from([0xff]), Buffer.from(`${TEXT}\n${PETER_SIG}`)]);
    refuses(() => openNote(invalidUtf8, [peter]), 'malformed_note');
  });

  it('refuses every substring and every one-character change of the vkey and skey (TestNewVerifier, TestNewSigner)', () => {
    for (const [key, parse] of [
      [PETER_VKEY, parseVerifierKey],
      [PETER_SKEY, parseSignerKey],
    ] as const) {
      for (let start = 0; start <= key.length; start++) {
        for (let end = start + 1; end <= key.length; end++) {
          if (start === 0 && end === key.length) continue;
          refuses(() => parse(key.slice(start, end)), 'malformed_key');
        }
      }
      for (let index = 0; index < key.length; index++) {
        const mangled = key.slice(0, index) + String.fromCharCode(key.charCodeAt(index) + 1) + key.slice(index + 1);
        refuses(() => parse(mangled), 'malformed_key');
      }
    }
    // Go's two extra cases: wrong key length and unknown algorithm, each with a matching key hash.
    refuses(() => parseVerifierKey('PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY=='), 'malformed_key');
    refuses(() => parseVerifierKey('PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW'), 'malformed_key');
  });
});

describe('signed note: format and key rules', () => {
  const generated = generateSignerKey('example.com/portcullis-test');
  const signer = parseSignerKey(generated.signerKey);
  const verifier = parseVerifierKey(generated.verifierKey);
  const peter = parseVerifierKey(PETER_VKEY);

  it('generates keys that round-trip through their text encodings', () => {
    assert.match(generated.signerKey, /^PRIVATE\+KEY\+example\.com\/portcullis-test\+[0-9a-f]{8}\+A[Q-Za-f]/);
    assert.match(generated.verifierKey, /^example\.com\/portcullis-test\+[0-9a-f]{8}\+A[Q-Za-f]/);
    assert.equal(signer.verifierKey, generated.verifierKey);
    assert.equal(signer.keyId, verifier.keyId);
    const publicKey = publicKeyOf(generated.verifierKey);
    assert.equal(verifierKeyFromPublicKey('example.com/portcullis-test', publicKey), generated.verifierKey);
    assert.equal(computeKeyId('example.com/portcullis-test', 0x01, publicKey), verifier.keyId);
    assert.equal(openNote(signNote('hello\n', [signer]), [verifier]).text, 'hello\n');
  });

  it('keeps the signer key out of logs and JSON', () => {
    const seed = generated.signerKey.split('+').slice(4).join('+');
    for (const shown of [JSON.stringify(signer), inspect(signer, { showHidden: true, depth: 5 })]) {
      assert.ok(!shown.includes(seed) && !shown.includes('PRIVATE'), shown);
    }
  });

  it('refuses invalid key names', () => {
    for (const name of ['', 'a b', 'a+b', 'a\tb', 'a\nb', 'a\u00a0b', 'a\u0085b', 'a\u2003b', 'a\u3000b', 'a\x01b', '\ud800']) {
      refuses(() => generateSignerKey(name), 'invalid_name');
    }
    assert.doesNotThrow(() => generateSignerKey('日本.example/log'));
  });

  it('refuses note texts that are not newline-terminated, valid UTF-8 text without control characters', () => {
    refuses(() => signNote('no newline', [signer]), 'malformed_note');
    refuses(() => signNote('tab\there\n', [signer]), 'malformed_note');
    refuses(() => signNote('cr\r\n', [signer]), 'malformed_note');
    refuses(() => signNote('lone \udc00 surrogate\n', [signer]), 'malformed_note');
    refuses(() => openNote(`lone \ud800\n\n${PETER_SIG}`, [peter]), 'malformed_note');
    refuses(() => formatNote({ text: 'x\n', signatures: [] }), 'malformed_note');
  });

  it('accepts bytes and keeps a leading U+FEFF as signed text', () => {
    const signed = signNote('\ufeffbom\n', [signer]);
    assert.equal(openNote(new Uint8Array(Buffer.from(signed)), [verifier]).text, '\ufeffbom\n');
  });

  it('separates text from signatures at the last blank line', () => {
    const text = 'para one\n\npara two\n\n';
    const signed = signNote(text, [signer]);
    assert.equal(openNote(signed, [verifier]).text, text);
    assert.equal(parseNote(signed).signatures.length, 1);
  });

  it('refuses a tampered body', () => {
    refuses(() => openNote(`${TEXT.replace('answer', 'Answer')}\n${PETER_SIG}`, [peter]), 'invalid_signature');
  });

  it('refuses a tampered signature', () => {
    const tampered = editLine(PETER_SIG, (bytes) => {
      bytes[10]! ^= 0x01;
      return bytes;
    });
    refuses(() => openNote(`${TEXT}\n${tampered}`, [peter]), 'invalid_signature');
  });

  it('refuses a signature made by another key under the known name and key ID', () => {
    const impostor: NoteSigner = { name: 'PeterNeumann', keyId: 0xc74f20a3, sign: (message) => signer.sign(message) };
    refuses(() => openNote(signNote(TEXT, [impostor]), [peter]), 'invalid_signature');
  });

  it('ignores a signature from another key with the same name (different key ID): nothing verifies', () => {
    const otherPeter = parseSignerKey(generateSignerKey('PeterNeumann').signerKey);
    refuses(() => openNote(signNote(TEXT, [otherPeter]), [peter]), 'unverified_note');
  });

  it('ignores a valid signature presented under a wrong key ID or another name', () => {
    const wrongId = editLine(PETER_SIG, (bytes) => {
      bytes[3]! ^= 0x01;
      return bytes;
    });
    refuses(() => openNote(`${TEXT}\n${wrongId}`, [peter]), 'unverified_note');
    const renamed = PETER_SIG.replace('PeterNeumann', 'CarmenSandiego');
    refuses(() => openNote(`${TEXT}\n${renamed}`, [peter]), 'unverified_note');
  });

  it('refuses malformed base64 in signature lines, including non-canonical encodings', () => {
    for (const line of [
      PETER_SIG.replace('nAM=', 'nAM'), // padding missing
      PETER_SIG.replace('nAM=', 'nAN='), // non-zero trailing bits (Go would accept)
      PETER_SIG.replace('x08go', 'x08g!'),
      PETER_SIG.replace('x08go', 'x08-o'), // base64url alphabet
      PETER_SIG.replace('x08go/', 'x08go /'),
      '— PeterNeumann \n',
      '— PeterNeumann AAAAAA==\n', // key ID with an empty signature
      '- PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n', // hyphen, not em dash
    ]) {
      refuses(() => openNote(`${TEXT}\n${line}`, [peter]), 'malformed_note');
    }
  });

  it('formats and parses single signature lines', () => {
    const [signature] = parseNote(`${TEXT}\n${PETER_SIG}`).signatures;
    assert.equal(formatSignatureLine(signature!), PETER_SIG);
    assert.deepEqual(parseSignatureLine(PETER_SIG), signature);
    assert.deepEqual(parseSignatureLine(PETER_SIG.trimEnd()), signature);
    refuses(() => parseSignatureLine(`${PETER_SIG}\n`), 'malformed_signature');
  });

  it('never throws anything but NoteError on arbitrary or mutated input', () => {
    const note = `${TEXT}\n${PETER_SIG}${ENOCH_SIG}`;
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 300 }), (input) => {
        onlyNoteErrors(() => openNote(input, [peter]));
        onlyNoteErrors(() => parseVerifierKey(input));
        onlyNoteErrors(() => parseSignerKey(input));
      }),
    );
    fc.assert(
      fc.property(fc.nat(note.length - 1), fc.string({ unit: 'binary', maxLength: 4 }), fc.nat(3), (at, insert, cut) => {
        const mutated = note.slice(0, at) + insert + note.slice(at + cut);
        onlyNoteErrors(() => {
          const opened = openNote(mutated, [peter]);
          // Whatever survives must still be exactly the signed text.
          assert.equal(opened.text, TEXT);
        });
      }),
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        onlyNoteErrors(() => openNote(bytes, [peter]));
      }),
    );
  });
});

describe('tlog-checkpoint', () => {
  const log = parseSignerKey(generateSignerKey('audit.example/ledger').signerKey);
  const logVerifier = parseVerifierKey(log.verifierKey);
  const checkpoint = { origin: 'audit.example/ledger', size: 42, rootHash: root(7), time: 1_700_000_000 };

  it('parses and re-formats the spec example byte for byte', () => {
    const parsed = parseCheckpoint(SOFA_BODY);
    assert.equal(parsed.origin, 'example.com/behind-the-sofa');
    assert.equal(parsed.size, 20852163);
    assert.equal(Buffer.from(parsed.rootHash).toString('hex'), '0ac5186a91863e8e1d90c808014aa89bf5da8e3ee1d9f07630f0378f68f1ab62');
    assert.equal(parsed.time, undefined);
    assert.equal(formatCheckpoint(parsed), SOFA_BODY);
    // The spec's signed example parses as a note whose text is this body.
    assert.equal(parseNote(`${SOFA_BODY}\n${SOFA_LOG_SIG}${SPEC_WITNESS_LINE}`).text, SOFA_BODY);
  });

  it('formats the time extension as "time <seconds>" and round-trips it', () => {
    const body = formatCheckpoint(checkpoint);
    assert.equal(body, `audit.example/ledger\n42\n${Buffer.from(root(7)).toString('base64')}\ntime 1700000000\n`);
    assert.deepEqual(parseCheckpoint(body), checkpoint);
    assert.deepEqual(parseCheckpoint(formatCheckpoint({ ...checkpoint, size: 0, time: 0 })), { ...checkpoint, size: 0, time: 0 });
  });

  it('signs and opens a checkpoint; witness signatures are ignored', () => {
    const signed = signCheckpoint(checkpoint, log);
    assert.deepEqual(openCheckpoint(signed, logVerifier), checkpoint);
    const witness = parseCosignatureSignerKey(generateCosignatureKey('witness.example/w1').signerKey);
    assert.deepEqual(openCheckpoint(signed + cosign(signed, witness, 1_700_000_001), logVerifier), checkpoint);
  });

  it('refuses a checkpoint from another origin or signed under a key not named after the origin', () => {
    const signed = signCheckpoint(checkpoint, log);
    refuses(() => openCheckpoint(signed, logVerifier, 'audit.example/other'), 'origin_mismatch');
    refuses(() => signCheckpoint({ ...checkpoint, origin: 'audit.example/other' }, log), 'origin_mismatch');
    // Signed by the right key, but the body names another log.
    const foreign = signNote(formatCheckpoint({ ...checkpoint, origin: 'audit.example/other' }), [log]);
    refuses(() => openCheckpoint(foreign, logVerifier), 'origin_mismatch');
  });

  it('refuses a tampered or wrongly signed checkpoint', () => {
    const signed = signCheckpoint(checkpoint, log);
    refuses(() => openCheckpoint(signed.replace('\n42\n', '\n43\n'), logVerifier), 'invalid_signature');
    refuses(() => openCheckpoint(signed.replace('time 1700000000', 'time 1700000001'), logVerifier), 'invalid_signature');
    const impostor = parseSignerKey(generateSignerKey('audit.example/ledger').signerKey);
    refuses(() => openCheckpoint(signCheckpoint(checkpoint, impostor), logVerifier), 'unverified_note');
    refuses(() => openCheckpoint(SOFA_BODY, logVerifier), 'malformed_note');
  });

  it('refuses a signed note whose text is not a checkpoint', () => {
    refuses(() => openCheckpoint(signNote('just text\n', [log]), logVerifier), 'malformed_checkpoint');
  });

  it('parses strictly', () => {
    const hash = Buffer.from(root(1)).toString('base64');
    for (const body of [
      `o\n020852163\n${hash}\n`, // leading zero
      `o\n00\n${hash}\n`,
      `o\n-1\n${hash}\n`,
      `o\n+1\n${hash}\n`,
      `o\n 1\n${hash}\n`,
      `o\n1e3\n${hash}\n`,
      `o\n0x10\n${hash}\n`,
      `o\n9007199254740992\n${hash}\n`, // 2^53: beyond what this ledger represents
      `o\n18446744073709551616\n${hash}\n`,
      `o\n1\n${hash}`, // missing trailing newline
      `o\n1\n${hash}\n\n`, // empty extension line
      `\n1\n${hash}\n`, // empty origin
      `o\n1\n`,
      `o\n1\n${Buffer.from(new Uint8Array(31)).toString('base64')}\n`, // root of 31 bytes
      `o\n1\n${Buffer.from(new Uint8Array(33)).toString('base64')}\n`, // root of 33 bytes
      `o\n1\n${hash.slice(0, -1)}\n`, // root without padding
      `o\n1\n${hash.replace(/=$/, '')}B=\n`,
      `o\n1\n${hash}\nextension\n`, // unknown extension
      `o\n1\n${hash}\ntime 1\ntime 2\n`,
      `o\n1\n${hash}\ntime 01\n`,
      `o\n1\n${hash}\ntime  1\n`,
      `o\n1\n${hash}\nTime 1\n`,
      `o\n1\n${hash}\ntime -1\n`,
      `o\n1\r\n${hash}\n`,
    ]) {
      refuses(() => parseCheckpoint(body), 'malformed_checkpoint');
    }
    assert.equal(parseCheckpoint(`o\n9007199254740991\n${hash}\n`).size, Number.MAX_SAFE_INTEGER);
  });

  it('refuses to format what it could not parse back', () => {
    for (const fields of [
      { ...checkpoint, origin: '' },
      { ...checkpoint, origin: 'has space' },
      { ...checkpoint, origin: 'a+b' },
      { ...checkpoint, origin: 'line\nbreak' },
      { ...checkpoint, size: -1 },
      { ...checkpoint, size: 1.5 },
      { ...checkpoint, size: Number.NaN },
      { ...checkpoint, size: 2 ** 53 },
      { ...checkpoint, rootHash: root(0).subarray(1) },
      { ...checkpoint, rootHash: new Uint8Array(33) },
      { ...checkpoint, time: -1 },
      { ...checkpoint, time: 1.5 },
    ]) {
      refuses(() => formatCheckpoint(fields), 'malformed_checkpoint');
    }
  });

  it('never throws anything but NoteError on arbitrary input', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 200 }), (input) => {
        onlyNoteErrors(() => parseCheckpoint(input));
        onlyNoteErrors(() => openCheckpoint(input, logVerifier));
      }),
    );
  });
});

describe('tlog-cosignature (Ed25519 cosignature/v1)', () => {
  const log = parseSignerKey(generateSignerKey('audit.example/ledger').signerKey);
  const signedCheckpoint = signCheckpoint({ origin: 'audit.example/ledger', size: 7, rootHash: root(3), time: 1_700_000_000 }, log);
  const generated = generateCosignatureKey('witness.example/w1');
  const witness = parseCosignatureSignerKey(generated.signerKey);
  const witnessVerifier = parseCosignatureVerifierKey(generated.verifierKey);

  it('builds the signed message of the spec example', () => {
    assert.equal(
      cosignatureMessage(SOFA_BODY, 1679315147),
      'cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n',
    );
  });

  it('reads the framing of the spec example witness line: key ID, 8-byte big-endian timestamp, 64-byte signature', () => {
    const signature = parseSignatureLine(SPEC_WITNESS_LINE);
    assert.equal(signature.name, 'witness.example.com/w1');
    assert.equal(signature.keyId, 0x8d66cf3f);
    assert.equal(signature.signature.length, 72);
    assert.equal(cosignatureTimestamp(signature), 1679315147);
  });

  it('parses a published 0x04 witness vkey and checks its key ID', () => {
    const remora = parseCosignatureVerifierKey(REMORA_VKEY);
    assert.equal(remora.name, 'remora.n621.de');
    assert.equal(remora.keyId, 0xda77ade7);
    refuses(() => parseCosignatureVerifierKey(REMORA_VKEY.replace('da77ade7', 'da77ade8')), 'malformed_key');
  });

  it('keeps key types apart: a 0x01 note key is not a witness key, and the reverse', () => {
    refuses(() => parseCosignatureVerifierKey(WIT1_VKEY_NOTE), 'malformed_key');
    refuses(() => parseCosignatureSignerKey(WIT1_SKEY_NOTE), 'malformed_key');
    refuses(() => parseVerifierKey(WIT1_VKEY), 'malformed_key');
    refuses(() => parseSignerKey(WIT1_SKEY), 'malformed_key');
  });

  it('matches the independently computed Wit1 cosignature of the spec checkpoint', () => {
    const wit1 = parseCosignatureSignerKey(WIT1_SKEY);
    assert.equal(wit1.verifierKey, WIT1_VKEY);
    assert.equal(parseCosignatureVerifierKey(WIT1_VKEY).keyId, 0x9b3fb2d5);
    assert.equal(cosign(SOFA_BODY, wit1, 1679315147), WIT1_SOFA_LINE);
    assert.equal(verifyCosignature(SOFA_BODY, WIT1_SOFA_LINE, parseCosignatureVerifierKey(WIT1_VKEY)), 1679315147);
    // The same line verifies against the spec's full signed checkpoint.
    assert.equal(verifyCosignature(`${SOFA_BODY}\n${SOFA_LOG_SIG}`, WIT1_SOFA_LINE, parseCosignatureVerifierKey(WIT1_VKEY)), 1679315147);
  });

  it('cosigns a signed checkpoint; the line verifies alone and inside the note', () => {
    const line = cosign(signedCheckpoint, witness, 1_700_000_123);
    assert.match(line, /^— witness\.example\/w1 [A-Za-z0-9+/]{102}==\n$/);
    assert.equal(verifyCosignature(signedCheckpoint, line, witnessVerifier), 1_700_000_123);
    assert.equal(verifyCosignature(parseNote(signedCheckpoint).text, line.trimEnd(), witnessVerifier), 1_700_000_123);

    const cosigned = signedCheckpoint + line;
    const opened = openNote(cosigned, [parseVerifierKey(log.verifierKey), witnessVerifier]);
    assert.deepEqual(opened.verified.map((sig) => sig.name), ['audit.example/ledger', 'witness.example/w1']);
    assert.equal(cosignatureTimestamp(opened.verified[1]!), 1_700_000_123);
    // The witness alone is enough for openNote; the log alone for openCheckpoint.
    assert.equal(openNote(cosigned, [witnessVerifier]).verified.length, 1);
  });

  it('refuses a cosignature with an altered timestamp', () => {
    const line = cosign(signedCheckpoint, witness, 1_700_000_123);
    const altered = editLine(line, (bytes) => {
      bytes[11]! ^= 0x01;
      return bytes;
    });
    refuses(() => verifyCosignature(signedCheckpoint, altered, witnessVerifier), 'invalid_signature');
    refuses(() => openNote(signedCheckpoint + altered, [witnessVerifier]), 'invalid_signature');
  });

  it('refuses a cosignature over a different checkpoint', () => {
    const line = cosign(signedCheckpoint, witness, 1_700_000_123);
    const other = signCheckpoint({ origin: 'audit.example/ledger', size: 8, rootHash: root(4), time: 1_700_000_000 }, log);
    refuses(() => verifyCosignature(other, line, witnessVerifier), 'invalid_signature');
    // Extension lines are signed too (tlog-cosignature §Ed25519 signed message).
    refuses(() => verifyCosignature(signedCheckpoint.replace('time 1700000000', 'time 1700000001'), line, witnessVerifier), 'invalid_signature');
  });

  it('refuses a cosignature from another witness, under another key ID, or by another key', () => {
    const otherWitness = parseCosignatureSignerKey(generateCosignatureKey('witness.example/w2').signerKey);
    refuses(() => verifyCosignature(signedCheckpoint, cosign(signedCheckpoint, otherWitness, 1), witnessVerifier), 'unknown_key');
    const line = cosign(signedCheckpoint, witness, 1);
    refuses(
      () =>
        verifyCosignature(
          signedCheckpoint,
          editLine(line, (bytes) => {
            bytes[0]! ^= 0x01;
            return bytes;
          }),
          witnessVerifier,
        ),
      'unknown_key',
    );
    const impostor = parseCosignatureSignerKey(generateCosignatureKey('witness.example/w1').signerKey);
    const forged = formatSignatureLine({ name: witness.name, keyId: witness.keyId, signature: impostor.sign(parseNote(signedCheckpoint).text, 1) });
    refuses(() => verifyCosignature(signedCheckpoint, forged, witnessVerifier), 'invalid_signature');
  });

  it('refuses a plain Ed25519 note signature made with the witness seed (domain separation)', () => {
    const seed = generated.signerKey.split('+').slice(4).join('+');
    const asNoteKey = `PRIVATE+KEY+witness.example/w1+00000000+${Buffer.concat([Buffer.from([1]), Buffer.from(seed, 'base64').subarray(1)]).toString('base64')}`;
    refuses(() => parseSignerKey(asNoteKey), 'malformed_key'); // key ID must be recomputed for type 0x01
    const publicKey = publicKeyOf(generated.verifierKey);
    const noteKeyId = computeKeyId('witness.example/w1', 0x01, publicKey);
    assert.notEqual(noteKeyId, witness.keyId);
    const noteKey = asNoteKey.replace('+00000000+', `+${noteKeyId.toString(16).padStart(8, '0')}+`);
    const noteSigned = signNote(parseNote(signedCheckpoint).text, [parseSignerKey(noteKey)]);
    const line = noteSigned.slice(noteSigned.lastIndexOf('\n\n') + 2);
    refuses(() => verifyCosignature(signedCheckpoint, line, witnessVerifier), 'unknown_key');
  });

  it('refuses malformed cosignatures and inputs', () => {
    const line = cosign(signedCheckpoint, witness, 5);
    refuses(() => verifyCosignature(signedCheckpoint, editLine(line, (bytes) => bytes.subarray(0, 75)), witnessVerifier), 'malformed_signature');
    refuses(() => verifyCosignature(signedCheckpoint, editLine(line, (bytes) => Uint8Array.from([...bytes, 0])), witnessVerifier), 'malformed_signature');
    const beyondMax = editLine(line, (bytes) => {
      bytes.set([0x80, 0, 0, 0, 0, 0, 0, 0], 4); // 2^63 > 2^63 - 1
      return bytes;
    });
    refuses(() => verifyCosignature(signedCheckpoint, beyondMax, witnessVerifier), 'malformed_signature');
    refuses(() => verifyCosignature(signedCheckpoint, 'not a signature line', witnessVerifier), 'malformed_signature');
    refuses(() => verifyCosignature('not\na checkpoint\n', line, witnessVerifier), 'malformed_checkpoint');
    refuses(() => cosign('not a checkpoint\n', witness, 1), 'malformed_checkpoint');
    refuses(() => cosign(signedCheckpoint, witness, -1), 'malformed_signature');
    refuses(() => cosign(signedCheckpoint, witness, 1.5), 'malformed_signature');
  });

  it('never throws anything but NoteError on arbitrary input', () => {
    const line = cosign(signedCheckpoint, witness, 5);
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 200 }), fc.nat(line.length - 1), (input, at) => {
        onlyNoteErrors(() => verifyCosignature(signedCheckpoint, input, witnessVerifier));
        onlyNoteErrors(() => verifyCosignature(input, line, witnessVerifier));
        onlyNoteErrors(() => verifyCosignature(signedCheckpoint, line.slice(0, at) + input + line.slice(at + 1), witnessVerifier));
        onlyNoteErrors(() => parseCosignatureVerifierKey(input));
      }),
    );
  });
});
