/**
 * RFC 7591 client metadata validation: what is accepted (with its defaults,
 * stored exactly as given, unknown fields dropped) and, case by case, what is
 * refused and with which RFC 7591 section 3.2.2 error code.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { ClientMetadataError, redirectUriProblem, validateClientMetadata, type ClientMetadata } from '../../src/oauth/client-metadata.ts';

const options = { allowedScopes: ['openid', 'profile', 'email', 'offline_access', 'orders:read', 'orders:write'], defaultSigningAlgorithm: 'EdDSA' };
const validate = (input: unknown): ClientMetadata => validateClientMetadata(input, options);

const WEB = { redirect_uris: ['https://app.example.com/callback'] };

function publicJwk(type: 'ed25519' | 'ec' | 'rsa', extra: Record<string, unknown> = {}): Record<string, unknown> {
  const { publicKey } =
    type === 'ed25519' ? generateKeyPairSync('ed25519') : type === 'ec' ? generateKeyPairSync('ec', { namedCurve: 'P-256' }) : generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...publicKey.export({ format: 'jwk' }), ...extra };
}

const ed25519 = publicJwk('ed25519', { kid: 'ed-1', use: 'sig', alg: 'EdDSA' });
const p256 = publicJwk('ec', { kid: 'ec-1' });
const rsa2048 = publicJwk('rsa', { kid: 'rsa-1', alg: 'PS256' });
const rsa1024 = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ format: 'jwk' });
const privateEd25519 = generateKeyPairSync('ed25519').privateKey.export({ format: 'jwk' });
const secp256k1 = generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).publicKey.export({ format: 'jwk' });

describe('validateClientMetadata accepts', () => {
  it('a minimal web client, with the RFC 7591 defaults filled in', () => {
    assert.deepEqual(validate(WEB), {
      redirect_uris: ['https://app.example.com/callback'],
      post_logout_redirect_uris: [],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      scope: 'openid',
      application_type: 'web',
      require_pushed_authorization_requests: false,
      dpop_bound_access_tokens: false,
      id_token_signed_response_alg: 'EdDSA',
      backchannel_logout_session_required: false,
      tls_client_certificate_bound_access_tokens: false,
    });
  });

  it('every supported field', () => {
    const metadata = validate({
      client_name: '  Orders Portal ',
      redirect_uris: ['https://app.example.com/cb', 'http://127.0.0.1:8080/cb', 'http://[::1]/cb?tenant=a'],
      post_logout_redirect_uris: ['https://app.example.com/bye'],
      grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
      response_types: ['code'],
      token_endpoint_auth_method: 'private_key_jwt',
      scope: 'openid profile orders:read offline_access',
      jwks: { keys: [ed25519, p256, rsa2048] },
      application_type: 'web',
      require_pushed_authorization_requests: true,
      dpop_bound_access_tokens: true,
      id_token_signed_response_alg: 'PS256',
      backchannel_logout_uri: 'https://app.example.com/backchannel',
      backchannel_logout_session_required: true,
    });
    assert.equal(metadata.client_name, 'Orders Portal');
    assert.deepEqual(metadata.grant_types, ['authorization_code', 'refresh_token', 'client_credentials']);
    assert.equal(metadata.token_endpoint_auth_method, 'private_key_jwt');
    assert.equal(metadata.jwks?.keys.length, 3);
    assert.equal(metadata.id_token_signed_response_alg, 'PS256');
    assert.equal(metadata.backchannel_logout_uri, 'https://app.example.com/backchannel');
    assert.equal(metadata.require_pushed_authorization_requests, true);
    assert.equal(metadata.dpop_bound_access_tokens, true);
    assert.equal(metadata.backchannel_logout_session_required, true);
  });

  it('redirect URIs exactly as given (they are compared later by exact string)', () => {
    const uris = ['https://App.Example.com:443/cb/?b=2&a=1', 'https://app.example.com', 'https://app.example.com/%7Euser/cb'];
    assert.deepEqual(validate({ redirect_uris: uris }).redirect_uris, uris);
  });

  it('native apps: private-use reverse-domain schemes, claimed https, loopback IPs and localhost (RFC 8252)', () => {
    const uris = ['com.example.app:/oauth2redirect', 'com.example.app://callback', 'https://app.example.com/native', 'http://127.0.0.1:51234/', 'http://[::1]:4000/cb', 'http://localhost:8080/cb'];
    const metadata = validate({ application_type: 'native', token_endpoint_auth_method: 'none', redirect_uris: uris });
    assert.deepEqual(metadata.redirect_uris, uris);
    assert.equal(metadata.application_type, 'native');
  });

  it('a client_credentials service without redirect URIs or response types', () => {
    const metadata = validate({ grant_types: ['client_credentials'], scope: 'orders:read orders:write' });
    assert.deepEqual(metadata.redirect_uris, []);
    assert.deepEqual(metadata.response_types, []);
    assert.equal(metadata.scope, 'orders:read orders:write');
  });

  it('ignores unknown and server-managed fields and never returns them (RFC 7591 section 2)', () => {
    const metadata = validate({
      ...WEB,
      logo_uri: 'https://app.example.com/logo.png',
      contacts: ['ops@example.com'],
      software_statement: 'eyJ...',
      client_id: 'chosen-by-the-client',
      client_id_issued_at: 1,
      registration_access_token: 'x',
      secretHash: 'deadbeef',
      __proto__: { polluted: true },
      favourite_colour: 'blue',
    });
    for (const key of ['logo_uri', 'contacts', 'software_statement', 'client_id', 'client_id_issued_at', 'registration_access_token', 'secretHash', 'favourite_colour', 'polluted']) {
      assert.equal(Object.hasOwn(metadata, key), false, key);
    }
  });

  it('null for an optional field means "not given"', () => {
    const metadata = validate({ ...WEB, client_name: null, jwks: null, scope: null, grant_types: null, dpop_bound_access_tokens: null });
    assert.equal(metadata.client_name, undefined);
    assert.equal(metadata.scope, 'openid');
    assert.deepEqual(metadata.grant_types, ['authorization_code']);
  });

  it('a scope listed twice once, in order', () => {
    assert.equal(validate({ ...WEB, scope: 'openid email openid profile' }).scope, 'openid email profile');
  });

  it('the default ID token algorithm from the server configuration', () => {
    assert.equal(validateClientMetadata(WEB, { ...options, defaultSigningAlgorithm: 'ES256' }).id_token_signed_response_alg, 'ES256');
    assert.throws(() => validateClientMetadata(WEB, { ...options, defaultSigningAlgorithm: 'HS256' }), TypeError);
  });

  it('only the public members of a JWK (unknown members dropped)', () => {
    const metadata = validate({ ...WEB, token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [{ ...ed25519, x5u: 'https://app.example.com/cert.pem', note: 'hello' }], extra: 1 } });
    assert.deepEqual(Object.keys(metadata.jwks!.keys[0]!).sort(), ['alg', 'crv', 'kid', 'kty', 'use', 'x']);
    assert.deepEqual(Object.keys(metadata.jwks!), ['keys']);
  });
});

describe('validateClientMetadata refuses', () => {
  const cases: [string, unknown, ClientMetadataError['error'], RegExp][] = [
    ['a non-object', ['https://app.example.com/cb'], 'invalid_client_metadata', /JSON object/],
    ['null', null, 'invalid_client_metadata', /JSON object/],
    ['a string', 'hello', 'invalid_client_metadata', /JSON object/],

    // Redirect URIs (RFC 6749 3.1.2, RFC 9700 2.1 / 4.1.3, RFC 8252).
    ['a fragment', { redirect_uris: ['https://app.example.com/cb#frag'] }, 'invalid_redirect_uri', /fragment/],
    ['an empty fragment', { redirect_uris: ['https://app.example.com/cb#'] }, 'invalid_redirect_uri', /fragment/],
    ['a wildcard host', { redirect_uris: ['https://*.example.com/cb'] }, 'invalid_redirect_uri', /wildcard/],
    ['a wildcard path', { redirect_uris: ['https://app.example.com/*'] }, 'invalid_redirect_uri', /wildcard/],
    ['http on a public host', { redirect_uris: ['http://app.example.com/cb'] }, 'invalid_redirect_uri', /must use https/],
    ['http on a private address', { redirect_uris: ['http://10.0.0.5/cb'] }, 'invalid_redirect_uri', /must use https/],
    ['http://localhost for a web app', { redirect_uris: ['http://localhost:3000/cb'] }, 'invalid_redirect_uri', /native apps only.*127\.0\.0\.1/],
    ['a relative URI', { redirect_uris: ['/callback'] }, 'invalid_redirect_uri', /absolute/],
    ['a URI without scheme', { redirect_uris: ['app.example.com/cb'] }, 'invalid_redirect_uri', /absolute/],
    ['https without //', { redirect_uris: ['https:app.example.com/cb'] }, 'invalid_redirect_uri', /https:\/\/host/],
    ['userinfo', { redirect_uris: ['https://user@app.example.com/cb'] }, 'invalid_redirect_uri', /userinfo/],
    ['userinfo with a password', { redirect_uris: ['https://app.example.com:pw@evil.example/cb'] }, 'invalid_redirect_uri', /userinfo/],
    ['an empty userinfo', { redirect_uris: ['https://@evil.example/cb'] }, 'invalid_redirect_uri', /userinfo/],
    ['a backslash', { redirect_uris: ['https://app.example.com\\@evil.example/'] }, 'invalid_redirect_uri', /RFC 3986/],
    ['a newline', { redirect_uris: ['https://app.example.com/cb\n'] }, 'invalid_redirect_uri', /RFC 3986/],
    ['a space', { redirect_uris: ['https://app.example.com/my cb'] }, 'invalid_redirect_uri', /RFC 3986/],
    ['a non-ASCII host', { redirect_uris: ['https://bücher.example/cb'] }, 'invalid_redirect_uri', /xn--/],
    ['javascript: for a native app', { application_type: 'native', redirect_uris: ['javascript:alert(1)'] }, 'invalid_redirect_uri', /reverse domain/],
    ['a scheme without a dot for a native app', { application_type: 'native', redirect_uris: ['myapp:/cb'] }, 'invalid_redirect_uri', /reverse domain/],
    ['a private-use scheme for a web app', { redirect_uris: ['com.example.app:/cb'] }, 'invalid_redirect_uri', /native apps only/],
    ['data: for a web app', { redirect_uris: ['data:text/html,hi'] }, 'invalid_redirect_uri', /native apps only/],
    ['an empty redirect URI', { redirect_uris: [''] }, 'invalid_redirect_uri', /empty/],
    ['a too long redirect URI', { redirect_uris: [`https://app.example.com/${'a'.repeat(2000)}`] }, 'invalid_redirect_uri', /longer than 2000/],
    ['21 redirect URIs', { redirect_uris: Array.from({ length: 21 }, (_, i) => `https://app.example.com/cb${i}`) }, 'invalid_redirect_uri', /at most 20/],
    ['a duplicate redirect URI', { redirect_uris: ['https://app.example.com/cb', 'https://app.example.com/cb'] }, 'invalid_redirect_uri', /twice/],
    ['a redirect URI that is not a string', { redirect_uris: [42] }, 'invalid_redirect_uri', /redirect_uris\[0\] must be a string/],
    ['redirect_uris as a string', { redirect_uris: 'https://app.example.com/cb' }, 'invalid_redirect_uri', /array of strings/],
    ['authorization_code without a redirect URI', {}, 'invalid_redirect_uri', /at least one redirect URI/],
    ['authorization_code with an empty list', { redirect_uris: [] }, 'invalid_redirect_uri', /at least one redirect URI/],
    ['redirect URIs on a client_credentials-only client', { grant_types: ['client_credentials'], redirect_uris: ['https://app.example.com/cb'] }, 'invalid_redirect_uri', /never redirects/],
    ['a post-logout URI with a fragment', { ...WEB, post_logout_redirect_uris: ['https://app.example.com/bye#x'] }, 'invalid_redirect_uri', /post_logout_redirect_uris\[0\].*fragment/],

    // Response and grant types (RFC 7591 2.1; no implicit or hybrid).
    ['the implicit response type', { ...WEB, response_types: ['token'] }, 'invalid_client_metadata', /implicit or hybrid/],
    ['an id_token response type', { ...WEB, response_types: ['id_token'] }, 'invalid_client_metadata', /implicit or hybrid/],
    ['a hybrid response type', { ...WEB, response_types: ['code id_token'] }, 'invalid_client_metadata', /implicit or hybrid/],
    ['another hybrid response type', { ...WEB, response_types: ['code', 'code token'] }, 'invalid_client_metadata', /implicit or hybrid/],
    ['the none response type', { ...WEB, response_types: ['none'] }, 'invalid_client_metadata', /only response type is "code"/],
    ['no response type for authorization_code', { ...WEB, response_types: [] }, 'invalid_client_metadata', /must be \["code"\]/],
    ['code without authorization_code', { grant_types: ['client_credentials'], response_types: ['code'] }, 'invalid_client_metadata', /needs the authorization_code grant/],
    ['the implicit grant', { ...WEB, grant_types: ['implicit'] }, 'invalid_client_metadata', /implicit grant is not supported/],
    ['the password grant', { ...WEB, grant_types: ['authorization_code', 'password'] }, 'invalid_client_metadata', /password grant is not supported/],
    ['an unknown grant', { ...WEB, grant_types: ['urn:ietf:params:oauth:grant-type:device_code'] }, 'invalid_client_metadata', /not supported/],
    ['an empty grant list', { ...WEB, grant_types: [] }, 'invalid_client_metadata', /must not be empty/],
    ['refresh_token without authorization_code', { grant_types: ['client_credentials', 'refresh_token'] }, 'invalid_client_metadata', /refresh_token needs authorization_code/],
    ['client_credentials for a public client', { grant_types: ['client_credentials'], token_endpoint_auth_method: 'none' }, 'invalid_client_metadata', /confidential client/],

    // Secrets and keys.
    ['a client-chosen secret', { ...WEB, client_secret: 'hunter2' }, 'invalid_client_metadata', /generated by the server/],
    ['a client-chosen strong secret', { ...WEB, client_secret: 'x'.repeat(64) }, 'invalid_client_metadata', /generated by the server/],
    ['client_secret_jwt', { ...WEB, token_endpoint_auth_method: 'client_secret_jwt' }, 'invalid_client_metadata', /private_key_jwt/],
    ['an unknown auth method', { ...WEB, token_endpoint_auth_method: 'magic' }, 'invalid_client_metadata', /must be one of none, client_secret_basic/],
    ['private_key_jwt without jwks', { ...WEB, token_endpoint_auth_method: 'private_key_jwt' }, 'invalid_client_metadata', /needs jwks/],
    ['jwks_uri', { ...WEB, token_endpoint_auth_method: 'private_key_jwt', jwks_uri: 'https://app.example.com/jwks' }, 'invalid_client_metadata', /jwks_uri is not supported.*inline/],
    ['a private key in jwks', { ...WEB, token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [privateEd25519] } }, 'invalid_client_metadata', /private key material \("d"\)/],
    ['a symmetric key in jwks', { ...WEB, token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [{ kty: 'oct', k: 'c2VjcmV0' }] } }, 'invalid_client_metadata', /private key material \("k"\)/],
    ['an RSA key of 1024 bits', { ...WEB, token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [rsa1024] } }, 'invalid_client_metadata', /at least 2048 bits/],
    ['an EC key on secp256k1', { ...WEB, token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [secp256k1] } }, 'invalid_client_metadata', /P-256, P-384 or P-521/],
    ['a malformed key', { ...WEB, token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [{ kty: 'OKP', crv: 'Ed25519', x: 'not-a-key' }] } }, 'invalid_client_metadata', /not a valid OKP public key/],
    ['an X25519 key', { ...WEB, token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [{ ...ed25519, crv: 'X25519' }] } }, 'invalid_client_metadata', /crv Ed25519/],
    ['a key declaring HS256', { ...WEB, token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [{ ...p256, alg: 'HS256' }] } }, 'invalid_client_metadata', /not an asymmetric signing algorithm/],
    ['only encryption keys', { ...WEB, token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [{ ...p256, use: 'enc' }] } }, 'invalid_client_metadata', /at least one signing key/],
    ['two keys with one kid', { ...WEB, token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [ed25519, { ...p256, kid: 'ed-1' }] } }, 'invalid_client_metadata', /share one kid/],
    ['an empty key set', { ...WEB, token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [] } }, 'invalid_client_metadata', /non-empty array/],
    ['jwks as an array', { ...WEB, token_endpoint_auth_method: 'private_key_jwt', jwks: [ed25519] }, 'invalid_client_metadata', /JWK Set object/],

    // Scopes (RFC 6749 3.3).
    ['an unknown scope', { ...WEB, scope: 'openid admin' }, 'invalid_client_metadata', /"admin" is not offered/],
    ['two spaces between scopes', { ...WEB, scope: 'openid  profile' }, 'invalid_client_metadata', /single spaces/],
    ['a quote in a scope', { ...WEB, scope: 'openid "profile"' }, 'invalid_client_metadata', /single spaces/],
    ['an empty scope', { ...WEB, scope: '' }, 'invalid_client_metadata', /single spaces/],
    ['scope as an array', { ...WEB, scope: ['openid'] }, 'invalid_client_metadata', /space-separated string/],

    // Other fields.
    ['a too long client name', { ...WEB, client_name: 'n'.repeat(201) }, 'invalid_client_metadata', /at most 200/],
    ['a client name with a direction override', { ...WEB, client_name: 'Bank\u202eevil' }, 'invalid_client_metadata', /direction-override/],
    ['a client name with a newline', { ...WEB, client_name: 'Bank\nLogin' }, 'invalid_client_metadata', /control/],
    ['a blank client name', { ...WEB, client_name: '   ' }, 'invalid_client_metadata', /must not be empty/],
    ['an unknown application type', { ...WEB, application_type: 'spa' }, 'invalid_client_metadata', /web, native/],
    ['unsigned ID tokens', { ...WEB, id_token_signed_response_alg: 'none' }, 'invalid_client_metadata', /unsigned ID tokens/],
    ['HMAC ID tokens', { ...WEB, id_token_signed_response_alg: 'HS256' }, 'invalid_client_metadata', /must be one of EdDSA/],
    ['a boolean as a string', { ...WEB, dpop_bound_access_tokens: 'true' }, 'invalid_client_metadata', /true or false/],
    ['an http back-channel logout URI', { ...WEB, backchannel_logout_uri: 'http://app.example.com/logout' }, 'invalid_client_metadata', /backchannel_logout_uri: must use https/],
    ['a back-channel logout URI with a fragment', { ...WEB, backchannel_logout_uri: 'https://app.example.com/logout#x' }, 'invalid_client_metadata', /fragment/],
  ];

  for (const [name, input, code, message] of cases) {
    it(name, () => {
      assert.throws(
        () => validate(input),
        (error: unknown) => {
          assert.ok(error instanceof ClientMetadataError, `${String(error)}`);
          assert.equal(error.error, code);
          assert.match(error.message, message);
          return true;
        },
      );
    });
  }

  it('echoes at most a short prefix of a long value', () => {
    assert.throws(
      () => validate({ ...WEB, application_type: `x${'y'.repeat(5000)}` }),
      (error: unknown) => error instanceof ClientMetadataError && error.message.length < 200,
    );
  });
});

describe('redirectUriProblem', () => {
  it('agrees with the loopback rule for both application types', () => {
    for (const type of ['web', 'native'] as const) {
      assert.equal(redirectUriProblem('http://127.0.0.1/cb', type), undefined);
      assert.equal(redirectUriProblem('http://[::1]:9/cb', type), undefined);
      assert.match(redirectUriProblem('http://127.0.0.1.nip.io/cb', type)!, /https/);
    }
    assert.equal(redirectUriProblem('http://localhost/cb', 'native'), undefined);
    assert.match(redirectUriProblem('http://localhost/cb', 'web')!, /native apps only/);
  });
});

describe('RFC 8705 client metadata (mutual TLS) and the operator-only cert_sans', () => {
  const SERVICE = { grant_types: ['client_credentials'], scope: 'orders:read' };
  const TLS = { ...SERVICE, token_endpoint_auth_method: 'tls_client_auth' };
  const operator = (input: unknown) => validateClientMetadata(input, { ...options, operator: true });
  const refuses = (run: () => unknown, pattern: RegExp) =>
    assert.throws(run, (error: unknown) => error instanceof ClientMetadataError && error.error === 'invalid_client_metadata' && pattern.test(error.message));

  it('tls_client_auth with exactly one registered name, kept as given; the bound-tokens flag', () => {
    for (const [field, value] of [
      ['tls_client_auth_subject_dn', 'CN=alpha,OU=Payments,O=Example Corp,C=US'],
      ['tls_client_auth_san_dns', 'alpha.example.com'],
      ['tls_client_auth_san_uri', 'spiffe://example.org/ns/prod/sa/alpha'],
      ['tls_client_auth_san_ip', '2001:db8::10'],
      ['tls_client_auth_san_email', 'ops@example.com'],
    ] as const) {
      const metadata = validate({ ...TLS, [field]: value, tls_client_certificate_bound_access_tokens: true });
      assert.equal(metadata.token_endpoint_auth_method, 'tls_client_auth');
      assert.equal(metadata[field], value);
      assert.equal(metadata.tls_client_certificate_bound_access_tokens, true);
    }
  });

  it('refuses tls_client_auth with no name, with two, and names for another method', () => {
    refuses(() => validate(TLS), /exactly one of tls_client_auth_subject_dn/);
    refuses(() => validate({ ...TLS, tls_client_auth_san_dns: 'a.example.com', tls_client_auth_san_uri: 'spiffe://example.org/a' }), /exactly one of .*got tls_client_auth_san_dns and tls_client_auth_san_uri/);
    refuses(() => validate({ ...SERVICE, tls_client_auth_san_dns: 'a.example.com' }), /only for token_endpoint_auth_method tls_client_auth/);
    refuses(() => validate({ ...TLS, tls_client_auth_san_dns: ['a.example.com'] }), /must be a string/);
    refuses(() => validate({ ...TLS, tls_client_auth_subject_dn: 'alpha' }), /RFC 4514/);
    refuses(() => validate({ ...TLS, tls_client_auth_san_ip: '10.0.0.1/8' }), /IPv4/);
  });

  it('self_signed_tls_client_auth needs a key with its certificate as x5c, and the certificate must hold that key', () => {
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const jwk = publicKey.export({ format: 'jwk' });
    refuses(() => validate({ ...SERVICE, token_endpoint_auth_method: 'self_signed_tls_client_auth' }), /needs jwks with the client's certificate as the x5c/);
    refuses(() => validate({ ...SERVICE, token_endpoint_auth_method: 'self_signed_tls_client_auth', jwks: { keys: [jwk] } }), /x5c/);
    refuses(() => validate({ ...SERVICE, token_endpoint_auth_method: 'self_signed_tls_client_auth', jwks: { keys: [{ ...jwk, x5c: ['not base64!'] }] } }), /base64 \(not base64url\)/);
    refuses(() => validate({ ...SERVICE, token_endpoint_auth_method: 'self_signed_tls_client_auth', jwks: { keys: [{ ...jwk, x5c: ['AAAA'] }] } }), /not an X\.509 certificate/);
    refuses(() => validate({ ...SERVICE, token_endpoint_auth_method: 'self_signed_tls_client_auth', jwks: { keys: [{ ...jwk, x5c: 'AAAA' }] } }), /array of 1 to/);
  });

  it('refuses both bound-token flags at once: a token is bound to one key', () => {
    refuses(() => validate({ ...SERVICE, dpop_bound_access_tokens: true, tls_client_certificate_bound_access_tokens: true }), /exclude each other/);
    refuses(() => validate({ ...SERVICE, tls_client_certificate_bound_access_tokens: 'yes' }), /true or false/);
  });

  it('cert_sans from the operator: SPIFFE IDs, dns: (lower-cased) and ip: (canonical) names', () => {
    const metadata = operator({ ...SERVICE, cert_sans: ['spiffe://example.org/ns/prod/sa/alpha', 'dns:Alpha.Example.com', 'ip:2001:DB8:0::10', 'ip:192.0.2.10'] });
    assert.deepEqual(metadata.cert_sans, ['spiffe://example.org/ns/prod/sa/alpha', 'dns:alpha.example.com', 'ip:2001:db8::10', 'ip:192.0.2.10']);
    assert.equal(operator({ ...SERVICE, cert_sans: [] }).cert_sans, undefined, 'an empty list is no list');
    assert.equal(operator(SERVICE).cert_sans, undefined);
  });

  it('refuses cert_sans from anyone but the operator (dynamic registration), and malformed names', () => {
    refuses(() => validate({ ...SERVICE, cert_sans: ['spiffe://example.org/a'] }), /operator only/);
    for (const [value, pattern] of [
      ['spiffe://example.org', /needs a path/],
      ['spiffe://Example.org/a', /only lowercase letters/],
      ['spiffe://example.org/a/', /trailing slash/],
      ['spiffe://example.org/a/../b', /no '\.' or '\.\.' segment/],
      ['spiffe://example.org:8443/a', /no port/],
      ['spiffe://example.org/a?b=c', /no query/],
      ['spiffe://user@example.org/a', /SPIFFE ID/],
      ['dns:*.example.com', /no wildcard/],
      ['dns:exa mple.com', /DNS name/],
      ['dns:', /DNS name/],
      ['ip:300.1.1.1', /IPv4/],
      ['ip:[::1]', /no brackets/],
      ['https://example.org/a', /write spiffe:\/\/trust-domain\/path, dns:name or ip:address/],
      ['example.org', /write spiffe/],
      ['', /1 to 2048/],
    ] as const) {
      refuses(() => operator({ ...SERVICE, cert_sans: [value] }), pattern);
    }
    refuses(() => operator({ ...SERVICE, cert_sans: 'dns:a.example.com' }), /array of strings/);
    refuses(() => operator({ ...SERVICE, cert_sans: ['dns:a.example.com', 'dns:A.example.com'] }), /listed twice/);
    refuses(() => operator({ ...SERVICE, cert_sans: Array.from({ length: 21 }, (_, i) => `dns:n${i}.example.com`) }), /at most 20/);
  });
});
