/**
 * Calling one handler: under its deadline, its answer checked. Nothing a
 * handler does (throw, hang, answer nonsense) escapes as an exception; it
 * becomes a fault, and the chain decides what a fault means (run in
 * chains.ts: fail closed unless the file says fail-open).
 */
import type { ChainLine } from './chain-file.ts';
import type { Claims, HookAnswer, HookHandler, HookPoint } from './points.ts';

export type HookFaultKind =
  /** The deadline passed before an answer. */
  | 'timeout'
  /** The handler threw or its promise rejected. */
  | 'error'
  /** Not an answer, a verdict the handler did not declare, or `modify` at a decision point. */
  | 'invalid_answer'
  /** `pass` where the chain file does not let the handler fall through. */
  | 'undeclared_pass'
  /** `modify` of a claim outside the handler's declared namespace. */
  | 'outside_namespace';

export type Called = { readonly answer: HookAnswer } | { readonly fault: HookFaultKind };

/** How long a reason may be: it is shown on a page or in an error description. */
export const MAX_REASON_LENGTH = 200;

const TIMED_OUT = Symbol('timed out');

function isThenable(value: unknown): value is PromiseLike<unknown> {
  try {
    return typeof value === 'object' && value !== null && typeof (value as { then?: unknown }).then === 'function';
  } catch {
    // A Proxy that throws on `then`: not a promise; reading it as an answer fails closed.
    return false;
  }
}

/**
 * The answer as plain data, or a fault: reading a handler's answer runs its
 * code too (a getter, a Proxy), so a throw while reading is a malformed
 * answer (fail closed), never an exception out of the chain.
 */
function checked(answer: unknown, handler: HookHandler): Called {
  try {
    return readAnswer(answer, handler);
  } catch {
    return { fault: 'invalid_answer' };
  }
}

function readAnswer(answer: unknown, handler: HookHandler): Called {
  if (typeof answer !== 'object' || answer === null) return { fault: 'invalid_answer' };
  const verdict = (answer as { verdict?: unknown }).verdict;
  // A pass is let through here whatever the handler declared: the chain
  // checks it against the file's `pass` and reports an undeclared one as such.
  if (typeof verdict !== 'string' || (verdict !== 'pass' && !(handler.answers as readonly string[]).includes(verdict))) return { fault: 'invalid_answer' };
  switch (verdict) {
    case 'allow':
    case 'pass':
      return { answer: { verdict } };
    case 'deny': {
      const { reason, interaction } = answer as { reason?: unknown; interaction?: unknown };
      // The reason reaches a page or an OAuth error_description (RFC 6749 section 5.2: printable ASCII there).
      if (typeof reason !== 'string' || reason === '' || reason.length > MAX_REASON_LENGTH || !/^[\x20-\x7e]+$/.test(reason)) return { fault: 'invalid_answer' };
      if (interaction !== undefined && interaction !== 'second_factor' && interaction !== 'consent') return { fault: 'invalid_answer' };
      return { answer: { verdict, reason, ...(interaction !== undefined && { interaction }) } };
    }
    case 'modify': {
      const claims = (answer as { claims?: unknown }).claims;
      if (typeof claims !== 'object' || claims === null || Array.isArray(claims)) return { fault: 'invalid_answer' };
      // A copy of plain JSON values, read here inside the fault boundary.
      return { answer: { verdict, claims: structuredClone({ ...claims }) } };
    }
    default:
      return { fault: 'invalid_answer' };
  }
}

/**
 * Calls the handler once. A synchronous answer needs no timer (nothing
 * could interrupt it anyway); a promise races the line's deadline, and the
 * handler's signal aborts when the deadline wins.
 */
export async function callHandler<P extends HookPoint>(handler: HookHandler<P>, line: ChainLine, context: Parameters<HookHandler<P>['run']>[0], claims: Claims): Promise<Called> {
  const controller = new AbortController();
  let result: unknown;
  try {
    result = handler.run(context, { signal: controller.signal, claims });
  } catch {
    return { fault: 'error' };
  }
  if (!isThenable(result)) return checked(result, handler);
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<typeof TIMED_OUT>((resolve) => {
    timer = setTimeout(() => {
      controller.abort(new Error(`hook ${line.handler} missed its deadline of ${line.deadlineMs} ms`));
      resolve(TIMED_OUT);
    }, line.deadlineMs);
  });
  try {
    const settled = await Promise.race([result, deadline]);
    return settled === TIMED_OUT ? { fault: 'timeout' } : checked(settled, handler);
  } catch {
    return { fault: 'error' };
  } finally {
    clearTimeout(timer);
  }
}
