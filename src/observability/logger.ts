import { randomBytes } from 'node:crypto';
import { pino, type DestinationStream, type Logger, type LoggerOptions } from 'pino';
import { Redactor, type PersonalDataMode } from './redaction.ts';

export type { Logger } from 'pino';

export interface LoggerConfig {
  readonly level: string;
  readonly personalData: PersonalDataMode;
  /** Key for `hash` mode pseudonyms; a random one is made when absent. */
  readonly pseudonymKey?: Uint8Array;
  /** Where JSON lines go (default stdout); tests pass a capturing stream. */
  readonly destination?: DestinationStream;
}

/**
 * The JSON logger. Every log object and message passes the redactor before it
 * is written: secrets are replaced, personal data masked, hashed or removed
 * by the configured mode (docs/architecture.md, Conventions: "Secrets never
 * reach a log").
 */
export function createLogger(config: LoggerConfig): Logger {
  const redactor = new Redactor({ personalData: config.personalData, pseudonymKey: config.pseudonymKey ?? randomBytes(32) });
  const options: LoggerOptions = {
    level: config.level,
    base: { service: 'portcullis' },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: {
      level: (label) => ({ level: label }),
      log: (object) => redactor.redact(object) as Record<string, unknown>,
      // Child bindings (e.g. Fastify's reqId) pass the same redactor.
      bindings: (bindings) => redactor.redact(bindings) as Record<string, unknown>,
    },
    hooks: {
      // Message strings are free text: scrub email addresses from them too.
      logMethod(args, method, level) {
        const redacted = args.map((arg) => (typeof arg === 'string' ? redactor.text(arg) : arg)) as Parameters<typeof method>;
        // A failure because a store is down is said once, by the store's breaker (store/breaker.ts): a background job
        // or a request that meets it while it is down is logged at debug, not as an error of its own (issue 16).
        if (level >= ERROR_LEVEL && storeIsDown(args[0])) {
          this.debug(...(redacted as [object, string]));
          return;
        }
        method.apply(this, redacted);
      },
    },
    // pino's default `err` serializer adds the stack: errors are reduced to
    // type, code and message here; the server decides when a stack is logged.
    serializers: {
      err: (error: unknown) =>
        error instanceof Error ? { type: error.name, message: error.message, code: (error as NodeJS.ErrnoException).code } : error,
    },
  };
  return config.destination ? pino(options, config.destination) : pino(options);
}

/** pino's numeric level of `error`. */
const ERROR_LEVEL = 50;

/**
 * Whether a log call's object carries, as its `err` (or that error's cause),
 * a store's unavailability. By name: this module sits below the stores.
 */
function storeIsDown(object: unknown): boolean {
  let error = (object as { err?: unknown } | null | undefined)?.err;
  for (let depth = 0; depth < 4 && error instanceof Error; depth++) {
    if (error.name === 'StoreUnavailableError') return true;
    error = error.cause;
  }
  return false;
}
