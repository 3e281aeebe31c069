/**
 * C2SP signed notes (https://c2sp.org/signed-note), byte-compatible with
 * golang.org/x/mod/sumdb/note (the reference implementation the spec was
 * extracted from). A signed note is
 *
 *     <text, ending in "\n">
 *     "\n"
 *     "— " <key name> " " base64(uint32 key ID, big-endian || signature) "\n"   (one or more)
 *
 * Pure code: no I/O, no clock. Every malformed input ends in a `NoteError`,
 * whose `code` callers switch on.
 */
import { Buffer } from 'node:buffer';
import { NoteError } from './errors.ts';
import { formatKeyId, isValidKeyName, type NoteSigner, type NoteVerifier } from './keys.ts';
import { assertNoteText, decodeBase64Strict, decodeNoteMessage, hasControlCharacter, isWellFormedText } from './text.ts';

/**
 * Verifiers refuse notes with more signature lines than this. The spec says
 * verifiers SHOULD apply a limit but MUST accept at least 16 (§Format);
 * 100 is golang.org/x/mod/sumdb/note's limit.
 */
export const MAX_NOTE_SIGNATURES = 100;

/** One signature line of a note. */
export interface NoteSignature {
  readonly name: string;
  readonly keyId: number;
  /** The signature bytes after the 4-byte key ID. */
  readonly signature: Uint8Array;
}

/** A note split into its text and its (unverified) signatures. */
export interface Note {
  /** The signed text, including its final newline, excluding the blank separator line. */
  readonly text: string;
  readonly signatures: readonly NoteSignature[];
}

/** A signature that a known verifier accepted. */
export interface VerifiedSignature extends NoteSignature {
  readonly verifier: NoteVerifier;
}

/** The result of `openNote`: the text may be trusted because at least one known key signed it. */
export interface OpenedNote {
  readonly text: string;
  /** One entry per known verifier whose signature verified, in note order. */
  readonly verified: readonly VerifiedSignature[];
  /** Signatures from keys not in the known set (ignored, as the spec requires), duplicates removed. */
  readonly unverified: readonly NoteSignature[];
}

const SIGNATURE_PREFIX = '\u2014 '; // EM DASH, SPACE (signed-note §Format)

/**
 * Splits a signed note into text and signature lines, enforcing every rule of
 * signed-note §Format; verifies nothing. Accepts the note as bytes (checked to
 * be valid UTF-8) or as a string (checked to be well-formed UTF-16, i.e. to
 * have a UTF-8 encoding).
 */
export function parseNote(message: string | Uint8Array): Note {
  const text = decodeNoteMessage(message);
  // "the text is separated from the signatures by the last empty line"
  const split = text.lastIndexOf('\n\n');
  if (split < 0) throw new NoteError('malformed_note', 'note has no blank line before its signatures');
  const body = text.slice(0, split + 1);
  const block = text.slice(split + 2);
  if (block === '' || !block.endsWith('\n')) throw new NoteError('malformed_note', 'note must end with one or more newline-terminated signature lines');
  const lines = block.slice(0, -1).split('\n');
  if (lines.length > MAX_NOTE_SIGNATURES) throw new NoteError('malformed_note', `note has more than ${MAX_NOTE_SIGNATURES} signatures`);
  const signatures = lines.map((line) => {
    const signature = parseSignatureLineOrNull(line);
    if (signature === null) throw new NoteError('malformed_note', 'note has a malformed signature line');
    return signature;
  });
  return { text: body, signatures };
}

/** Formats a note: text, blank line, one line per signature. Validates what it writes. */
export function formatNote(note: Note): string {
  assertNoteText(note.text);
  if (note.signatures.length === 0) throw new NoteError('malformed_note', 'a signed note has at least one signature');
  if (note.signatures.length > MAX_NOTE_SIGNATURES) throw new NoteError('malformed_note', `note has more than ${MAX_NOTE_SIGNATURES} signatures`);
  return `${note.text}\n${note.signatures.map(formatSignatureLine).join('')}`;
}

/**
 * Signs `text` with each signer and formats the note. `existing` signatures
 * (e.g. from `openNote`) are kept first, except those from a key that signs
 * again now, as Go's note.Sign does.
 */
