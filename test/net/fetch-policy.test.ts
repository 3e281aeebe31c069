/**
 * Plugins' `http.fetch` (fetchWithPolicy): every request is a real attempt
 * against HTTPS servers on loopback (a certificate from a test CA made by
 * openssl), and each refusal is checked by its code and by what the servers
 * saw: a refused origin or address is never connected to, an oversized
 * answer's socket is closed by the client.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isPublicAddress } from '../../src/net/address.ts';
import { FetchPolicyError, fetchWithAddressRule, fetchWithPolicy, type FetchPolicy, type FetchPolicyErrorCode } from '../../src/net/fetch.ts';
import { OpensslCa } from '../support/openssl-ca.ts';

type Handler = (request: IncomingMessage, response: ServerResponse) => void;

interface TestServer {
  readonly origin: string;
  readonly port: number;
  /** TCP connections accepted. */
  readonly connections: number;
  /** `METHOD path` of every request received. */
  readonly requests: readonly string[];
  close(): Promise<void>;
}

let dir: string;
let ca: string;
let tls: { readonly cert: string; readonly key: string };
const servers: TestServer[] = [];

async function serve(handler: Handler, host = '127.0.0.1'): Promise<TestServer> {
  const requests: string[] = [];
  let connections = 0;
  const server: Server = createServer(tls, (request, response) => {
    requests.push(`${request.method} ${request.url}`);
    handler(request, response);
  });
  server.on('connection', () => (connections += 1));
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const { port } = server.address() as { port: number };
  const made: TestServer = {
    origin: `https://${host.includes(':') ? `[${host}]` : host}:${port}`,
    port,
    get connections() {
      return connections;
    },
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  servers.push(made);
  return made;
}

function readBody(request: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    let body = '';
    request.setEncoding('utf8');
    request.on('data', (chunk: string) => (body += chunk));
    request.on('end', () => resolve(body));
  });
}

/** The routes of the main test server. */
const routes: Handler = (request, response) => {
  const url = new URL(request.url ?? '/', 'https://test.invalid');
  if (url.pathname === '/echo') {
    void readBody(request).then((body) => {
      response.writeHead(200, { 'Content-Type': 'application/json', 'X-Custom': 'Value', 'Set-Cookie': ['a=b', 'c=d'] });
      response.end(JSON.stringify({ method: request.method, path: request.url, headers: request.headers, body }));
    });
  } else if (url.pathname === '/redirect') {
    response.writeHead(Number(url.searchParams.get('status')), { location: url.searchParams.get('to') ?? '/' }).end();
  } else if (url.pathname.startsWith('/loop/')) {
    response.writeHead(302, { location: `/loop/${Number(url.pathname.slice('/loop/'.length)) + 1}` }).end();
  } else if (url.pathname === '/many-headers') {
    for (let i = 0; i < 100; i += 1) response.setHeader(`X-Header-${String(i).padStart(3, '0')}`, String(i));
    response.end('ok');
  } else if (url.pathname === '/declared-large') {
    // HEAD: the length of a body that is not sent.
    response.writeHead(200, { 'content-length': String(2 ** 30) }).end();
  } else {
    response.writeHead(404).end();
  }
};

let main: TestServer;
let other: TestServer;

const open = (overrides: Partial<FetchPolicy> = {}): FetchPolicy => ({ origins: [main.origin], publicOnly: false, timeoutMs: 10_000, maxResponseBytes: 64 * 1024, ca, ...overrides });

async function refused(attempt: Promise<unknown>, code: FetchPolicyErrorCode): Promise<FetchPolicyError> {
  try {
    await attempt;
  } catch (error) {
    assert.ok(error instanceof FetchPolicyError, `a FetchPolicyError, not ${String(error)}`);
    assert.equal(error.code, code, error.message);
    return error;
  }
  return assert.fail(`expected ${code}, but the request succeeded`);
}

interface Echo {
  readonly method: string;
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly body: string;
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'portcullis-fetch-'));
  const authority = OpensslCa.create(dir, 'fetch test CA');
  const issued = authority.issue('server', { kind: 'server', ipAddresses: ['127.0.0.1', '127.0.0.2', '::1'], dnsNames: ['localhost'] });
  ca = authority.cert;
  tls = { cert: issued.cert, key: issued.key };
  main = await serve(routes);
  other = await serve(routes);
});

