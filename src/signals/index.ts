/**
 * Security signals (issue 13): an OpenID Shared Signals Framework 1.0
 * transmitter. Domain events become CAEP, RISC and Portcullis security
 * events (mapping.ts), queued in the outbox by a durable recorder
 * (recorder.ts), appended once to one signal log (log.ts), and delivered
 * per stream as SETs (sets.ts) by push (push.ts, RFC 8935), poll (poll.ts,
 * RFC 8936) or the server's WebSocket route, each from the stream's cursor.
 */
import type { KeyVault } from '../crypto/index.ts';
import type { DomainEvents, EventSubscriptions } from '../events/index.ts';
import type { DurableStore, HotStore } from '../store/index.ts';
import type { Keyring } from '../tokens/index.ts';
import { SignalLog } from './log.ts';
import { PushWorker } from './push.ts';
import { streamRecords } from './records.ts';
import { SetSigner } from './sets.ts';
import type { SignalSettings } from './settings.ts';
import { StreamManager } from './streams.ts';
import { Transmitter } from './transmitter.ts';

export { signalSettings, type SignalSettings } from './settings.ts';
export { signalRecorder, type SignalRecorder, type SignalRecorderOptions } from './recorder.ts';
export { signalsOf, subjectKey, SIGNALLING_EVENT_TYPES, type SignalEvent, type SubjectDirectory } from './mapping.ts';
export { Transmitter, SIGNALS_TOPIC } from './transmitter.ts';
export { StreamError, StreamManager, EVENTS_SUPPORTED, parseSubject, type StreamConfiguration, type StreamErrorCode, type StreamStatus } from './streams.ts';
export { poll, type PollResponse } from './poll.ts';
export { PushWorker } from './push.ts';
export { SET_ALGORITHMS, seqOfJti, setJti } from './sets.ts';
export { receives } from './selection.ts';
export { streamReceipt, type StreamReceipt } from './receipts.ts';
export type { OutboxSignalPayload } from './transmitter.ts';
export type { StreamRecord, LogEntry } from './records.ts';

/** The scope that lets a client manage its streams and receive their events. */
export const SSF_STREAM_SCOPE = 'ssf:stream';

/** The resource (RFC 8707) receivers' access tokens are for. */
export function signalsAudience(issuer: string): string {
  return `${issuer.replace(/\/$/, '')}/signals`;
}

/** How often the log is pruned past its retention. */
const PRUNE_INTERVAL_MS = 3_600_000;

/** Minimum seconds between two verification requests of a stream (SSF 1.0 section 8.1.4.2). */
export const MIN_VERIFICATION_INTERVAL_SECONDS = 1;

export interface SignalsOptions {
  readonly durable: DurableStore;
  readonly hot: HotStore;
  readonly keyring: Pick<Keyring, 'signingKey'>;
  readonly vault: Pick<KeyVault, 'seal' | 'open'>;
  readonly events: Pick<DomainEvents, 'emit'>;
  /** Where `signals.appended` from every instance arrives. */
  readonly subscriptions: Pick<EventSubscriptions, 'on' | 'onInterrupted'>;
  readonly settings: SignalSettings;
  readonly clock: () => number;
  /** Whether a client may receive security events now: it exists and an operator approved it (the push worker asks before each push). */
  readonly mayReceive: (clientId: string) => Promise<boolean>;
  /** Whether the client exists: the pruning sweeps streams whose client was deleted where no signals service heard it (`portcullis client delete`). */
  readonly clientExists: (clientId: string) => Promise<boolean>;
  /** Told of background failures (a head re-read, a push round). */
  readonly onError?: (error: unknown) => void;
}

export interface Signals {
  readonly transmitter: Transmitter;
  readonly push: PushWorker;
  /** Starts the push worker and the hourly pruning of the log past `signals.retention` (a server, not a command). */
  start(): void;
  /** Drops log entries and appended-message records older than `signals.retention`; resolves with how many entries. */
  prune(): Promise<number>;
  /** Stops listening and pushing; resolves once the push in flight is recorded. */
  close(): Promise<void>;
}

export function createSignals(options: SignalsOptions): Signals {
  const { durable, settings, clock } = options;
  const log = new SignalLog(durable, clock);
  const streams = streamRecords(durable.records);
  const manager = new StreamManager({
    streams,
    vault: options.vault,
    issuer: settings.issuer,
    maxStreamsPerClient: settings.maxStreamsPerClient,
    pushPrivateNetworks: settings.pushPrivateNetworks,
    clock,
    head: () => log.head(),
    minVerificationInterval: MIN_VERIFICATION_INTERVAL_SECONDS,
  });
  const transmitter = new Transmitter({ log, streams, manager, signer: new SetSigner(options.keyring, settings.issuer), settings, events: options.events, clock });
  const push = new PushWorker({ transmitter, hot: options.hot, mayReceive: options.mayReceive, ...(options.onError !== undefined && { onError: options.onError }) });
  // Appends on any instance wake this one's deliveries; after a lost bus
  // subscription the head is read again (pollers also re-read on their own).
  const unsubscribe = options.subscriptions.on('signals.appended', (event) => transmitter.appended(event.seq));
  // A deleted client's streams go with it (on every instance; a second delete finds nothing).
  const unsubscribeDeleted = options.subscriptions.on('client.deleted', async (event) => {
    for (const stream of await streams.findAllBy('client', event.clientId)) await streams.delete(stream.id);
  });
  const uninterrupted = options.subscriptions.onInterrupted(() => void transmitter.refreshHead().catch((error: unknown) => options.onError?.(error)));
  let pruning: NodeJS.Timeout | undefined;
  let pruningNow: Promise<number> | undefined;
  const sweepOrphans = async (): Promise<void> => {
    let after: string | undefined;
    for (;;) {
      const page = await streams.list({ limit: 200, ...(after !== undefined && { after }) });
      for (const stream of page) if (!(await options.clientExists(stream.data.clientId))) await streams.delete(stream.id);
      if (page.length < 200) return;
      after = page.at(-1)!.id;
    }
  };
  const prune = (): Promise<number> =>
    // One at a time: a long prune is not overlapped by the next.
    (pruningNow ??= (async () => {
      const before = clock() - settings.retentionMs;
      const removed = await log.prune(before);
      await log.pruneSources(before);
      await sweepOrphans();
      return removed;
    })().finally(() => (pruningNow = undefined)));
  return {
    transmitter,
    push,
    prune,
    start: () => {
      push.start();
      const run = (): void => void prune().catch((error: unknown) => options.onError?.(error));
      // Soon after start too: an instance restarted more often than hourly still prunes.
      setTimeout(run, 30_000 + Math.floor(Math.random() * 30_000)).unref();
      pruning = setInterval(run, PRUNE_INTERVAL_MS);
      pruning.unref();
    },
    close: async () => {
      clearInterval(pruning);
      unsubscribe();
      unsubscribeDeleted();
      uninterrupted();
      await push.stop();
    },
  };
}