export function signNote(text: string, signers: readonly NoteSigner[], existing: readonly NoteSignature[] = []): string {
  assertNoteText(text);
  const message = Buffer.from(text, 'utf8');
  const fresh = signers.map((signer): NoteSignature => {
    assertSignatureIdentity(signer.name, signer.keyId);
    return { name: signer.name, keyId: signer.keyId, signature: signer.sign(message) };
  });
  const replaced = (old: NoteSignature) => fresh.some((sig) => sig.name === old.name && sig.keyId === old.keyId);
  return formatNote({ text, signatures: [...existing.filter((old) => !replaced(old)), ...fresh] });
}

/**
 * Parses a signed note and checks it against known verifiers, applying
 * signed-note §Signatures:
 * - a signature whose (name, key ID) matches no known verifier is ignored,
 *   even if it shares the name or the ID (but not both) with a known key;
 * - every signature whose (name, key ID) matches a known verifier is
 *   verified, and one that fails rejects the whole note ('invalid_signature');
 * - a note with no verified signature is rejected ('unverified_note').
 */
export function openNote(message: string | Uint8Array, known: readonly NoteVerifier[]): OpenedNote {
  const note = parseNote(message);
  const text = Buffer.from(note.text, 'utf8');
  const verified: VerifiedSignature[] = [];
  const unverified: NoteSignature[] = [];
  const seenUnknown = new Set<string>();
  for (const signature of note.signatures) {
    const matches = known.filter((verifier) => verifier.name === signature.name && verifier.keyId === signature.keyId);
    const id = `${signature.name}+${formatKeyId(signature.keyId)}`;
    const verifier = matches[0];
    if (verifier === undefined) {
      const line = formatSignatureLine(signature);
      if (!seenUnknown.has(line)) unverified.push(signature);
      seenUnknown.add(line);
      continue;
    }
    if (matches.length > 1) throw new NoteError('ambiguous_key', `ambiguous key ${id}`);
    if (!verifier.verify(text, signature.signature)) throw new NoteError('invalid_signature', `invalid signature for key ${id}`);
    if (!verified.some((entry) => entry.verifier === verifier)) verified.push({ ...signature, verifier });
  }
  if (verified.length === 0) throw new NoteError('unverified_note', 'note has no verifiable signatures');
  return { text: note.text, verified, unverified };
}

/** `— <name> <base64(key ID || signature)>\n` */
export function formatSignatureLine(signature: NoteSignature): string {
  assertSignatureIdentity(signature.name, signature.keyId);
  if (signature.signature.length === 0) throw new NoteError('malformed_signature', 'signature is empty');
  const keyId = Buffer.alloc(4);
  keyId.writeUInt32BE(signature.keyId);
  return `${SIGNATURE_PREFIX}${signature.name} ${Buffer.concat([keyId, signature.signature]).toString('base64')}\n`;
}

/**
 * Parses one signature line, with or without its final newline. The line
 * must obey the same character rules as a whole note.
 */
export function parseSignatureLine(line: string): NoteSignature {
  const bare = line.endsWith('\n') ? line.slice(0, -1) : line;
  if (!isWellFormedText(bare) || hasControlCharacter(bare, false)) throw new NoteError('malformed_signature', 'signature line has a control character or is not valid text');
  const signature = parseSignatureLineOrNull(bare);
  if (signature === null) throw new NoteError('malformed_signature', 'malformed signature line');
  return signature;
}

/**
 * "— ", a valid key name, one space, canonical base64 of at least 5 bytes
 * (4-byte key ID + a non-empty signature), as Go's note.Open requires.
 */
function parseSignatureLineOrNull(line: string): NoteSignature | null {
  if (!line.startsWith(SIGNATURE_PREFIX)) return null;
  const rest = line.slice(SIGNATURE_PREFIX.length);
  const space = rest.indexOf(' ');
  if (space < 0) return null;
  const name = rest.slice(0, space);
  const bytes = decodeBase64Strict(rest.slice(space + 1));
  if (!isValidKeyName(name) || bytes === null || bytes.length < 5) return null;
  return { name, keyId: Buffer.from(bytes.buffer, bytes.byteOffset, 4).readUInt32BE(0), signature: bytes.slice(4) };
}

function assertSignatureIdentity(name: string, keyId: number): void {
  if (!isValidKeyName(name)) throw new NoteError('invalid_name', 'key name must be non-empty without spaces, "+" or control characters');
  if (!Number.isInteger(keyId) || keyId < 0 || keyId > 0xffffffff) throw new NoteError('malformed_signature', 'key id must be a uint32');
}
