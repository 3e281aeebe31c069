/**
 * The loaded chains: the chain file's order, joined with the handlers the
 * modules registered, checked once at start, then run per request.
 *
 * Loading refuses (HookChainError, naming the line):
 * - a listed handler nobody registered, and a registered handler the file
 *   does not list (registration order never places a handler);
 * - a handler that declares it may `pass` on a line without `pass` (an
 *   undeclared fallthrough), and `modify` at a decision point or without a
 *   claims= namespace;
 * - a line no request can reach (the handler before it never falls through).
 *
 * Running (decision points): the first `allow` or `deny` ends the chain;
 * `pass` goes on only where declared, else it is a deny; a fault (throw,
 * deadline, bad answer) is a deny, or on a fail-open line a skip; and the
 * end of the chain is a deny (default deny).
 *
 * Running (claims points): `modify` applies inside the handler's namespace
 * and goes on; `allow` ends with the claims so far; `deny` refuses the
 * request the claims are for (no token, no UserInfo answer); a fault (and a
 * modify outside the namespace) refuses it too, unless the line is
 * fail-open and the handler threw or missed its deadline, which skips it.
 * A token without claims its client counts on is not the closed side: the
 * client would act on a partial answer it cannot tell from a whole one.
 * Every fault is reported (the server logs and audits it).
 */
import { parseChainFile, inNamespace, HookChainError, type ChainFile, type ChainLine } from './chain-file.ts';
import { callHandler, type HookFaultKind } from './run.ts';
import {
  HOOK_POINTS,
  isHookPoint,
  type AnyHookHandler,
  type Claims,
  type ClaimsPoint,
  type DecisionPoint,
  type HookContexts,
  type HookHandler,
  type HookInteraction,
  type HookPoint,
  type HookVerdict,
} from './points.ts';

export interface HookFault {
  readonly point: HookPoint;
  readonly handler: string;
  readonly line: number;
  readonly kind: HookFaultKind;
  /** Whether the chain went on without the handler (a fail-open line) rather than failing closed. */
  readonly skipped: boolean;
}

export type Decision =
  | { readonly allowed: true; readonly handler: string }
  /** `handler`: who denied; null when no handler allowed (the default deny). `fault`: the deny came from a fault of `handler`. */
  | { readonly allowed: false; readonly handler: string | null; readonly reason: string; readonly interaction?: HookInteraction; readonly fault?: HookFaultKind };

/** What a claims chain decided: the claims to release, or a refusal of the request they are for. */
export type ClaimsOutcome =
  | { readonly refused: false; readonly claims: Claims }
  /** `fault`: the refusal came from a fault of `handler` (the server could not build the claims), not from its deny. */
  | { readonly refused: true; readonly handler: string; readonly reason: string; readonly fault?: HookFaultKind };

/**
 * A claims chain refused for a fault: the server could not build the claims
 * (a handler crashed, hung or answered out of bounds). Not the client's
 * mistake: the HTTP layer answers 503 with Retry-After.
 */
export class HookUnavailableError extends Error {
  override readonly name = 'HookUnavailableError';
  readonly point: HookPoint;
  /** Whether the same request may succeed later (Retry-After); false when it spent something single-use, such as a code. */
  readonly retryable: boolean;
  constructor(point: HookPoint, options: { readonly retryable?: boolean; readonly message?: string } = {}) {
    super(options.message ?? FAULT_REASON);
    this.point = point;
    this.retryable = options.retryable ?? true;
  }
}

export interface LoadOptions {
  /** Every handler of the points loaded: built-in and added. Their order here does not matter. */
  readonly handlers: readonly AnyHookHandler[];
  /** The chain file's text; the file in the source tree (bundledChainSource) in a running server. */
  readonly source: string;
  /** Load only these points' chains (a component that runs only some points); all when absent. */
  readonly points?: readonly HookPoint[];
  /** Told of every fault before the chain answers; awaited (the audit entry is durable first). */
  readonly report?: (fault: HookFault) => void | Promise<void>;
}

