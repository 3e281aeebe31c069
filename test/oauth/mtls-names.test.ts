/**
 * RFC 8705 section 2.1.2: how a certificate made by openssl is matched
 * against a registered subject DN (RFC 4514 string, RFC 4517
 * distinguishedNameMatch) or SAN of each type, the values a registration may
 * name, and section 2.2's registered self-signed certificate. Each rule is
 * tried with a near miss that must not match.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { certificateMatchesSubject, certificateThumbprint, isCurrentlyValid, isRegisteredCertificate, tlsSubjectProblem } from '../../src/oauth/mtls.ts';
import { ALPHA, makeTestPki, type TestPki } from '../support/mtls.ts';

describe('RFC 8705 certificate names', () => {
  let pki: TestPki;
  before(() => {
    pki = makeTestPki();
  });
  after(() => pki.remove());

  const dn = (value: string) => certificateMatchesSubject(pki.alpha.x509, 'tls_client_auth_subject_dn', value);

  it('subject DN: the RFC 4514 string, most specific RDN first, compared by distinguishedNameMatch', () => {
    assert.equal(dn(ALPHA.dn), true);
    assert.equal(dn('cn=ALPHA, ou=payments, o=example   corp, c=us'), true, 'type and value case, spaces around separators and inside values do not matter');
    assert.equal(dn('2.5.4.3=alpha,2.5.4.11=Payments,2.5.4.10=Example Corp,2.5.4.6=US'), true, 'types by OID');
    assert.equal(dn('CN=alph\\61,OU=Payments,O=Example\\20Corp,C=US'), true, 'hex escapes');
  });

  it('subject DN: another order, a missing or extra RDN, another value or a prefix is no match', () => {
    assert.equal(dn('C=US,O=Example Corp,OU=Payments,CN=alpha'), false, 'the certificate order (OpenSSL one-line) is not the RFC 4514 order');
    assert.equal(dn('CN=alpha,OU=Payments,O=Example Corp'), false);
    assert.equal(dn('CN=alpha,OU=Payments,O=Example Corp,C=US,DC=example'), false);
    assert.equal(dn('CN=alphab,OU=Payments,O=Example Corp,C=US'), false);
    assert.equal(dn('CN=alpha+UID=1,OU=Payments,O=Example Corp,C=US'), false, 'a multi-valued RDN is not the single-valued one');
    assert.equal(dn('CN=beta,OU=Payments,O=Example Corp,C=US'), false);
    assert.equal(certificateMatchesSubject(pki.beta.x509, 'tls_client_auth_subject_dn', ALPHA.dn), false);
  });

  it('subject DN: an escaped comma is part of the value, not a separator', () => {
    assert.equal(dn('CN=alpha\\,OU=Payments,O=Example Corp,C=US'), false);
  });

  it('SAN dNSName: ASCII case-insensitive, exact otherwise; no wildcard expansion', () => {
    assert.equal(certificateMatchesSubject(pki.alpha.x509, 'tls_client_auth_san_dns', 'ALPHA.Example.COM'), true);
    assert.equal(certificateMatchesSubject(pki.alpha.x509, 'tls_client_auth_san_dns', 'example.com'), false);
    assert.equal(certificateMatchesSubject(pki.alpha.x509, 'tls_client_auth_san_dns', '*.example.com'), false);
    assert.equal(certificateMatchesSubject(pki.alpha.x509, 'tls_client_auth_san_dns', 'alpha.example.com.evil'), false);
  });

  it('SAN URI: scheme and host case-insensitive, path exact', () => {
    assert.equal(certificateMatchesSubject(pki.alpha.x509, 'tls_client_auth_san_uri', ALPHA.uri), true);
    assert.equal(certificateMatchesSubject(pki.alpha.x509, 'tls_client_auth_san_uri', 'SPIFFE://Example.ORG/ns/prod/sa/alpha'), true);
    assert.equal(certificateMatchesSubject(pki.alpha.x509, 'tls_client_auth_san_uri', 'spiffe://example.org/ns/prod/sa/ALPHA'), false);
    assert.equal(certificateMatchesSubject(pki.alpha.x509, 'tls_client_auth_san_uri', 'spiffe://example.org/ns/prod/sa/alpha/'), false);
    assert.equal(certificateMatchesSubject(pki.alpha.x509, 'tls_client_auth_san_uri', 'spiffe://example.org/ns/prod/sa'), false);
  });

  it('SAN iPAddress: compared as addresses (IPv6 in any spelling), IPv4 and IPv6 apart', () => {
    assert.equal(certificateMatchesSubject(pki.alpha.x509, 'tls_client_auth_san_ip', ALPHA.ip), true);
    assert.equal(certificateMatchesSubject(pki.alpha.x509, 'tls_client_auth_san_ip', '2001:DB8:0:0:0:0:0:10'), true);
    assert.equal(certificateMatchesSubject(pki.alpha.x509, 'tls_client_auth_san_ip', '::ffff:192.0.2.10'), false);
    assert.equal(certificateMatchesSubject(pki.alpha.x509, 'tls_client_auth_san_ip', '192.0.2.1'), false);
  });

  it('SAN rfc822Name: the domain case-insensitive, the local part exact', () => {
    assert.equal(certificateMatchesSubject(pki.alpha.x509, 'tls_client_auth_san_email', 'Alpha.Ops@example.COM'), true);
    assert.equal(certificateMatchesSubject(pki.alpha.x509, 'tls_client_auth_san_email', 'alpha.ops@example.com'), false);
  });

  it('a SAN type the certificate lacks matches nothing (beta has no email)', () => {
    assert.equal(certificateMatchesSubject(pki.beta.x509, 'tls_client_auth_san_email', 'Alpha.Ops@Example.com'), false);
    assert.equal(certificateMatchesSubject(pki.selfSigned.x509, 'tls_client_auth_san_uri', ALPHA.uri), false);
  });

  it('registered values are checked for form', () => {
    assert.equal(tlsSubjectProblem('tls_client_auth_subject_dn', ALPHA.dn), undefined);
    assert.match(tlsSubjectProblem('tls_client_auth_subject_dn', 'alpha')!, /type=value/);
    assert.match(tlsSubjectProblem('tls_client_auth_subject_dn', 'CN=a;O=b')!, /must be escaped/);
    assert.match(tlsSubjectProblem('tls_client_auth_subject_dn', 'Colour=blue')!, /unknown attribute type/);
    assert.match(tlsSubjectProblem('tls_client_auth_subject_dn', 'CN=')!, /empty/);
    assert.match(tlsSubjectProblem('tls_client_auth_subject_dn', 'CN=\\zz')!, /backslash/);
    assert.equal(tlsSubjectProblem('tls_client_auth_san_dns', 'alpha.example.com'), undefined);
    assert.ok(tlsSubjectProblem('tls_client_auth_san_dns', 'alpha example.com'));
    assert.ok(tlsSubjectProblem('tls_client_auth_san_uri', 'not a uri'));
    assert.ok(tlsSubjectProblem('tls_client_auth_san_uri', '/relative/path'));
    assert.ok(tlsSubjectProblem('tls_client_auth_san_ip', '192.0.2.010'));
    assert.ok(tlsSubjectProblem('tls_client_auth_san_ip', '[2001:db8::1]'));
    assert.ok(tlsSubjectProblem('tls_client_auth_san_ip', 'fe80::1%eth0'));
    assert.ok(tlsSubjectProblem('tls_client_auth_san_email', 'no-at-sign'));
  });

  it('self-signed: the presented certificate must be an x5c[0] of the registered keys, and within its dates', () => {
    const jwks = { keys: [pki.jwk(pki.otherSelfSigned), pki.jwk(pki.selfSigned)] };
    assert.equal(isRegisteredCertificate(pki.selfSigned.x509, jwks), true);
    assert.equal(isRegisteredCertificate(pki.alpha.x509, jwks), false);
    assert.equal(isRegisteredCertificate(pki.selfSigned.x509, { keys: [{ ...pki.jwk(pki.selfSigned), x5c: [pki.alpha.x509.raw.toString('base64')] }] }), false, 'the key alone is not the certificate');
    assert.equal(isRegisteredCertificate(pki.selfSigned.x509, undefined), false);
    const now = Date.now();
    assert.equal(isCurrentlyValid(pki.selfSigned.x509, now), true);
    assert.equal(isCurrentlyValid(pki.selfSigned.x509, now + 2 * 86_400_000), false);
    assert.equal(isCurrentlyValid(pki.selfSigned.x509, now - 86_400_000), false);
  });

  it('the thumbprint is base64url SHA-256 of the DER (RFC 8705 section 3.1)', () => {
    assert.equal(certificateThumbprint(pki.alpha.x509), pki.alpha.thumbprint);
    assert.match(pki.alpha.thumbprint, /^[A-Za-z0-9_-]{43}$/);
  });
});
