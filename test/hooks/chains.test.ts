/**
 * Loading and running chains: the order comes from the file only; an
 * undeclared fallthrough is refused at load and a `pass` the file does not
 * allow is a deny at run time; decision chains end in deny, claims chains
 * in no change; a modify outside the namespace, a throw and a missed
 * deadline all fail closed, and every fault is reported.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { HookChainError, HookChains, defineHook, type AnyHookHandler, type HookAnswer, type HookFault, type HookVerdict, type LoginBeforeContext } from '../../src/hooks/index.ts';

const LOGIN: LoginBeforeContext = { account: 'a@example.com', ip: '192.0.2.1', throttle: { allowed: true } };
const USERINFO = { userId: 'u1', clientId: 'c1', scopes: ['openid'], claimValues: {} };

/** A login.before handler that notes that it ran, then answers. */
function decider(name: string, answers: readonly HookVerdict[], answer: () => HookAnswer | Promise<HookAnswer>, ran?: string[]): AnyHookHandler {
  return defineHook({ point: 'login.before', name, answers, run: () => (ran?.push(name), answer()) });
}

function claimer(name: string, answers: readonly HookVerdict[], answer: () => HookAnswer | Promise<HookAnswer>): AnyHookHandler {
  return defineHook({ point: 'userinfo.claims', name, answers, run: () => answer() });
}

const chainText = (...lines: string[]) => ['portcullis-hooks 1', ...lines].join('\n');

function loadRefused(options: { handlers: AnyHookHandler[]; source: string }, line: number | undefined, pattern: RegExp) {
  assert.throws(
    () => HookChains.load(options),
    (error: unknown) => error instanceof HookChainError && error.line === line && pattern.test(error.message),
  );
}

describe('loading chains', () => {
  it('the order comes from the file, whatever order the handlers are registered in', async () => {
    const source = chainText('login.before t.first pass', 'login.before t.second pass', 'login.before t.third');
    for (const order of [[0, 1, 2], [2, 1, 0], [1, 2, 0]]) {
      const ran: string[] = [];
      const handlers = [
        decider('t.first', ['pass'], () => ({ verdict: 'pass' }), ran),
        decider('t.second', ['pass'], () => ({ verdict: 'pass' }), ran),
        decider('t.third', ['allow'], () => ({ verdict: 'allow' }), ran),
      ];
      const chains = HookChains.load({ handlers: order.map((index) => handlers[index]!), source });
      assert.deepEqual(chains.order('login.before'), ['t.first', 't.second', 't.third']);
      assert.deepEqual(await chains.decide('login.before', LOGIN), { allowed: true, handler: 't.third' });
      assert.deepEqual(ran, ['t.first', 't.second', 't.third']);
    }
    // The same handlers under another file run in that file's order.
    const ran: string[] = [];
    const chains = HookChains.load({
      handlers: [decider('t.first', ['allow'], () => ({ verdict: 'allow' }), ran), decider('t.second', ['pass'], () => ({ verdict: 'pass' }), ran)],
      source: chainText('login.before t.second pass', 'login.before t.first'),
    });
    await chains.decide('login.before', LOGIN);
    assert.deepEqual(ran, ['t.second', 't.first']);
  });

  it('refuses an undeclared fallthrough when the chain loads, naming the line', () => {
    const handlers = [decider('t.maybe', ['pass', 'deny'], () => ({ verdict: 'pass' })), decider('t.last', ['allow'], () => ({ verdict: 'allow' }))];
    loadRefused({ handlers, source: chainText('', 'login.before t.maybe', 'login.before t.last') }, 3, /"t.maybe" may answer pass, but this line does not declare that it may fall through/);
    // Declared, it loads.
    HookChains.load({ handlers, source: chainText('login.before t.maybe pass', 'login.before t.last') });
  });

  it('refuses a listed handler nobody registered, and a registered handler the file does not list', () => {
    const allow = decider('t.allow', ['allow'], () => ({ verdict: 'allow' }));
    loadRefused({ handlers: [], source: chainText('login.before t.allow') }, 2, /"t.allow" is listed at login.before but no module registered it/);
    loadRefused({ handlers: [allow], source: chainText() }, undefined, /"t.allow" is registered at login.before but the chain file does not list it/);
    // Listed at another point is not listed.
    loadRefused({ handlers: [allow], source: chainText('login.after t.allow') }, 2, /listed at login.after but no module registered it/);
    loadRefused({ handlers: [allow, allow], source: chainText('login.before t.allow') }, undefined, /registered twice/);
  });

  it('refuses a line no request reaches, modify at a decision point, and modify without a namespace', () => {
    const handlers = [decider('t.ends', ['allow', 'deny'], () => ({ verdict: 'allow' })), decider('t.after', ['allow'], () => ({ verdict: 'allow' }))];
    loadRefused({ handlers, source: chainText('login.before t.ends', 'login.before t.after') }, 3, /no request reaches "t.after": "t.ends" \(line 2\) never falls through/);
    loadRefused({ handlers: [decider('t.modify', ['modify'], () => ({ verdict: 'pass' }))], source: chainText('login.before t.modify') }, undefined, /modify is for claims only/);
    loadRefused({ handlers: [claimer('t.claims', ['modify'], () => ({ verdict: 'pass' }))], source: chainText('userinfo.claims t.claims') }, 2, /declares no claims= namespace/);
  });

  it('loads only the points asked for, and refuses a handler of another point there', () => {
    const chains = HookChains.load({ handlers: [decider('t.allow', ['allow'], () => ({ verdict: 'allow' }))], source: chainText('login.before t.allow', 'userinfo.claims x.unregistered claims=a'), points: ['login.before'] });
    assert.deepEqual(chains.order('login.before'), ['t.allow']);
    assert.throws(
      () => HookChains.load({ handlers: [decider('t.allow', ['allow'], () => ({ verdict: 'allow' }))], source: chainText('login.before t.allow'), points: ['login.after'] }),
      /"t.allow" joins login.before, which this component does not load/,
    );
  });
});