/** What the person or client is told of a deny that came from a fault: nothing about the handler. */
const FAULT_REASON = 'This request could not be checked. Try again later.';
const DEFAULT_DENY_REASON = 'No rule allowed this request.';

interface Link {
  readonly line: ChainLine;
  readonly handler: AnyHookHandler;
}

const VERDICTS: ReadonlySet<string> = new Set<HookVerdict>(['allow', 'deny', 'modify', 'pass']);

function checkHandler(handler: AnyHookHandler): void {
  if (!isHookPoint(handler.point)) throw new HookChainError(`handler "${String(handler.name).slice(0, 64)}" joins an unknown point "${String(handler.point).slice(0, 64)}"`);
  if (handler.answers.length === 0 || handler.answers.some((verdict) => !VERDICTS.has(verdict))) throw new HookChainError(`handler "${handler.name}" must declare its answers (allow, deny, modify, pass)`);
  if (HOOK_POINTS[handler.point] === 'decision' && handler.answers.includes('modify')) throw new HookChainError(`handler "${handler.name}" declares modify at ${handler.point}, a decision point: modify is for claims only`);
}

function link(file: ChainFile, handlers: readonly AnyHookHandler[], points: ReadonlySet<HookPoint>): Map<HookPoint, Link[]> {
  const registered = new Map<string, AnyHookHandler>();
  for (const handler of handlers) {
    checkHandler(handler);
    const key = `${handler.point} ${handler.name}`;
    if (registered.has(key)) throw new HookChainError(`handler "${handler.name}" is registered twice at ${handler.point}`);
    if (!points.has(handler.point)) throw new HookChainError(`handler "${handler.name}" joins ${handler.point}, which this component does not load`);
    registered.set(key, handler);
  }
  const chains = new Map<HookPoint, Link[]>();
  for (const point of points) {
    const links: Link[] = [];
    for (const line of file.chains.get(point) ?? []) {
      const handler = registered.get(`${point} ${line.handler}`);
      if (handler === undefined) throw new HookChainError(`handler "${line.handler}" is listed at ${point} but no module registered it`, line.line);
      registered.delete(`${point} ${line.handler}`);
      if (handler.answers.includes('pass') && !line.mayPass) {
        throw new HookChainError(`handler "${line.handler}" may answer pass, but this line does not declare that it may fall through (add "pass")`, line.line);
      }
      if (handler.answers.includes('modify') && line.namespace === null) throw new HookChainError(`handler "${line.handler}" may modify claims, but this line declares no claims= namespace`, line.line);
      const previous = links.at(-1);
      if (previous !== undefined) {
        const goesOn = previous.handler.answers.includes('pass') || (HOOK_POINTS[point] === 'claims' && previous.handler.answers.includes('modify'));
        if (!goesOn) throw new HookChainError(`no request reaches "${line.handler}": "${previous.line.handler}" (line ${previous.line.line}) never falls through`, line.line);
      }
      links.push({ line, handler });
    }
    chains.set(point, links);
  }
  const unlisted = [...registered.values()][0];
  if (unlisted !== undefined) throw new HookChainError(`handler "${unlisted.name}" is registered at ${unlisted.point} but the chain file does not list it: the order comes from the file only`);
  return chains;
}

export class HookChains {
  readonly #chains: ReadonlyMap<HookPoint, readonly Link[]>;
  readonly #report: ((fault: HookFault) => void | Promise<void>) | undefined;

  private constructor(chains: ReadonlyMap<HookPoint, readonly Link[]>, report: LoadOptions['report']) {
    this.#chains = chains;
    this.#report = report;
  }

  /** Parses the chain file and joins it with the handlers; throws HookChainError when they do not fit. */
  static load(options: LoadOptions): HookChains {
    const file = parseChainFile(options.source);
    const points = new Set<HookPoint>(options.points ?? (Object.keys(HOOK_POINTS) as HookPoint[]));
    return new HookChains(link(file, options.handlers, points), options.report);
  }