after(async () => {
  await Promise.all(servers.map((server) => server.close()));
  rmSync(dir, { recursive: true, force: true });
});

describe('fetchWithPolicy: allowed requests', () => {
  it('GETs from a listed origin: status, headers lowercased, set-cookie dropped, identity encoding asked for', async () => {
    const response = await fetchWithPolicy({ url: `${main.origin}/echo?x=1`, headers: { 'X-Plugin': 'yes', Accept: 'application/json' } }, open());
    assert.equal(response.status, 200);
    assert.equal(response.url, `${main.origin}/echo?x=1`);
    assert.equal(response.headers['x-custom'], 'Value');
    assert.equal(response.headers['content-type'], 'application/json');
    assert.equal('set-cookie' in response.headers, false);
    assert.deepEqual(Object.keys(response.headers).filter((name) => name !== name.toLowerCase()), []);
    const echo = JSON.parse(response.body) as Echo;
    assert.equal(echo.method, 'GET');
    assert.equal(echo.path, '/echo?x=1');
    assert.equal(echo.headers['x-plugin'], 'yes');
    assert.equal(echo.headers['accept'], 'application/json');
    assert.equal(echo.headers['accept-encoding'], 'identity');
    assert.equal(echo.headers['cookie'], undefined);
  });

  it('POSTs a body, which the server echoes', async () => {
    const body = JSON.stringify({ hello: 'wörld' });
    const response = await fetchWithPolicy({ url: `${main.origin}/echo`, method: 'POST', headers: { 'content-type': 'application/json' }, body }, open());
    const echo = JSON.parse(response.body) as Echo;
    assert.equal(echo.method, 'POST');
    assert.equal(echo.body, body);
    assert.equal(echo.headers['content-length'], String(Buffer.byteLength(body)));
    assert.equal(echo.headers['content-type'], 'application/json');
  });

  it('compares origins as URL.origin normalises them (case, default port, trailing slash)', async () => {
    const response = await fetchWithPolicy({ url: `https://LOCALHOST:${main.port}/echo` }, open({ origins: [`https://localhost:${main.port}/`] }));
    assert.equal(response.status, 200);
    assert.equal(response.url, `https://localhost:${main.port}/echo`);
    // The port is part of the origin: https://127.0.0.1 (443) does not cover another port.
    await refused(fetchWithPolicy({ url: `${main.origin}/echo` }, open({ origins: ['https://127.0.0.1:443'] })), 'origin_not_allowed');
  });

  it('keeps at most 64 response headers', async () => {
    const response = await fetchWithPolicy({ url: `${main.origin}/many-headers` }, open());
    assert.equal(response.body, 'ok');
    assert.equal(Object.keys(response.headers).length, 64);
  });

  it('answers a HEAD whose Content-Length is past the cap: no body comes', async () => {
    const response = await fetchWithPolicy({ url: `${main.origin}/declared-large`, method: 'HEAD' }, open());
    assert.equal(response.status, 200);
    assert.equal(response.body, '');
  });
});

describe('fetchWithPolicy: origins', () => {
  it('refuses an unlisted origin before connecting', async () => {
    const error = await refused(fetchWithPolicy({ url: `${other.origin}/echo` }, open()), 'origin_not_allowed');
    assert.equal(error.message, `the origin ${other.origin} is not in the plugin's allow-list`);
    assert.equal(other.connections, 0);
  });

  it("refuses a redirect from a listed origin to an unlisted one; the second server sees nothing", async () => {
    const before = main.requests.length;
    const to = encodeURIComponent(`${other.origin}/echo`);
    await refused(fetchWithPolicy({ url: `${main.origin}/redirect?status=302&to=${to}` }, open()), 'origin_not_allowed');
    assert.equal(main.requests.length, before + 1);
    assert.equal(other.connections, 0);
  });

  it('refuses a redirect to http: even on a listed host', async () => {
    const to = encodeURIComponent(`http://127.0.0.1:${main.port}/echo`);
    await refused(fetchWithPolicy({ url: `${main.origin}/redirect?status=302&to=${to}` }, open()), 'origin_not_allowed');
  });
});

