/**
 * `portcullis/sdk/plugin` in-process: what each answer a handler gives
 * becomes on the wire, what is refused, and what each typed host call sends
 * (a fake raw host records the calls). The same code in a real sandbox:
 * test/plugins/examples.test.ts.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import ts from 'typescript';
import { HOOK_POINTS as SERVER_HOOK_POINTS } from '../../src/hooks/index.ts';
import { HOOK_POINTS, HostCallError, definePlugin, toWireAnswer, type HookContext, type HookPoint, type PluginDefinition, type RawHost, type WireHandler } from '../../src/sdk/plugin/index.ts';
import { RpcError, METHOD_NOT_FOUND } from '../../src/plugins/sandbox/json-rpc.ts';

interface Call {
  readonly method: string;
  readonly params: unknown;
}

/** A raw host that records each call and answers from `answers` (a function of the method, or an error to throw). */
function fakeHost(answers: Record<string, unknown> = {}): RawHost & { calls: Call[] } {
  const calls: Call[] = [];
  return {
    calls,
    call: async (method, params) => {
      calls.push({ method, params });
      const answer = answers[method];
      if (answer instanceof Error) throw answer;
      return typeof answer === 'function' ? (answer as (params: unknown) => unknown)(params) : (answer ?? null);
    },
  };
}

const CONTEXTS: { readonly [P in HookPoint]: unknown } = {
  'login.before': { account: 'alice@acme.example', ip: '198.51.100.7', throttle: { allowed: true } },
  'login.after': { userId: 'u1', amr: ['pwd'], secondFactorEnrolled: false, ip: '198.51.100.7' },
  'registration.before': { policy: 'open', initialAccessToken: 'unchecked', metadata: { client_name: 'x' }, ip: '198.51.100.7' },
  'consent.before': { userId: 'u1', clientId: 'c1', scopes: ['openid'], resources: [], prompt: [], consented: false },
  'token.claims': { userId: 'u1', clientId: 'c1', scopes: ['openid'], accessTokenIssued: true },
  'access-token.claims': { userId: null, clientId: 'c1', grantType: 'client_credentials', scopes: ['read'], audience: ['https://api.example'] },
  'userinfo.claims': { userId: 'u1', clientId: 'c1', scopes: ['openid'] },
};

/** Runs one point's wire handler as the sandbox runtime would. */
function run(plugin: { hooks: Partial<Record<HookPoint, WireHandler>> }, point: HookPoint, host: RawHost = fakeHost(), claims: Record<string, unknown> = {}): Promise<unknown> {
  const handler = plugin.hooks[point];
  assert.ok(handler, `${point} is served`);
  return handler({ context: CONTEXTS[point], claims }, host);
}

/** A plugin whose every point answers `answer`. */
const answering = (answer: unknown) =>
  definePlugin({ hooks: Object.fromEntries(Object.keys(HOOK_POINTS).map((point) => [point, () => answer])) });

const CLAIMS_POINTS = (Object.keys(HOOK_POINTS) as HookPoint[]).filter((point) => HOOK_POINTS[point] === 'claims');
const DECISION_POINTS = (Object.keys(HOOK_POINTS) as HookPoint[]).filter((point) => HOOK_POINTS[point] === 'decision');

describe('plugin SDK: the points', () => {
  it("names the server's hook points, each of the same kind (src/hooks/points.ts)", () => {
    assert.deepEqual(HOOK_POINTS, SERVER_HOOK_POINTS);
    assert.deepEqual(CLAIMS_POINTS, ['token.claims', 'access-token.claims', 'userinfo.claims']);
  });

  it('imports nothing, not even a type: the sandbox may read this one file of the package', () => {
    const source = readFileSync(new URL('../../src/sdk/plugin/index.ts', import.meta.url), 'utf8');
    // TypeScript's own scanner: static imports, re-exports, import() and import type alike.
    assert.deepEqual(ts.preProcessFile(source, true, true).importedFiles.map((file) => file.fileName), []);
  });
});

