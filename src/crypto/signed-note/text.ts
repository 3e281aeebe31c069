/**
 * The character rules of signed notes (c2sp.org/signed-note §Format) and
 * their strict base64. Pure functions.
 */
import { Buffer } from 'node:buffer';
import { NoteError } from './errors.ts';

/** The note text MUST end in a newline, be valid UTF-8, and carry no control character but newline. */
export function assertNoteText(text: string): void {
  if (!text.endsWith('\n')) throw new NoteError('malformed_note', 'note text must end with a newline');
  if (!isWellFormedText(text)) throw new NoteError('malformed_note', 'note text is not valid UTF-8');
  if (hasControlCharacter(text, true)) throw new NoteError('malformed_note', 'note text has a control character other than newline');
}

/** A note as text, checked: valid UTF-8 (bytes) or well-formed UTF-16 (string), no control character but newline. */
export function decodeNoteMessage(message: string | Uint8Array): string {
  let text: string;
  if (typeof message === 'string') {
    if (!isWellFormedText(message)) throw new NoteError('malformed_note', 'note is not valid UTF-8');
    text = message;
  } else {
    try {
      // ignoreBOM: a leading U+FEFF is note text like any other; stripping it would change the signed bytes.
      text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(message);
    } catch {
      throw new NoteError('malformed_note', 'note is not valid UTF-8');
    }
  }
  if (hasControlCharacter(text, true)) throw new NoteError('malformed_note', 'note has a control character other than newline');
  return text;
}

/** Notes MUST NOT contain ASCII control characters (below U+0020) other than newline. */
export function hasControlCharacter(text: string, newlineAllowed: boolean): boolean {
  for (let index = 0; index < text.length; index++) {
    const code = text.charCodeAt(index);
    if (code < 0x20 && !(newlineAllowed && code === 0x0a)) return true;
  }
  return false;
}

/** A JavaScript string has a UTF-8 encoding iff it has no lone surrogate. */
export function isWellFormedText(text: string): boolean {
  return !/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(text);
}

// ---------------------------------------------------------------------------
// Base64

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * Standard, padded base64 (RFC 4648 §4), and only its canonical form: the
 * alphabet, the padding and zero trailing bits are all checked (Node's
 * decoder would silently skip bad characters), so one byte string has one
 * spelling and a tampered character is never ignored.
 */
export function decodeBase64Strict(text: string): Uint8Array | null {
  if (text === '' || !BASE64.test(text)) return null;
  const bytes = Buffer.from(text, 'base64');
  if (bytes.toString('base64') !== text) return null;
  return new Uint8Array(bytes);
}
