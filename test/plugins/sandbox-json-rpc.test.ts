import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  INTERNAL_ERROR,
  INVALID_REQUEST,
  JsonRpcPeer,
  METHOD_NOT_FOUND,
  PARSE_ERROR,
  RpcClosedError,
  RpcDeadlineError,
  RpcError,
  type ProtocolViolation,
  type RpcMethod,
} from '../../src/plugins/sandbox/json-rpc.ts';

interface Sent {
  readonly jsonrpc: string;
  readonly id: unknown;
  readonly result?: unknown;
  readonly error: { readonly code: number; readonly message: string };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

/** A peer under test and a raw, scriptable other side that records what the peer sent. */
function rawPeer(methods: Record<string, RpcMethod> = {}, options: { exposeErrors?: boolean } = {}) {
  const sent: Sent[] = [];
  const violations: ProtocolViolation[] = [];
  const peer = new JsonRpcPeer({
    channel: { send: (text) => sent.push(JSON.parse(text)) },
    methods,
    defaultTimeoutMs: 1000,
    onViolation: (violation) => violations.push(violation),
    ...options,
  });
  const deliver = (message: unknown) => peer.receive(typeof message === 'string' ? message : JSON.stringify(message));
  return { peer, sent, violations, deliver };
}

describe('JSON-RPC 2.0 peer: calls and answers', () => {
  it('two peers call each other both ways over one channel', async () => {
    const channel = (to: () => JsonRpcPeer) => ({ send: (text: string) => setImmediate(() => to().receive(text)) });
    const a: JsonRpcPeer = new JsonRpcPeer({ channel: channel(() => b), methods: { 'host.echo': (params) => ({ echoed: params }) }, defaultTimeoutMs: 1000 });
    const b: JsonRpcPeer = new JsonRpcPeer({
      channel: channel(() => a),
      methods: { 'hook.double': async (params) => ({ twice: (params as { n: number }).n * 2, host: await b.call('host.echo', ['x']) }) },
      defaultTimeoutMs: 1000,
    });
    assert.deepEqual(await a.call('hook.double', { n: 21 }), { twice: 42, host: { echoed: ['x'] } });
  });

  it('allocates its own increasing ids and matches answers by id, in any order', async () => {
    const { peer, sent, deliver } = rawPeer();
    const first = peer.call('m', {});
    const second = peer.call('m', {});
    assert.deepEqual(sent.map((message) => message.id), [1, 2]);
    deliver({ jsonrpc: '2.0', id: 2, result: 'two' });
    deliver({ jsonrpc: '2.0', id: 1, result: 'one' });
    assert.deepEqual(await Promise.all([first, second]), ['one', 'two']);
  });

  it('an error answer rejects the call with its code and message', async () => {
    const { peer, deliver } = rawPeer();
    const call = peer.call('m');
    deliver({ jsonrpc: '2.0', id: 1, error: { code: -32000, message: 'nope', data: { x: 1 } } });
    await assert.rejects(call, (error: unknown) => error instanceof RpcError && error.code === -32000 && error.message === 'nope');
  });

  it('a method that throws answers -32603 without its message on the host, -32000 with it when errors are exposed; RpcError keeps its code', async () => {
    const methods = { boom: () => { throw new Error('secret detail'); }, picky: () => { throw new RpcError(-32602, 'Invalid params'); } };
    const host = rawPeer(methods);
    host.deliver({ jsonrpc: '2.0', id: 'a', method: 'boom' });
    host.deliver({ jsonrpc: '2.0', id: 'b', method: 'picky', params: {} });
    await tick();
    assert.deepEqual(host.sent, [
      { jsonrpc: '2.0', id: 'a', error: { code: INTERNAL_ERROR, message: 'Internal error' } },
      { jsonrpc: '2.0', id: 'b', error: { code: -32602, message: 'Invalid params' } },
    ]);
    const child = rawPeer(methods, { exposeErrors: true });
    child.deliver({ jsonrpc: '2.0', id: 1, method: 'boom' });
    await tick();
    assert.deepEqual(child.sent[0]!.error, { code: -32000, message: 'secret detail' });
  });

  it('a call whose answer would not fit the channel rejects at once', async () => {
    const peer = new JsonRpcPeer({ channel: { send: () => { throw new Error('too large'); } }, methods: {}, defaultTimeoutMs: 1000 });
    await assert.rejects(peer.call('m', { big: true }), /too large/);
    assert.equal(peer.pendingCalls, 0);
  });
});

describe('JSON-RPC 2.0 peer: refusals, each reported as a protocol violation', () => {
  it('parse error: -32700 with a null id', () => {
    const { sent, violations, deliver } = rawPeer();
    deliver('{not json');
    assert.deepEqual(sent, [{ jsonrpc: '2.0', id: null, error: { code: PARSE_ERROR, message: 'Parse error' } }]);
    assert.deepEqual(violations.map((v) => v.kind), ['parse-error']);
  });

  it('a batch is refused whole (-32600), its requests are not run', async () => {
    let ran = 0;
    const { sent, violations, deliver } = rawPeer({ m: () => ran++ });
    deliver([{ jsonrpc: '2.0', id: 1, method: 'm' }, { jsonrpc: '2.0', id: 2, method: 'm' }]);
    await tick();
    assert.equal(ran, 0);
    assert.deepEqual(sent, [{ jsonrpc: '2.0', id: null, error: { code: INVALID_REQUEST, message: 'Batches are not accepted' } }]);
    assert.deepEqual(violations.map((v) => v.kind), ['batch']);
  });

  for (const [name, message] of [
    ['a wrong jsonrpc version', { jsonrpc: '1.0', id: 1, method: 'm' }],
    ['a non-string method', { jsonrpc: '2.0', id: 1, method: 7 }],
    ['scalar params', { jsonrpc: '2.0', id: 1, method: 'm', params: 3 }],
    ['an object id', { jsonrpc: '2.0', id: { x: 1 }, method: 'm' }],
    ['neither request nor response', { jsonrpc: '2.0', id: 1 }],
    ['a scalar message', 42],
  ] as const) {
    it(`invalid request (${name}): -32600, not run`, async () => {
      let ran = 0;
      const { sent, violations, deliver } = rawPeer({ m: () => ran++ });
      deliver(message);
      await tick();
      assert.equal(ran, 0);
      assert.equal(sent.length, 1);
      assert.equal(sent[0]!.error.code, INVALID_REQUEST);
      assert.deepEqual(violations.map((v) => v.kind), ['invalid-request']);
    });
  }

  it('a method not in the table is -32601, with the caller\'s id, even one on Object.prototype', async () => {
    const { sent, violations, deliver } = rawPeer({ 'hook.ok': () => 1 });
    deliver({ jsonrpc: '2.0', id: 5, method: 'users.delete', params: {} });
    deliver({ jsonrpc: '2.0', id: 6, method: 'constructor' });
    await tick();
    assert.deepEqual(sent, [
      { jsonrpc: '2.0', id: 5, error: { code: METHOD_NOT_FOUND, message: 'Method not found' } },
      { jsonrpc: '2.0', id: 6, error: { code: METHOD_NOT_FOUND, message: 'Method not found' } },
    ]);
    assert.deepEqual(violations.map((v) => [v.kind, v.method]), [['method-not-found', 'users.delete'], ['method-not-found', 'constructor']]);
  });

  it('a request reusing an in-flight id is refused (answered with a null id) and the first is answered once', async () => {
    let release!: () => void;
    let ran = 0;
    const { sent, violations, deliver } = rawPeer({ slow: () => { ran++; return new Promise<string>((resolve) => (release = () => resolve('done'))); } });
    deliver({ jsonrpc: '2.0', id: 9, method: 'slow' });
    await tick();
    deliver({ jsonrpc: '2.0', id: 9, method: 'slow' });
    await tick();
    assert.equal(ran, 1);
    assert.deepEqual(sent, [{ jsonrpc: '2.0', id: null, error: { code: INVALID_REQUEST, message: 'Duplicate request id' } }]);
    assert.deepEqual(violations.map((v) => [v.kind, v.id]), [['duplicate-request-id', 9]]);
    release();
    await tick();
    assert.deepEqual(sent[1], { jsonrpc: '2.0', id: 9, result: 'done' });
    // Once answered, the id may be used again.
    deliver({ jsonrpc: '2.0', id: 9, method: 'slow' });
    await tick();
    assert.equal(ran, 2);
  });

  it('requests past the in-flight cap are answered -32000 at once and reported; the slots free when answers go out', async () => {
    const releases: (() => void)[] = [];
    const sent: Sent[] = [];
    const violations: ProtocolViolation[] = [];
    const peer = new JsonRpcPeer({
      channel: { send: (text) => sent.push(JSON.parse(text)) },
      methods: { slow: () => new Promise<string>((resolve) => releases.push(() => resolve('ok'))) },
      defaultTimeoutMs: 1000,
      maxIncoming: 2,
      onViolation: (violation) => violations.push(violation),
    });
    for (const id of [1, 2, 3]) peer.receive(JSON.stringify({ jsonrpc: '2.0', id, method: 'slow' }));
    await tick();
    assert.equal(releases.length, 2);
    assert.deepEqual(sent, [{ jsonrpc: '2.0', id: 3, error: { code: -32000, message: 'Too many requests in flight' } }]);
    assert.deepEqual(violations.map((v) => [v.kind, v.id]), [['too-many-requests', 3]]);
    releases[0]!();
    await tick();
    peer.receive(JSON.stringify({ jsonrpc: '2.0', id: 4, method: 'slow' }));
    await tick();
    assert.equal(releases.length, 3);
  });

  it('a notification (no id) is not run and not answered', async () => {
    let ran = 0;
    const { sent, violations, deliver } = rawPeer({ m: () => ran++ });
    deliver({ jsonrpc: '2.0', method: 'm' });
    await tick();
    assert.equal(ran, 0);
    assert.deepEqual(sent, []);
    assert.deepEqual(violations.map((v) => v.kind), ['notification']);
  });

  it('a response with a forged id (never allocated, or not a number) settles nothing', async () => {
    const { peer, violations, deliver } = rawPeer();
    const call = peer.call('m');
    deliver({ jsonrpc: '2.0', id: 2, result: 'forged' });
    deliver({ jsonrpc: '2.0', id: '1', result: 'forged' });
    deliver({ jsonrpc: '2.0', id: -1, result: 'forged' });
    assert.deepEqual(violations.map((v) => v.kind), ['unknown-response-id', 'unknown-response-id', 'unknown-response-id']);
    assert.equal(peer.pendingCalls, 1);
    deliver({ jsonrpc: '2.0', id: 1, result: 'real' });
    assert.equal(await call, 'real');
  });

  it('a second response to an answered call is a duplicate and changes nothing', async () => {
    const { peer, violations, deliver } = rawPeer();
    const call = peer.call('m');
    deliver({ jsonrpc: '2.0', id: 1, result: 'first' });
    deliver({ jsonrpc: '2.0', id: 1, result: 'second' });
    assert.equal(await call, 'first');
    assert.deepEqual(violations.map((v) => [v.kind, v.id]), [['duplicate-response', 1]]);
  });

  it('a response with both result and error (or a malformed error) rejects the call and is reported', async () => {
    const { peer, violations, deliver } = rawPeer();
    const both = peer.call('m');
    const malformed = peer.call('m');
    deliver({ jsonrpc: '2.0', id: 1, result: 1, error: { code: 1, message: 'x' } });
    deliver({ jsonrpc: '2.0', id: 2, error: 'bad' });
    await assert.rejects(both, RpcError);
    await assert.rejects(malformed, RpcError);
    assert.deepEqual(violations.map((v) => v.kind), ['invalid-response', 'invalid-response']);
  });
});

describe('JSON-RPC 2.0 peer: deadlines and closing', () => {
  it('a call past its deadline rejects with RpcDeadlineError; its late answer is reported as late, not settled twice', async () => {
    const { peer, violations, deliver } = rawPeer();
    const started = Date.now();
    await assert.rejects(peer.call('hook.slow', {}, { timeoutMs: 30 }), (error: unknown) => error instanceof RpcDeadlineError && error.method === 'hook.slow');
    assert.ok(Date.now() - started < 500);
    assert.equal(peer.pendingCalls, 0);
    deliver({ jsonrpc: '2.0', id: 1, result: 'too late' });
    deliver({ jsonrpc: '2.0', id: 1, result: 'too late again' });
    assert.deepEqual(violations.map((v) => v.kind), ['late-response', 'duplicate-response']);
  });

  it('close rejects every pending call and every later one with RpcClosedError, and ignores what still arrives', async () => {
    const { peer, sent, deliver } = rawPeer({ m: () => 1 });
    const pending = peer.call('m');
    peer.close('plugin exited');
    await assert.rejects(pending, RpcClosedError);
    await assert.rejects(peer.call('m'), /plugin exited/);
    deliver({ jsonrpc: '2.0', id: 3, method: 'm' });
    await tick();
    assert.equal(sent.length, 1);
  });
});