describe('fetchWithPolicy: redirects', () => {
  it('follows a redirect to another listed origin, dropping the credentials meant for the first', async () => {
    const to = encodeURIComponent(`${other.origin}/echo`);
    const response = await fetchWithPolicy(
      { url: `${main.origin}/redirect?status=307&to=${to}`, headers: { authorization: 'Bearer for-main', 'x-plugin': 'kept' } },
      open({ origins: [main.origin, other.origin] }),
    );
    assert.equal(response.url, `${other.origin}/echo`);
    const echo = JSON.parse(response.body) as Echo;
    assert.equal(echo.headers['authorization'], undefined);
    assert.equal(echo.headers['x-plugin'], 'kept');
  });

  it('303 turns a POST into a GET without body or content-type', async () => {
    const response = await fetchWithPolicy({ url: `${main.origin}/redirect?status=303&to=/echo`, method: 'POST', headers: { 'content-type': 'text/plain', authorization: 'Bearer same-origin' }, body: 'payload' }, open());
    const echo = JSON.parse(response.body) as Echo;
    assert.equal(echo.method, 'GET');
    assert.equal(echo.body, '');
    assert.equal(echo.headers['content-type'], undefined);
    assert.equal(echo.headers['content-length'], undefined);
    assert.equal(echo.headers['authorization'], 'Bearer same-origin', 'a same-origin hop keeps the credential');
  });

  it('301 and 302 turn a PUT into a GET; 307 and 308 keep the method and body', async () => {
    for (const [status, method, body] of [
      [301, 'GET', ''],
      [302, 'GET', ''],
      [307, 'PUT', 'payload'],
      [308, 'PUT', 'payload'],
    ] as const) {
      const response = await fetchWithPolicy({ url: `${main.origin}/redirect?status=${status}&to=/echo`, method: 'PUT', body: 'payload' }, open());
      const echo = JSON.parse(response.body) as Echo;
      assert.deepEqual([echo.method, echo.body], [method, body], String(status));
    }
  });

  it('refuses a chain longer than maxRedirects, after maxRedirects + 1 requests', async () => {
    const before = main.requests.length;
    await refused(fetchWithPolicy({ url: `${main.origin}/loop/0` }, open({ maxRedirects: 2 })), 'too_many_redirects');
    assert.deepEqual(main.requests.slice(before), ['GET /loop/0', 'GET /loop/1', 'GET /loop/2']);
  });

  it('follows 3 redirects by default, not 4', async () => {
    const before = main.requests.length;
    await refused(fetchWithPolicy({ url: `${main.origin}/loop/0` }, open()), 'too_many_redirects');
    assert.equal(main.requests.length - before, 4);
  });
});

