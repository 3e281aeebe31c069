/**
 * The chain file (src/hooks/chains.cfg): the one place that orders each
 * point's handlers, as CoreDNS's plugin.cfg orders its plugins. It is part
 * of the source tree and reviewed like code; configuration has no say.
 *
 *   # comment
 *   portcullis-hooks 1
 *   <point> <handler> [pass] [fail-open] [deadline=<n>ms] [claims=<name>,<prefix>*,...]
 *
 * - `pass`: the handler may fall through to the next one. Without it a
 *   `pass` answer is a deny (fail closed).
 * - `fail-open`: a handler that throws or misses its deadline is skipped
 *   instead of failing the chain; only with `pass`.
 * - `deadline`: how long the handler may take (default 1000 ms, at most 10 s).
 * - `claims`: claims points only: the names the handler may set or remove;
 *   `prefix*` covers every name that starts with prefix; `*` alone, every
 *   name but the protocol's (for a handler with namespaces of its own).
 *
 * Anything else is refused with the line's number: a chain that does not
 * say what it means does not load.
 */
import { CLAIM_NAME, HOOK_POINTS, RESERVED_CLAIMS, isClaimName, isHookPoint, type HookPoint } from './points.ts';

export const CHAIN_FILE_VERSION = 1;
export const DEFAULT_DEADLINE_MS = 1000;
const MAX_DEADLINE_MS = 10_000;
const HANDLER_NAME = /^[a-z][a-z0-9-]*(\.[a-z][a-z0-9-]*)+$/;

/** Who may change which claims. */
export interface ClaimsNamespace {
  readonly names: ReadonlySet<string>;
  readonly prefixes: readonly string[];
}

export interface ChainLine {
  /** 1-based line number in the file, for errors and logs. */
  readonly line: number;
  readonly point: HookPoint;
  readonly handler: string;
  readonly mayPass: boolean;
  readonly failOpen: boolean;
  readonly deadlineMs: number;
  readonly namespace: ClaimsNamespace | null;
}

export interface ChainFile {
  readonly version: number;
  /** Every point, in file order; a point without lines has an empty chain. */
  readonly chains: ReadonlyMap<HookPoint, readonly ChainLine[]>;
}

/** A chain file or a set of handlers that does not load. The message names the file's line where there is one. */
export class HookChainError extends Error {
  override readonly name = 'HookChainError';
  readonly line: number | undefined;

  constructor(message: string, line?: number) {
    super(line === undefined ? message : `chains.cfg line ${line}: ${message}`);
    this.line = line;
  }
}

/**
 * Whether a handler on a line with `namespace` may set `claim`. Never a
 * protocol claim, nor a name outside the claim-name characters or one that
 * reaches an object's prototype (`__proto__`, `constructor`, `prototype`),
 * whatever the line says: `claims=*` covers every other name.
 */
export function inNamespace(namespace: ClaimsNamespace | null, claim: string): boolean {
  if (namespace === null || !isClaimName(claim) || RESERVED_CLAIMS.has(claim)) return false;
  return namespace.names.has(claim) || namespace.prefixes.some((prefix) => claim.startsWith(prefix));
}

/**
 * `claims=*`: every claim but the protocol's (RESERVED_CLAIMS, and names
 * that are not claim names, stay refused by inNamespace whatever the line
 * says). Only for a handler that enforces narrower namespaces itself: the
 * plugin host, which holds each plugin to the claimsNamespace of its
 * manifest.
 */
const ANY_CLAIM: ClaimsNamespace = { names: new Set(), prefixes: [''] };

function parseNamespace(value: string, line: number): ClaimsNamespace {
  if (value === '*') return ANY_CLAIM;
  const names = new Set<string>();
  const prefixes: string[] = [];
  for (const entry of value.split(',')) {
    const prefix = entry.endsWith('*');
    const name = prefix ? entry.slice(0, -1) : entry;
    if (!CLAIM_NAME.test(name) || (!prefix && !isClaimName(name))) throw new HookChainError(`"${entry.slice(0, 64)}" in claims= is not a claim name or a prefix`, line);
    if (prefix) {
      // A prefix must not reach a protocol claim (`s*` would cover `sub`).
      const reaches = [...RESERVED_CLAIMS].find((reserved) => reserved.startsWith(name));
      if (reaches !== undefined) throw new HookChainError(`claims prefix "${name}*" covers the reserved claim "${reaches}"`, line);
      prefixes.push(name);
    } else {
      if (RESERVED_CLAIMS.has(name)) throw new HookChainError(`claim "${name}" is reserved to the protocol; no handler may change it`, line);
      names.add(name);
    }
  }
  return { names, prefixes };
}

