/**
 * A service is a named unit of the running system (the stores, the ledger,
 * a listener, ...): it starts from the values of the services it names in
 * `needs`, and stops again. The runtime (runtime.ts) owns the order: a
 * service's needs come before it in its table, it stops before them.
 */

/** What a starting service can read: the values of the services it declared in `needs`, and nothing else. */
export interface ServiceContext<S> {
  get<K extends keyof S>(name: K): S[K];
}

export interface Service<S, K extends keyof S> {
  readonly name: K;
  /** The services whose values `start` reads; each must come earlier in the table. */
  readonly needs: readonly (keyof S)[];
  /** How long `stop` may take before it is abandoned (default: the runtime's). */
  readonly stopTimeoutMs?: number;
  start(context: ServiceContext<S>): S[K] | Promise<S[K]>;
  /** Releases what `start` opened. Called at most once, and only after `start` succeeded. */
  stop?(value: S[K]): void | Promise<void>;
}

/** One ordered table: every service once, each after the services it needs. */
export type ServiceTable<S> = readonly { [K in keyof S]: Service<S, K> }[keyof S][];

/** The table itself is wrong (a programming error, found before anything starts). */
export class ServiceDefinitionError extends Error {
  override readonly name = 'ServiceDefinitionError';
}

/** A service's stop failed or took longer than its timeout (then it was abandoned). */
export class ServiceStopError extends Error {
  override readonly name = 'ServiceStopError';
  readonly service: string;
  constructor(service: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.service = service;
  }
}

/** Some services did not stop cleanly; every other one was still stopped. */
export class RuntimeStopError extends AggregateError {
  override readonly name = 'RuntimeStopError';
}
