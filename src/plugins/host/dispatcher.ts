/**
 * The plugins behind the chains' `plugins.host` slot (src/hooks/plugin-slot.ts):
 * at each point, the running plugins that serve it, in name order.
 *
 * Per plugin: the call goes through its supervisor (breaker, deadline,
 * concurrency cap); its answer is read as untrusted data (wire.ts). A
 * failure (crash, deadline, breaker open, a malformed answer, claims
 * outside the plugin's namespace) is reported, then the plugin's
 * `onFailure` for that hook decides: `skip` goes on without it (claims
 * hooks only, by the manifest's rule), `deny` (the default) fails the
 * request closed: the dispatcher throws, the chain records the fault and
 * refuses (a sign-in is denied, a token request answered 503).
 */
import { SpanKind, SpanStatusCode, trace, type Tracer } from '@opentelemetry/api';
import { HOOK_POINTS, type HookAnswer, type HookCall, type HookContexts, type HookPoint, type PluginDispatcher } from '../../hooks/index.ts';
import type { DispatchManifest } from './held.ts';
import { PluginCallError, type CallFailure } from './supervisor.ts';
import { readAnswer, wireContext, type AnswerFault } from './wire.ts';

export type PluginFailureKind = CallFailure | AnswerFault;

export interface PluginFailureReport {
  readonly plugin: string;
  readonly point: HookPoint;
  readonly failure: PluginFailureKind;
  /** What the host did about it: went on without the plugin, or refused the request. */
  readonly action: 'skipped' | 'denied';
}

/** Thrown to the chain: a plugin failed where its manifest says deny. */
export class PluginFailedError extends Error {
  override readonly name = 'PluginFailedError';
}

const PASS: HookAnswer = Object.freeze({ verdict: 'pass' });

/** A plugin as the dispatcher calls it: a supervised process, or one held on the chains while it does not run (held.ts). */
export interface DispatchTarget {
  readonly plugin: { readonly name: string; readonly manifest: DispatchManifest };
  call(method: string, params: unknown): Promise<unknown>;
}

export class PluginHookDispatcher implements PluginDispatcher {
  readonly #byPoint = new Map<HookPoint, readonly DispatchTarget[]>();
  readonly #report: (report: PluginFailureReport) => void | Promise<void>;
  readonly #tracer: Tracer | undefined;

  /** `tracer`: OpenTelemetry, a client span per plugin call made within a traced request. */
  constructor(report: (report: PluginFailureReport) => void | Promise<void>, tracer?: Tracer) {
    this.#report = report;
    this.#tracer = tracer;
  }

  /** One call to a plugin, in a span of its own when the request is traced. */
  #call(target: DispatchTarget, method: string, params: unknown): Promise<unknown> {
    const tracer = this.#tracer;
    if (tracer === undefined || trace.getActiveSpan() === undefined) return target.call(method, params);
    return tracer.startActiveSpan(`plugin ${target.plugin.name} ${method}`, { kind: SpanKind.CLIENT, attributes: { 'rpc.system': 'jsonrpc', 'rpc.method': method, 'portcullis.plugin': target.plugin.name } }, async (span) => {
      try {
        return await target.call(method, params);
      } catch (error) {
        span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.name : 'error' });
        throw error;
      } finally {
        span.end();
      }
    });
  }

  /** The plugins that run from now on (the enabled, not quarantined ones). */
  setPlugins(plugins: readonly DispatchTarget[]): void {
    this.#byPoint.clear();
    const ordered = [...plugins].sort((a, b) => (a.plugin.name < b.plugin.name ? -1 : 1));
    for (const point of Object.keys(HOOK_POINTS) as HookPoint[]) {
      const serving = ordered.filter((entry) => entry.plugin.manifest.hooks.includes(point));
      if (serving.length > 0) this.#byPoint.set(point, serving);
    }
  }

  serves(point: HookPoint): boolean {
    return this.#byPoint.has(point);
  }

  async run<P extends HookPoint>(point: P, context: HookContexts[P], call: HookCall): Promise<HookAnswer> {
    const plugins = this.#byPoint.get(point) ?? [];
    const wire = wireContext(point, context);
    const claimsPoint = HOOK_POINTS[point] === 'claims';
    let added: Record<string, unknown> | undefined;
    for (const supervised of plugins) {
      const { manifest } = supervised.plugin;
      let failure: PluginFailureKind | undefined;
      try {
        const answer = readAnswer(point, await this.#call(supervised, `hook.${point}`, { context: wire, claims: added === undefined ? call.claims : { ...call.claims, ...added } }), manifest.claimsNamespace);
        if ('fault' in answer) failure = answer.fault;
        else if (answer.verdict === 'deny') return { verdict: 'deny', reason: answer.reason };
        else if (answer.verdict === 'modify') added = { ...added, ...answer.claims };
      } catch (error) {
        failure = error instanceof PluginCallError ? error.failure : 'error';
      }
      if (failure === undefined) continue;
      const skip = claimsPoint && manifest.onFailure[point] === 'skip';
      await this.#report({ plugin: manifest.name, point, failure, action: skip ? 'skipped' : 'denied' });
      if (!skip) throw new PluginFailedError(`the plugin ${manifest.name} failed at ${point} (${failure})`);
    }
    return added === undefined ? PASS : { verdict: 'modify', claims: added };
  }
}
