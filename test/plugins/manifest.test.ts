import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ManifestError, compareVersions, parseManifest, parseManifestText } from '../../src/plugins/index.ts';

const minimal = { name: 'acme-claims', version: '1.2.3', entry: 'index.js', hooks: ['token.claims'], claimsNamespace: 'acme_' };

function refused(document: unknown, field: string, pattern: RegExp): void {
  assert.throws(
    () => parseManifest(document),
    (error: unknown) => error instanceof ManifestError && error.field === field && pattern.test(error.message),
    `expected ${field} to be refused with ${pattern}`,
  );
}

describe('plugin manifest', () => {
  it('parses a full manifest into a typed result with defaults', () => {
    const manifest = parseManifest({
      ...minimal,
      hooks: ['token.claims', 'login.before'],
      hostCalls: ['users.read', { name: 'audit.record' }, { name: 'http.fetch', origins: ['https://directory.example.com', 'https://hooks.example.com:8443'] }],
      fs: ['/etc/acme/directory.json'],
      limits: { memoryMb: 128 },
      onFailure: { 'token.claims': 'skip' },
    });
    assert.deepEqual(manifest, {
      name: 'acme-claims',
      version: '1.2.3',
      entry: 'index.js',
      hooks: ['token.claims', 'login.before'],
      claimsNamespace: 'acme_',
      hostCalls: [{ name: 'users.read' }, { name: 'audit.record' }, { name: 'http.fetch', origins: ['https://directory.example.com', 'https://hooks.example.com:8443'] }],
      fs: ['/etc/acme/directory.json'],
      limits: { memoryMb: 128, deadlineMs: 1000, concurrency: 16 },
      onFailure: { 'token.claims': 'skip', 'login.before': 'deny' },
    });
  });

  it('defaults: no host calls, no paths, 64 MB, 1000 ms, 16 at once, deny on failure', () => {
    const manifest = parseManifest({ name: 'rule', version: '0.1.0', entry: 'lib/main.js', hooks: ['login.after'] });
    assert.deepEqual(manifest.hostCalls, []);
    assert.deepEqual(manifest.fs, []);
    assert.deepEqual(manifest.limits, { memoryMb: 64, deadlineMs: 1000, concurrency: 16 });
    assert.deepEqual(manifest.onFailure, { 'login.after': 'deny' });
    assert.equal(manifest.claimsNamespace, undefined);
  });

  it('accepts a URL prefix as the claims namespace, and any prefix of 3 or more ending in a separator that covers no registered claim', () => {
    assert.equal(parseManifest({ ...minimal, claimsNamespace: 'https://example.com/' }).claimsNamespace, 'https://example.com/');
    for (const namespace of ['acme_', 'https://acme.example/', 'https://b.example/', 'urn:acme:', 'acme.', 'acme-', 'ema_', 'address.', 'x_y_']) {
      assert.equal(parseManifest({ ...minimal, claimsNamespace: namespace }).claimsNamespace, namespace);
    }
  });

  it('refuses what is not a JSON object, and unknown fields', () => {
    assert.throws(() => parseManifestText('{'), /not valid JSON/);
    refused([], '', /JSON object/);
    refused({ ...minimal, permissions: ['all'] }, '', /unknown field "permissions"/);
  });

  it('refuses a bad name', () => {
    refused({ ...minimal, name: undefined }, 'name', /required/);
    refused({ ...minimal, name: 7 }, 'name', /string/);
    for (const name of ['Acme', 'acme_claims', '-acme', 'acme-', '', 'a'.repeat(65), 'acme claims']) refused({ ...minimal, name }, 'name', /a-z, 0-9/);
    assert.equal(parseManifest({ ...minimal, name: 'a'.repeat(64) }).name.length, 64);
  });

  it('refuses a version that is not MAJOR.MINOR.PATCH', () => {
    for (const version of ['1.2', '1.2.3.4', 'v1.2.3', '01.2.3', '1.2.3-beta', '']) refused({ ...minimal, version }, 'version', /semantic version/);
  });

  it('refuses an entry outside the package', () => {
    refused({ ...minimal, entry: '/usr/lib/evil.js' }, 'entry', /relative path/);
    refused({ ...minimal, entry: '../evil.js' }, 'entry', /"\.\."/);
    refused({ ...minimal, entry: 'lib/../../evil.js' }, 'entry', /"\.\."/);
    refused({ ...minimal, entry: 'lib\\main.js' }, 'entry', /relative path/);
    refused({ ...minimal, entry: 'C:/main.js' }, 'entry', /relative path/);
    refused({ ...minimal, entry: '' }, 'entry', /relative path/);
    refused({ ...minimal, entry: 'lib/' }, 'entry', /name a file/);
    refused({ ...minimal, entry: 'main\n.js' }, 'entry', /control/);
    assert.equal(parseManifest({ ...minimal, entry: './lib/main.js' }).entry, 'lib/main.js');
  });

  it('refuses unknown, missing, empty or repeated hooks', () => {
    refused({ ...minimal, hooks: ['token.issue'] }, 'hooks', /unknown hook point "token.issue"/);
    refused({ ...minimal, hooks: undefined }, 'hooks', /required/);
    refused({ ...minimal, hooks: [] }, 'hooks', /at least one/);
    refused({ ...minimal, hooks: ['token.claims', 'token.claims'] }, 'hooks', /twice/);
    refused({ ...minimal, hooks: 'token.claims' }, 'hooks', /array of strings/);
  });

  it('requires a claims namespace with a claims hook, and refuses one that reaches a protocol claim', () => {
    refused({ ...minimal, claimsNamespace: undefined }, 'claimsNamespace', /required with the claims hook "token.claims"/);
    refused({ ...minimal, hooks: ['userinfo.claims'], claimsNamespace: undefined }, 'claimsNamespace', /required/);
    for (const claim of ['sub', 'iss', 'aud', 'exp', 'nbf', 'iat', 'jti', 'cnf', 'scope', 'client_id', 'azp', 'nonce', 'auth_time', 'acr', 'amr', 'sid', 'at_hash', 'c_hash']) {
      refused({ ...minimal, claimsNamespace: claim }, 'claimsNamespace', new RegExp(`covers the registered claim "${claim}"`));
    }
    // A prefix that covers a protocol claim: "client" reaches "client_id", "at_" "at_hash".
    refused({ ...minimal, claimsNamespace: 'client' }, 'claimsNamespace', /"client_id"/);
    refused({ ...minimal, claimsNamespace: 'at_' }, 'claimsNamespace', /"at_hash"/);
    refused({ ...minimal, claimsNamespace: 'su' }, 'claimsNamespace', /not a claim-name prefix/);
    refused({ ...minimal, claimsNamespace: 'a' }, 'claimsNamespace', /not a claim-name prefix/);
    refused({ ...minimal, claimsNamespace: 'acme claims' }, 'claimsNamespace', /not a claim-name prefix/);
    refused({ ...minimal, claimsNamespace: 5 }, 'claimsNamespace', /string/);
  });

  it('refuses a namespace that covers an identity or protocol-extension claim (OIDC Core 5.1, the IANA JWT registry), is too short, or does not end in a separator', () => {
    // Two characters were enough to reach email_verified, phone_number, name; "__" let a plugin answer __proto__.
    for (const namespace of ['em', 'ph', 'na', '__', '_', 'x_']) refused({ ...minimal, claimsNamespace: namespace }, 'claimsNamespace', /not a claim-name prefix \(3 to 128/);
    const covered: Record<string, string> = {
      ema: 'email',
      email: 'email',
      email_: 'email_verified',
      phone_: 'phone_number',
      'phone_number_': 'phone_number_verified',
      nam: 'name',
      given_: 'given_name',
      preferred_: 'preferred_username',
      updated_: 'updated_at',
      may_: 'may_act',
      authorization_: 'authorization_details',
      token_: 'token_introspection',
      sip_: 'sip_from_tag',
      birth_: 'birth_family_name',
      verified_: 'verified_claims',
      sub_: 'sub_jwk',
      // The person's privacy choices: a plugin must not answer them for the person (security review of issue 15).
      privacy_: 'privacy_opt_out',
      _claim_: '_claim_names',
      _sd_: '_sd_alg',
    };
    for (const [namespace, claim] of Object.entries(covered)) {
      refused({ ...minimal, claimsNamespace: namespace }, 'claimsNamespace', new RegExp(`covers the registered claim "${claim}"`));
    }
    // Every entry of the list is covered by itself: groups, roles, entitlements, act, htm, ...
    for (const claim of ['groups', 'roles', 'entitlements', 'act', 'htm', 'htu', 'ath', 'events', 'txn', 'orig', 'dest', 'attest', 'origid']) {
      refused({ ...minimal, claimsNamespace: claim }, 'claimsNamespace', /covers the registered claim/);
    }
    for (const namespace of ['acme', 'https://acme.example', 'urn:acme', 'team1']) refused({ ...minimal, claimsNamespace: namespace }, 'claimsNamespace', /must end in a separator/);
  });

  it('refuses host calls outside the closed list, and http.fetch without https origins', () => {
    refused({ ...minimal, hostCalls: ['users.write'] }, 'hostCalls', /unknown host call "users.write"/);
    refused({ ...minimal, hostCalls: [{ name: 'process.exec' }] }, 'hostCalls', /unknown host call/);
    refused({ ...minimal, hostCalls: 'users.read' }, 'hostCalls', /array/);
    refused({ ...minimal, hostCalls: ['users.read', 'users.read'] }, 'hostCalls', /twice/);
    refused({ ...minimal, hostCalls: ['http.fetch'] }, 'hostCalls', /needs its origins/);
    refused({ ...minimal, hostCalls: [{ name: 'http.fetch', origins: [] }] }, 'hostCalls', /at least one origin/);
    refused({ ...minimal, hostCalls: [{ name: 'http.fetch', origins: ['http://example.com'] }] }, 'hostCalls', /must be https/);
    refused({ ...minimal, hostCalls: [{ name: 'http.fetch', origins: ['https://example.com/hooks'] }] }, 'hostCalls', /origin only/);
    refused({ ...minimal, hostCalls: [{ name: 'http.fetch', origins: ['not a url'] }] }, 'hostCalls', /not a URL/);
    refused({ ...minimal, hostCalls: [{ name: 'http.fetch', origins: ['https://example.com'], methods: ['POST'] }] }, 'hostCalls', /unknown field "methods"/);
    refused({ ...minimal, hostCalls: [{ name: 'users.read', fields: ['email'] }] }, 'hostCalls', /no options/);
  });

  it('refuses fs paths that are relative or wander', () => {
    refused({ ...minimal, fs: ['etc/acme'] }, 'fs', /absolute/);
    refused({ ...minimal, fs: ['/etc/acme/../shadow'] }, 'fs', /"\.\."/);
    refused({ ...minimal, fs: ['/etc/./acme'] }, 'fs', /"\.\."/);
    refused({ ...minimal, fs: [3] }, 'fs', /array of strings/);
  });

  it('refuses fs paths that are the root or under /proc, /sys, /dev (PID 1\'s environment holds the master key in a container)', () => {
    for (const path of ['/proc/1/environ', '/proc/self/environ', '/proc', '/proc/', '//proc/1/environ', '/proc//self/mem', '/sys/kernel', '/sys', '/dev/mem', '/dev/', '/dev/shm/x']) {
      refused({ ...minimal, fs: [path] }, 'fs', /is under \/(proc|sys|dev): process, kernel and device files/);
    }
    for (const path of ['/', '//', '///']) refused({ ...minimal, fs: [path] }, 'fs', /root directory/);
    // Refused before it is normalised: ".." never reaches the check.
    refused({ ...minimal, fs: ['/proc/../proc/1/environ'] }, 'fs', /"\.\."/);
    refused({ ...minimal, fs: ['/etc/acme.json', '/proc/1/environ'] }, 'fs', /"\/proc\/1\/environ"/);
    // Segments, not string prefixes.
    assert.deepEqual(parseManifest({ ...minimal, fs: ['/procfoo', '/sysconfig/acme', '/devices.json', '/srv/proc/1', '/etc/dev'] }).fs, ['/procfoo', '/sysconfig/acme', '/devices.json', '/srv/proc/1', '/etc/dev']);
  });

  it('refuses limits out of range and unknown limits', () => {
    refused({ ...minimal, limits: { memoryMb: 8 } }, 'limits.memoryMb', /16 to 1024/);
    refused({ ...minimal, limits: { memoryMb: 2048 } }, 'limits.memoryMb', /16 to 1024/);
    refused({ ...minimal, limits: { deadlineMs: 5 } }, 'limits.deadlineMs', /10 to 10000/);
    refused({ ...minimal, limits: { deadlineMs: 10_001 } }, 'limits.deadlineMs', /10 to 10000/);
    refused({ ...minimal, limits: { concurrency: 0 } }, 'limits.concurrency', /1 to 64/);
    refused({ ...minimal, limits: { concurrency: 1.5 } }, 'limits.concurrency', /integer/);
    refused({ ...minimal, limits: { concurrency: '4' } }, 'limits.concurrency', /integer/);
    refused({ ...minimal, limits: { cpu: 1 } }, 'limits', /unknown field "cpu"/);
    refused({ ...minimal, limits: 64 }, 'limits', /object/);
  });

  it('allows "skip" on failure only for claims hooks, and only for declared hooks', () => {
    refused({ ...minimal, hooks: ['login.before'], claimsNamespace: undefined, onFailure: { 'login.before': 'skip' } }, 'onFailure.login.before', /only for claims hooks/);
    refused({ ...minimal, onFailure: { 'login.before': 'deny' } }, 'onFailure', /not one of the declared hooks/);
    refused({ ...minimal, onFailure: { 'token.claims': 'retry' } }, 'onFailure.token.claims', /"deny" or "skip"/);
    refused({ ...minimal, onFailure: 'skip' }, 'onFailure', /object/);
  });

  it('orders versions numerically', () => {
    assert.equal(compareVersions('1.10.0', '1.9.9'), 1);
    assert.equal(compareVersions('1.2.3', '1.2.3'), 0);
    assert.equal(compareVersions('0.9.0', '1.0.0'), -1);
  });
});
