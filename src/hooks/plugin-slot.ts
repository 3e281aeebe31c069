/**
 * Where plugins join the chains. The chain file places one handler,
 * `plugins.host`, at each point plugins may serve (so the file still orders
 * everything, and review sees where plugin code runs); the plugin host
 * attaches a dispatcher to the slot once its plugins are running, and the
 * dispatcher calls the enabled plugins serving that point.
 *
 * What a plugin may answer is narrower than a built-in handler: a plugin
 * may refuse (deny) or fall through (pass), and at a claims point add
 * claims in its namespace (modify). It may never allow: an allow ends a
 * decision chain, and a plugin placed before `identity.account-active`
 * could otherwise open a session for a disabled account.
 *
 * Without a dispatcher, or when no running plugin serves the point, the
 * slot answers pass at once (synchronously: no timer, nothing awaited on a
 * hot path such as the token endpoint).
 */
import { HOOK_POINTS, type AnyHookHandler, type HookAnswer, type HookCall, type HookContexts, type HookPoint, type HookVerdict } from './points.ts';

export const PLUGIN_HOST_HANDLER = 'plugins.host';

/** The plugin host's side of the slot. */
export interface PluginDispatcher {
  /** Whether a running plugin serves `point`; when not, the slot passes without calling `run`. */
  serves(point: HookPoint): boolean;
  /** Runs the plugins of `point` in their order; never throws for a plugin's failure it may skip. */
  run<P extends HookPoint>(point: P, context: HookContexts[P], call: HookCall): HookAnswer | Promise<HookAnswer>;
}

const PASS: HookAnswer = Object.freeze({ verdict: 'pass' });
const DECISION_ANSWERS: readonly HookVerdict[] = ['deny', 'pass'];
const CLAIMS_ANSWERS: readonly HookVerdict[] = ['modify', 'deny', 'pass'];

export class PluginSlot {
  #dispatcher: PluginDispatcher | undefined;

  /** The dispatcher calls from now on; a second attach replaces the first (a restart of the host). */
  attach(dispatcher: PluginDispatcher): void {
    this.#dispatcher = dispatcher;
  }

  /** Back to passing at every point (the plugin host stopped). */
  detach(dispatcher?: PluginDispatcher): void {
    if (dispatcher === undefined || this.#dispatcher === dispatcher) this.#dispatcher = undefined;
  }

  /** The `plugins.host` handler of each point, for the chains to load. */
  handlers(points: readonly HookPoint[] = Object.keys(HOOK_POINTS) as HookPoint[]): AnyHookHandler[] {
    return points.map((point) => {
      const handler: AnyHookHandler = {
        point,
        name: PLUGIN_HOST_HANDLER,
        answers: HOOK_POINTS[point] === 'claims' ? CLAIMS_ANSWERS : DECISION_ANSWERS,
        run: (context: HookContexts[typeof point], call: HookCall) => {
          const dispatcher = this.#dispatcher;
          return dispatcher === undefined || !dispatcher.serves(point) ? PASS : dispatcher.run(point, context, call);
        },
      };
      return handler;
    });
  }
}

/** The slot's handlers with no plugin host behind them: for chains built without a server (tools, tests). */
export function idlePluginSlot(points: readonly HookPoint[]): AnyHookHandler[] {
  return new PluginSlot().handlers(points);
}