describe('fetchWithPolicy: addresses (publicOnly)', () => {
  it('refuses a listed name that resolves to loopback, at the lookup: no connection', async () => {
    const error = await refused(fetchWithPolicy({ url: `https://localhost:${main.port}/echo` }, open({ publicOnly: true, origins: [`https://localhost:${main.port}`] })), 'address_not_allowed');
    assert.doesNotMatch(error.message, /127\.0\.0\.1/);
    // The connection count of main covers every test so far; this one must add none.
    const connections = main.connections;
    await refused(fetchWithPolicy({ url: `https://localhost:${main.port}/echo` }, open({ publicOnly: true, origins: [`https://localhost:${main.port}`] })), 'address_not_allowed');
    assert.equal(main.connections, connections);
  });

  it('refuses IP literals outside the public internet without connecting', async () => {
    const v6 = await serve(routes, '::1');
    const connections = main.connections;
    const urls = [
      `${main.origin}/echo`,
      `https://2130706433:${main.port}/echo`,
      `${v6.origin}/echo`,
      `https://[::ffff:127.0.0.1]:${main.port}/echo`,
      'https://169.254.169.254/latest/meta-data/',
      'https://10.0.0.1/',
      'https://[fd00::1]/',
    ];
    for (const url of urls) {
      const origin = new URL(url).origin;
      await refused(fetchWithPolicy({ url }, open({ publicOnly: true, origins: [origin], timeoutMs: 5_000 })), 'address_not_allowed');
    }
    assert.equal(main.connections, connections);
    assert.equal(v6.connections, 0);
  });

  describe('a redirect hop is checked again', () => {
    // 127.0.0.2 stands in for a public server: the address rule is
    // production's (isPublicAddress) plus that one address.
    const standIn = (address: string) => address === '127.0.0.2' || isPublicAddress(address);
    let publicServer: TestServer;
    before(async () => {
      publicServer = await serve(routes, '127.0.0.2');
    });

    it('the stand-in itself is reached under publicOnly (the control)', async () => {
      const response = await fetchWithAddressRule({ url: `${publicServer.origin}/echo` }, open({ publicOnly: true, origins: [publicServer.origin] }), standIn);
      assert.equal(response.status, 200);
    });

    it('refuses a redirect to https://127.0.0.1:<port> of a listed origin without connecting', async () => {
      const connections = main.connections;
      const to = encodeURIComponent(`${main.origin}/echo`);
      await refused(fetchWithAddressRule({ url: `${publicServer.origin}/redirect?status=302&to=${to}` }, open({ publicOnly: true, origins: [publicServer.origin, main.origin] }), standIn), 'address_not_allowed');
      assert.equal(publicServer.requests.at(-1), `GET /redirect?status=302&to=${to}`);
      assert.equal(main.connections, connections);
    });

    it('refuses a redirect to a listed name that resolves to loopback', async () => {
      const connections = main.connections;
      const target = `https://localhost:${main.port}`;
      await refused(
        fetchWithAddressRule({ url: `${publicServer.origin}/redirect?status=307&to=${encodeURIComponent(`${target}/echo`)}` }, open({ publicOnly: true, origins: [publicServer.origin, target] }), standIn),
        'address_not_allowed',
      );
      assert.equal(main.connections, connections);
    });
  });
});

