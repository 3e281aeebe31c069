/** The plugin host's settings from the config (`plugins.*`), as numbers. */
import { readFileSync } from 'node:fs';
import { ConfigError, parseDuration, type Config } from '../../config/index.ts';
import type { PluginHostSettings } from './host.ts';

export function pluginHostSettings(config: Pick<Config, 'plugins'>): PluginHostSettings {
  const p = config.plugins;
  let fetchCa: string | undefined;
  if (p.fetchCaFile !== undefined) {
    try {
      fetchCa = readFileSync(p.fetchCaFile, 'utf8');
    } catch {
      throw new ConfigError(`plugins.fetchCaFile: ${p.fetchCaFile} cannot be read`);
    }
    if (!fetchCa.includes('-----BEGIN CERTIFICATE-----')) throw new ConfigError(`plugins.fetchCaFile: ${p.fetchCaFile} holds no PEM certificate`);
  }
  return {
    quarantineCrashes: p.quarantineCrashes,
    quarantineWindowMs: parseDuration(p.quarantineWindow),
    maxMissedDeadlines: p.maxMissedDeadlines,
    breakerResetMs: parseDuration(p.breakerReset),
    restartBackoffMs: p.restartBackoffMs,
    fetchPrivateNetworks: p.fetchPrivateNetworks,
    ...(fetchCa !== undefined && { fetchCa }),
  };
}