describe('decision chains', () => {
  const load = (handlers: AnyHookHandler[], ...lines: string[]) => {
    const faults: HookFault[] = [];
    return { chains: HookChains.load({ handlers, source: chainText(...lines), report: (fault) => void faults.push(fault) }), faults };
  };

  it('end in deny when no handler allowed (default deny)', async () => {
    const { chains, faults } = load([decider('t.a', ['pass'], () => ({ verdict: 'pass' })), decider('t.b', ['pass'], () => ({ verdict: 'pass' }))], 'login.before t.a pass', 'login.before t.b pass');
    const decision = await chains.decide('login.before', LOGIN);
    assert.equal(decision.allowed, false);
    assert.equal(decision.allowed === false && decision.handler, null);
    assert.deepEqual(faults, []);
    // An empty chain denies too.
    assert.equal((await load([]).chains.decide('consent.before', { userId: 'u', clientId: 'c', scopes: [], resources: [], prompt: [], consented: true })).allowed, false);
  });

  it('a deny ends the chain with its reason and interaction; nothing after it runs', async () => {
    const ran: string[] = [];
    const { chains } = load(
      [decider('t.deny', ['deny', 'pass'], () => ({ verdict: 'deny', reason: 'Not today.', interaction: 'second_factor' }), ran), decider('t.allow', ['allow'], () => ({ verdict: 'allow' }), ran)],
      'login.before t.deny pass',
      'login.before t.allow',
    );
    assert.deepEqual(await chains.decide('login.before', LOGIN), { allowed: false, handler: 't.deny', reason: 'Not today.', interaction: 'second_factor' });
    assert.deepEqual(ran, ['t.deny']);
  });

  it('a pass where the file does not let the handler fall through is a deny, and is reported', async () => {
    const ran: string[] = [];
    // The handler declares only allow/deny (so its line needs no pass), then answers pass anyway.
    const { chains, faults } = load([decider('t.liar', ['allow', 'deny'], () => ({ verdict: 'pass' }), ran)], 'login.before t.liar');
    const decision = await chains.decide('login.before', LOGIN);
    assert.deepEqual(decision, { allowed: false, handler: 't.liar', reason: 'This request could not be checked. Try again later.', fault: 'undeclared_pass' });
    assert.deepEqual(faults, [{ point: 'login.before', handler: 't.liar', line: 2, kind: 'undeclared_pass', skipped: false }]);
  });

  it('an answer the handler did not declare, or a malformed one, is a deny', async () => {
    for (const answer of [{ verdict: 'allow' }, { verdict: 'deny', reason: '' }, { verdict: 'deny', reason: 'line\nbreak' }, { verdict: 'deny', reason: 'x'.repeat(201) }, { verdict: 'deny', reason: 'ok', interaction: 'dance' }, { verdict: 'maybe' }, null, 'allow']) {
      const { chains, faults } = load([decider('t.odd', ['deny'], () => answer as HookAnswer)], 'login.before t.odd');
      const decision = await chains.decide('login.before', LOGIN);
      assert.equal(decision.allowed, false, JSON.stringify(answer));
      assert.equal(decision.allowed === false && decision.fault, 'invalid_answer', JSON.stringify(answer));
      assert.equal(faults.length, 1);
    }
  });

  it('a handler that throws or rejects fails closed', async () => {
    for (const run of [() => { throw new Error('boom'); }, () => Promise.reject(new Error('boom'))]) {
      const { chains, faults } = load([decider('t.broken', ['allow'], run)], 'login.before t.broken');
      const decision = await chains.decide('login.before', LOGIN);
      assert.equal(decision.allowed === false && decision.fault, 'error');
      assert.equal(faults[0]!.kind, 'error');
    }
  });

  it('an answer that throws while it is read (a getter, a Proxy) is a malformed answer: a deny, reported, never an exception out of the chain', async () => {
    const throwing = () => ({ get verdict(): 'allow' { throw new Error('boom'); } }) as unknown as HookAnswer;
    const proxy = () => new Proxy({}, { get: () => { throw new Error('boom'); } }) as HookAnswer;
    for (const run of [throwing, proxy, async () => throwing()]) {
      const { chains, faults } = load([decider('t.tricky', ['pass', 'allow'], run), decider('t.last', ['allow'], () => ({ verdict: 'allow' }))], 'login.before t.tricky pass fail-open', 'login.before t.last');
      const decision = await chains.decide('login.before', LOGIN);
      assert.equal(decision.allowed, false);
      assert.deepEqual(faults.map((fault) => fault.kind), ['invalid_answer']);
    }
  });

  it('a handler that never answers fails closed at its deadline, and its signal aborts', async () => {
    let signal: AbortSignal | undefined;
    const never = defineHook({ point: 'login.before', name: 't.never', answers: ['allow'], run: (_context, call) => ((signal = call.signal), new Promise<HookAnswer>(() => {})) });
    const { chains, faults } = load([never], 'login.before t.never deadline=25ms');
    const decision = await chains.decide('login.before', LOGIN);
    assert.deepEqual(decision, { allowed: false, handler: 't.never', reason: 'This request could not be checked. Try again later.', fault: 'timeout' });
    assert.equal(signal?.aborted, true);
    assert.deepEqual(faults, [{ point: 'login.before', handler: 't.never', line: 2, kind: 'timeout', skipped: false }]);
  });

  it('a fail-open handler that never answers is skipped, and the next one decides', async () => {
    const never = defineHook({ point: 'login.before', name: 't.never', answers: ['pass', 'deny'], run: () => new Promise<HookAnswer>(() => {}) });
    const { chains, faults } = load([never, decider('t.allow', ['allow'], () => ({ verdict: 'allow' }))], 'login.before t.never pass fail-open deadline=25ms', 'login.before t.allow');
    assert.deepEqual(await chains.decide('login.before', LOGIN), { allowed: true, handler: 't.allow' });
    assert.deepEqual(faults, [{ point: 'login.before', handler: 't.never', line: 2, kind: 'timeout', skipped: true }]);
  });
});