  /** The handlers of a point, in the order they run. */
  order(point: HookPoint): readonly string[] {
    return (this.#chains.get(point) ?? []).map((entry) => entry.line.handler);
  }

  #links(point: HookPoint): readonly Link[] {
    const links = this.#chains.get(point);
    if (links === undefined) throw new HookChainError(`the ${point} chain was not loaded here`);
    return links;
  }

  async #fault(point: HookPoint, line: ChainLine, kind: HookFaultKind, skipped: boolean): Promise<void> {
    await this.#report?.({ point, handler: line.handler, line: line.line, kind, skipped });
  }

  /** Runs a decision point's chain. */
  async decide<P extends DecisionPoint>(point: P, context: HookContexts[P]): Promise<Decision> {
    for (const { line, handler } of this.#links(point)) {
      const called = await callHandler(handler as HookHandler<P>, line, context, {});
      if ('fault' in called) {
        const skipped = line.failOpen && (called.fault === 'timeout' || called.fault === 'error');
        await this.#fault(point, line, called.fault, skipped);
        if (skipped) continue;
        return { allowed: false, handler: line.handler, reason: FAULT_REASON, fault: called.fault };
      }
      const { answer } = called;
      if (answer.verdict === 'allow') return { allowed: true, handler: line.handler };
      if (answer.verdict === 'deny') return { allowed: false, handler: line.handler, reason: answer.reason, ...(answer.interaction !== undefined && { interaction: answer.interaction }) };
      if (answer.verdict === 'pass' && line.mayPass) continue;
      // A pass the file did not declare (or a modify, refused at load but checked anyway): fail closed.
      const kind = answer.verdict === 'pass' ? 'undeclared_pass' : 'invalid_answer';
      await this.#fault(point, line, kind, false);
      return { allowed: false, handler: line.handler, reason: FAULT_REASON, fault: kind };
    }
    return { allowed: false, handler: null, reason: DEFAULT_DENY_REASON };
  }

  /** Runs a claims point's chain over `base`: the claims to release (`base` itself when nothing changed), or a refusal. */
  async claims<P extends ClaimsPoint>(point: P, context: HookContexts[P], base: Claims): Promise<ClaimsOutcome> {
    let current: Record<string, unknown> | undefined;
    const faulted = async (line: ChainLine, kind: HookFaultKind): Promise<ClaimsOutcome> => {
      await this.#fault(point, line, kind, false);
      return { refused: true, handler: line.handler, reason: FAULT_REASON, fault: kind };
    };
    for (const { line, handler } of this.#links(point)) {
      const called = await callHandler(handler as HookHandler<P>, line, context, current ?? base);
      if ('fault' in called) {
        if (line.failOpen && (called.fault === 'timeout' || called.fault === 'error')) {
          await this.#fault(point, line, called.fault, true);
          continue;
        }
        return faulted(line, called.fault);
      }
      const { answer } = called;
      if (answer.verdict === 'allow') break;
      if (answer.verdict === 'deny') return { refused: true, handler: line.handler, reason: answer.reason };
      if (answer.verdict === 'pass') {
        if (line.mayPass) continue;
        return faulted(line, 'undeclared_pass');
      }
      const names = Object.keys(answer.claims);
      if (!names.every((name) => inNamespace(line.namespace, name))) return faulted(line, 'outside_namespace');
      current ??= { ...base };
      for (const name of names) {
        const value = answer.claims[name];
        if (value === null || value === undefined) delete current[name];
        // Defined, not assigned: a name that got past inNamespace could not reach the prototype (`current.__proto__ = value` sets it).
        else Object.defineProperty(current, name, { value, writable: true, enumerable: true, configurable: true });
      }
    }
    return { refused: false, claims: current ?? base };
  }
}
