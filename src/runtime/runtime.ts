/**
 * The runtime: starts the services a caller asks for (and what they need),
 * in table order, and stops them in reverse. If a start fails, the services
 * already started are stopped in reverse and the start's own error is
 * thrown. Every stop has a timeout: a stop that hangs is abandoned, reported,
 * and the services below it still stop (as a process supervisor would:
 * systemd's TimeoutStopSec, Kubernetes' terminationGracePeriodSeconds).
 */
import { RuntimeStopError, ServiceDefinitionError, ServiceStopError, type Service, type ServiceContext, type ServiceTable } from './service.ts';

export interface RuntimeOptions<S> {
  /** Default time a service's stop may take. */
  readonly stopTimeoutMs: number;
  /** Hears every stop that failed or was abandoned (a log line); the stop goes on with the next service. */
  readonly onStopError: (error: ServiceStopError, runtime: Runtime<S>) => void;
}

type AnyService<S> = Service<S, keyof S>;

/** Which services to start for `wanted`: those and everything they need, in table order. Refuses a table that is out of order. */
export function plan<S>(table: ServiceTable<S>, wanted: readonly (keyof S)[]): AnyService<S>[] {
  const position = new Map<keyof S, number>();
  for (const [index, service] of table.entries()) {
    if (position.has(service.name)) throw new ServiceDefinitionError(`service ${String(service.name)} is in the table twice`);
    for (const need of service.needs) {
      if (!position.has(need)) throw new ServiceDefinitionError(`service ${String(service.name)} needs ${String(need)}, which does not come before it`);
    }
    position.set(service.name, index);
  }
  const chosen = new Set<keyof S>();
  const visit = (name: keyof S) => {
    const index = position.get(name);
    if (index === undefined) throw new ServiceDefinitionError(`there is no service ${String(name)}`);
    if (chosen.has(name)) return;
    chosen.add(name);
    for (const need of table[index]!.needs) visit(need);
  };
  for (const name of wanted) visit(name);
  return table.filter((service) => chosen.has(service.name));
}

interface Started<S> {
  readonly service: AnyService<S>;
  readonly value: S[keyof S];
}

export class Runtime<S> {
  readonly #options: RuntimeOptions<S>;
  readonly #started: Started<S>[] = [];
  readonly #values = new Map<keyof S, S[keyof S]>();
  #stopping: Promise<void> | undefined;

  private constructor(options: RuntimeOptions<S>) {
    this.#options = options;
  }

  /**
   * Starts `wanted` and what it needs. On failure, stops what had started
   * (in reverse, each within its timeout) and rethrows the start's error:
   * a failed stop during that undo is reported, never thrown in its place.
   */
  static async start<S>(table: ServiceTable<S>, wanted: readonly (keyof S)[], options: RuntimeOptions<S>): Promise<Runtime<S>> {
    const runtime = new Runtime<S>(options);
    for (const service of plan(table, wanted)) {
      let value: S[keyof S];
      try {
        value = await service.start(runtime.#contextFor(service));
      } catch (error) {
        await runtime.stop().catch(() => {
          // each failure was reported through onStopError already
        });
        throw error;
      }
      runtime.#started.push({ service, value });
      runtime.#values.set(service.name, value);
    }
    return runtime;
  }

  /** Whether `name` was started (it was asked for, or needed). */
  has(name: keyof S): boolean {
    return this.#values.has(name);
  }

  /** A started service's value. */
  get<K extends keyof S>(name: K): S[K] {
    if (!this.#values.has(name)) throw new ServiceDefinitionError(`service ${String(name)} was not started`);
    return this.#values.get(name) as S[K];
  }

  /**
   * Stops every started service in reverse order, each within its timeout;
   * one that fails or hangs is reported and the others still stop. Rejects
   * afterwards with a RuntimeStopError naming those that did not stop
   * cleanly. Calling it again returns the same promise.
   */
  stop(): Promise<void> {
    return (this.#stopping ??= this.#stopAll());
  }

  async #stopAll(): Promise<void> {
    const failures: ServiceStopError[] = [];
    for (const { service, value } of this.#started.toReversed()) {
      const failure = await stopWithin(service, value, service.stopTimeoutMs ?? this.#options.stopTimeoutMs);
      if (failure === undefined) continue;
      failures.push(failure);
      this.#options.onStopError(failure, this);
    }
    if (failures.length > 0) throw new RuntimeStopError(failures, `${failures.map((failure) => failure.service).join(', ')} did not stop cleanly`);
  }

  #contextFor(service: AnyService<S>): ServiceContext<S> {
    return {
      get: <K extends keyof S>(name: K): S[K] => {
        // Only declared needs: the table's order is then the real dependency order.
        if (!service.needs.includes(name)) throw new ServiceDefinitionError(`service ${String(service.name)} reads ${String(name)} without declaring it in needs`);
        return this.get(name);
      },
    };
  }
}

/** Runs one stop; resolves with what went wrong, if anything, by the timeout at the latest. */
async function stopWithin<S>(service: AnyService<S>, value: S[keyof S], timeoutMs: number): Promise<ServiceStopError | undefined> {
  if (service.stop === undefined) return undefined;
  const name = String(service.name);
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<ServiceStopError>((resolve) => {
    timer = setTimeout(() => resolve(new ServiceStopError(name, `${name} did not stop within ${timeoutMs} ms; abandoned`)), timeoutMs);
  });
  const stopped = (async () => {
    try {
      await service.stop!(value);
      return undefined;
    } catch (error) {
      return new ServiceStopError(name, `${name} failed to stop: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
    }
  })();
  try {
    return await Promise.race([stopped, timedOut]);
  } finally {
    clearTimeout(timer);
  }
}
