/**
 * `signals.retention`: the signal log and the record of appended outbox
 * messages are pruned past it (on the server's clock), so neither grows
 * forever; what is younger stays and is still delivered.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SECURITY_EVENT_TYPES } from '../../src/sdk/index.ts';
import { ManualClock } from '../support/clock.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

describe('the signal log’s retention', () => {
  const clock = new ManualClock(Date.now());
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ clock: clock.now, overrides: { signals: { retention: '1h' } } });
  });
  after(async () => {
    await server.close();
  });

  it('drops entries older than the retention and keeps younger ones', async () => {
    const { transmitter } = server.running.signals;
    const event = (state: string) => ({ type: SECURITY_EVENT_TYPES.verification, subject: { format: 'opaque' as const, id: 's' }, members: { state } });
    await transmitter.log.append('old-source', 'old', clock.now(), [event('old-1'), event('old-2')], 's');
    clock.advance(2 * 3_600_000);
    await transmitter.log.append('new-source', 'new', clock.now(), [event('new-1')], 's');
    const removed = await server.running.signals.prune();
    assert.ok(removed >= 2, 'the two old entries (and the startup keys’ events, as old) are gone');
    const left = await transmitter.log.after(0, 100);
    assert.deepEqual(left.map((entry) => entry.members['state']), ['new-1']);
    // The young source is still remembered: its redelivery appends nothing.
    assert.equal(await transmitter.log.append('new-source', 'new', clock.now(), [event('new-1')], 's'), null);
  });
  it('sweeps the streams of clients deleted where no signals service heard it (portcullis client delete)', async () => {
    const { transmitter } = server.running.signals;
    const orphan = { clientId: 'c_deleted_elsewhere', alg: 'ES256', aud: ['c_deleted_elsewhere'], eventsRequested: [], method: 'urn:ietf:rfc:8936', status: 'enabled' as const, removedSubjects: [], cursor: 0, acked: [], attempts: 0, createdAt: clock.now() };
    assert.equal(await transmitter.streams.create('orphan-stream', orphan), true);
    await server.running.signals.prune();
    assert.equal(await transmitter.streams.get('orphan-stream'), null);
  });
});