describe('fetchWithPolicy: invalid requests', () => {
  const bad = (): readonly (readonly [label: string, request: unknown, field: string])[] => [
    ['null', null, 'request'],
    ['a string', `${main.origin}/echo`, 'request'],
    ['an array', [`${main.origin}/echo`], 'request'],
    ['an unknown field', { url: `${main.origin}/echo`, redirect: 'manual' }, 'request'],
    ['no url', {}, 'url'],
    ['a url that is not a string', { url: new URL(`${main.origin}/echo`) }, 'url'],
    ['a relative url', { url: '/echo' }, 'url'],
    ['an http: url', { url: `http://127.0.0.1:${main.port}/echo` }, 'url'],
    ['a file: url', { url: 'file:///etc/passwd' }, 'url'],
    ['a url with userinfo', { url: `https://user:secret@127.0.0.1:${main.port}/echo` }, 'url'],
    ['a url with a user name only', { url: `https://user@127.0.0.1:${main.port}/echo` }, 'url'],
    ['a url over 2048 characters', { url: `${main.origin}/echo?${'a'.repeat(2048)}` }, 'url'],
    ['a lowercase method', { url: `${main.origin}/echo`, method: 'get' }, 'method'],
    ['TRACE', { url: `${main.origin}/echo`, method: 'TRACE' }, 'method'],
    ['CONNECT', { url: `${main.origin}/echo`, method: 'CONNECT' }, 'method'],
    ['a numeric method', { url: `${main.origin}/echo`, method: 1 }, 'method'],
    ['headers as an array', { url: `${main.origin}/echo`, headers: [['x-a', '1']] }, 'headers'],
    ['headers null', { url: `${main.origin}/echo`, headers: null }, 'headers'],
    ['a header value that is not a string', { url: `${main.origin}/echo`, headers: { 'x-a': 1 } }, 'headers'],
    ['a nested header value', { url: `${main.origin}/echo`, headers: { 'x-a': ['1', '2'] } }, 'headers'],
    ['a header name with a space', { url: `${main.origin}/echo`, headers: { 'x a': '1' } }, 'headers'],
    ['a header name with a colon', { url: `${main.origin}/echo`, headers: { 'x-a:': '1' } }, 'headers'],
    ['an empty header name', { url: `${main.origin}/echo`, headers: { '': '1' } }, 'headers'],
    ['a header value with CRLF', { url: `${main.origin}/echo`, headers: { 'x-a': '1\r\nhost: evil' } }, 'headers'],
    ['a header value with LF', { url: `${main.origin}/echo`, headers: { 'x-a': '1\nx' } }, 'headers'],
    ['a header value with NUL', { url: `${main.origin}/echo`, headers: { 'x-a': '1\u0000' } }, 'headers'],
    ['a header value past latin-1', { url: `${main.origin}/echo`, headers: { 'x-a': '\u2028' } }, 'headers'],
    ['the same header twice by case', { url: `${main.origin}/echo`, headers: { 'X-A': '1', 'x-a': '2' } }, 'headers'],
    ['33 headers', { url: `${main.origin}/echo`, headers: Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`x-${i}`, '1'])) }, 'headers'],
    ['headers over 8 KiB', { url: `${main.origin}/echo`, headers: { 'x-a': 'a'.repeat(5000), 'x-b': 'b'.repeat(5000) } }, 'headers'],
    ...['Host', 'connection', 'Content-Length', 'transfer-encoding', 'upgrade', 'Proxy-Authorization', 'proxy-connection', 'TE', 'trailer', 'keep-alive', 'expect'].map(
      (name) => [`the forbidden header ${name}`, { url: `${main.origin}/echo`, method: 'POST', headers: { [name]: 'x' } }, 'headers'] as const,
    ),
    ['a body that is not a string', { url: `${main.origin}/echo`, method: 'POST', body: { a: 1 } }, 'body'],
    ['a body as bytes', { url: `${main.origin}/echo`, method: 'POST', body: new Uint8Array([1]) }, 'body'],
    ['a body with GET', { url: `${main.origin}/echo`, method: 'GET', body: 'x' }, 'body'],
    ['a body with the default method', { url: `${main.origin}/echo`, body: 'x' }, 'body'],
    ['a body with HEAD', { url: `${main.origin}/echo`, method: 'HEAD', body: 'x' }, 'body'],
    ['a body over 256 KiB', { url: `${main.origin}/echo`, method: 'POST', body: 'a'.repeat(256 * 1024 + 1) }, 'body'],
    ['a body over 256 KiB in UTF-8 bytes', { url: `${main.origin}/echo`, method: 'POST', body: 'é'.repeat(128 * 1024 + 1) }, 'body'],
  ];

  it('refuses each malformed request with invalid_request naming the field, without connecting', async () => {
    const connections = main.connections;
    for (const [label, request, field] of bad()) {
      const error = await refused(fetchWithPolicy(request, open()), 'invalid_request').catch((failure: unknown) => assert.fail(`${label}: ${String(failure)}`));
      assert.ok(error.message.startsWith(`${field}: `), `${label}: ${error.message}`);
      assert.ok(error.message.length <= 120, `${label}: the message stays short`);
    }
    assert.equal(main.connections, connections);
  });

  it('accepts the limits themselves: 32 headers, a 256 KiB body, DELETE with a body', async () => {
    const headers = Object.fromEntries(Array.from({ length: 32 }, (_, i) => [`x-${i}`, '1']));
    const body = 'a'.repeat(256 * 1024);
    const response = await fetchWithPolicy({ url: `${main.origin}/echo`, method: 'DELETE', headers, body }, open({ maxResponseBytes: 1024 * 1024 }));
    const echo = JSON.parse(response.body) as Echo;
    assert.equal(echo.method, 'DELETE');
    assert.equal(echo.body.length, body.length);
    assert.equal(echo.headers['x-31'], '1');
  });

  it('does not echo a long header name back', async () => {
    const error = await refused(fetchWithPolicy({ url: `${main.origin}/echo`, headers: { [`x ${'a'.repeat(500)}`]: '1' } }, open()), 'invalid_request');
    assert.ok(error.message.length < 100, error.message);
  });
});

