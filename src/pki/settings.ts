/** The CA's settings from the config: the trust domain (default: the issuer's host) and lifetimes. */
import { parseDuration, type Config } from '../config/index.ts';

export interface CaSettings {
  readonly issuer: string;
  readonly trustDomain: string;
  readonly defaultTtlMs: number;
  readonly maxTtlMs: number;
  readonly crlTtlMs: number;
}

export function caSettings(config: Pick<Config, 'issuer' | 'pki'>): CaSettings {
  return {
    issuer: config.issuer,
    // SPIFFE ID section 2.1: trust domain names are lowercase; a host name is one.
    trustDomain: config.pki.trustDomain ?? new URL(config.issuer).hostname.toLowerCase().replace(/^\[|\]$/g, '').replace(/:/g, '-'),
    defaultTtlMs: parseDuration(config.pki.defaultTtl),
    maxTtlMs: parseDuration(config.pki.maxTtl),
    crlTtlMs: parseDuration(config.pki.crlTtl),
  };
}
