import type { Bindings, ChildLoggerOptions, Level, Logger } from 'pino';

const LEVELS: readonly Level[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'];

type LogMethod = (...args: unknown[]) => void;

/**
 * A per-request logger that becomes a real pino child only when a line is
 * written at an enabled level. Fastify makes one child logger per request;
 * building it (bindings serialised, redacted) is a measurable share of a
 * small request's cost, and at the default level most requests never log.
 *
 * The lines it writes are exactly those of `parent.child(bindings, options)`.
 */
export class LazyChildLogger {
  readonly #parent: Logger;
  readonly #bindings: Bindings;
  readonly #options: ChildLoggerOptions;
  #child: Logger | undefined;

  constructor(parent: Logger, bindings: Bindings, options: ChildLoggerOptions) {
    this.#parent = parent;
    this.#bindings = bindings;
    this.#options = options;
  }

  #real(): Logger {
    return (this.#child ??= this.#parent.child(this.#bindings, this.#options));
  }

  get level(): string {
    return this.#child?.level ?? this.#options.level ?? this.#parent.level;
  }

  set level(level: string) {
    this.#real().level = level;
  }

  isLevelEnabled(level: string): boolean {
    return this.#child?.isLevelEnabled(level) ?? (this.#options.level === undefined ? this.#parent.isLevelEnabled(level) : this.#real().isLevelEnabled(level));
  }

  /** Children are lazy too (Fastify derives its app logger, then one per request). */
  child(bindings: Bindings, options: ChildLoggerOptions = {}): Logger {
    return new LazyChildLogger(this.#real(), bindings, options) as unknown as Logger;
  }

  bindings(): Bindings {
    return this.#child?.bindings() ?? { ...this.#parent.bindings(), ...this.#bindings };
  }

  silent(): void {}

  declare fatal: LogMethod;
  declare error: LogMethod;
  declare warn: LogMethod;
  declare info: LogMethod;
  declare debug: LogMethod;
  declare trace: LogMethod;

  static {
    for (const level of LEVELS) {
      Object.defineProperty(LazyChildLogger.prototype, level, {
        value(this: LazyChildLogger, ...args: unknown[]) {
          if (!this.isLevelEnabled(level)) return;
          // pino's log methods need their logger as `this`.
          const real = this.#real();
          real[level].call(real, ...(args as [string]));
        },
      });
    }
  }
}

/**
 * The logger to hand Fastify: the same logger, whose `child` answers lazy
 * children. (Overriding `child` keeps Fastify on its default child-logger
 * factory, which it does not re-validate on every request.)
 */
export function withLazyChildren(logger: Logger): Logger {
  return Object.create(logger, {
    child: { value: (bindings: Bindings, options: ChildLoggerOptions = {}) => new LazyChildLogger(logger, bindings, options) },
  }) as Logger;
}
