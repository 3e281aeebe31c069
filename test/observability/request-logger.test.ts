import { it } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { createLogger } from '../../src/observability/logger.ts';
import { withLazyChildren } from '../../src/observability/request-logger.ts';

function capture() {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { lines, destination };
}

it('a lazy request logger writes what a real child would, bindings and redaction included', () => {
  const { lines, destination } = capture();
  const logger = createLogger({ level: 'info', personalData: 'redact', destination });
  const child = withLazyChildren(logger).child({ reqId: 'r-1' }, {});
  child.info({ route: '/x', password: 'hunter2' }, 'hello');
  child.debug('not written at info');
  logger.child({ reqId: 'r-2' }).info({ route: '/x', password: 'hunter2' }, 'hello');
  assert.equal(lines.length, 2);
  const [lazy, real] = lines.map(({ time: _time, reqId, ...rest }) => ({ reqId, rest }));
  assert.equal(lazy!.reqId, 'r-1');
  assert.deepEqual(lazy!.rest, real!.rest);
  assert.ok(!JSON.stringify(lines).includes('hunter2'));
});

it('a child-level override and a nested child keep working', () => {
  const { lines, destination } = capture();
  const logger = createLogger({ level: 'warn', personalData: 'redact', destination });
  const child = withLazyChildren(logger).child({ reqId: 'r-3' }, { level: 'debug' });
  assert.equal(child.isLevelEnabled('debug'), true);
  child.debug('debug line');
  child.child({ step: 'inner' }).warn('inner line');
  assert.deepEqual(
    lines.map((line) => [line['msg'], line['reqId'], line['step']]),
    [
      ['debug line', 'r-3', undefined],
      ['inner line', 'r-3', 'inner'],
    ],
  );
  assert.equal(withLazyChildren(logger).child({ reqId: 'r-4' }, {}).isLevelEnabled('info'), false);
});
