/** The plugin host's settings from the config (`plugins.*`), as numbers. */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { ConfigError, configFileOf, parseDuration, type Config } from '../../config/index.ts';
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

/**
 * The paths no plugin's `fs` may reach (PluginHostOptions.protectedPaths):
 * the data directory (the embedded database, the master key file by
 * default, the installed plugins), the master key file wherever it is, and
 * the TLS private keys of both listeners when configured, and the config
 * file the server was started with (it may hold the master key and the
 * database URLs). Absolute.
 */
export function pluginProtectedPaths(config: Pick<Config, 'dataDir' | 'masterKeyFile' | 'tls'>): string[] {
  const { keyFile, mtlsKeyFile } = config.tls;
  return [config.dataDir, config.masterKeyFile, keyFile, mtlsKeyFile, configFileOf(config)].filter((path): path is string => path !== undefined).map((path) => resolve(path));
}
