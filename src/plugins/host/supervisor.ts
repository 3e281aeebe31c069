/**
 * One plugin's process, kept running (issue 14, "Supervision").
 *
 * - A crash (the child exits, or fails to load) starts it again after a
 *   backoff that doubles with each crash in the window (restartBackoffMs,
 *   up to 30 s). Meanwhile every call is refused at once: a request never
 *   waits for a plugin that is not there.
 * - A plugin that misses `maxMissedDeadlines` deadlines in a row is killed
 *   (an infinite loop only misses deadlines; it still holds a core) and
 *   counts as a crash.
 * - Protocol violations (an undeclared host call, a forged or duplicate id,
 *   a message too large) are reported and count like crashes.
 * - `quarantineCrashes` crashes or violations within `quarantineWindowMs`
 *   quarantine the plugin: killed, not restarted; the host disables it.
 * - Calls go through an opossum circuit breaker: the deadline is the
 *   plugin's own (limits.deadlineMs, enforced by the JSON-RPC peer); it
 *   opens when half the recent calls fail, refuses at once while open, and
 *   lets one probe through after breakerResetMs (half-open): success closes
 *   it, failure reopens it. The concurrency cap (limits.concurrency) is
 *   checked before the breaker, so a burst of traffic refused at the cap
 *   is not counted as the plugin's failure (it would open the breaker and
 *   lock out everyone after the burst).
 * - Before every start, restarts included, `verify` checks the installed
 *   copy against its pinned digest: a copy changed on disk never runs; the
 *   plugin is quarantined at once.
 * - The plugin may call the host only while it serves a hook call, and at
 *   most HOST_CALLS_PER_HOOK calls per hook call on average: a plugin cannot
 *   flood the ledger (every host call is an audit entry) on its own.
 * - Its resident memory is read every second from /proc (Linux): past
 *   `rssLimitBytes` (off-heap Buffers are not under the V8 heap cap) the
 *   child is killed, as a crash.
 */
import { readFile } from 'node:fs/promises';
import CircuitBreaker from 'opossum';
import type { PluginManifest } from '../manifest.ts';
import { HANDLER_ERROR, RpcClosedError, RpcDeadlineError, RpcError, type RpcMethod } from '../sandbox/json-rpc.ts';
import { SandboxSetupError, startSandbox, type Sandbox, type SandboxViolation } from '../sandbox/spawn.ts';
import { LatencyWindow } from './latency.ts';

export interface SupervisorSettings {
  readonly quarantineCrashes: number;
  readonly quarantineWindowMs: number;
  readonly maxMissedDeadlines: number;
  readonly breakerResetMs: number;
  readonly restartBackoffMs: number;
}

export const MAX_RESTART_BACKOFF_MS = 30_000;
/** Host calls a plugin may make per hook call, on average (a budget refilled by each hook call). */
export const HOST_CALLS_PER_HOOK = 32;
/** Calls that may wait for a slot, per slot: beyond that a call is refused at once (a queue that long would not drain within a deadline). */
const MAX_WAITING_PER_SLOT = 16;
const MEMORY_CHECK_MS = 1000;

/** The resident memory a plugin may use: its heap cap twice over (V8's own structures), plus the runtime's baseline. */
export function rssLimitBytes(memoryMb: number): number {
  return (2 * memoryMb + 64) * 1024 * 1024;
}

/** What runs: an installed plugin's pinned copy and its manifest. */
export interface RunnablePlugin {
  readonly name: string;
  readonly version: string;
  readonly digest: string;
  readonly directory: string;
  readonly manifest: PluginManifest;
}

export type PluginState = 'starting' | 'running' | 'restarting' | 'quarantined' | 'stopped';
export type BreakerState = 'closed' | 'open' | 'half-open';

/** Why a call got no answer. */
export type CallFailure = 'timeout' | 'crashed' | 'not_running' | 'quarantined' | 'breaker_open' | 'over_capacity' | 'error';

export class PluginCallError extends Error {
  override readonly name = 'PluginCallError';
  readonly failure: CallFailure;
  constructor(failure: CallFailure, message: string) {
    super(message);
    this.failure = failure;
  }
}

export type SupervisorEvent =
  | { readonly kind: 'started'; readonly pid: number | undefined }
  | { readonly kind: 'crashed'; readonly reason: string; readonly restartInMs: number | null }
  | { readonly kind: 'violation'; readonly violation: string; readonly method?: string; readonly counted: boolean }
  | { readonly kind: 'quarantined'; readonly reason: string }
  | { readonly kind: 'breaker'; readonly state: BreakerState };

