/**
 * Requests to URLs a client registered (back-channel logout): in production
 * nothing on loopback, private, link-local or reserved networks is reached,
 * whether the URL names the address or a name that resolves to it.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { OutboundAddressError, isPublicAddress, postBody, postForm } from '../../src/net/outbound.ts';

describe('outbound requests to registered URLs', () => {
  let receiver: Server;
  let port: number;
  const received: string[] = [];
  before(async () => {
    receiver = createServer((request, response) => {
      let body = '';
      request.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
      request.on('end', () => {
        received.push(body);
        response.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    port = (receiver.address() as { port: number }).port;
  });
  after(async () => {
    await new Promise((resolve) => receiver.close(resolve));
  });

  it('tells public addresses from loopback, private, link-local and reserved ones', () => {
    for (const address of ['127.0.0.1', '10.1.2.3', '172.16.5.4', '192.168.1.1', '169.254.169.254', '100.64.0.1', '0.0.0.0', '224.0.0.1', '::1', '::', 'fc00::1', 'fe80::1', '::ffff:127.0.0.1', '::ffff:10.0.0.1', 'not-an-ip']) {
      assert.equal(isPublicAddress(address), false, address);
    }
    for (const address of ['8.8.8.8', '1.1.1.1', '2606:4700:4700::1111', '::ffff:8.8.8.8']) assert.equal(isPublicAddress(address), true, address);
  });

  // Each range the December security review (18) found missing, plus every
  // non-unicast range of ipaddr.js: none may be reached from production.
  const NON_PUBLIC_TABLE: readonly (readonly [range: string, address: string])[] = [
    ['::/96 IPv4-compatible (loopback inside)', '::7f00:1'],
    ['::/96 IPv4-compatible (public inside, deprecated)', '::808:808'],
    ['::ffff:0:0/96 mapped, private inside', '::ffff:192.168.0.1'],
    ['::ffff:0:0/96 mapped, hex form', '::ffff:7f00:1'],
    ['64:ff9b::/96 NAT64 well-known prefix', '64:ff9b::7f00:1'],
    ['64:ff9b::/96 NAT64 with a public IPv4', '64:ff9b::808:808'],
    ['64:ff9b:1::/48 local-use NAT64', '64:ff9b:1::a00:1'],
    ['2002::/16 6to4', '2002:7f00:1::1'],
    ['2002::/16 6to4 with a public IPv4', '2002:808:808::1'],
    ['2001::/32 Teredo', '2001:0:4136:e378:8000:63bf:3fff:fdd2'],
    ['fec0::/10 site-local', 'fec0::1'],
    ['fc00::/7 unique local', 'fd12:3456::1'],
    ['fe80::/10 link-local with a zone', 'fe80::1%eth0'],
    ['ff00::/8 multicast', 'ff02::1'],
    ['100::/64 discard', '100::1'],
    ['2001:db8::/32 documentation', '2001:db8::1'],
    ['2001:2::/48 benchmarking', '2001:2::1'],
    ['2001:10::/28 ORCHID', '2001:10::1'],
    ['::ffff:0:0:0/96 RFC 6145', '::ffff:0:7f00:1'],
    ['5f00::/16 segment routing', '5f00::1'],
    ['3fff::/20 documentation', '3fff::1'],
    ['192.88.99.0/24 6to4 relay anycast', '192.88.99.1'],
    ['192.0.0.0/24 IETF protocol assignments', '192.0.0.8'],
    ['198.18.0.0/15 benchmarking', '198.18.0.1'],
    ['255.255.255.255 broadcast', '255.255.255.255'],
    ['240.0.0.0/4 reserved', '240.0.0.1'],
    ['192.175.48.0/24 AS112', '192.175.48.1'],
  ];
  for (const [range, address] of NON_PUBLIC_TABLE) {
    it(`security review 18: refuses ${range} (${address})`, () => {
      assert.equal(isPublicAddress(address), false);
    });
  }

  it('security review 18: still reaches global unicast IPv4 and IPv6 addresses', () => {
    for (const address of ['8.8.8.8', '2001:4860:4860::8888', '2a00:1450:4001::1', '::ffff:1.1.1.1']) assert.equal(isPublicAddress(address), true, address);
  });

  it('refuses a loopback URL, by address or by name, before sending anything, when only public addresses are allowed', async () => {
    const before = received.length;
    for (const url of [`http://127.0.0.1:${port}/logout`, `http://localhost:${port}/logout`, `http://[::1]:${port}/logout`]) {
      await assert.rejects(postForm(url, { logout_token: 'x' }, { publicOnly: true, timeoutMs: 2000 }), OutboundAddressError, url);
    }
    assert.equal(received.length, before, 'nothing reached the listener');
  });

  it('delivers to loopback when private networks are allowed (development)', async () => {
    const status = await postForm(`http://127.0.0.1:${port}/logout`, { logout_token: 'abc' }, { publicOnly: false, timeoutMs: 2000 });
    assert.equal(status, 204);
    assert.equal(received.at(-1), 'logout_token=abc');
  });
  it('gives up on a receiver that trickles its answer a byte at a time: one deadline for the whole exchange', async () => {
    const trickle = createServer((_request, response) => {
      response.writeHead(200);
      const timer = setInterval(() => response.write('x'), 20);
      response.on('close', () => clearInterval(timer));
    });
    await new Promise<void>((resolve) => trickle.listen(0, '127.0.0.1', resolve));
    try {
      const { port: trickling } = trickle.address() as { port: number };
      // Each byte comes well within the idle timeout; only the deadline stops it.
      await assert.rejects(postBody(`http://127.0.0.1:${trickling}/`, 'x', 'text/plain', { publicOnly: false, timeoutMs: 300, maxResponseBytes: 1_000_000 }), /timed out/);
      // With a small response limit it answers as soon as it has enough, without waiting for the end.
      const early = await postBody(`http://127.0.0.1:${trickling}/`, 'x', 'text/plain', { publicOnly: false, timeoutMs: 5_000, maxResponseBytes: 3 });
      assert.deepEqual(early, { status: 200, body: 'xxx' });
    } finally {
      trickle.closeAllConnections();
      await new Promise<void>((resolve) => trickle.close(() => resolve()));
    }
  });
});
