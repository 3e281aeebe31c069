/**
 * The runtime's rules (src/runtime/runtime.ts), on small services of the
 * test's own that record what happens to them: dependency order, reverse
 * stops, the undo of a failed start, a stop cut off at its timeout.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Runtime, RuntimeStopError, ServiceDefinitionError, plan, type Service, type ServiceStopError, type ServiceTable } from '../../src/runtime/index.ts';

interface Values {
  a: string;
  b: string;
  c: string;
  d: string;
}

/** A journal of starts and stops, and the stop errors the runtime reported. */
class Journal {
  readonly events: string[] = [];
  readonly stopErrors: ServiceStopError[] = [];
  readonly options = { stopTimeoutMs: 1_000, onStopError: (error: ServiceStopError) => this.stopErrors.push(error) };
}

function service<K extends keyof Values>(journal: Journal, name: K, needs: (keyof Values)[], extra: Partial<Service<Values, K>> = {}): Service<Values, K> {
  return {
    name,
    needs,
    start: (context) => {
      journal.events.push(`start ${name}`);
      return `${name}(${needs.map((need) => context.get(need)).join(',')})` as Values[K];
    },
    stop: () => {
      journal.events.push(`stop ${name}`);
    },
    ...extra,
  };
}

/** a <- b <- c, and d (alone). */
function table(journal: Journal, overrides: Partial<{ [K in keyof Values]: Partial<Service<Values, K>> }> = {}): ServiceTable<Values> {
  return [
    service(journal, 'a', [], overrides.a),
    service(journal, 'b', ['a'], overrides.b),
    service(journal, 'd', [], overrides.d),
    service(journal, 'c', ['a', 'b'], overrides.c),
  ];
}

describe('runtime: order', () => {
  it('starts services in table order, each with its needs, and stops them in reverse', async () => {
    const journal = new Journal();
    const runtime = await Runtime.start(table(journal), ['c', 'd'], journal.options);
    assert.equal(runtime.get('c'), 'c(a(),b(a()))');
    await runtime.stop();
    assert.deepEqual(journal.events, ['start a', 'start b', 'start d', 'start c', 'stop c', 'stop d', 'stop b', 'stop a']);
  });

  it('starts only what is asked for and what that needs', async () => {
    const journal = new Journal();
    const runtime = await Runtime.start(table(journal), ['b'], journal.options);
    assert.equal(runtime.has('d'), false);
    assert.equal(runtime.has('c'), false);
    assert.throws(() => runtime.get('d'), ServiceDefinitionError);
    await runtime.stop();
    assert.deepEqual(journal.events, ['start a', 'start b', 'stop b', 'stop a']);
  });

  it('refuses, before starting anything, a table where a service needs one that comes after it, a name twice, or an unknown service', async () => {
    const journal = new Journal();
    const outOfOrder: ServiceTable<Values> = [service(journal, 'b', ['a']), service(journal, 'a', [])];
    await assert.rejects(Runtime.start(outOfOrder, ['b'], journal.options), { name: 'ServiceDefinitionError', message: 'service b needs a, which does not come before it' });
    const twice: ServiceTable<Values> = [service(journal, 'a', []), service(journal, 'a', [])];
    assert.throws(() => plan(twice, ['a']), { message: 'service a is in the table twice' });
    assert.throws(() => plan(table(journal), ['e' as keyof Values]), { message: 'there is no service e' });
    assert.deepEqual(journal.events, []);
  });

  it('refuses a service reading a service it did not declare, and undoes what had started', async () => {
    const journal = new Journal();
    const sneaky = table(journal, { d: { start: (context) => context.get('a') } });
    await assert.rejects(Runtime.start(sneaky, ['b', 'd'], journal.options), { name: 'ServiceDefinitionError', message: 'service d reads a without declaring it in needs' });
    assert.deepEqual(journal.events, ['start a', 'start b', 'stop b', 'stop a']);
  });
});

describe('runtime: a failed start', () => {
  it('stops what had started, in reverse, and throws the start\'s own error (the failing service is not stopped)', async () => {
    const journal = new Journal();
    const failure = new Error('c cannot start');
    const failing = table(journal, {
      c: {
        start: () => {
          journal.events.push('start c');
          throw failure;
        },
      },
    });
    await assert.rejects(Runtime.start(failing, ['c', 'd'], journal.options), (error) => error === failure);
    assert.deepEqual(journal.events, ['start a', 'start b', 'start d', 'start c', 'stop d', 'stop b', 'stop a']);
  });

  it('a stop that fails during the undo is reported; the others still stop and the start\'s error is still the one thrown', async () => {
    const journal = new Journal();
    const failure = new Error('d cannot start');
    const failing = table(journal, {
      b: {
        stop: () => {
          journal.events.push('stop b');
          throw new Error('b will not stop');
        },
      },
      d: {
        start: () => Promise.reject(failure),
      },
    });
    await assert.rejects(Runtime.start(failing, ['b', 'd'], journal.options), (error) => error === failure);
    assert.deepEqual(journal.events, ['start a', 'start b', 'stop b', 'stop a']);
    assert.deepEqual(
      journal.stopErrors.map((error) => [error.service, error.message]),
      [['b', 'b failed to stop: b will not stop']],
    );
  });
});

describe('runtime: stopping', () => {
  it('abandons a stop that hangs past its timeout, reports it, still stops the rest, and then rejects naming it', async () => {
    const journal = new Journal();
    const hangMs = 100;
    const hanging = table(journal, {
      b: {
        stopTimeoutMs: hangMs,
        stop: () => {
          journal.events.push('stop b (hangs)');
          return new Promise<void>(() => {});
        },
      },
    });
    const runtime = await Runtime.start(hanging, ['c'], journal.options);
    const before = performance.now();
    await assert.rejects(runtime.stop(), (error) => {
      assert.ok(error instanceof RuntimeStopError);
      assert.equal(error.message, 'b did not stop cleanly');
      assert.deepEqual(error.errors.map((each: ServiceStopError) => each.service), ['b']);
      return true;
    });
    const elapsed = performance.now() - before;
    assert.ok(elapsed >= hangMs - 5, `waited ${elapsed} ms for the hanging stop`);
    assert.ok(elapsed < 1_000, `and no longer than its own timeout (not the default): ${elapsed} ms`);
    assert.deepEqual(journal.events, ['start a', 'start b', 'start c', 'stop c', 'stop b (hangs)', 'stop a']);
    assert.deepEqual(journal.stopErrors.map((error) => error.message), [`b did not stop within ${hangMs} ms; abandoned`]);
  });

  it('stop is idempotent: concurrent and repeated calls stop each service once', async () => {
    const journal = new Journal();
    let release!: () => void;
    const slow = table(journal, {
      a: {
        stop: async () => {
          journal.events.push('stop a');
          await new Promise<void>((resolve) => (release = resolve));
        },
      },
    });
    const runtime = await Runtime.start(slow, ['b'], journal.options);
    const first = runtime.stop();
    const second = runtime.stop();
    assert.equal(first, second);
    await Promise.resolve();
    await new Promise((resolve) => setImmediate(resolve));
    release();
    await Promise.all([first, second, runtime.stop()]);
    assert.deepEqual(journal.events, ['start a', 'start b', 'stop b', 'stop a']);
  });
});