export interface PluginStatus {
  readonly name: string;
  readonly version: string;
  readonly digest: string;
  readonly state: PluginState;
  readonly breaker: BreakerState;
  readonly pid: number | null;
  readonly restarts: number;
  readonly calls: number;
  readonly failures: number;
  readonly p50Ms: number | null;
  readonly p99Ms: number | null;
}

export interface SupervisorOptions {
  readonly settings: SupervisorSettings;
  /** The host methods the manifest declares, already bound and audited (host-calls.ts). */
  readonly hostMethods: Readonly<Record<string, RpcMethod>>;
  /** Paths the manifest's `fs` may not be, contain or be inside (the host's secrets); a plugin that asks for one does not start (a crash). */
  readonly deniedPaths?: readonly string[];
  readonly onEvent: (event: SupervisorEvent) => void;
  readonly onStderr?: (text: string) => void;
  /** Checks the installed copy before each start; a problem (a sentence) quarantines the plugin instead. */
  readonly verify?: () => string | undefined;
  /** Wall clock for the quarantine window (tests may move it). */
  readonly now?: () => number;
}

/**
 * Violations that are the plugin's doing. A late response follows a missed
 * deadline (counted there); the rest are forged, duplicate, undeclared or
 * malformed messages.
 */
const NOT_COUNTED: ReadonlySet<string> = new Set(['late-response']);

export class SupervisedPlugin {
  readonly plugin: RunnablePlugin;
  readonly #options: SupervisorOptions;
  readonly #breaker: CircuitBreaker<[string, unknown, number], unknown>;
  readonly #latency = new LatencyWindow();
  readonly #now: () => number;
  #sandbox: Sandbox | undefined;
  #state: PluginState = 'stopped';
  #strikes: number[] = [];
  #missedDeadlines = 0;
  #restarts = 0;
  #failures = 0;
  #restartTimer: NodeJS.Timeout | undefined;
  #memoryTimer: NodeJS.Timeout | undefined;
  #killedFor: string | undefined;
  #inFlight = 0;
  /** Calls waiting for a slot at the concurrency cap, first come first served. */
  #waiting: { take(): void; refuse(error: PluginCallError): void }[] = [];
  #hostCallBudget = HOST_CALLS_PER_HOOK;
  readonly #hostMethods: Readonly<Record<string, RpcMethod>>;
  #runningWaiters: { resolve: () => void; reject: (error: Error) => void }[] = [];