describe('plugin SDK: answers', () => {
  it('undefined (or a void handler) is pass, at every point', async () => {
    for (const point of Object.keys(HOOK_POINTS) as HookPoint[]) assert.deepEqual(await run(answering(undefined), point), { verdict: 'pass' });
    const voidPlugin = definePlugin({ hooks: { 'login.before': async () => {} } });
    assert.deepEqual(await run(voidPlugin, 'login.before'), { verdict: 'pass' });
  });

  it('{ deny: reason } is deny with that reason, at every point', async () => {
    for (const point of Object.keys(HOOK_POINTS) as HookPoint[]) assert.deepEqual(await run(answering({ deny: 'Not from here.' }), point), { verdict: 'deny', reason: 'Not from here.' });
  });

  it('{ claims } is modify at a claims point; null stays (it removes the claim)', async () => {
    const claims = { 'https://acme.example/team': 'red', 'https://acme.example/old': null, 'https://acme.example/n': [1, { a: true }] };
    for (const point of CLAIMS_POINTS) assert.deepEqual(await run(answering({ claims }), point), { verdict: 'modify', claims });
  });

  it('{ claims } at a decision point is refused', async () => {
    for (const point of DECISION_POINTS) await assert.rejects(run(answering({ claims: { a: 1 } }), point), /decision point: it takes no claims/);
  });

  it('refuses allow, the wire form, null, a string, extra keys and mixed answers', async () => {
    for (const answer of [{ allow: true }, { verdict: 'allow' }, { verdict: 'pass' }, null, 'deny', true, [], { deny: 'x', claims: {} }, { claims: {}, extra: 1 }, {}]) {
      await assert.rejects(run(answering(answer), 'token.claims'), TypeError, JSON.stringify(answer));
      await assert.rejects(run(answering(answer), 'login.before'), TypeError, JSON.stringify(answer));
    }
  });

  it('refuses a deny reason that is empty, longer than 200, not printable ASCII or not a string', async () => {
    for (const reason of ['', 'x'.repeat(201), 'line\nbreak', 'caf\u00e9', 42, undefined]) await assert.rejects(run(answering({ deny: reason }), 'login.before'), /1 to 200 printable ASCII/, String(reason));
    assert.deepEqual(await run(answering({ deny: 'x'.repeat(200) }), 'login.before'), { verdict: 'deny', reason: 'x'.repeat(200) });
  });

  it('refuses claims that are not an object of JSON values', async () => {
    for (const claims of [null, [], 'x', { a: undefined }, { a: () => 1 }, { a: Number.NaN }, { a: new Date(0) }, { a: 1n }]) {
      await assert.rejects(run(answering({ claims }), 'token.claims'), TypeError);
    }
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    await assert.rejects(run(answering({ claims: { a: cyclic } }), 'token.claims'), /not a JSON value/);
  });

  it('a handler that throws rejects the call (the host counts it as a failure)', async () => {
    const plugin = definePlugin({
      hooks: {
        'login.before': () => {
          throw new Error('rules unreadable');
        },
      },
    });
    await assert.rejects(run(plugin, 'login.before'), /rules unreadable/);
  });

  it('toWireAnswer alone: the same translation', () => {
    assert.deepEqual(toWireAnswer('userinfo.claims', { claims: { x_a: 1 } }), { verdict: 'modify', claims: { x_a: 1 } });
    assert.throws(() => toWireAnswer('consent.before', { allow: true }), /expected undefined \(pass\) or \{ deny: reason \}/);
  });
});

