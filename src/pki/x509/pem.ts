/**
 * PEM (RFC 7468): the textual form of DER certificates, CRLs, CSRs and
 * keys. Strict on what it reads: only the label asked for, base64 that
 * decodes to exactly the text given.
 */
const BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([A-Za-z0-9+/=\r\n]+?)\r?\n?-----END \1-----/g;

export function toPem(label: string, der: Uint8Array): string {
  const base64 = Buffer.from(der).toString('base64');
  return `-----BEGIN ${label}-----\n${base64.replace(/.{1,64}/g, '$&\n')}-----END ${label}-----\n`;
}

/** Every block labelled `label`, decoded (RFC 7468 section 2: other blocks and text around them are ignored). */
export function fromPem(text: string, label: string): Buffer[] {
  const blocks: Buffer[] = [];
  for (const match of text.matchAll(BLOCK)) {
    if (match[1] !== label) continue;
    const body = match[2]!.replace(/[\r\n]/g, '');
    const der = Buffer.from(body, 'base64');
    // Buffer.from ignores characters it cannot decode; a block whose base64 does not round-trip is not what it claims.
    if (der.toString('base64') !== body) throw new TypeError(`a ${label} PEM block is not valid base64`);
    blocks.push(der);
  }
  return blocks;
}