  constructor(plugin: RunnablePlugin, options: SupervisorOptions) {
    this.plugin = plugin;
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#breaker = new CircuitBreaker((method: string, params: unknown, timeoutMs: number) => this.#invoke(method, params, timeoutMs), {
      // The deadline is the JSON-RPC peer's (one timer per call, not two); the concurrency cap is checked in call().
      timeout: false,
      resetTimeout: options.settings.breakerResetMs,
      errorThresholdPercentage: 50,
      volumeThreshold: 5,
      rollingCountTimeout: 10_000,
      rollingCountBuckets: 10,
    });
    this.#breaker.on('open', () => options.onEvent({ kind: 'breaker', state: 'open' }));
    this.#breaker.on('halfOpen', () => options.onEvent({ kind: 'breaker', state: 'half-open' }));
    this.#breaker.on('close', () => options.onEvent({ kind: 'breaker', state: 'closed' }));
    this.#hostMethods = Object.fromEntries(Object.entries(options.hostMethods).map(([name, method]) => [name, this.#gated(name, method)]));
  }

  /** A host method answered only during a hook call, within the budget; a call outside either is refused and reported. */
  #gated(name: string, method: RpcMethod): RpcMethod {
    return (params) => {
      if (this.#inFlight === 0) {
        this.#violation({ kind: 'outside-hook-call', method: name, detail: 'a host call while no hook call is in flight' });
        throw new RpcError(HANDLER_ERROR, `${name}: host calls are answered only while the plugin serves a hook call`);
      }
      if (this.#hostCallBudget <= 0) {
        this.#violation({ kind: 'too-many-requests', method: name, detail: 'host call budget exhausted' });
        throw new RpcError(HANDLER_ERROR, `${name}: more than ${HOST_CALLS_PER_HOOK} host calls per hook call`);
      }
      this.#hostCallBudget--;
      return method(params);
    };
  }

  get state(): PluginState {
    return this.#state;
  }

  get breakerState(): BreakerState {
    return this.#breaker.opened ? 'open' : this.#breaker.halfOpen ? 'half-open' : 'closed';
  }

  /** Starts the child; a plugin that cannot start counts as a crash (and is retried, or quarantined). */
  start(): void {
    if (this.#state === 'quarantined' || this.#state === 'running' || this.#state === 'starting') return;
    const problem = this.#options.verify?.();
    if (problem !== undefined) {
      this.#quarantine(problem);
      return;
    }
    this.#state = 'starting';
    this.#killedFor = undefined;
    const { manifest, directory } = this.plugin;
    let sandbox: Sandbox;
    try {
      sandbox = startSandbox({
        directory,
        entry: manifest.entry,
        readPaths: manifest.fs,
        ...(this.#options.deniedPaths !== undefined && { deniedPaths: this.#options.deniedPaths }),
        limits: { memoryMb: manifest.limits.memoryMb, callTimeoutMs: manifest.limits.deadlineMs },
        hostMethods: this.#hostMethods,
        onViolation: (violation) => this.#violation(violation),
        ...(this.#options.onStderr !== undefined && { onStderr: this.#options.onStderr }),
      });
    } catch (error) {
      // The copy cannot run at all (a symlink out, a missing path, a read path the host protects): as a crash, so it ends in quarantine, not a loop.
      this.#crashed(error instanceof SandboxSetupError ? error.message : 'the plugin could not be started');
      return;
    }
    this.#sandbox = sandbox;
    // Watched from the start: a module can allocate while it loads.
    this.#watchMemory(sandbox);
    sandbox.ready.then(
      (hooks) => {
        // Closed (or quarantined) while it loaded: it stays so, and its exit is not a crash.
        if (this.#sandbox !== sandbox || this.#state !== 'starting') return;
        const missing = manifest.hooks.filter((hook) => !hooks.includes(hook));
        if (missing.length > 0) {
          sandbox.kill();
          return;
        }
        this.#state = 'running';
        for (const waiter of this.#runningWaiters.splice(0)) waiter.resolve();
        this.#options.onEvent({ kind: 'started', pid: sandbox.pid });
      },
      () => undefined,
    );
    void sandbox.exited.then((exit) => {
      clearInterval(this.#memoryTimer);
      if (this.#sandbox !== sandbox) return;
      this.#sandbox = undefined;
      if (this.#state === 'stopped' || this.#state === 'quarantined') return;
      const how = exit.signal !== null ? `signal ${exit.signal}` : `code ${exit.code}`;
      this.#crashed(this.#killedFor ?? (this.#missedDeadlines >= this.#options.settings.maxMissedDeadlines ? `killed after ${this.#missedDeadlines} missed deadlines` : `the plugin exited (${how})`));
    });
  }

  /** Calls `method` (`hook.<point>`) under the plugin's breaker and deadline; rejects with PluginCallError. */
  async call(method: string, params: unknown): Promise<unknown> {
    const { concurrency, deadlineMs } = this.plugin.manifest.limits;
    const started = performance.now();
    let waited = false;
    try {
      // At the cap, a call waits for a slot within its own deadline (FIFO), and is refused when none frees in time.
      if (this.#inFlight >= concurrency) {
        waited = true;
        // At most half the deadline: the call then goes out with the other half at least.
        await this.#slot(deadlineMs / 2);
      } else {
        this.#inFlight++;
      }
    } catch (error) {
      this.#failures++;
      this.#latency.record(performance.now() - started);
      throw error;
    }
    const remaining = Math.round(deadlineMs - (performance.now() - started));
    // A call that waited for its slot goes out only with at least half its deadline left; one that cannot have that is refused at the cap.
    if (waited && remaining < deadlineMs / 2) {
      this.#release();
      this.#failures++;
      this.#latency.record(performance.now() - started);
      throw new PluginCallError('over_capacity', `${this.plugin.name} had no free slot in time (concurrency ${concurrency})`);
    }
    this.#hostCallBudget = Math.min(HOST_CALLS_PER_HOOK * concurrency, this.#hostCallBudget + HOST_CALLS_PER_HOOK);
    try {
      // Only a call sent with its whole deadline can miss it for the plugin's fault (a waited call's miss is not counted toward the kill).
      return await this.#breaker.fire(method, params, waited ? -remaining : deadlineMs);
    } catch (error) {
      this.#failures++;
      throw this.#asFailure(error);
    } finally {
      this.#release();
      this.#latency.record(performance.now() - started);
    }
  }

  /** Frees a slot: it passes straight to the next waiter, so nobody can take it in between. */
  #release(): void {
    const next = this.#waiting.shift();
    if (next !== undefined) next.take();
    else this.#inFlight--;
  }

  /** Waits for a slot (the caller then holds it) at most `timeoutMs`; refuses at once when too many already wait. */
  #slot(timeoutMs: number): Promise<void> {
    const { concurrency } = this.plugin.manifest.limits;
    if (this.#state !== 'running' || this.#waiting.length >= MAX_WAITING_PER_SLOT * concurrency) {
      return Promise.reject(new PluginCallError('over_capacity', `${this.plugin.name} is at its concurrency limit (${concurrency})`));
    }
    return new Promise((resolve, reject) => {
      const waiter = {
        take: () => {
          clearTimeout(timer);
          resolve();
        },
        refuse: (error: PluginCallError) => {
          clearTimeout(timer);
          const index = this.#waiting.indexOf(waiter);
          if (index >= 0) this.#waiting.splice(index, 1);
          reject(error);
        },
      };
      const timer = setTimeout(() => waiter.refuse(new PluginCallError('over_capacity', `${this.plugin.name} had no free slot within ${timeoutMs} ms (concurrency ${concurrency})`)), timeoutMs);
      this.#waiting.push(waiter);
    });
  }

  /** Kills the child when its resident memory passes the limit (Linux /proc; elsewhere nothing is read). */
  #watchMemory(sandbox: Sandbox): void {
    clearInterval(this.#memoryTimer);
    const limit = rssLimitBytes(this.plugin.manifest.limits.memoryMb);
    this.#memoryTimer = setInterval(() => {
      if (sandbox.pid === undefined) return;
      readFile(`/proc/${sandbox.pid}/status`, 'utf8').then(
        (text) => {
          // VmRSS in kB, whatever the page size.
          const rss = Number(/^VmRSS:\s+(\d+) kB/m.exec(text)?.[1] ?? 0) * 1024;
          if (this.#sandbox === sandbox && rss > limit) {
            this.#killedFor = `killed: resident memory over ${Math.round(limit / 1048576)} MiB`;
            sandbox.kill();
          }
        },
        () => undefined,
      );
    }, MEMORY_CHECK_MS);
    this.#memoryTimer.unref();
  }

  /** `deadline`: the call's deadline in ms; negative when the call waited for its slot (then its miss does not count toward the kill). */
  async #invoke(method: string, params: unknown, deadline: number): Promise<unknown> {
    const timeoutMs = Math.abs(deadline);
    const counts = deadline > 0;
    const sandbox = this.#sandbox;
    if (sandbox === undefined || this.#state !== 'running') throw new PluginCallError(this.#state === 'restarting' ? 'crashed' : this.#state === 'quarantined' ? 'quarantined' : 'not_running', `the plugin ${this.plugin.name} is not running (${this.#state})`);
    try {
      const result = await sandbox.call(method, params, { timeoutMs });
      this.#missedDeadlines = 0;
      return result;
    } catch (error) {
      if (error instanceof RpcDeadlineError && this.#sandbox === sandbox && counts) {
        this.#missedDeadlines++;
        // Killed, not left spinning: the exit handler counts the crash and restarts it.
        if (this.#missedDeadlines >= this.#options.settings.maxMissedDeadlines) sandbox.kill();
      } else if (!(error instanceof RpcDeadlineError)) {
        this.#missedDeadlines = 0;
      }
      throw error;
    }
  }

  #asFailure(error: unknown): PluginCallError {
    if (error instanceof PluginCallError) return error;
    if (error instanceof RpcDeadlineError) return new PluginCallError('timeout', `the plugin ${this.plugin.name} missed its deadline of ${this.plugin.manifest.limits.deadlineMs} ms`);
    if (error instanceof RpcClosedError) return new PluginCallError('crashed', `the plugin ${this.plugin.name} exited during the call`);
    const code = (error as { code?: unknown }).code;
    if (code === 'EOPENBREAKER') return new PluginCallError('breaker_open', `the circuit breaker of ${this.plugin.name} is open`);
    return new PluginCallError('error', `the plugin ${this.plugin.name} answered an error`);
  }

  #violation(violation: SandboxViolation | { readonly kind: 'too-many-requests' | 'outside-hook-call'; readonly method: string; readonly detail: string }): void {
    // Frames already buffered when the plugin was quarantined (or stopped) are its last words: not reported one by one.
    if (this.#state === 'quarantined' || this.#state === 'stopped') return;
    const counted = !NOT_COUNTED.has(violation.kind);
    this.#options.onEvent({ kind: 'violation', violation: violation.kind, ...('method' in violation && violation.method !== undefined && { method: violation.method }), counted });
    if (counted) this.#strike(`protocol violation: ${violation.kind}`);
  }

  /** Counts a crash or violation; true when it quarantined the plugin. */
  #strike(reason: string): boolean {
    if (this.#state === 'quarantined' || this.#state === 'stopped') return true;
    const now = this.#now();
    this.#strikes = this.#strikes.filter((time) => now - time < this.#options.settings.quarantineWindowMs);
    this.#strikes.push(now);
    if (this.#strikes.length < this.#options.settings.quarantineCrashes) return false;
    this.#quarantine(`${this.#strikes.length} crashes or violations within ${this.#options.settings.quarantineWindowMs} ms (last: ${reason})`);
    return true;
  }

  #refuseWaiting(failure: CallFailure): void {
    for (const waiter of [...this.#waiting]) waiter.refuse(new PluginCallError(failure, `the plugin ${this.plugin.name} is ${this.#state}`));
  }

  /** Stops the plugin for good: killed, never restarted; its calls fail as `quarantined`. */
  #quarantine(reason: string): void {
    this.#state = 'quarantined';
    this.#refuseWaiting('quarantined');
    for (const waiter of this.#runningWaiters.splice(0)) waiter.reject(new Error(`the plugin ${this.plugin.name} was quarantined`));
    clearTimeout(this.#restartTimer);
    clearInterval(this.#memoryTimer);
    this.#sandbox?.kill();
    this.#options.onEvent({ kind: 'quarantined', reason });
  }

  #crashed(reason: string): void {
    this.#missedDeadlines = 0;
    if (this.#strike(reason)) {
      this.#options.onEvent({ kind: 'crashed', reason, restartInMs: null });
      return;
    }
    this.#state = 'restarting';
    const delay = Math.min(MAX_RESTART_BACKOFF_MS, this.#options.settings.restartBackoffMs * 2 ** (this.#strikes.length - 1));
    this.#options.onEvent({ kind: 'crashed', reason, restartInMs: delay });
    this.#restartTimer = setTimeout(() => {
      if (this.#state !== 'restarting') return;
      this.#restarts++;
      this.#state = 'stopped';
      this.start();
    }, delay);
    this.#restartTimer.unref();
  }

  /** Resolves when the plugin runs (now, or after its start or restart); rejects if it is quarantined or stopped first. */
  whenRunning(): Promise<void> {
    if (this.#state === 'running') return Promise.resolve();
    if (this.#state === 'quarantined' || this.#state === 'stopped') return Promise.reject(new Error(`the plugin ${this.plugin.name} is ${this.#state}`));
    return new Promise((resolve, reject) => this.#runningWaiters.push({ resolve, reject }));
  }

  status(): PluginStatus {
    const p50 = this.#latency.quantile(0.5);
    const p99 = this.#latency.quantile(0.99);
    return {
      name: this.plugin.name,
      version: this.plugin.version,
      digest: this.plugin.digest,
      state: this.#state,
      breaker: this.breakerState,
      pid: this.#sandbox?.pid ?? null,
      restarts: this.#restarts,
      calls: this.#latency.calls,
      failures: this.#failures,
      p50Ms: p50 === null ? null : Math.round(p50 * 1000) / 1000,
      p99Ms: p99 === null ? null : Math.round(p99 * 1000) / 1000,
    };
  }

  /** Stops the child for good (disabled, removed, or the server stopping). */
  async close(): Promise<void> {
    if (this.#state !== 'quarantined') this.#state = 'stopped';
    this.#refuseWaiting('not_running');
    clearInterval(this.#memoryTimer);
    for (const waiter of this.#runningWaiters.splice(0)) waiter.reject(new Error(`the plugin ${this.plugin.name} was stopped`));
    clearTimeout(this.#restartTimer);
    this.#breaker.shutdown();
    const sandbox = this.#sandbox;
    if (sandbox === undefined) return;
    sandbox.close();
    // The runtime exits when its channel closes; one that does not is killed.
    const timer = setTimeout(() => sandbox.kill(), 1000);
    await sandbox.exited;
    clearTimeout(timer);
  }
}
