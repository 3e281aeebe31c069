/**
 * `portcullis user …` in-process, on a real data directory: create with a
 * password from stdin, list, disable (ending sessions), enable, delete; one
 * clear line and a non-zero exit for every mistake.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { initDeployment, runCli as run } from '../support/cli.ts';
import { loadConfig } from '../../src/config/index.ts';
import { startPortcullis, type RunningPortcullis } from '../../src/server/index.ts';
import { decodeEntry } from '../../src/audit/index.ts';
import { openStores } from '../../src/store/index.ts';

describe('portcullis user', () => {
  let dir: string;
  let configFile: string;

  before(async () => {
    ({ dir, configFile } = await initDeployment('portcullis-user-cli-'));
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('creates a user with a password from stdin, and lists them', async () => {
    const created = await run(['user', 'create', '--config', configFile, '--email', 'Carol@Example.com', '--password-stdin'], 'correct horse battery staple\n');
    assert.equal(created.code, 0, created.err.join('\n'));
    assert.match(created.out[0]!, /^Created carol@example\.com \(u_[A-Za-z0-9_-]{22}\)\.$/);
    const listed = await run(['user', 'list', '--config', configFile]);
    assert.equal(listed.code, 0);
    assert.ok(listed.out.some((line) => / {2}carol@example\.com {2}active$/.test(line)));
    assert.ok(!JSON.stringify(listed).includes('horse'), 'no password in any output');
  });

  it('refuses, in one line and a non-zero exit: a taken address, a breached password, a bad address, an empty stdin, an unknown user', async () => {
    const cases: [string[], string | undefined, RegExp][] = [
      [['user', 'create', '--email', 'carol@example.com', '--password-stdin'], 'another fine passphrase\n', /already has an account/],
      [['user', 'create', '--email', 'dave@example.com', '--password-stdin'], 'password123\n', /password refused: .*breached/],
      [['user', 'create', '--email', 'not-an-address', '--password-stdin'], 'another fine passphrase\n', /not a valid email address/],
      [['user', 'create', '--email', 'erin@example.com', '--password-stdin'], '', /nothing on standard input/],
      [['user', 'disable', 'nobody@example.com'], undefined, /no user nobody@example\.com/],
      [['user', 'create', '--password-stdin'], 'x\n', /required option '--email/],
    ];
    for (const [args, stdin, message] of cases) {
      const result = await run([...args, '--config', configFile], stdin);
      assert.notEqual(result.code, 0, args.join(' '));
      assert.equal(result.err.length, 1, `${args.join(' ')}: ${result.err.join(' | ')}`);
      assert.match(result.err[0]!, message);
    }
    const listed = await run(['user', 'list', '--config', configFile]);
    assert.equal(listed.out.filter((line) => line.includes('@')).length, 1, 'nothing was half-created');
  });

  it('disable ends the sessions the user holds and stops sign-in; enable lets them back; delete removes them', async () => {
    const config = loadConfig({ env: {}, file: configFile, overrides: { port: 0 } });
    let running: RunningPortcullis | undefined = await startPortcullis(config);
    try {
      const signedIn = await running.identity.accounts.login('carol@example.com', 'correct horse battery staple', { ip: '198.51.100.7' });
      assert.equal(signedIn.outcome, 'ok');
      const sessionId = signedIn.outcome === 'ok' ? signedIn.session.id : '';
      await running.stop();
      running = undefined;

      assert.equal((await run(['user', 'disable', 'carol@example.com', '--config', configFile])).code, 0);
      running = await startPortcullis(config);
      assert.equal(await running.identity.accounts.sessions.resolve(sessionId), null, 'her session ended');
      assert.equal((await running.identity.accounts.login('carol@example.com', 'correct horse battery staple', { ip: '198.51.100.7' })).outcome, 'invalid');
      await running.stop();
      running = undefined;

      assert.equal((await run(['user', 'enable', 'carol@example.com', '--config', configFile])).code, 0);
      running = await startPortcullis(config);
      assert.equal((await running.identity.accounts.login('carol@example.com', 'correct horse battery staple', { ip: '198.51.100.8' })).outcome, 'ok');
      const size = await running.ledger.size();
      const types = (await running.stores.durable.auditLog.entries(0, size)).map((row) => decodeEntry(row.entry).type);
      for (const type of ['user.created', 'user.disabled', 'user.updated', 'auth.login.succeeded', 'auth.login.failed'] as const) assert.ok(types.includes(type), type);
      await running.stop();
      running = undefined;

      assert.equal((await run(['user', 'delete', 'carol@example.com', '--config', configFile])).code, 0);
      assert.ok((await run(['user', 'list', '--config', configFile])).out[0]!.startsWith('No users yet'));
    } finally {
      await running?.stop();
    }
  });

  it('first-hour D6: list shows who is slowed by failed sign-ins or has no password; unlock clears every address\'s lock and is audited', async () => {
    assert.equal((await run(['user', 'create', '--config', configFile, '--email', 'dave@example.com', '--password-stdin'], 'correct horse battery staple\n')).code, 0);
    assert.equal((await run(['user', 'create', '--config', configFile, '--email', 'erin@example.com', '--no-password'])).code, 0);
    const config = loadConfig({ env: {}, file: configFile, overrides: { port: 0 } });
    let running: RunningPortcullis | undefined = await startPortcullis(config);
    try {
      // Two addresses, five wrong passwords each: the first is locked for this account, and the account is slowed.
      for (const ip of ['198.51.100.20', '198.51.100.21']) {
        for (let i = 0; i < 5; i++) assert.equal((await running.identity.accounts.login('dave@example.com', `wrong guess ${i}`, { ip })).outcome, 'invalid');
      }
      assert.equal((await running.identity.accounts.login('dave@example.com', 'correct horse battery staple', { ip: '198.51.100.20' })).outcome, 'throttled');
      await running.stop();
      running = undefined;

      const listed = await run(['user', 'list', '--config', configFile]);
      assert.ok(listed.out.some((line) => / {2}dave@example\.com {2}active, slowed$/.test(line)), listed.out.join('\n'));
      assert.ok(listed.out.some((line) => / {2}erin@example\.com {2}active, no password$/.test(line)), listed.out.join('\n'));

      const unlocked = await run(['user', 'unlock', 'dave@example.com', '--config', configFile]);
      assert.equal(unlocked.code, 0, unlocked.err.join('\n'));
      assert.match(unlocked.out[0]!, /dave@example\.com is unlocked/);
      assert.ok((await run(['user', 'list', '--config', configFile])).out.some((line) => / {2}dave@example\.com {2}active$/.test(line)));
      assert.equal((await run(['user', 'unlock', 'nobody@example.com', '--config', configFile])).code, 1);

      running = await startPortcullis(config);
      assert.equal((await running.identity.accounts.login('dave@example.com', 'correct horse battery staple', { ip: '198.51.100.20' })).outcome, 'ok', 'the locked address may sign in again');
      const size = await running.ledger.size();
      const unlocks = (await running.stores.durable.auditLog.entries(0, size)).map((row) => decodeEntry(row.entry)).filter((entry) => entry.type === 'user.updated' && entry.detail?.['change'] === 'unlocked');
      assert.equal(unlocks.length, 1);
      assert.equal(unlocks[0]!.service, 'admin-cli');
    } finally {
      await running?.stop();
    }
  });
});

describe('portcullis user set-profile (first-hour review D13)', () => {
  let dir: string;
  let configFile: string;

  before(async () => {
    ({ dir, configFile } = await initDeployment('portcullis-user-profile-'));
    assert.equal((await run(['user', 'create', '--config', configFile, '--email', 'ada@example.com', '--no-password'])).code, 0);
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  const profileOf = async () => {
    const running = await startPortcullis(loadConfig({ env: {}, file: configFile, overrides: { port: 0 } }));
    try {
      return (await running.identity.accounts.users.byEmail('ada@example.com'))?.profile;
    } finally {
      await running.stop();
    }
  };

  it('sets the profile claims, names the changed fields, shows the name in user list, and audits field names without values', async () => {
    const startedAt = Math.floor(Date.now() / 1000);
    const set = await run(
      ['user', 'set-profile', 'ada@example.com', '--config', configFile, '--name', 'Ada Lovelace', '--given-name', 'Ada', '--family-name', 'Lovelace', '--locale', 'en-GB', '--zoneinfo', 'Europe/London', '--picture', 'https://images.example.net/ada.png'],
    );
    assert.equal(set.code, 0, set.err.join('\n'));
    assert.deepEqual(set.out, ['ada@example.com: profile updated (name, given_name, family_name, locale, zoneinfo, picture).']);
    const profile = await profileOf();
    assert.ok(profile !== undefined && typeof profile.updated_at === 'number' && profile.updated_at >= startedAt, 'updated_at set by the server');
    assert.deepEqual(profile, { updated_at: profile.updated_at, name: 'Ada Lovelace', given_name: 'Ada', family_name: 'Lovelace', locale: 'en-GB', zoneinfo: 'Europe/London', picture: 'https://images.example.net/ada.png' });
    const listed = await run(['user', 'list', '--config', configFile]);
    assert.ok(listed.out.some((line) => / {2}ada@example\.com {2}active, no password {2}"Ada Lovelace"$/.test(line)), listed.out.join('\n'));

    const again = await run(['user', 'set-profile', 'ada@example.com', '--config', configFile, '--name', 'Ada Lovelace', '--picture', '']);
    assert.deepEqual(again.out, ['ada@example.com: profile updated (picture).'], 'an empty value removes a claim; an unchanged one is not a change');
    assert.equal((await profileOf())?.picture, undefined);

    const running = await startPortcullis(loadConfig({ env: {}, file: configFile, overrides: { port: 0 } }));
    try {
      const rows = await running.stores.durable.auditLog.entries(0, await running.ledger.size());
      const updates = rows.map((row) => ({ entry: decodeEntry(row.entry), text: Buffer.from(row.entry).toString('utf8') })).filter(({ entry }) => entry.type === 'user.updated');
      assert.deepEqual(
        updates.map(({ entry }) => [entry.service, entry.detail]),
        [
          ['admin-cli', { change: 'profile', fields: 'name,given_name,family_name,locale,zoneinfo,picture' }],
          ['admin-cli', { change: 'profile', fields: 'picture' }],
        ],
      );
      for (const value of ['Ada', 'Lovelace', 'en-GB', 'Europe/London', 'images.example.net']) assert.ok(!updates.some(({ text }) => text.includes(value)), `no entry holds ${value}`);
    } finally {
      await running.stop();
    }
  });

  it('refuses a bad value in one line and a non-zero exit, changing nothing', async () => {
    const before = await profileOf();
    const cases: [string[], RegExp][] = [
      [['--zoneinfo', 'Mars/Olympus_Mons'], /^portcullis: zoneinfo: is not an IANA time zone name/],
      [['--picture', 'http://images.example.net/ada.png'], /^portcullis: picture: must be an https URL/],
      [['--locale', 'english please'], /^portcullis: locale: is not a BCP 47 language tag/],
      [['--name', 'Ada\u0007'], /^portcullis: name: must not contain control characters/],
      [['--name', 'New', '--zoneinfo', 'Nope/Nowhere'], /^portcullis: zoneinfo:/],
      [[], /give at least one of --name/],
    ];
    for (const [options, message] of cases) {
      const result = await run(['user', 'set-profile', 'ada@example.com', '--config', configFile, ...options]);
      assert.notEqual(result.code, 0, options.join(' '));
      assert.equal(result.err.length, 1, result.err.join(' | '));
      assert.match(result.err[0]!, message);
    }
    assert.match((await run(['user', 'set-profile', 'nobody@example.com', '--config', configFile, '--name', 'X'])).err[0]!, /no user nobody@example\.com/);
    assert.deepEqual(await profileOf(), before, 'nothing changed');
  });

  it('in development, takes an http picture on loopback only (a local image server); anywhere else it must be https', async () => {
    const local = await run(['user', 'set-profile', 'ada@example.com', '--config', configFile, '--picture', 'http://127.0.0.1:8080/ada.png']);
    assert.equal(local.code, 0, local.err.join('\n'));
    assert.equal((await profileOf())?.picture, 'http://127.0.0.1:8080/ada.png');
    const remote = await run(['user', 'set-profile', 'ada@example.com', '--config', configFile, '--picture', 'http://127.0.0.2.nip.io/ada.png']);
    assert.notEqual(remote.code, 0);
    assert.equal((await profileOf())?.picture, 'http://127.0.0.1:8080/ada.png');
  });
  it('set-email moves a user to a free address and refuses a taken or malformed one, changing nothing', async () => {
    assert.equal((await run(['user', 'create', '--config', configFile, '--email', 'mover@example.com', '--no-password'])).code, 0);
    assert.equal((await run(['user', 'create', '--config', configFile, '--email', 'sitter@example.com', '--no-password'])).code, 0);
    const taken = await run(['user', 'set-email', 'mover@example.com', '--config', configFile, '--email', 'sitter@example.com']);
    assert.notEqual(taken.code, 0);
    assert.equal(taken.err.length, 1);
    assert.notEqual((await run(['user', 'set-email', 'mover@example.com', '--config', configFile, '--email', 'not an address'])).code, 0);
    const moved = await run(['user', 'set-email', 'mover@example.com', '--config', configFile, '--email', 'Moved@Example.com']);
    assert.equal(moved.code, 0, moved.err.join('\n'));
    assert.match(moved.out[0]!, /^mover@example\.com is now moved@example\.com \(u_/);
    const listed = (await run(['user', 'list', '--config', configFile])).out.join('\n');
    assert.match(listed, /moved@example\.com/);
    assert.match(listed, /sitter@example\.com/);
    assert.doesNotMatch(listed, /mover@example\.com/);
  });

});

describe('portcullis user disable, set-password and delete on a deployment never served', () => {
  it('make no signing key: with no session there is no application to tell, so the authorization server is not opened', async () => {
    const { dir, configFile } = await initDeployment('portcullis-user-no-keys-');
    try {
      const ledgerTypes = async () => {
        const stores = await openStores(loadConfig({ env: {}, file: configFile }));
        try {
          return (await stores.durable.auditLog.entries(0, await stores.durable.auditLog.size())).map((row) => decodeEntry(row.entry).type);
        } finally {
          await stores.close();
        }
      };
      assert.equal((await run(['user', 'create', '--config', configFile, '--email', 'frank@example.com', '--password-stdin'], 'correct horse battery staple\n')).code, 0);
      assert.equal((await run(['user', 'set-password', 'frank@example.com', '--config', configFile, '--password-stdin'], 'another fine passphrase here\n')).code, 0);
      assert.equal((await run(['user', 'disable', 'frank@example.com', '--config', configFile])).code, 0);
      const types = await ledgerTypes();
      assert.ok(types.includes('user.disabled'), types.join(' '));
      assert.deepEqual(types.filter((type) => type.startsWith('key.')), [], 'no signing key made');
      assert.equal((await run(['user', 'delete', 'frank@example.com', '--config', configFile])).code, 0);
      assert.deepEqual((await ledgerTypes()).filter((type) => type.startsWith('key.')), []);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
