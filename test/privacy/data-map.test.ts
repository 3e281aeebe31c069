/**
 * The data map is complete (issue 15): for each deployment, a real server
 * is given a person with a known email address, name and client IP address
 * through its pages and APIs, and then every table of every database it
 * writes (SQLite: every table of sqlite_master; PostgreSQL: every table of
 * the schema) and every key under its Redis prefix is searched for them. A
 * hit in a place src/privacy/data-map.ts does not name fails the test, with
 * the place and a snippet of what it holds. The seeding and the search are
 * test/support/privacy-probe.ts (the erasure tests use them too).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { truncateIp } from '../../src/audit/index.ts';
import { maskIp } from '../../src/observability/redaction.ts';
import { DATA_MAP } from '../../src/privacy/index.ts';
import { deployment, locationOf, needlesOf, newProbe, placeFor, rowHits, scanDataDir, scanPostgres, scanRedis, search, seed, unlistedHits, type Deployment, type Hit } from '../support/privacy-probe.ts';
import { startTestServer, testBackends } from '../support/server.ts';
import { testDatabaseUrl, testRedisUrl } from '../support/services.ts';


for (const backend of testBackends) {
  describe(`the data map names every place that holds personal data (${backend})`, () => {
    const probe = newProbe();
    const needles = needlesOf(probe);
    let deployed: Deployment;
    let hits: Hit[] = [];
    const searched: string[] = [];

    before(async () => {
      deployed = await deployment(backend);
      const server = await startTestServer({ fixedPort: true, env: { ...deployed.env, PORTCULLIS_TRUST_PROXY: '127.0.0.1' }, overrides: { dataDir: deployed.dataDir } });
      try {
        await seed(server, probe);
      } finally {
        // Stopped first: what is searched is what the stores keep at rest, nothing in flight.
        await server.close();
      }
      const local = scanDataDir(deployed.dataDir, needles);
      hits.push(...local.hits);
      searched.push(...local.tables.map((table) => `sqlite ${table}`));
      if (deployed.schema !== undefined) {
        const remote = await scanPostgres(testDatabaseUrl!, deployed.schema, needles);
        hits.push(...remote.hits);
        searched.push(...remote.tables.map((table) => `postgres ${table}`));
      }
      if (deployed.keyPrefix !== undefined) {
        const keys = await scanRedis(testRedisUrl!, deployed.keyPrefix, needles);
        hits.push(...keys.hits);
        searched.push(`redis keys: ${[...keys.types].map(([type, count]) => `${count} ${type}`).join(', ')}`);
      }
    });
    after(async () => {
      await deployed?.remove();
      hits = [];
    });

    const at = (store: string, container: (name: string) => boolean, label: (labels: readonly string[]) => boolean) =>
      hits.some((hit) => hit.location.store === store && container(hit.location.container) && label(hit.labels));
    const named = (name: string) => (labels: readonly string[]) => labels.includes(name);

    it('the seeding reached the stores (the search finds what was written)', (t) => {
      const summary = new Map<string, Set<string>>();
      for (const hit of hits) {
        const key = `(${hit.location.store}, ${hit.location.store === 'hot' ? (placeFor(hit.location)?.container ?? hit.location.container) : hit.location.container}) ← ${hit.source} ${hit.table}.${hit.column}`;
        summary.set(key, new Set([...(summary.get(key) ?? []), ...hit.labels]));
      }
      t.diagnostic(`searched ${searched.join(', ')}`);
      for (const [key, labels] of summary) t.diagnostic(`${key}: ${[...labels].join(', ')}`);
      const expected: [string, boolean][] = [
        ['the email in users', at('records', (c) => c === 'users', named('email'))],
        ['the email in user_emails', at('records', (c) => c === 'user_emails', named('email'))],
        ['the name in users', at('records', (c) => c === 'users', named('name'))],
        ['the previous email in the signal log', at('records', (c) => c === 'signal_log', named('previous email'))],
        ['the email in the stream\'s removed subjects', at('records', (c) => c === 'signal_streams', named('email'))],
        ['an email in the outbox', at('outbox', () => true, (labels) => labels.includes('email') || labels.includes('previous email'))],
        ['the masked IP in a session', at('hot', (c) => c.startsWith('session:'), named('IP masked'))],
        ['the truncated IP in the audit ledger', at('audit', (c) => c === 'audit_entries', named('IP truncated'))],
        ['the login_hint in a waiting authorization request', at('hot', (c) => c.startsWith('oauth:interaction:'), named('email'))],
        ['the login_hint in a pushed request', at('hot', (c) => c.startsWith('oauth:par:'), named('email'))],
      ];
      const missing = expected.filter(([, found]) => !found).map(([what]) => what);
      assert.deepEqual(missing, [], `not found: ${missing.join('; ')}`);
    });

    it('every hit is in a place the data map names', () => {
      const unlisted = unlistedHits(hits);
      assert.deepEqual(unlisted, [], `personal data in places src/privacy/data-map.ts does not list:\n  ${unlisted.join('\n  ')}`);
    });
  });
}

describe('the data map search reports what the map does not name (self-check)', () => {
  const probe = newProbe();
  const needles = needlesOf(probe);

  it('a hit in an unknown table, an unknown hot key or a file is reported with a snippet; a listed place is not', () => {
    const row = { id: 'u1', data: JSON.stringify({ email: probe.email, note: 'x'.repeat(200) }) };
    const hits = [
      ...rowHits('sqlite test.db', 'shadow_users', row, needles),
      ...rowHits('sqlite test.db', 'records', { collection: 'users', ...row }, needles),
      ...rowHits('sqlite test.db', 'records', { collection: 'user_backups', ...row }, needles),
      ...rowHits('sqlite test.db', 'hot_entries', { key: `nobody-knows:${probe.ip}`, value: '1' }, needles),
      ...rowHits('sqlite test.db', 'hot_entries', { key: 'session:abc', value: JSON.stringify({ ip: maskIp(probe.ip) }) }, needles),
    ];
    assert.equal(hits.length, 5, 'each row has a hit');
    const unlisted = unlistedHits(hits);
    assert.equal(unlisted.length, 3, unlisted.join('\n'));
    assert.match(unlisted[0]!, /^\(shadow_users, shadow_users\) ← sqlite test\.db shadow_users\.data: email in "\{"email":"map-probe-[0-9a-f]+@example\.test","note":"x+…"$/);
    assert.ok(unlisted[0]!.length < 200, 'a snippet, not the whole row');
    assert.match(unlisted[1]!, /^\(records, user_backups\) ← /);
    assert.match(unlisted[2]!, /^\(hot, nobody-knows:203\.0\.113\.77\) ← sqlite test\.db hot_entries\.key: IP in /);
    assert.ok(DATA_MAP.some((place) => place.container === 'users'));
  });

  it('finds the probe inside base64url (a stored JWT) and URL-encoded, and tells the masked IP from its truncation', () => {
    const jwtPayload = Buffer.from(JSON.stringify({ sub: 'u1', email: probe.email })).toString('base64url');
    assert.deepEqual(search(`eyJhbGciOiJFZERTQSJ9.${jwtPayload}.sig`, needles)?.labels, ['email (base64)']);
    assert.deepEqual(search(`login_hint=${encodeURIComponent(probe.email)}`, needles)?.labels, ['email (URL-encoded)']);
    assert.deepEqual(search(`{"ip":"${truncateIp(probe.ip)!}"}`, needles)?.labels, ['IP truncated']);
    assert.deepEqual(search(`{"ip":"${maskIp(probe.ip)}"}`, needles)?.labels, ['IP masked']);
    assert.equal(search('nothing personal here', needles), undefined);
    assert.deepEqual(locationOf('outbox_lease', {}), { store: 'outbox_lease', container: 'outbox_lease' });
  });
});
