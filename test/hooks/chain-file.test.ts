/**
 * The chain file's format: a version line first, one handler per line,
 * known points and options only; anything else is refused with its line.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_DEADLINE_MS, HookChainError, bundledChainSource, parseChainFile } from '../../src/hooks/index.ts';

const refused = (text: string, line: number | undefined, pattern: RegExp) =>
  assert.throws(
    () => parseChainFile(text),
    (error: unknown) => error instanceof HookChainError && error.line === line && pattern.test(error.message) && (line === undefined || error.message.startsWith(`chains.cfg line ${line}:`)),
  );

describe('the chain file', () => {
  it('reads points, handlers and options in file order', () => {
    const file = parseChainFile('# a comment\n\nportcullis-hooks 1\nlogin.before a.first pass deadline=250ms\nlogin.before a.second   # trailing comment\nuserinfo.claims a.claims pass fail-open claims=email,https://example.com/*\n');
    assert.equal(file.version, 1);
    const chain = file.chains.get('login.before')!;
    assert.deepEqual(chain.map((line) => [line.handler, line.line, line.mayPass, line.deadlineMs]), [
      ['a.first', 4, true, 250],
      ['a.second', 5, false, DEFAULT_DEADLINE_MS],
    ]);
    const claims = file.chains.get('userinfo.claims')![0]!;
    assert.equal(claims.failOpen, true);
    assert.deepEqual([...claims.namespace!.names], ['email']);
    assert.deepEqual(claims.namespace!.prefixes, ['https://example.com/']);
    assert.deepEqual(file.chains.get('consent.before'), []);
  });

  it('the file in the source tree parses, and lists every point', () => {
    const file = parseChainFile(bundledChainSource());
    for (const point of ['login.before', 'login.after', 'registration.before', 'consent.before', 'token.claims', 'userinfo.claims'] as const) {
      assert.ok(file.chains.get(point)!.length > 0, `${point} has a built-in handler`);
    }
  });

  it('needs the format version first, and a version it reads', () => {
    refused('', undefined, /empty/);
    refused('# only comments\n', undefined, /empty/);
    refused('login.before a.b\n', 1, /format version/);
    refused('portcullis-hooks 2\nlogin.before a.b\n', 1, /version "2" is not supported/);
    refused('portcullis-hooks\n', 1, /format version/);
  });

  it('refuses what it does not understand, naming the line', () => {
    refused('portcullis-hooks 1\n\nlogin.during a.b\n', 3, /unknown hook point "login.during"/);
    refused('portcullis-hooks 1\nlogin.before\n', 2, /handler name must follow/);
    refused('portcullis-hooks 1\nlogin.before Bad_Name\n', 2, /not a handler name/);
    refused('portcullis-hooks 1\nlogin.before a.b maybe\n', 2, /unknown or repeated option "maybe"/);
    refused('portcullis-hooks 1\nlogin.before a.b pass pass\n', 2, /unknown or repeated option "pass"/);
    refused('portcullis-hooks 1\nlogin.before a.b deadline=0ms\n', 2, /deadline/);
    refused('portcullis-hooks 1\nlogin.before a.b deadline=20000ms\n', 2, /deadline/);
    refused('portcullis-hooks 1\nlogin.before a.b deadline=5s\n', 2, /deadline/);
    refused('portcullis-hooks 1\nlogin.before a.b\nlogin.before a.b\n', 3, /already in the login.before chain \(line 2\)/);
  });

  it('refuses fail-open without pass: skipping a failed handler is falling through', () => {
    refused('portcullis-hooks 1\nlogin.before a.b fail-open\n', 2, /fail-open needs pass/);
  });

  it('refuses a claims namespace on a decision point, and one that reaches a protocol claim', () => {
    refused('portcullis-hooks 1\nlogin.after a.b claims=email\n', 2, /claims points only/);
    refused('portcullis-hooks 1\ntoken.claims a.b claims=email,sub\n', 2, /"sub" is reserved/);
    refused('portcullis-hooks 1\ntoken.claims a.b claims=a*\n', 2, /claims prefix "a\*" covers the reserved claim "aud"/);
    refused('portcullis-hooks 1\nuserinfo.claims a.b claims=email,*\n', 2, /not a claim name/);
    refused('portcullis-hooks 1\nuserinfo.claims a.b claims=email,,name\n', 2, /not a claim name/);
  });

  it('refuses __proto__, constructor and prototype as claim names in claims=', () => {
    for (const name of ['__proto__', 'constructor', 'prototype']) refused(`portcullis-hooks 1\nuserinfo.claims a.b claims=email,${name}\n`, 2, /not a claim name/);
  });
});