describe('fetchWithPolicy: response size, deadline, abort, failures', () => {
  /** A server that streams without end; `closed` resolves with the bytes it had sent when the client dropped the socket. */
  async function endless(declareLength: boolean): Promise<{ server: TestServer; closed: Promise<number> }> {
    let report: (sent: number) => void = () => undefined;
    const closed = new Promise<number>((resolve) => (report = resolve));
    const chunk = Buffer.alloc(64 * 1024, 'x');
    const server = await serve((_request, response) => {
      let sent = 0;
      response.writeHead(200, declareLength ? { 'content-length': String(2 ** 30) } : {});
      response.on('close', () => report(sent));
      const pump = (): void => {
        // 50 MiB and then silence: never an end.
        while (!response.destroyed && sent < 50 * 1024 * 1024) {
          sent += chunk.length;
          if (!response.write(chunk)) {
            response.once('drain', pump);
            return;
          }
        }
      };
      pump();
    });
    return { server, closed };
  }

  it('refuses a streamed body past maxResponseBytes and drops the socket before the server is done', async () => {
    const { server, closed } = await endless(false);
    const error = await refused(fetchWithPolicy({ url: `${server.origin}/` }, open({ origins: [server.origin], maxResponseBytes: 256 * 1024, timeoutMs: 15_000 })), 'response_too_large');
    assert.equal(error.message, 'the response body is larger than 262144 bytes');
    const sent = await closed;
    assert.ok(sent < 50 * 1024 * 1024, `the client closed the socket after ${sent} bytes, before the end of the stream`);
  });

  it('refuses a declared 1 GiB body from its Content-Length, and drops the socket', async () => {
    const { server, closed } = await endless(true);
    await refused(fetchWithPolicy({ url: `${server.origin}/` }, open({ origins: [server.origin], timeoutMs: 15_000 })), 'response_too_large');
    assert.ok((await closed) < 50 * 1024 * 1024);
  });

  it('gives up on a server that never answers: timeout', async () => {
    const silent = await serve(() => undefined);
    const error = await refused(fetchWithPolicy({ url: `${silent.origin}/` }, open({ origins: [silent.origin], timeoutMs: 200 })), 'timeout');
    assert.equal(error.message, 'the request did not complete within 200 ms');
    assert.equal(silent.requests.length, 1);
  });

  it('one deadline covers the body too: a server that trickles bytes is given up', async () => {
    const trickle = await serve((_request, response) => {
      response.writeHead(200);
      const timer = setInterval(() => response.write('x'), 20);
      response.on('close', () => clearInterval(timer));
    });
    await refused(fetchWithPolicy({ url: `${trickle.origin}/` }, open({ origins: [trickle.origin], timeoutMs: 300 })), 'timeout');
  });

  it("rejects with the signal's reason when the caller aborts, and closes the connection", async () => {
    const controller = new AbortController();
    const reason = new Error('the plugin call ended');
    let closed: () => void = () => undefined;
    const socketClosed = new Promise<void>((resolve) => (closed = resolve));
    const waiting = await serve((request) => {
      request.socket.on('close', closed);
      controller.abort(reason);
    });
    await assert.rejects(fetchWithPolicy({ url: `${waiting.origin}/` }, open({ origins: [waiting.origin], signal: controller.signal })), (error) => error === reason);
    await socketClosed;
    // An already aborted signal: nothing is sent.
    await assert.rejects(fetchWithPolicy({ url: `${waiting.origin}/` }, open({ origins: [waiting.origin], signal: AbortSignal.abort(reason) })), (error) => error === reason);
    assert.equal(waiting.connections, 1);
  });

  it('reports a refused connection as network_error with a fixed sentence: no address, no port, no stack', async () => {
    const gone = await serve(routes);
    await gone.close();
    const error = await refused(fetchWithPolicy({ url: `${gone.origin}/` }, open({ origins: [gone.origin] })), 'network_error');
    assert.equal(error.message, 'the connection was refused');
    assert.equal(error.stack, 'FetchPolicyError: the connection was refused');
  });

  it('refuses a server whose certificate is not trusted (no ca given)', async () => {
    const error = await refused(fetchWithPolicy({ url: `${main.origin}/echo` }, { origins: [main.origin], publicOnly: false, timeoutMs: 10_000, maxResponseBytes: 1024 }), 'network_error');
    assert.match(error.message, /TLS/);
  });
});
