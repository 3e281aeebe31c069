/**
 * Requests to URLs a client registered (back-channel logout): in production
 * nothing on loopback, private, link-local or reserved networks is reached,
 * whether the URL names the address or a name that resolves to it.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { OutboundAddressError, isPublicAddress, postForm } from '../../src/oauth/outbound.ts';

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
});