function parseLine(words: readonly string[], line: number): ChainLine {
  const [point, handler, ...options] = words as [string, string | undefined, ...string[]];
  if (!isHookPoint(point)) throw new HookChainError(`unknown hook point "${point.slice(0, 64)}" (known: ${Object.keys(HOOK_POINTS).join(', ')})`, line);
  if (handler === undefined) throw new HookChainError(`a handler name must follow the point "${point}"`, line);
  if (!HANDLER_NAME.test(handler)) throw new HookChainError(`"${handler.slice(0, 64)}" is not a handler name (owner.name, lower case)`, line);
  let mayPass = false;
  let failOpen = false;
  let deadlineMs: number | undefined;
  let namespace: ClaimsNamespace | null = null;
  for (const option of options) {
    if (option === 'pass' && !mayPass) mayPass = true;
    else if (option === 'fail-open' && !failOpen) failOpen = true;
    else if (option.startsWith('deadline=') && deadlineMs === undefined) {
      const match = /^deadline=([1-9][0-9]{0,5})ms$/.exec(option);
      const value = match === null ? NaN : Number(match[1]);
      if (!(value <= MAX_DEADLINE_MS)) throw new HookChainError(`"${option.slice(0, 64)}": a deadline is 1 to ${MAX_DEADLINE_MS} ms, written like deadline=250ms`, line);
      deadlineMs = value;
    } else if (option.startsWith('claims=') && namespace === null) {
      if (HOOK_POINTS[point] !== 'claims') throw new HookChainError(`claims= belongs to claims points only; ${point} is a decision point`, line);
      namespace = parseNamespace(option.slice('claims='.length), line);
    } else {
      throw new HookChainError(`unknown or repeated option "${option.slice(0, 64)}" (options: pass, fail-open, deadline=<n>ms, claims=<names>)`, line);
    }
  }
  // Skipping a failed handler is falling through: it must be declared.
  if (failOpen && !mayPass) throw new HookChainError(`fail-open needs pass: a handler that may be skipped on failure falls through`, line);
  return { line, point, handler, mayPass, failOpen, deadlineMs: deadlineMs ?? DEFAULT_DEADLINE_MS, namespace };
}

/** Parses and checks a chain file's text. Throws HookChainError naming the line. */
export function parseChainFile(text: string): ChainFile {
  const chains = new Map<HookPoint, ChainLine[]>(Object.keys(HOOK_POINTS).map((point) => [point as HookPoint, []]));
  let version: number | undefined;
  const lines = text.split('\n');
  for (let index = 0; index < lines.length; index++) {
    const number = index + 1;
    const content = lines[index]!.replace(/#.*$/, '').trim();
    if (content === '') continue;
    const words = content.split(/\s+/);
    if (version === undefined) {
      if (words.length !== 2 || words[0] !== 'portcullis-hooks') throw new HookChainError('the first line must be the format version: portcullis-hooks <version>', number);
      if (words[1] !== String(CHAIN_FILE_VERSION)) throw new HookChainError(`format version "${words[1]!.slice(0, 16)}" is not supported (this server reads ${CHAIN_FILE_VERSION})`, number);
      version = CHAIN_FILE_VERSION;
      continue;
    }
    const parsed = parseLine(words, number);
    const chain = chains.get(parsed.point)!;
    const twice = chain.find((earlier) => earlier.handler === parsed.handler);
    if (twice !== undefined) throw new HookChainError(`handler "${parsed.handler}" is already in the ${parsed.point} chain (line ${twice.line})`, number);
    chain.push(parsed);
  }
  if (version === undefined) throw new HookChainError('the file is empty: it must start with portcullis-hooks <version>');
  return { version, chains };
}