describe('plugin SDK: definePlugin', () => {
  it("returns { hooks } of (params, host) functions, one per point, the shape child.ts serves", () => {
    const plugin = definePlugin({ hooks: { 'token.claims': () => undefined, 'login.before': () => undefined } });
    assert.deepEqual(Object.keys(plugin.hooks).sort(), ['login.before', 'token.claims']);
    for (const handler of Object.values(plugin.hooks)) assert.equal(typeof handler, 'function');
    assert.ok(Object.isFrozen(plugin) && Object.isFrozen(plugin.hooks));
  });

  it('refuses an unknown point, a handler that is not a function, and no hooks', () => {
    assert.throws(() => definePlugin({ hooks: { 'token.claim': () => undefined } } as unknown as PluginDefinition), /unknown hook point "token.claim"/);
    assert.throws(() => definePlugin({ hooks: { 'login.before': 'deny' } } as unknown as PluginDefinition), /not a function/);
    assert.throws(() => definePlugin({} as PluginDefinition), /expected \{ hooks/);
  });

  it('the context: the point fields, the claims so far (claims points only, frozen), the host', async () => {
    const seen: Record<string, unknown> = {};
    const plugin = definePlugin({
      hooks: {
        'token.claims': (ctx) => {
          seen.token = { userId: ctx.userId, clientId: ctx.clientId, scopes: ctx.scopes, accessTokenIssued: ctx.accessTokenIssued, claims: ctx.claims, host: typeof ctx.host.users.read };
          assert.throws(() => {
            (ctx.claims as Record<string, unknown>).x = 1;
          }, TypeError);
        },
        'login.before': (ctx) => {
          seen.login = { account: ctx.account, ip: ctx.ip, throttle: ctx.throttle, hasClaims: 'claims' in ctx };
        },
      },
    });
    await run(plugin, 'token.claims', fakeHost(), { acme_team: 'red' });
    await run(plugin, 'login.before');
    assert.deepEqual(seen, {
      token: { userId: 'u1', clientId: 'c1', scopes: ['openid'], accessTokenIssued: true, claims: { acme_team: 'red' }, host: 'function' },
      login: { account: 'alice@acme.example', ip: '198.51.100.7', throttle: { allowed: true }, hasClaims: false },
    });
  });

  it('refuses params without a context', async () => {
    const plugin = definePlugin({ hooks: { 'login.before': () => undefined } });
    await assert.rejects(plugin.hooks['login.before']!({}, fakeHost()), /no context/);
    await assert.rejects(plugin.hooks['login.before']!('x', fakeHost()), /no context/);
  });
});

describe('plugin SDK: typed host calls', () => {
  /** Runs `body` as a login.before handler with `host`; resolves with what it returned. */
  async function withHost<T>(host: RawHost, body: (ctx: HookContext<'login.before'>) => Promise<T>): Promise<T> {
    let result!: T;
    const plugin = definePlugin({
      hooks: {
        'login.before': async (ctx) => {
          result = await body(ctx);
        },
      },
    });
    await run(plugin, 'login.before', host);
    return result;
  }

  it('host.users.read(userId) sends users.read { userId } and returns the user or null', async () => {
    const user = { id: 'u1', email: 'alice@acme.example', emailVerified: true, disabled: false };
    const host = fakeHost({ 'users.read': (params: { userId: string }) => (params.userId === 'u1' ? user : null) });
    assert.deepEqual(await withHost(host, async (ctx) => [await ctx.host.users.read('u1'), await ctx.host.users.read('u2')]), [user, null]);
    assert.deepEqual(host.calls, [
      { method: 'users.read', params: { userId: 'u1' } },
      { method: 'users.read', params: { userId: 'u2' } },
    ]);
    await assert.rejects(withHost(host, (ctx) => ctx.host.users.read('')), /non-empty string/);
    await assert.rejects(withHost(fakeHost({ 'users.read': 'not a user' }), (ctx) => ctx.host.users.read('u1')), HostCallError);
  });

  it('host.audit.record(action, detail?) sends audit.record { action, detail } and resolves with nothing', async () => {
    const host = fakeHost();
    assert.equal(await withHost(host, async (ctx) => {
      await ctx.host.audit.record('login-rule.denied', { network: '203.0.113.0/24' });
      return ctx.host.audit.record('login-rule.checked');
    }), undefined);
    assert.deepEqual(host.calls, [
      { method: 'audit.record', params: { action: 'login-rule.denied', detail: { network: '203.0.113.0/24' } } },
      { method: 'audit.record', params: { action: 'login-rule.checked' } },
    ]);
  });

  it('audit.record refuses a bad action or detail before calling the host', async () => {
    const host = fakeHost();
    for (const action of ['Login.denied', '1abc', 'a'.repeat(65), 'with space', '']) await assert.rejects(withHost(host, (ctx) => ctx.host.audit.record(action)), /the action must match/, action);
    await assert.rejects(withHost(host, (ctx) => ctx.host.audit.record('a.b', { big: 'x'.repeat(4096) })), /more than 4096 bytes/);
    await assert.rejects(withHost(host, (ctx) => ctx.host.audit.record('a.b', [] as never)), /object of JSON values/);
    assert.deepEqual(host.calls, []);
  });

  it('host.fetch(url, init) sends http.fetch { url, method, headers, body } and returns status, ok, headers, body, url, json()', async () => {
    const host = fakeHost({ 'http.fetch': { status: 200, headers: { 'content-type': 'application/json' }, body: '{"allow":false}', url: 'https://hooks.acme.example/x' } });
    const response = await withHost(host, (ctx) => ctx.host.fetch('https://hooks.acme.example/x', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"a":1}' }));
    assert.deepEqual(host.calls, [{ method: 'http.fetch', params: { url: 'https://hooks.acme.example/x', method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"a":1}' } }]);
    assert.deepEqual({ status: response.status, ok: response.ok, headers: response.headers, body: response.body, url: response.url, json: response.json() }, {
      status: 200,
      ok: true,
      headers: { 'content-type': 'application/json' },
      body: '{"allow":false}',
      url: 'https://hooks.acme.example/x',
      json: { allow: false },
    });
    // A GET: only the url is sent.
    const get = fakeHost({ 'http.fetch': { status: 503, headers: {}, body: 'down', url: 'https://hooks.acme.example/y' } });
    const down = await withHost(get, (ctx) => ctx.host.fetch('https://hooks.acme.example/y'));
    assert.deepEqual(get.calls, [{ method: 'http.fetch', params: { url: 'https://hooks.acme.example/y' } }]);
    assert.equal(down.ok, false);
    assert.throws(() => down.json(), SyntaxError);
    await assert.rejects(withHost(fakeHost({ 'http.fetch': { status: 200 } }), (ctx) => ctx.host.fetch('https://hooks.acme.example/')), HostCallError);
    await assert.rejects(withHost(get, (ctx) => ctx.host.fetch('https://hooks.acme.example/', { body: { a: 1 } as never })), /the body must be a string/);
  });

  it("a host call's error becomes a HostCallError naming the method and keeping the JSON-RPC code", async () => {
    const host = fakeHost({ 'http.fetch': new RpcError(METHOD_NOT_FOUND, 'Method not found'), 'users.read': new Error('origin not allowed') });
    await assert.rejects(
      withHost(host, (ctx) => ctx.host.fetch('https://elsewhere.example/')),
      (error: unknown) => error instanceof HostCallError && error.method === 'http.fetch' && error.code === METHOD_NOT_FOUND && error.message === 'http.fetch: Method not found',
    );
    await assert.rejects(withHost(host, (ctx) => ctx.host.users.read('u1')), (error: unknown) => error instanceof HostCallError && error.code === undefined && /origin not allowed/.test(error.message));
  });
});

describe('plugin SDK: types (checked by tsc --noEmit)', () => {
  it('each handler gets its point\'s context; claims only at claims points; the answers each point takes', () => {
    const plugin = definePlugin({
      hooks: {
        'token.claims': async (ctx) => {
          const userId: string = ctx.userId;
          const issued: boolean = ctx.accessTokenIssued;
          const user = await ctx.host.users.read(userId);
          return user?.emailVerified === true && issued ? { claims: { acme_email: user.email, acme_gone: null, ...ctx.claims } } : undefined;
        },
        'access-token.claims': (ctx) => {
          // @ts-expect-error userId may be null (client_credentials)
          const userId: string = ctx.userId;
          return ctx.audience.includes('https://api.example') ? { deny: `no ${userId}` } : undefined;
        },
        'login.before': async (ctx) => {
          const response = await ctx.host.fetch('https://hooks.example/', { method: 'POST', body: JSON.stringify({ ip: ctx.ip }) });
          await ctx.host.audit.record('acme.checked', { status: response.status, allowed: ctx.throttle.allowed });
          // @ts-expect-error a decision point has no claims
          void ctx.claims;
          if (!response.ok) return { deny: 'Refused.' };
        },
        // @ts-expect-error a decision point takes no claims answer
        'consent.before': () => ({ claims: { acme_a: 1 } }),
        // @ts-expect-error nobody answers allow
        'login.after': () => ({ allow: true }),
      },
    });
    assert.ok(plugin.hooks['token.claims']);
    // @ts-expect-error an unknown point
    assert.throws(() => definePlugin({ hooks: { 'token.claim': () => undefined } }));
  });
});
