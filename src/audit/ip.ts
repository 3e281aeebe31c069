import { createHmac } from 'node:crypto';
import { isIP } from 'node:net';
import { truncateIp } from '../observability/index.ts';

export { truncateIp };

export type IpAddressMode = 'truncate' | 'hash' | 'omit';

/** How IPs enter entries, by config. `hashKey` is derived from the master key. */
export function ipForAudit(mode: IpAddressMode, hashKey: Uint8Array): (address: string | undefined) => string | undefined {
  return (address) => {
    if (address === undefined || mode === 'omit') return undefined;
    if (mode === 'truncate') return truncateIp(address);
    if (isIP(address) === 0) return undefined;
    // 128 bits of HMAC: correlates one address across entries, reveals nothing without the key.
    return `hmac:${createHmac('sha256', hashKey).update(address.toLowerCase()).digest().subarray(0, 16).toString('base64url')}`;
  };
}
