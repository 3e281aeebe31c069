import { isIP } from 'node:net';

/**
 * IPv4 to its /24 and IPv6 to its /48, in CIDR notation: enough to see a
 * network in an investigation, not enough to single out a household.
 * IPv4-mapped IPv6 counts as IPv4. Anything that is not an address gives
 * undefined (it is left out rather than stored as given).
 */
export function truncateIp(address: string): string | undefined {
  const plain = address.toLowerCase().startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
  switch (isIP(plain)) {
    case 4:
      return `${plain.split('.').slice(0, 3).join('.')}.0/24`;
    case 6: {
      const groups = expandIpv6(plain);
      return `${groups.slice(0, 3).map((group) => group.toString(16)).join(':')}::/48`;
    }
    default:
      return undefined;
  }
}

/** The eight 16-bit groups of a valid IPv6 address (`::` expanded, zone and embedded IPv4 handled). */
export function expandIpv6(address: string): number[] {
  let text = address.split('%')[0]!;
  const lastColon = text.lastIndexOf(':');
  const tail = text.slice(lastColon + 1);
  if (tail.includes('.')) {
    const [a, b, c, d] = tail.split('.').map(Number) as [number, number, number, number];
    text = `${text.slice(0, lastColon + 1)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, rest] = text.split('::') as [string, string | undefined];
  const parse = (part: string | undefined) => (part === undefined || part === '' ? [] : part.split(':').map((group) => Number.parseInt(group, 16)));
  const left = parse(head);
  const right = parse(rest);
  return [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
}

