/**
 * A plugin's answer is untrusted data (src/plugins/host/wire.ts): at a claims
 * point every claim name must be a claim name (the chain file's characters,
 * never a prototype key) inside the manifest's namespace, and never a
 * registered claim. The answers here are what JSON.parse makes of a
 * plugin's message, so `__proto__` is an own key, as it is on the wire.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readAnswer } from '../../src/plugins/host/wire.ts';

const modify = (claims: string) => JSON.parse(`{"verdict":"modify","claims":${claims}}`) as unknown;

describe('a plugin answer at a claims point', () => {
  it('claims inside the namespace are taken (the control)', () => {
    assert.deepEqual(readAnswer('token.claims', modify('{"acme_team":"red","acme_level":2}'), 'acme_'), { verdict: 'modify', claims: { acme_team: 'red', acme_level: 2 } });
    assert.deepEqual(readAnswer('token.claims', modify('{"https://acme.example/team":"red"}'), 'https://acme.example/'), { verdict: 'modify', claims: { 'https://acme.example/team': 'red' } });
  });

  it('__proto__, constructor and prototype are outside any namespace, even one they start with', () => {
    // "__proto_" is a valid manifest namespace (3 or more, ends in "_", covers no registered claim), and "__proto__" starts with it.
    const proto = readAnswer('userinfo.claims', modify('{"__proto__":{"sub":"admin"}}'), '__proto_');
    assert.deepEqual(proto, { fault: 'outside_namespace' });
    // The wire check alone, as if a manifest's namespace had let them through.
    assert.deepEqual(readAnswer('token.claims', modify('{"constructor":{"prototype":{"sub":"admin"}}}'), 'cons'), { fault: 'outside_namespace' });
    assert.deepEqual(readAnswer('token.claims', modify('{"prototype":1}'), 'proto'), { fault: 'outside_namespace' });
    assert.deepEqual(readAnswer('access-token.claims', modify('{"acme_ok":1,"__proto__":{"sub":"admin"}}'), 'acme_'), { fault: 'outside_namespace' });
    assert.equal(({} as Record<string, unknown>)['sub'], undefined, 'Object.prototype untouched');
  });

  it('a name outside the claim-name characters is outside the namespace: spaces, control characters, quotes, past 128 characters', () => {
    for (const name of ['acme_ team', 'acme_\nteam', 'acme_"x', 'acme_é', 'acme_<b>', `acme_${'x'.repeat(124)}`]) {
      assert.deepEqual(readAnswer('userinfo.claims', modify(JSON.stringify({ [name]: 1 })), 'acme_'), { fault: 'outside_namespace' }, JSON.stringify(name));
    }
    assert.deepEqual(readAnswer('userinfo.claims', modify(JSON.stringify({ [`acme_${'x'.repeat(123)}`]: 1 })), 'acme_'), { verdict: 'modify', claims: { [`acme_${'x'.repeat(123)}`]: 1 } }, '128 characters is a claim name');
  });

  it('a registered claim is refused whatever the namespace (here one no manifest would accept)', () => {
    for (const [namespace, claim] of [['em', 'email_verified'], ['ph', 'phone_number'], ['may_', 'may_act'], ['authorization_', 'authorization_details'], ['na', 'name']] as const) {
      assert.deepEqual(readAnswer('userinfo.claims', modify(JSON.stringify({ [claim]: true })), namespace), { fault: 'outside_namespace' }, claim);
    }
  });
});
