/**
 * Mutual-TLS client certificates (RFC 8705): what the HTTP layer hands over,
 * the thumbprint a token is bound to (section 3.1), and how a certificate is
 * matched against what a client registered: a subject name for
 * tls_client_auth (section 2.1.2), a certificate for
 * self_signed_tls_client_auth (section 2.2.2). Pure functions, no I/O.
 *
 * The certificate is read from its DER (@peculiar/asn1-x509), not from the
 * text Node prints for it, so a name is compared as the ASN.1 it is: a comma
 * or a newline inside a value cannot pose as a separator.
 */
import { createHash, timingSafeEqual, type X509Certificate } from 'node:crypto';
import { canonicalIp } from '../pki/index.ts';
import { AsnConvert } from '@peculiar/asn1-schema';
import { Certificate, SubjectAlternativeName, id_ce_subjectAltName, type AttributeTypeAndValue, type GeneralName } from '@peculiar/asn1-x509';

/**
 * The certificate the peer presented in the TLS handshake. The handshake
 * itself proved the peer holds its private key (TLS 1.3 CertificateVerify,
 * RFC 8446 section 4.4.3), whether or not the chain was trusted.
 */
export interface ClientCertificate {
  readonly x509: X509Certificate;
  /** TLS verified the chain to a CA the listener trusts (the socket's `authorized`). */
  readonly chainVerified: boolean;
}

/** RFC 8705 section 3.1: `x5t#S256`, the base64url SHA-256 of the certificate's DER. */
export function certificateThumbprint(x509: X509Certificate): string {
  return createHash('sha256').update(x509.raw).digest('base64url');
}

/** The confirmation member of a certificate-bound token (RFC 8705 section 3.1, RFC 7800 section 3.1). */
export const CERTIFICATE_CONFIRMATION = 'x5t#S256';

/** RFC 8705 section 2.1.2: the registered names, exactly one of which a tls_client_auth client has. */
export const TLS_SUBJECT_FIELDS = ['tls_client_auth_subject_dn', 'tls_client_auth_san_dns', 'tls_client_auth_san_uri', 'tls_client_auth_san_ip', 'tls_client_auth_san_email'] as const;
export type TlsSubjectField = (typeof TLS_SUBJECT_FIELDS)[number];

const LIMITS = { dn: 1024, dns: 253, uri: 2000, email: 254 } as const;

