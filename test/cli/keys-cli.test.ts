/**
 * `portcullis keys …` in-process, on a real data directory: list the first
 * keys, rotate (published now, signing one max-age later), revoke (a new key
 * signs at once), each audited; --help for each; one clear line and a
 * non-zero exit for every mistake.
 *
 * Key states come from the rotation schedule and a clock: the commands run
 * on a clock this test pins and moves (never the wall clock), so a slow,
 * busy machine cannot move a key between states between two commands. Kids
 * are passed as --kid=<kid>: a kid is base64url, and one that starts with "-"
 * (1 in 64) passed as a plain argument reads as an option; that was the CI
 * flake of December 2026 (`keys revoke <kid>` exited 1 on "unknown option").
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { main } from '../../src/cli/main.ts';
import { initDeployment, type CliRun as Run } from '../support/cli.ts';
import { ManualClock } from '../support/clock.ts';
import { decodeEntry, type AuditEntry } from '../../src/audit/index.ts';
import { loadConfig } from '../../src/config/index.ts';
import { openStores } from '../../src/store/index.ts';

interface Row {
  kid: string;
  alg: string;
  state: string;
  activates: string;
  lifetime: string;
}

const KID = '[A-Za-z0-9_-]{43}';
const clock = new ManualClock(Date.UTC(2026, 11, 1, 9, 0, 0));
const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

/** The command line in this process, on the pinned clock, with its output captured. */
async function run(args: string[]): Promise<Run> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(args, { out: (line) => out.push(line), err: (line) => err.push(line), clock: clock.now });
  return { code, out, err };
}
const TIME = '\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ';

function rows(listed: Run): Row[] {
  assert.equal(listed.code, 0, listed.err.join('\n'));
  assert.match(listed.out[0]!, /^KID +ALG +STATE +ACTIVATES +RETIRES \/ REMOVED FROM JWKS$/);
  return listed.out.slice(1).map((line) => {
    const match = new RegExp(`^(${KID}) +(\\S+) +(\\S+) +(${TIME})  (.+)$`).exec(line);
    assert.ok(match, line);
    return { kid: match[1]!, alg: match[2]!, state: match[3]!, activates: match[4]!, lifetime: match[5]! };
  });
}