describe('claims chains', () => {
  const base = Object.freeze({ email: 'a@example.com' });
  const load = (handlers: AnyHookHandler[], ...lines: string[]) => {
    const faults: HookFault[] = [];
    return { chains: HookChains.load({ handlers, source: chainText(...lines), report: (fault) => void faults.push(fault) }), faults };
  };

  it('end with the claims unchanged when no handler changes them', async () => {
    const { chains } = load([claimer('t.quiet', ['pass'], () => ({ verdict: 'pass' }))], 'userinfo.claims t.quiet pass');
    assert.deepEqual(await chains.claims('userinfo.claims', USERINFO, base), { refused: false, claims: base });
    assert.deepEqual(await load([]).chains.claims('userinfo.claims', USERINFO, base), { refused: false, claims: base });
  });

  it('apply each modify in file order, inside the namespaces; null removes a claim', async () => {
    const { chains } = load(
      [
        claimer('t.first', ['modify'], () => ({ verdict: 'modify', claims: { name: 'Ada', 'https://example.com/team': 'core' } })),
        defineHook({ point: 'userinfo.claims', name: 't.second', answers: ['modify'], run: (_context, call) => ({ verdict: 'modify', claims: { name: `${String(call.claims['name'])} L.`, email: null } }) }),
      ],
      'userinfo.claims t.first claims=name,https://example.com/*',
      'userinfo.claims t.second claims=name,email',
    );
    assert.deepEqual(await chains.claims('userinfo.claims', USERINFO, base), { refused: false, claims: { name: 'Ada L.', 'https://example.com/team': 'core' } });
    assert.deepEqual(base, { email: 'a@example.com' });
  });

  it('refuse the request for a modify outside the namespace (a fault), and report it', async () => {
    for (const claims of [{ groups: ['admin'] }, { name: 'x', sub: 'someone-else' }, { 'https://example.org/x': 1 }]) {
      const { chains, faults } = load(
        [claimer('t.first', ['modify'], () => ({ verdict: 'modify', claims: { name: 'Ada' } })), claimer('t.greedy', ['modify'], () => ({ verdict: 'modify', claims }))],
        'userinfo.claims t.first claims=name',
        'userinfo.claims t.greedy claims=name,https://example.com/*',
      );
      assert.deepEqual(await chains.claims('userinfo.claims', USERINFO, base), { refused: true, handler: 't.greedy', reason: 'This request could not be checked. Try again later.', fault: 'outside_namespace' }, JSON.stringify(claims));
      assert.deepEqual(faults, [{ point: 'userinfo.claims', handler: 't.greedy', line: 3, kind: 'outside_namespace', skipped: false }]);
    }
  });

  it('a deny refuses the request the claims are for; an allow keeps the changes and ends the chain', async () => {
    const modify = claimer('t.modify', ['modify'], () => ({ verdict: 'modify', claims: { name: 'Ada' } }));
    const deny = load([modify, claimer('t.deny', ['deny'], () => ({ verdict: 'deny', reason: 'no' }))], 'userinfo.claims t.modify claims=name', 'userinfo.claims t.deny');
    assert.deepEqual(await deny.chains.claims('userinfo.claims', USERINFO, base), { refused: true, handler: 't.deny', reason: 'no' });
    const allow = load([modify, claimer('t.allow', ['allow'], () => ({ verdict: 'allow' }))], 'userinfo.claims t.modify claims=name', 'userinfo.claims t.allow');
    assert.deepEqual(await allow.chains.claims('userinfo.claims', USERINFO, base), { refused: false, claims: { email: 'a@example.com', name: 'Ada' } });
  });

  it('claims that throw while they are read refuse the request (a malformed answer), and are reported', async () => {
    const claims = new Proxy({ name: 'Ada' }, { ownKeys: () => { throw new Error('boom'); } });
    const { chains, faults } = load([claimer('t.tricky', ['modify'], () => ({ verdict: 'modify', claims }))], 'userinfo.claims t.tricky claims=name');
    assert.equal((await chains.claims('userinfo.claims', USERINFO, base)).refused, true);
    assert.deepEqual(faults.map((fault) => fault.kind), ['invalid_answer']);
  });

  it('a handler that misses its deadline refuses the request, unless its line is fail-open (then it is skipped)', async () => {
    const { chains, faults } = load(
      [claimer('t.modify', ['modify'], () => ({ verdict: 'modify', claims: { name: 'Ada' } })), claimer('t.never', ['modify'], () => new Promise<HookAnswer>(() => {}))],
      'userinfo.claims t.modify claims=name',
      'userinfo.claims t.never deadline=20ms claims=name',
    );
    assert.deepEqual(await chains.claims('userinfo.claims', USERINFO, base), { refused: true, handler: 't.never', reason: 'This request could not be checked. Try again later.', fault: 'timeout' });
    assert.equal(faults[0]!.kind, 'timeout');
    const open = load(
      [claimer('t.modify', ['modify'], () => ({ verdict: 'modify', claims: { name: 'Ada' } })), claimer('t.never', ['modify', 'pass'], () => new Promise<HookAnswer>(() => {}))],
      'userinfo.claims t.modify claims=name',
      'userinfo.claims t.never pass fail-open deadline=20ms claims=name',
    );
    assert.deepEqual(await open.chains.claims('userinfo.claims', USERINFO, base), { refused: false, claims: { email: 'a@example.com', name: 'Ada' } });
    assert.deepEqual(open.faults.map((fault) => [fault.kind, fault.skipped]), [['timeout', true]]);
  });

  it('claims=* lets a handler set any claim but the protocol\'s', async () => {
    const wide = load([claimer('t.wide', ['modify'], () => ({ verdict: 'modify', claims: { 'https://acme.example/team': 'red', department: 'ops' } }))], 'userinfo.claims t.wide claims=*');
    assert.deepEqual(await wide.chains.claims('userinfo.claims', USERINFO, base), { refused: false, claims: { email: 'a@example.com', 'https://acme.example/team': 'red', department: 'ops' } });
    for (const reserved of ['sub', 'iss', 'aud', 'cnf', 'scope', 'client_id', 'exp']) {
      const greedy = load([claimer('t.wide', ['modify'], () => ({ verdict: 'modify', claims: { [reserved]: 'mine' } }))], 'userinfo.claims t.wide claims=*');
      assert.deepEqual(await greedy.chains.claims('userinfo.claims', USERINFO, base), { refused: true, handler: 't.wide', reason: 'This request could not be checked. Try again later.', fault: 'outside_namespace' }, reserved);
    }
  });

  it('claims=* does not cover __proto__, constructor, prototype or a name outside the claim-name characters: refused, and no prototype changes', async () => {
    // JSON.parse makes __proto__ an own key, as a plugin's answer arrives; an object literal would set the prototype instead.
    const answers = ['{"__proto__": {"sub": "admin"}}', '{"name": "Ada", "__proto__": {"sub": "admin"}}', '{"constructor": {"prototype": {"sub": "admin"}}}', '{"prototype": 1}', '{"team lead": true}', '{"": 1}'];
    for (const text of answers) {
      const claims = JSON.parse(text) as Record<string, unknown>;
      const base = { email: 'a@example.com' };
      const { chains, faults } = load([claimer('t.wide', ['modify'], () => ({ verdict: 'modify', claims }))], 'userinfo.claims t.wide claims=*');
      const outcome = await chains.claims('userinfo.claims', USERINFO, base);
      assert.deepEqual(outcome, { refused: true, handler: 't.wide', reason: 'This request could not be checked. Try again later.', fault: 'outside_namespace' }, text);
      assert.deepEqual(faults.map((fault) => fault.kind), ['outside_namespace'], text);
      assert.equal(Object.getPrototypeOf(base), Object.prototype, text);
      assert.deepEqual(base, { email: 'a@example.com' }, text);
    }
    assert.equal(({} as Record<string, unknown>)['sub'], undefined, 'Object.prototype untouched');
  });
});