/** RFC 1035 labels (letters, digits, inner hyphens), optionally after a literal `*.` (compared as written, never expanded). */
const DNS_NAME = /^(\*\.)?[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
/** RFC 3986 characters, with a scheme: an absolute URI (the SAN is an IA5String). */
const ABSOLUTE_URI = /^[A-Za-z][A-Za-z0-9+.-]*:[A-Za-z0-9\-._~:/?#[\]@!$&'()*+,;=%]+$/;
/** An rfc822Name (RFC 5280 section 4.2.1.6): local@domain, printable ASCII. */
const EMAIL = /^[\x21-\x3f\x41-\x7e]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$/;

/** Why a registered value cannot name a certificate, or undefined when it can. */
export function tlsSubjectProblem(field: TlsSubjectField, value: string): string | undefined {
  switch (field) {
    case 'tls_client_auth_subject_dn': {
      if (value.length > LIMITS.dn) return `at most ${LIMITS.dn} characters`;
      try {
        parseDistinguishedName(value);
        return undefined;
      } catch (error) {
        return `${(error as Error).message}; write it as RFC 4514 says, most specific first, e.g. CN=client,O=Example,C=US (openssl x509 -noout -subject -nameopt RFC2253 prints it so)`;
      }
    }
    case 'tls_client_auth_san_dns':
      return value.length <= LIMITS.dns && DNS_NAME.test(value) ? undefined : 'must be a DNS name (letters, digits, hyphens and dots; internationalised names in their xn-- form)';
    case 'tls_client_auth_san_uri':
      return value.length <= LIMITS.uri && ABSOLUTE_URI.test(value) ? undefined : 'must be an absolute URI of RFC 3986 characters, such as spiffe://example.org/workload';
    case 'tls_client_auth_san_ip':
      return canonicalIp(value) !== undefined ? undefined : 'must be an IPv4 address in dotted decimal or an IPv6 address (RFC 5952), without brackets or zone';
    case 'tls_client_auth_san_email':
      return value.length <= LIMITS.email && EMAIL.test(value) ? undefined : 'must be an email address (local@domain, ASCII)';
  }
}

/**
 * Whether the certificate carries the registered name (RFC 8705 section
 * 2.1.2): the subject DN compared by distinguishedNameMatch (RFC 4517
 * section 4.2.15), or one subjectAltName entry of the registered type equal
 * to it. A certificate that cannot be parsed matches nothing.
 */
export function certificateMatchesSubject(x509: X509Certificate, field: TlsSubjectField, registered: string): boolean {
  let certificate: Certificate;
  try {
    certificate = AsnConvert.parse(x509.raw, Certificate);
  } catch {
    return false;
  }
  if (field === 'tls_client_auth_subject_dn') {
    let expected: Rdn[];
    try {
      expected = parseDistinguishedName(registered);
    } catch {
      return false;
    }
    return sameName(expected, certificateName(certificate));
  }
  const names = subjectAltNames(certificate);
  switch (field) {
    case 'tls_client_auth_san_dns': {
      // RFC 4343: DNS names compare without regard to ASCII case. A wildcard
      // entry is a literal here: it matches only the same registered string.
      const wanted = asciiLower(registered);
      return names.some((name) => name.dNSName !== undefined && asciiLower(name.dNSName) === wanted);
    }
    case 'tls_client_auth_san_uri': {
      const wanted = normaliseUri(registered);
      return names.some((name) => name.uniformResourceIdentifier !== undefined && normaliseUri(name.uniformResourceIdentifier) === wanted);
    }
    case 'tls_client_auth_san_ip': {
      const wanted = canonicalIp(registered);
      return wanted !== undefined && names.some((name) => name.iPAddress !== undefined && canonicalIp(name.iPAddress) === wanted);
    }
    case 'tls_client_auth_san_email': {
      const wanted = normaliseEmail(registered);
      return names.some((name) => name.rfc822Name !== undefined && normaliseEmail(name.rfc822Name) === wanted);
    }
  }
}

/**
 * RFC 8705 section 2.2: the presented certificate is one the client
 * registered, as the first certificate of an `x5c` of its JWK Set
 * (RFC 7517 section 4.7), compared as DER by SHA-256.
 */
export function isRegisteredCertificate(x509: X509Certificate, jwks: { readonly keys: readonly Readonly<Record<string, unknown>>[] } | undefined): boolean {
  if (jwks === undefined) return false;
  const presented = createHash('sha256').update(x509.raw).digest();
  let found = false;
  for (const key of jwks.keys) {
    const first = Array.isArray(key['x5c']) ? (key['x5c'] as unknown[])[0] : undefined;
    if (typeof first !== 'string') continue;
    const registered = createHash('sha256').update(Buffer.from(first, 'base64')).digest();
    // Every key is looked at, so the time taken does not tell which matched.
    if (timingSafeEqual(presented, registered)) found = true;
  }
  return found;
}

/** Whether `now` (ms) lies within the certificate's notBefore and notAfter (RFC 5280 section 4.1.2.5). */
export function isCurrentlyValid(x509: X509Certificate, now: number): boolean {
  return x509.validFromDate.getTime() <= now && now <= x509.validToDate.getTime();
}

// --- Subject alternative names -------------------------------------------

function subjectAltNames(certificate: Certificate): GeneralName[] {
  const extension = certificate.tbsCertificate.extensions?.find((candidate) => candidate.extnID === id_ce_subjectAltName);
  if (extension === undefined) return [];
  try {
    return [...AsnConvert.parse(extension.extnValue, SubjectAlternativeName)];
  } catch {
    return [];
  }
}

function asciiLower(value: string): string {
  return value.replace(/[A-Z]/g, (letter) => letter.toLowerCase());
}

/** RFC 3986 section 6.2.2.1: scheme and host are case-insensitive; the rest compares as written. */
function normaliseUri(uri: string): string {
  const match = /^([A-Za-z][A-Za-z0-9+.-]*):(\/\/)?(.*)$/s.exec(uri);
  if (match === null) return uri;
  const scheme = asciiLower(match[1]!);
  if (match[2] === undefined) return `${scheme}:${match[3]!}`;
  const rest = match[3]!;
  const end = rest.search(/[/?#]/);
  const authority = end === -1 ? rest : rest.slice(0, end);
  const at = authority.lastIndexOf('@');
  const host = asciiLower(authority.slice(at + 1));
  return `${scheme}://${authority.slice(0, at + 1)}${host}${end === -1 ? '' : rest.slice(end)}`;
}

/** RFC 5280 section 4.2.1.6 / RFC 5321: the local part is case-sensitive, the domain is not. */
function normaliseEmail(email: string): string {
  const at = email.lastIndexOf('@');
  return at === -1 ? email : `${email.slice(0, at)}@${asciiLower(email.slice(at + 1))}`;
}

// --- Distinguished names (RFC 4514 strings, RFC 4517 matching) ------------

/** One attribute of an RDN: its type as an OID, and its value as text or, for `#hex` and non-string values, as DER. */
interface Atv {
  readonly type: string;
  readonly text?: string;
  readonly der?: string;
}
type Rdn = readonly Atv[];

/** RFC 4514 section 3 names, and the usual certificate attributes (RFC 5280 Appendix A). Anything else is written as its OID. */
const ATTRIBUTE_TYPES: Readonly<Record<string, string>> = {
  cn: '2.5.4.3',
  sn: '2.5.4.4',
  serialnumber: '2.5.4.5',
  c: '2.5.4.6',
  l: '2.5.4.7',
  st: '2.5.4.8',
  street: '2.5.4.9',
  o: '2.5.4.10',
  ou: '2.5.4.11',
  title: '2.5.4.12',
  postalcode: '2.5.4.17',
  givenname: '2.5.4.42',
  initials: '2.5.4.43',
  generationqualifier: '2.5.4.44',
  dnqualifier: '2.5.4.46',
  pseudonym: '2.5.4.65',
  organizationidentifier: '2.5.4.97',
  dc: '0.9.2342.19200300.100.1.25',
  uid: '0.9.2342.19200300.100.1.1',
  emailaddress: '1.2.840.113549.1.9.1',
};
const NUMERIC_OID = /^(?:0|[1-9][0-9]*)(?:\.(?:0|[1-9][0-9]*))+$/;
const KEYSTRING = /^[A-Za-z][A-Za-z0-9-]*$/;

/**
 * Parses an RFC 4514 string into RDNs in certificate (ASN.1) order: the
 * string names the most specific RDN first (section 2.1), the certificate
 * last. Spaces around `,`, `+` and `=` are tolerated (as RFC 4514 section 4
 * lets implementations); escapes (`\,`, `\+`, `\2C`, UTF-8 as `\C3\A9`) and
 * `#hex` values are understood. Throws with what is wrong.
 */
function parseDistinguishedName(input: string): Rdn[] {
  const rdns: Atv[][] = [[]];
  let index = 0;
  const skipSpaces = () => {
    while (input[index] === ' ') index += 1;
  };
  for (;;) {
    skipSpaces();
    const typeStart = index;
    while (index < input.length && input[index] !== '=' && input[index] !== ',' && input[index] !== '+') index += 1;
    if (input[index] !== '=') throw new Error('every attribute needs type=value');
    const type = attributeOid(input.slice(typeStart, index).trim());
    index += 1;
    skipSpaces();
    let atv: Atv;
    if (input[index] === '#') {
      const hex = /^#((?:[0-9A-Fa-f]{2})+)/.exec(input.slice(index));
      if (hex === null) throw new Error('a #value must be hex pairs (the BER encoding)');
      index += hex[0].length;
      atv = { type, der: hex[1]!.toLowerCase() };
    } else {
      const bytes: number[] = [];
      let pendingSpaces = 0;
      while (index < input.length && input[index] !== ',' && input[index] !== '+') {
        const char = input[index]!;
        if (char === '\\') {
          const next = input.slice(index + 1, index + 3);
          if (/^[0-9A-Fa-f]{2}$/.test(next)) {
            flushSpaces(bytes, pendingSpaces);
            pendingSpaces = 0;
            bytes.push(Number.parseInt(next, 16));
            index += 3;
            continue;
          }
          const escaped = input[index + 1];
          if (escaped === undefined || !'"+,;<>\\ #='.includes(escaped)) throw new Error('a backslash must escape a special character or two hex digits');
          flushSpaces(bytes, pendingSpaces);
          pendingSpaces = 0;
          bytes.push(escaped.charCodeAt(0));
          index += 2;
          continue;
        }
        if (char === '"' || char === ';' || char === '<' || char === '>' || char === '=') throw new Error(`the character ${char} must be escaped with a backslash`);
        if (char === ' ') {
          // Trailing spaces that are not escaped belong to the separator, not the value.
          pendingSpaces += 1;
          index += 1;
          continue;
        }
        flushSpaces(bytes, pendingSpaces);
        pendingSpaces = 0;
        bytes.push(...Buffer.from(char, 'utf8'));
        index += 1;
      }
      let text: string;
      try {
        text = new TextDecoder('utf-8', { fatal: true }).decode(Uint8Array.from(bytes));
      } catch {
        throw new Error('escaped bytes must be UTF-8');
      }
      if (text.length === 0) throw new Error('an attribute value must not be empty');
      atv = { type, text };
    }
    rdns.at(-1)!.push(atv);
    skipSpaces();
    if (index >= input.length) break;
    if (input[index] === '+') {
      index += 1;
    } else if (input[index] === ',') {
      index += 1;
      rdns.push([]);
    } else {
      throw new Error('attributes are separated by , (RDNs) or + (within an RDN)');
    }
  }
  return rdns.reverse();
}

function flushSpaces(bytes: number[], count: number): void {
  for (let i = 0; i < count; i++) bytes.push(0x20);
}

function attributeOid(type: string): string {
  if (NUMERIC_OID.test(type)) return type;
  const oid = KEYSTRING.test(type) ? ATTRIBUTE_TYPES[type.toLowerCase()] : undefined;
  if (oid === undefined) throw new Error(`unknown attribute type ${JSON.stringify(type.slice(0, 40))} (write its OID, e.g. 2.5.4.3=...)`);
  return oid;
}

/** The certificate's subject as RDNs of typed values. */
function certificateName(certificate: Certificate): Rdn[] {
  return certificate.tbsCertificate.subject.map((rdn) => rdn.map(certificateAtv));
}

function certificateAtv(atv: AttributeTypeAndValue): Atv {
  const der = Buffer.from(AsnConvert.serialize(atv.value)).toString('hex');
  // A string type (DirectoryString, IA5String) compares as text; anything else only by its encoding.
  return atv.value.anyValue === undefined ? { type: atv.type, text: atv.value.toString(), der } : { type: atv.type, der };
}

/**
 * RFC 4517 section 4.2.15 distinguishedNameMatch: the same number of RDNs,
 * each pair equal as sets of attribute values; values of the string types
 * compare by caseIgnoreMatch (section 4.2.11) after RFC 4518 preparation
 * (here: NFKC, lower case, insignificant spaces removed), `#hex` values
 * by their encoding.
 */
function sameName(expected: readonly Rdn[], actual: readonly Rdn[]): boolean {
  return expected.length === actual.length && expected.every((rdn, index) => sameRdn(rdn, actual[index]!));
}

function sameRdn(expected: Rdn, actual: Rdn): boolean {
  if (expected.length !== actual.length) return false;
  const unused = [...actual];
  for (const atv of expected) {
    const at = unused.findIndex((candidate) => sameAtv(atv, candidate));
    if (at === -1) return false;
    unused.splice(at, 1);
  }
  return true;
}

function sameAtv(expected: Atv, actual: Atv): boolean {
  if (expected.type !== actual.type) return false;
  if (expected.der !== undefined) return actual.der === expected.der;
  return actual.text !== undefined && prepared(actual.text) === prepared(expected.text!);
}

function prepared(value: string): string {
  return value.normalize('NFKC').toLowerCase().replace(/\s+/gu, ' ').trim();
}
