/** The signal transmitter's settings from the config, as numbers. */
import { parseDuration, type Config } from '../config/index.ts';

export interface SignalSettings {
  readonly issuer: string;
  readonly maxRetryMs: number;
  readonly retryCeilingMs: number;
  readonly pushTimeoutMs: number;
  readonly pushPrivateNetworks: boolean;
  readonly retentionMs: number;
  readonly pollMaxEvents: number;
  readonly pollWaitMs: number;
  readonly maxStreamsPerClient: number;
  readonly socketMaxFrameBytes: number;
  readonly socketMaxBufferedBytes: number;
  readonly socketsPerClient: number;
  readonly socketHeartbeatMs: number;
}

export function signalSettings(config: Pick<Config, 'issuer' | 'signals'>): SignalSettings {
  const s = config.signals;
  return {
    issuer: config.issuer,
    maxRetryMs: Math.round(s.maxRetryHours * 3_600_000),
    retryCeilingMs: parseDuration(s.retryCeiling),
    pushTimeoutMs: parseDuration(s.pushTimeout),
    pushPrivateNetworks: s.pushPrivateNetworks,
    retentionMs: parseDuration(s.retention),
    pollMaxEvents: s.pollMaxEvents,
    pollWaitMs: parseDuration(s.pollWait),
    maxStreamsPerClient: s.maxStreamsPerClient,
    socketMaxFrameBytes: s.socketMaxFrameBytes,
    socketMaxBufferedBytes: s.socketMaxBufferedBytes,
    socketsPerClient: s.socketsPerClient,
    socketHeartbeatMs: parseDuration(s.socketHeartbeat),
  };
}
