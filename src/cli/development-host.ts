/**
 * Development mode is for one machine: plain HTTP, an issuer on 127.0.0.1,
 * and dynamic client registration open to anyone who can reach it. `serve`
 * refuses to listen beyond loopback in that mode unless the operator says
 * so with --allow-remote-development (first-hour D17): refusing is safer
 * than a warning scrolled past in a log.
 */
import { ConfigError, isLoopbackHost, type Config } from '../config/index.ts';

export function assertLoopbackInDevelopment(config: Readonly<Pick<Config, 'mode' | 'host'>>, allowed: boolean): void {
  if (config.mode !== 'development' || allowed || isLoopbackHost(config.host)) return;
  throw new ConfigError(
    `development mode on host ${config.host}: it would serve plain HTTP beyond this machine, with dynamic client registration open to anyone who reaches it; bind 127.0.0.1, set PORTCULLIS_MODE=production, or pass --allow-remote-development if you mean it`,
  );
}
