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
export type { StreamRecord, LogEntry } from './records.ts';

/** The scope that lets a client manage its streams and receive their events. */
export const SSF_STREAM_SCOPE = 'ssf:stream';

/** The resource (RFC 8707) receivers' access tokens are for. */
export function signalsAudience(issuer: string): string {
  return `${issuer.replace(/\/$/, '')}/signals`;
}

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
  /** Told of background failures (a head re-read, a push round). */
  readonly onError?: (error: unknown) => void;
}

export interface Signals {
  readonly transmitter: Transmitter;
  readonly push: PushWorker;
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
  const push = new PushWorker({ transmitter, hot: options.hot, ...(options.onError !== undefined && { onError: options.onError }) });
  // Appends on any instance wake this one's deliveries; after a lost bus
  // subscription the head is read again (pollers also re-read on their own).
  const unsubscribe = options.subscriptions.on('signals.appended', (event) => transmitter.appended(event.seq));
  const uninterrupted = options.subscriptions.onInterrupted(() => void transmitter.refreshHead().catch((error: unknown) => options.onError?.(error)));
  return {
    transmitter,
    push,
    close: async () => {
      unsubscribe();
      uninterrupted();
      await push.stop();
    },
  };
}
