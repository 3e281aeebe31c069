/**
 * The events port: the closed list, the awaited recorder (the ledger's
 * seat), reactors told once per process, and what may cross instances.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AUDIT_EVENT_TYPES } from '../../src/audit/index.ts';
import { CROSS_INSTANCE_EVENT_TYPES, DOMAIN_EVENT_TYPES, EventHub, crossesInstances, type DomainEvent } from '../../src/events/index.ts';
import { openInProcessMessageBus, type MessageBus } from '../../src/store/index.ts';

const deleted = (clientId: string): DomainEvent => ({ type: 'client.deleted', outcome: 'success', actorService: 'admin', clientId, ip: '192.0.2.7', detail: { reason: 'deleted' } });

/** A promise and the functions that settle it. */
function deferred<T = void>() {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe('the domain event list', () => {
  it('names every type once; every recorded type is an audit type, and only signals are not', () => {
    assert.equal(new Set(DOMAIN_EVENT_TYPES).size, DOMAIN_EVENT_TYPES.length);
    const audit = new Set<string>(AUDIT_EVENT_TYPES);
    assert.deepEqual(
      DOMAIN_EVENT_TYPES.filter((type) => !audit.has(type)),
      ['tokens.revoked', 'signals.appended'],
    );
    for (const type of CROSS_INSTANCE_EVENT_TYPES) assert.ok((DOMAIN_EVENT_TYPES as readonly string[]).includes(type));
  });

  it('only successful changes cross instances; failures and sign-ins stay in the process', () => {
    assert.equal(crossesInstances(deleted('c1')), true);
    assert.equal(crossesInstances({ type: 'tokens.revoked', jti: 'j1' }), true);
    assert.equal(crossesInstances({ type: 'user.updated', outcome: 'failure', actorUserId: 'u1', detail: { change: 'password' } }), false);
    assert.equal(crossesInstances({ type: 'auth.login.succeeded', outcome: 'success', actorUserId: 'u1' }), false);
  });
});

describe('EventHub', () => {
  it('emit resolves only once the recorder has made the events durable, one batch per emitAll, in order', async () => {
    const hub = new EventHub();
    const batches: DomainEvent[][] = [];
    const durable = deferred();
    hub.record(async (events) => {
      batches.push([...events]);
      await durable.promise;
    });
    let resolved = false;
    const emitted = hub.emitAll([deleted('c1'), { type: 'tokens.revoked', jti: 'j1' }, deleted('c2')]).then(() => {
      resolved = true;
    });
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(resolved, false, 'not before the recorder resolved');
    durable.resolve();
    await emitted;
    assert.deepEqual(
      batches.map((batch) => batch.map((event) => event.type)),
      [['client.deleted', 'tokens.revoked', 'client.deleted']],
    );
  });

  it('a failing recorder (the ledger down) fails the action, and the reactors are still told', async () => {
    const hub = new EventHub();
    hub.record(async () => {
      throw new Error('the audit log is unavailable');
    });
    const told: string[] = [];
    hub.on('client.deleted', (event) => void told.push(event.clientId));
    await assert.rejects(hub.emit(deleted('c1')), /the audit log is unavailable/);
    assert.deepEqual(told, ['c1']);
  });

  it('refuses a type that is not on the list, before anything is recorded', async () => {
    const hub = new EventHub();
    let recorded = 0;
    hub.record(async () => void (recorded += 1));
    await assert.rejects(hub.emit({ type: 'client.exploded', outcome: 'success' } as unknown as DomainEvent), TypeError);
    assert.equal(recorded, 0);
  });

  it('a reactor that throws does not fail the action; its error goes to onError', async () => {
    const errors: unknown[] = [];
    const hub = new EventHub({ onError: (error) => errors.push(error) });
    hub.on('client.deleted', () => {
      throw new Error('cache broke');
    });
    await hub.emit(deleted('c1'));
    assert.equal(errors.length, 1);
  });
});

describe('EventHub on a shared bus (two instances)', () => {
  /** Two hubs on one bus, as two instances on one Redis; the in-process bus delivers synchronously. */
  function pair(bus: MessageBus = openInProcessMessageBus()) {
    const errors: unknown[] = [];
    const a = new EventHub({ bus, onError: (error) => errors.push(error) });
    const b = new EventHub({ bus, onError: (error) => errors.push(error) });
    const told = { a: [] as string[], b: [] as string[] };
    a.on(['client.deleted', 'tokens.revoked', 'auth.login.succeeded'], (event) => void told.a.push(event.type));
    b.on(['client.deleted', 'tokens.revoked', 'auth.login.succeeded'], (event) => void told.b.push(event.type));
    return { bus, a, b, told, errors };
  }

  it('an event that crosses reaches the other instance once, and its own instance once (the echo is dropped)', async () => {
    const { a, told, errors } = pair();
    await a.emit(deleted('c1'));
    assert.deepEqual(told, { a: ['client.deleted'], b: ['client.deleted'] });
    assert.deepEqual(errors, []);
  });

  it('an event that does not cross stays with its instance', async () => {
    const { a, told } = pair();
    await a.emit({ type: 'auth.login.succeeded', outcome: 'success', actorUserId: 'u1' });
    assert.deepEqual(told, { a: ['auth.login.succeeded'], b: [] });
  });

  it('the other instance gets the ids, not the audit detail or the address', async () => {
    const { a, b } = pair();
    const heard: DomainEvent[] = [];
    b.on('client.deleted', (event) => void heard.push(event));
    await a.emit(deleted('c1'));
    assert.deepEqual(heard, [{ type: 'client.deleted', outcome: 'success', actorService: 'admin', clientId: 'c1' }]);
  });

  it('a message delivered twice (same id) is applied once', async () => {
    const bus = openInProcessMessageBus();
    const { b, told } = pair(bus);
    const message = JSON.stringify({ v: 1, id: 'message-1', origin: 'another-process', events: [{ type: 'tokens.revoked', jti: 'j1' }] });
    await bus.publish(message);
    await bus.publish(message);
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(told.b, ['tokens.revoked']);
    void b;
  });

  it('a message naming an event that does not cross, or not in the format, is refused and reported', async () => {
    const bus = openInProcessMessageBus();
    const { told, errors } = pair(bus);
    await bus.publish(JSON.stringify({ v: 1, id: 'm2', origin: 'elsewhere', events: [{ type: 'auth.login.succeeded', outcome: 'success', actorUserId: 'u1' }] }));
    await bus.publish('not json');
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(told, { a: [], b: [] });
    assert.equal(errors.length, 4, 'each hub reports each bad message');
  });

  it('an in-process bus never claims that every instance is heard (the CLI writes from another process)', () => {
    const { a } = pair();
    assert.equal(a.deploymentWide, false);
    assert.equal(new EventHub().deploymentWide, false);
  });
});
