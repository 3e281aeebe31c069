/**
 * Starting Portcullis's services: `serve` asks for the listeners (and so
 * for everything), a command for the few it uses. Either way the same
 * table, order and undo.
 */
import type { DestinationStream } from 'pino';
import type { SpanExporter } from '../observability/index.ts';
import type { Config } from '../config/index.ts';
import { systemClock, type Clock } from '../store/index.ts';
import { Runtime } from './runtime.ts';
import { portcullisServices } from './services.ts';
import type { HookSettings, HttpApplications, PortcullisServices, Profile, ServiceName } from './profiles.ts';
import type { ServiceStopError } from './service.ts';
import type { OutboxDeliverers } from './outbox.ts';
import type { ListenerAuthority } from './listener-authority.ts';

/** What a stop may take when its service sets no timeout of its own. */
export const DEFAULT_STOP_TIMEOUT_MS = 10_000;

export type PortcullisRuntime = Runtime<PortcullisServices>;

export interface StartServicesOptions {
  readonly config: Readonly<Config>;
  readonly profile: Profile;
  readonly clock?: Clock;
  readonly logDestination?: DestinationStream;
  readonly traceExporter?: SpanExporter;
  readonly applications?: HttpApplications;
  readonly hooks?: HookSettings;
  readonly outbox?: OutboxDeliverers;
  readonly listenerAuthority?: ListenerAuthority;
  readonly stopTimeoutMs?: number;
}

/** Starts `wanted` and what it needs; see Runtime.start for what a failure undoes. */
export async function startServices(options: StartServicesOptions, wanted: readonly ServiceName[]): Promise<PortcullisRuntime> {
  const table = portcullisServices({
    config: options.config,
    profile: options.profile,
    clock: options.clock ?? systemClock,
    ...(options.logDestination !== undefined && { logDestination: options.logDestination }),
    ...(options.traceExporter !== undefined && { traceExporter: options.traceExporter }),
    ...(options.applications !== undefined && { applications: options.applications }),
    ...(options.hooks !== undefined && { hooks: options.hooks }),
    ...(options.outbox !== undefined && { outbox: options.outbox }),
    ...(options.listenerAuthority !== undefined && { listenerAuthority: options.listenerAuthority }),
  });
  const onStopError = (error: ServiceStopError, runtime: PortcullisRuntime) => {
    // A running instance logs it; a command has no logger and says it in one line.
    if (runtime.has('telemetry')) runtime.get('telemetry').logger.error({ err: error.cause ?? error, service: error.service }, error.message);
    else process.stderr.write(`portcullis: ${error.message}\n`);
  };
  return Runtime.start(table, wanted, { stopTimeoutMs: options.stopTimeoutMs ?? DEFAULT_STOP_TIMEOUT_MS, onStopError });
}

/**
 * Runs `work` over the started services and stops them however it ends. An
 * error of the work is what is thrown, never one of the stop after it.
 */
export async function withServices<T>(options: StartServicesOptions, wanted: readonly ServiceName[], work: (runtime: PortcullisRuntime) => Promise<T>): Promise<T> {
  const runtime = await startServices(options, wanted);
  let result: T;
  try {
    result = await work(runtime);
  } catch (error) {
    await runtime.stop().catch(() => {
      // reported through onStopError
    });
    throw error;
  }
  await runtime.stop();
  return result;
}
