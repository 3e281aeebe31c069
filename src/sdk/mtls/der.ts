/**
 * Just enough DER (ITU-T X.690 section 10) to read two extensions of an
 * X.509 certificate (RFC 5280 section 4.1): the subject alternative names
 * and the key usage. Node's `X509Certificate#subjectAltName` is a printed
 * list that has to be split again; reading the DER leaves no doubt which
 * name is a URI and how many there are.
 */

/** One element: its tag byte and where its contents lie in the buffer. */
interface Element {
  readonly tag: number;
  readonly start: number;
  readonly end: number;
}

const SEQUENCE = 0x30;
const OBJECT_IDENTIFIER = 0x06;
const OCTET_STRING = 0x04;
const BIT_STRING = 0x03;
/** tbsCertificate's `extensions [3] EXPLICIT` (RFC 5280 section 4.1). */
const EXTENSIONS = 0xa3;
/** GeneralName `uniformResourceIdentifier [6] IA5String`, implicitly tagged (RFC 5280 section 4.2.1.6). */
const URI_NAME = 0x86;

/** id-ce-subjectAltName, 2.5.29.17, as DER contents. */
const SUBJECT_ALT_NAME = '551d11';
/** id-ce-keyUsage, 2.5.29.15. */
const KEY_USAGE = '551d0f';

/** The element at `offset`, which must end by `limit`; DER forbids the indefinite length and high tag numbers are not used here. */
function element(bytes: Uint8Array, offset: number, limit: number): Element {
  if (offset + 2 > limit) throw new RangeError('truncated DER element');
  const tag = bytes[offset]!;
  if ((tag & 0x1f) === 0x1f) throw new RangeError('unexpected high tag number');
  let length = bytes[offset + 1]!;
  let start = offset + 2;
  if (length & 0x80) {
    const count = length & 0x7f;
    if (count === 0 || count > 4 || start + count > limit) throw new RangeError('bad DER length');
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + bytes[start + i]!;
    start += count;
  }
  const end = start + length;
  if (end > limit) throw new RangeError('DER element overruns its parent');
  return { tag, start, end };
}

/** The elements inside a constructed element, which must fill it exactly. */
function children(bytes: Uint8Array, parent: Element): Element[] {
  const out: Element[] = [];
  for (let offset = parent.start; offset < parent.end; ) {
    const child = element(bytes, offset, parent.end);
    out.push(child);
    offset = child.end;
  }
  return out;
}

function expect(found: Element | undefined, tag: number): Element {
  if (found?.tag !== tag) throw new RangeError(`expected DER tag 0x${tag.toString(16)}`);
  return found;
}

const hex = (bytes: Uint8Array, at: Element) => Buffer.from(bytes.subarray(at.start, at.end)).toString('hex');

/** What an X509-SVID validator reads from a leaf besides what Node exposes. */
export interface SvidFields {
  /** Every uniformResourceIdentifier name of the subjectAltName extension, in order (latin1, as IA5String is 7-bit). */
  readonly uris: readonly string[];
  /** Whether the keyUsage extension sets keyCertSign or cRLSign (bits 5 and 6, RFC 5280 section 4.2.1.3). */
  readonly signsCertificates: boolean;
}

/**
 * Reads the URI names and the key usage of a DER certificate. Throws a
 * RangeError on malformed DER, and on a repeated extension (RFC 5280
 * section 4.2: a certificate MUST NOT include one twice).
 */
export function svidFields(der: Uint8Array): SvidFields {
  const certificate = expect(element(der, 0, der.length), SEQUENCE);
  const tbs = expect(children(der, certificate)[0], SEQUENCE);
  const wrapper = children(der, tbs).find((field) => field.tag === EXTENSIONS);
  const uris: string[] = [];
  let signsCertificates = false;
  if (wrapper === undefined) return { uris, signsCertificates };
  const seen = new Set<string>();
  for (const extension of children(der, expect(children(der, wrapper)[0], SEQUENCE))) {
    const parts = children(der, expect(extension, SEQUENCE));
    const oid = hex(der, expect(parts[0], OBJECT_IDENTIFIER));
    // extnValue is the last part (critical, a BOOLEAN, is optional in between).
    const value = expect(parts.at(-1), OCTET_STRING);
    if (seen.has(oid)) throw new RangeError('a certificate extension appears twice');
    seen.add(oid);
    if (oid === SUBJECT_ALT_NAME) {
      const names = expect(element(der, value.start, value.end), SEQUENCE);
      for (const name of children(der, names)) {
        if (name.tag === URI_NAME) uris.push(Buffer.from(der.subarray(name.start, name.end)).toString('latin1'));
      }
    } else if (oid === KEY_USAGE) {
      const bits = expect(element(der, value.start, value.end), BIT_STRING);
      // The first content byte counts the unused bits; the next holds bits 0 to 7, MSB first.
      signsCertificates = bits.end - bits.start >= 2 && (der[bits.start + 1]! & 0x06) !== 0;
    }
  }
  return { uris, signsCertificates };
}