describe('portcullis keys', () => {
  let dir: string;
  let configFile: string;

  before(async () => {
    ({ dir, configFile } = await initDeployment('portcullis-keys-cli-', { tokens: { jwksMaxAgeSeconds: 300 } }));
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('lists one current key per algorithm, made on first use', async () => {
    const listed = rows(await run(['keys', 'list', '--config', configFile]));
    assert.deepEqual(
      listed.map((row) => [row.alg, row.state, row.lifetime]),
      ['EdDSA', 'ES256', 'RS256', 'PS256'].map((alg) => [alg, 'current', '-']),
    );
    assert.deepEqual(rows(await run(['keys', 'list', '--config', configFile])), listed, 'the same keys the next time');
  });

  it('rotate publishes a key that signs one JWKS max-age later; the current key shows when it retires and leaves the JWKS', async () => {
    clock.advance(60_000);
    const rotated = await run(['keys', 'rotate', '--alg', 'ES256', '--config', configFile]);
    assert.equal(rotated.code, 0, rotated.err.join('\n'));
    const match = new RegExp(`^Created ES256 key (${KID}): published now, signs from (${TIME})\\.$`).exec(rotated.out[0]!);
    assert.ok(match, rotated.out[0]);
    assert.equal(match[2], iso(clock.now() + 300_000), 'one max-age from now');
    assert.match(rotated.out[1]!, /within 10s/);

    const listed = rows(await run(['keys', 'list', '--config', configFile]));
    const es256 = listed.filter((row) => row.alg === 'ES256');
    assert.deepEqual(
      es256.map((row) => row.state),
      ['current', 'next'],
    );
    assert.equal(es256[1]!.kid, match[1]);
    assert.match(es256[0]!.lifetime, new RegExp(`^${match[2]} / ${TIME}$`));

    const byDefault = await run(['keys', 'rotate', '--config', configFile]);
    assert.match(byDefault.out[0]!, /^Created EdDSA key /, 'the configured signing algorithm by default');
  });

  it('revoke takes a key out at once and a new key of its algorithm signs from now', async () => {
    const current = rows(await run(['keys', 'list', '--config', configFile])).find((row) => row.alg === 'PS256' && row.state === 'current')!;
    const revoked = await run(['keys', 'revoke', `--kid=${current.kid}`, '--config', configFile]);
    assert.equal(revoked.code, 0, revoked.err.join('\n'));
    assert.equal(revoked.out[0], `Revoked PS256 key ${current.kid} (it was current: signing since ${current.activates}): it is out of the JWKS, and tokens it signed are refused.`);
    const replacement = new RegExp(`^A new PS256 key (${KID}) signs from now\\.$`).exec(revoked.out[1]!);
    assert.ok(replacement, revoked.out[1]);

    const listed = rows(await run(['keys', 'list', '--config', configFile]));
    const ps256 = listed.filter((row) => row.alg === 'PS256');
    assert.deepEqual(
      ps256.map((row) => [row.kid, row.state]),
      [
        [current.kid, 'revoked'],
        [replacement[1], 'current'],
      ],
    );
    assert.match(ps256[0]!.lifetime, new RegExp(`^revoked ${TIME}$`));

    const next = listed.find((row) => row.alg === 'ES256' && row.state === 'next')!;
    const notSigning = await run(['keys', 'revoke', `--kid=${next.kid}`, '--config', configFile]);
    assert.equal(notSigning.code, 0, notSigning.err.join('\n'));
    assert.equal(notSigning.out[0], `Revoked ES256 key ${next.kid} (it was next: published, signing from ${next.activates}): it is out of the JWKS, and tokens it signed are refused.`);
    assert.match(notSigning.out[1]!, new RegExp(`^ES256 tokens are still signed by ${KID}\\.$`));
  });

  it('ci flake 2026-12: a key that changed state between `keys list` and `keys revoke` is revoked for what it is at that moment, and the answer says so', async () => {
    const rotated = await run(['keys', 'rotate', '--alg', 'RS256', '--config', configFile]);
    assert.equal(rotated.code, 0, rotated.err.join('\n'));
    const listed = rows(await run(['keys', 'list', '--config', configFile])).filter((row) => row.alg === 'RS256');
    const next = listed.find((row) => row.state === 'next')!;
    const current = listed.find((row) => row.state === 'current')!;
    // The machine stalls past the new key's activation: it is signing now,
    // and the key the operator saw as current has retired.
    clock.advance(Date.parse(next.activates) - clock.now() + 1000);
    const revokedNext = await run(['keys', 'revoke', `--kid=${next.kid}`, '--config', configFile]);
    assert.equal(revokedNext.code, 0, revokedNext.err.join('\n'));
    assert.equal(revokedNext.out[0], `Revoked RS256 key ${next.kid} (it was current: signing since ${next.activates}): it is out of the JWKS, and tokens it signed are refused.`);
    const replacement = new RegExp(`^A new RS256 key (${KID}) signs from now\\.$`).exec(revokedNext.out[1]!);
    assert.ok(replacement, revokedNext.out[1]);
    const revokedOld = await run(['keys', 'revoke', `--kid=${current.kid}`, '--config', configFile]);
    assert.equal(revokedOld.code, 0, revokedOld.err.join('\n'));
    assert.equal(revokedOld.out[0], `Revoked RS256 key ${current.kid} (it was retired: it stopped signing at ${next.activates}): it is out of the JWKS, and tokens it signed are refused.`);
    assert.equal(revokedOld.out[1], `RS256 tokens are still signed by ${replacement[1]!}.`);
  });

  it('records each change in the audit log', async () => {
    const stores = await openStores(loadConfig({ env: {}, file: configFile }));
    try {
      const size = await stores.durable.auditLog.size();
      const entries: AuditEntry[] = (await stores.durable.auditLog.entries(0, size)).map((row) => decodeEntry(row.entry));
      const keyEvents = entries.filter((entry) => entry.type.startsWith('key.')).map((entry) => [entry.type, entry.service, entry.detail?.['alg'], entry.detail?.['reason'] ?? null]);
      assert.deepEqual(keyEvents, [
        ['key.created', 'system', 'EdDSA', 'initial'],
        ['key.created', 'system', 'ES256', 'initial'],
        ['key.created', 'system', 'RS256', 'initial'],
        ['key.created', 'system', 'PS256', 'initial'],
        ['key.created', 'admin', 'ES256', 'manual'],
        ['key.created', 'admin', 'EdDSA', 'manual'],
        ['key.revoked', 'admin', 'PS256', null],
        ['key.created', 'admin', 'PS256', 'replaces_revoked'],
        ['key.revoked', 'admin', 'ES256', null],
        ['key.created', 'admin', 'RS256', 'manual'],
        ['key.revoked', 'admin', 'RS256', null],
        ['key.created', 'admin', 'RS256', 'replaces_revoked'],
        ['key.revoked', 'admin', 'RS256', null],
      ]);
    } finally {
      await stores.close();
    }
  });

  it('has --help for each command', async () => {
    for (const command of ['list', 'rotate', 'revoke']) {
      const help = await run(['keys', command, '--help']);
      assert.equal(help.code, 0);
      assert.match(help.out.join('\n'), new RegExp(`^Usage: portcullis keys ${command}`));
    }
    const group = await run(['keys', '--help']);
    assert.equal(group.code, 0);
    assert.match(group.out.join('\n'), /list[\s\S]*rotate[\s\S]*revoke/);
  });

  it('refuses, in one line and a non-zero exit: an unknown kid, a revoked kid, an unknown algorithm, a missing kid, an unknown command', async () => {
    const revoked = rows(await run(['keys', 'list', '--config', configFile])).find((row) => row.state === 'revoked')!;
    const cases: [string[], RegExp][] = [
      [['keys', 'revoke', 'no-such-kid'], /^portcullis: no signing key no-such-kid \(unknown, or removed from the keyring after its last token expired; see portcullis keys list\)$/],
      [['keys', 'revoke', `--kid=${revoked.kid}`], /^portcullis: signing key \S+ is already revoked$/],
      // A kid is base64url: 1 in 64 starts with "-" (the CI flake: such a kid, passed as an argument, read as an option).
      [['keys', 'revoke', `-${'A'.repeat(42)}`], /^error: unknown option '-A{42}': a key id that starts with "-" goes as --kid=-A{42}$/],
      [['keys', 'revoke', `--kid=-${'A'.repeat(42)}`], /^portcullis: no signing key -A{42} \(unknown/],
      [['keys', 'rotate', '--alg', 'HS256'], /^error: option '--alg <algorithm>' argument 'HS256' is invalid\. Allowed choices are EdDSA, ES256, RS256, PS256\.$/],
      [['keys', 'revoke'], /^error: missing required argument 'kid'$/],
      [['keys', 'rotat'], /^error: unknown command 'rotat'.*rotate/],
    ];
    for (const [args, message] of cases) {
      const result = await run([...args, '--config', configFile]);
      assert.notEqual(result.code, 0, args.join(' '));
      assert.equal(result.err.length, 1, `${args.join(' ')}: ${result.err.join(' | ')}`);
      assert.match(result.err[0]!, message);
    }
  });
});
