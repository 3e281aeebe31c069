// Refuses sign-in from listed networks, and outside the allowed hours (UTC),
// before the password is even checked. No onFailure in the manifest: a
// decision hook that fails denies (the default), so a broken rules file
// closes the door rather than opening it.
import { readFileSync } from 'node:fs';
import { BlockList, isIPv4, isIPv6 } from 'node:net';
import { join } from 'node:path';
import { definePlugin } from 'portcullis/sdk/plugin';

const rules = JSON.parse(readFileSync(join(import.meta.dirname, 'rules.json'), 'utf8'));

// One BlockList per network, so the audit record can name the one that matched.
// A malformed entry throws here, at load: the plugin does not start.
const networks = rules.denyNetworks.map((cidr) => {
  const [address, prefix, extra] = cidr.split('/');
  const family = isIPv4(address) ? 'ipv4' : isIPv6(address) ? 'ipv6' : undefined;
  const bits = Number(prefix);
  if (family === undefined || extra !== undefined || !/^\d{1,3}$/.test(prefix ?? '') || bits > (family === 'ipv4' ? 32 : 128)) throw new Error(`rules.json: ${cidr} is not a network (address/prefix)`);
  const list = new BlockList();
  list.addSubnet(address, bits, family);
  return { cidr, list };
});

// [from, to): hours of the day in UTC when sign-in is allowed; [0, 24] is
// always, and from > to wraps past midnight ([22, 6] is 22:00 to 05:59).
const [from, to] = rules.allowHoursUtc;
if (![from, to].every((hour) => Number.isInteger(hour) && hour >= 0 && hour <= 24)) throw new Error('rules.json: allowHoursUtc is [from, to], whole hours from 0 to 24');
const allowedHour = (hour) => (from <= to ? hour >= from && hour < to : hour >= from || hour < to);

export default definePlugin({
  hooks: {
    'login.before': async ({ ip, host }) => {
      const family = isIPv4(ip) ? 'ipv4' : isIPv6(ip) ? 'ipv6' : undefined;
      if (family === undefined) throw new Error('the request has no IP address'); // a failure: onFailure denies
      // BlockList matches an IPv4-mapped IPv6 address (::ffff:203.0.113.7) against IPv4 networks too.
      const network = networks.find(({ list }) => list.check(ip, family));
      if (network !== undefined) {
        // The network, not the address: the host's own audit entry already
        // names the request, and this says which rule refused it.
        await host.audit.record('login-rule.denied', { rule: 'network', network: network.cidr });
        return { deny: 'Sign-in from this network is not allowed.' };
      }
      const hour = new Date().getUTCHours();
      if (!allowedHour(hour)) {
        await host.audit.record('login-rule.denied', { rule: 'hours', hourUtc: hour });
        return { deny: 'Sign-in is not allowed at this time of day.' };
      }
      // Not "allow": a plugin only holds a request back; the password check still runs.
      return undefined;
    },
  },
});
