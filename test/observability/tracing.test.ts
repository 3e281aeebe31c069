/**
 * OpenTelemetry traces (issue 16), through the SDK's in-memory exporter: one
 * sign-in yields one connected trace (the request's server span, and under
 * it every store call the sign-in made, each span's parent in the trace);
 * the request's log line carries the trace's id; a trusted proxy's
 * `traceparent` is continued; and with no exporter and no OTEL_* variable,
 * traces are off.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { SpanKind } from '@opentelemetry/api';
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace';
import { join } from 'node:path';
import { createTracing, tracingRequested } from '../../src/observability/index.ts';
import { PluginRegistry } from '../../src/plugins/index.ts';
import { registerClient } from '../support/oauth-flow.ts';
import { pluginSigner } from '../support/plugin-packages.ts';
import { clientPost } from '../support/privacy-deployment.ts';
import { BrowserlessClient, csrfField } from '../support/browserless-client.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

const PASSWORD = 'correct horse battery staple';

describe('OpenTelemetry traces', () => {
  const exporter = new InMemorySpanExporter();
  const signer = pluginSigner('portcullis-tracing-');
  let server: TestServer;

  before(async () => {
    server = await startTestServer({ traceExporter: exporter, env: { PORTCULLIS_TRUST_PROXY: '127.0.0.1' }, overrides: { plugins: { trustedKeys: [signer.trustedKey] } } });
  });
  after(async () => {
    await server?.close();
  });

  const serverSpan = (name: string): ReadableSpan => {
    const found = exporter.getFinishedSpans().filter((span) => span.kind === SpanKind.SERVER && span.name === name);
    assert.equal(found.length, 1, `one ${name} span: ${exporter.getFinishedSpans().map((span) => span.name).join(', ')}`);
    return found[0]!;
  };

  it('one sign-in yields one connected trace: the request, and the store calls it made beneath it', async () => {
    const email = `traced-${randomBytes(4).toString('hex')}@example.com`;
    await server.running.identity.accounts.createUser(email, PASSWORD, { actor: 'test' });
    const browser = new BrowserlessClient(server.url, { ip: '198.51.100.7' });
    const form = await browser.get('/login');
    exporter.reset();
    const answer = await browser.post('/login', { _csrf: csrfField(form.body)!, email, password: PASSWORD });
    assert.equal(answer.status, 303);

    const login = serverSpan('POST /login');
    const { traceId } = login.spanContext();
    assert.equal(login.parentSpanContext, undefined, 'a new trace: no parent');
    assert.equal(login.attributes['http.response.status_code'], 303);
    assert.equal(login.attributes['http.route'], '/login');
    const inTrace = exporter.getFinishedSpans().filter((span) => span.spanContext().traceId === traceId);
    const storeCalls = inTrace.filter((span) => span.kind === SpanKind.CLIENT);
    assert.ok(storeCalls.length >= 3, `the sign-in's store calls are in its trace: ${inTrace.map((span) => span.name).join(', ')}`);
    assert.ok(storeCalls.some((span) => span.name.startsWith('sqlite records.')), 'a durable store call');
    const ids = new Set(inTrace.map((span) => span.spanContext().spanId));
    for (const span of inTrace) {
      if (span === login) continue;
      assert.ok(span.parentSpanContext !== undefined && ids.has(span.parentSpanContext.spanId), `${span.name}: its parent is in the trace`);
    }
    // The request's log line names the same trace.
    const line = server.logs.records().find((record) => record['msg'] === 'request completed' && record['route'] === '/login' && record['method'] === 'POST');
    assert.equal(line?.['traceId'], traceId);
  });

  it('an outbox delivery is a trace of its own, with the store calls it makes beneath it', async () => {
    exporter.reset();
    const user = await server.running.identity.accounts.createUser(`queued-${randomBytes(4).toString('hex')}@example.com`, null, { actor: 'test' });
    // Disabling the account queues its security signal in the outbox; the worker delivers it to the signal log.
    await server.running.identity.accounts.setDisabled(user.id, true, { actor: 'admin' });
    server.running.runtime.get('outbox')!.kick();
    const deadline = Date.now() + 10_000;
    let delivery: ReadableSpan | undefined;
    while ((delivery = exporter.getFinishedSpans().find((span) => span.kind === SpanKind.CONSUMER && span.name === 'outbox deliver signals.event')) === undefined) {
      assert.ok(Date.now() < deadline, `an outbox delivery span: ${exporter.getFinishedSpans().map((span) => span.name).join(', ')}`);
      await new Promise((resolve) => setImmediate(resolve));
    }
    assert.equal(delivery.parentSpanContext, undefined, 'a root: the request that queued it has answered');
    assert.equal(delivery.attributes['messaging.destination.name'], 'signals.event');
    const children = exporter.getFinishedSpans().filter((span) => span.parentSpanContext?.spanId === delivery.spanContext().spanId);
    assert.ok(children.some((span) => span.kind === SpanKind.CLIENT), `its store calls: ${children.map((span) => span.name).join(', ')}`);
  });

  it('a plugin call is a client span beneath the request that made it', async () => {
    const host = server.running.runtime.get('plugins')!;
    const registry = new PluginRegistry({ records: server.running.stores.durable.records, events: server.running.events, directory: join(server.running.runtime.get('config').dataDir, 'plugins'), trustedKeys: [signer.trustedKey], clock: Date.now });
    await registry.install(signer.signedPackage('traced-claims', { hooks: ['access-token.claims'], claimsNamespace: 'traced_' }, `export const hooks = { 'access-token.claims': () => ({ verdict: 'modify', claims: { traced_by: 'plugin' } }) };`), { actor: 'test' });
    await registry.setEnabled('traced-claims', true, 'test');
    await host.reconcile();
    await host.plugin('traced-claims')!.whenRunning();
    const client = await registerClient(server, { client_name: 'Traced', grant_types: ['client_credentials'], token_endpoint_auth_method: 'client_secret_basic', scope: 'openid' });
    exporter.reset();
    const issued = await clientPost(server.url, '/token', client, { grant_type: 'client_credentials' });
    assert.equal(issued.status, 200, JSON.stringify(issued.body));
    const request = serverSpan('POST /token');
    const calls = exporter.getFinishedSpans().filter((span) => span.name.startsWith('plugin traced-claims '));
    assert.equal(calls.length, 1, `one plugin call: ${exporter.getFinishedSpans().map((span) => span.name).join(', ')}`);
    const [call] = calls;
    assert.equal(call!.kind, SpanKind.CLIENT);
    assert.equal(call!.attributes['portcullis.plugin'], 'traced-claims');
    assert.equal(call!.spanContext().traceId, request.spanContext().traceId, 'in the request\'s trace');
    const ancestors = new Map(exporter.getFinishedSpans().map((span) => [span.spanContext().spanId, span]));
    let parent = call!.parentSpanContext;
    while (parent !== undefined && parent.spanId !== request.spanContext().spanId) parent = ancestors.get(parent.spanId)?.parentSpanContext;
    assert.equal(parent?.spanId, request.spanContext().spanId, 'beneath the request span');
  });

  it("continues a trusted proxy's traceparent (W3C Trace Context)", async () => {
    const parentTrace = randomBytes(16).toString('hex');
    const parentSpan = randomBytes(8).toString('hex');
    exporter.reset();
    const response = await fetch(`${server.url}/healthz`, { headers: { traceparent: `00-${parentTrace}-${parentSpan}-01` } });
    assert.equal(response.status, 200);
    const health = serverSpan('GET /healthz');
    assert.equal(health.spanContext().traceId, parentTrace);
    assert.equal(health.parentSpanContext?.spanId, parentSpan);
    assert.equal(health.parentSpanContext?.isRemote, true);
  });

  it('a malformed traceparent starts a trace of its own', async () => {
    exporter.reset();
    await fetch(`${server.url}/healthz`, { headers: { traceparent: '00-not-a-trace-01' } });
    const health = serverSpan('GET /healthz');
    assert.equal(health.parentSpanContext, undefined);
    assert.match(health.spanContext().traceId, /^[0-9a-f]{32}$/);
  });
});

describe('traces off by default', () => {
  it('are on only when an OTEL_* variable asks for them, and OTEL_SDK_DISABLED wins', () => {
    assert.equal(tracingRequested({}), false);
    assert.equal(createTracing({ env: {} }), undefined);
    assert.equal(tracingRequested({ OTEL_TRACES_EXPORTER: 'otlp' }), true);
    assert.equal(tracingRequested({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318' }), true);
    assert.equal(tracingRequested({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://127.0.0.1:4318/v1/traces' }), true);
    assert.equal(tracingRequested({ OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318' }), false);
    assert.equal(tracingRequested({ OTEL_SDK_DISABLED: 'true', OTEL_TRACES_EXPORTER: 'otlp' }), false);
  });
});
