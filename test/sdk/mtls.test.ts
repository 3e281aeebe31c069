/**
 * `portcullis/sdk/mtls` on real sockets: a CA, a foreign CA, server and
 * client X509-SVIDs made by openssl (ECDSA P-256) in a temporary
 * directory; servers from createMtlsServerOptions, clients through
 * createMtlsAgent with node:https and undici. Reloads are awaited through
 * onReload / onError (a timeout only bounds a failure), files are replaced
 * the way tools do it (temporary file + rename) or written in place.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes, X509Certificate } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { IncomingMessage, type ServerResponse } from 'node:http';
import { createServer, request, type Server } from 'node:https';
import { Socket, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type TLSSocket } from 'node:tls';
import { Agent as UndiciAgent, request as undiciRequest } from 'undici';
import {
  allowSpiffeIds,
  createMtlsAgent,
  createMtlsServerOptions,
  MtlsMaterialError,
  parseSpiffeId,
  requireSpiffeId,
  spiffeIdOf,
  SpiffeIdForbiddenError,
  type MtlsAgent,
  type MtlsServerOptions,
  type ReloadEvent,
} from '../../src/sdk/mtls/index.ts';

const BILLING = 'spiffe://example.org/ns/prod/sa/billing';
const API = 'spiffe://example.org/ns/prod/sa/api';
/** Short, so the tests do not wait long; the debounce itself is not what they measure. */
const DEBOUNCE_MS = 20;
/** Only a bound on a failure: every wait ends on an event long before. */
const EVENT_TIMEOUT_MS = 10_000;

const root = mkdtempSync(join(tmpdir(), 'portcullis-sdk-mtls-'));
const issued = join(root, 'issued');
mkdirSync(issued);

interface Issued {
  readonly cert: string;
  readonly key: string;
  readonly serial: string;
}

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

function newKey(name: string): string {
  const key = join(issued, `${name}.key`);
  openssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', key);
  return key;
}

/** A self-signed CA whose own SPIFFE ID is the trust domain's (X509-SVID section 3.2). */
function newCa(name: string, trustDomain: string): Issued {
  const key = newKey(name);
  const cert = join(issued, `${name}.crt`);
  openssl('req', '-x509', '-new', '-key', key, '-out', cert, '-days', '1', '-subj', `/CN=${name}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-addext', `subjectAltName=URI:spiffe://${trustDomain}`);
  return { cert, key, serial: new X509Certificate(readFileSync(cert)).serialNumber };
}

/** A leaf signed by `ca` with a fresh random serial, for `key` (a new one unless given). */
function newLeaf(name: string, ca: Issued, subjectAltName: string, key = newKey(name)): Issued {
  const csr = join(issued, `${name}.csr`);
  const cert = join(issued, `${name}.crt`);
  const extensions = join(issued, `${name}.ext`);
  writeFileSync(extensions, ['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature', 'extendedKeyUsage=serverAuth,clientAuth', `subjectAltName=${subjectAltName}`].join('\n'));
  openssl('req', '-new', '-key', key, '-subj', `/CN=${name}`, '-out', csr);
  openssl('x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-set_serial', `0x${randomBytes(8).toString('hex')}`, '-days', '1', '-extfile', extensions, '-out', cert);
  return { cert, key, serial: new X509Certificate(readFileSync(cert)).serialNumber };
}

const ca = newCa('ca', 'example.org');
const foreignCa = newCa('foreign-ca', 'example.org');
const serverV1 = newLeaf('server-v1', ca, `URI:${API},DNS:localhost,IP:127.0.0.1`);
const serverV2 = newLeaf('server-v2', ca, `URI:${API},DNS:localhost,IP:127.0.0.1`);
const billingV1 = newLeaf('billing-v1', ca, `URI:${BILLING},DNS:billing.internal`);
/** Re-issued for the same key: only the certificate file changes on rotation. */
const billingV2 = newLeaf('billing-v2', ca, `URI:${BILLING},DNS:billing.internal`, billingV1.key);
const foreignBilling = newLeaf('foreign-billing', foreignCa, `URI:${BILLING},DNS:billing.internal`);
const twoUris = newLeaf('two-uris', ca, `URI:${BILLING},URI:spiffe://example.org/ns/prod/sa/other`);
const upperCaseDomain = newLeaf('upper', ca, 'URI:spiffe://Example.org/ns/prod/sa/billing');
const withQuery = newLeaf('query', ca, 'URI:spiffe://example.org/ns/prod/sa/billing?x=1');
const rootId = newLeaf('root-id', ca, 'URI:spiffe://example.org,DNS:root.internal');
const noUri = newLeaf('no-uri', ca, 'DNS:plain.internal');

/** A directory of live files (cert.pem, key.pem, ca.pem) as a workload has them, the one the SDK watches. */
function workloadDir(name: string, leaf: Issued, trust: Issued = ca): { certFile: string; keyFile: string; caFile: string } {
  const dir = join(root, name);
  mkdirSync(dir);
  const files = { certFile: join(dir, 'cert.pem'), keyFile: join(dir, 'key.pem'), caFile: join(dir, 'ca.pem') };
  copyFileSync(leaf.cert, files.certFile);
  copyFileSync(leaf.key, files.keyFile);
  copyFileSync(trust.cert, files.caFile);
  return files;
}

/** Replaces `target` the way rotation tools do: write a temporary file beside it, rename it over. */
function replaceAtomically(source: string, target: string): void {
  const temporary = `${target}.tmp-${randomBytes(4).toString('hex')}`;
  copyFileSync(source, temporary);
  renameSync(temporary, target);
}

/** Resolves with the next value pushed, rejects after EVENT_TIMEOUT_MS (a failure bound, not a wait). */
class Events<T> {
  readonly #queue: T[] = [];
  readonly #waiting: ((value: T) => void)[] = [];

  readonly push = (value: T): void => {
    const waiter = this.#waiting.shift();
    if (waiter) waiter(value);
    else this.#queue.push(value);
  };

  next(what: string): Promise<T> {
    if (this.#queue.length > 0) return Promise.resolve(this.#queue.shift()!);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${what} within ${EVENT_TIMEOUT_MS} ms`)), EVENT_TIMEOUT_MS);
      this.#waiting.push((value) => {
        clearTimeout(timer);
        resolve(value);
      });
    });
  }

  get pending(): number {
    return this.#queue.length;
  }

  /** Forgets what arrived so far (events of earlier tests on a shared server). */
  drain(): void {
    this.#queue.length = 0;
  }
}

/** What the test servers answer: who the client is, on which connection. */
interface Seen {
  readonly spiffeId: string | undefined;
  readonly serial: string | undefined;
  readonly remotePort: number;
  readonly resumed: boolean;
}

/** A 'tlsClientError' and the verification result of its socket. */
type HandshakeError = Error & { readonly authorizationError: string | Error | undefined };

interface TestServer {
  readonly server: Server;
  readonly url: string;
  readonly mtls: MtlsServerOptions;
  readonly reloads: Events<ReloadEvent>;
  readonly errors: Events<Error>;
  readonly handshakeErrors: Events<HandshakeError>;
  /** Requests the handler saw. */
  handled: number;
  /** Connections that completed the handshake and were verified ('secureConnection'). */
  secured: number;
}

const toClose: (() => unknown)[] = [];
after(async () => {
  for (const close of toClose.reverse()) await close();
  rmSync(root, { recursive: true, force: true });
});

const adminOnly = requireSpiffeId(['spiffe://example.org/ns/prod/sa/admin']);

async function startServer(name: string, leaf: Issued, allow?: readonly string[]): Promise<TestServer> {
  const reloads = new Events<ReloadEvent>();
  const errors = new Events<Error>();
  const handshakeErrors = new Events<HandshakeError>();
  const mtls = createMtlsServerOptions({ ...workloadDir(name, leaf), debounceMs: DEBOUNCE_MS, onReload: reloads.push, onError: errors.push, ...(allow ? { allow } : {}) });
  const state = { handled: 0, secured: 0 };
  const server = createServer({ ...mtls.options, keepAliveTimeout: 60_000 }, (req, res: ServerResponse) => {
    state.handled++;
    const socket = req.socket as TLSSocket;
    if (req.url === '/admin') {
      try {
        adminOnly(req);
      } catch (error) {
        res.writeHead((error as SpiffeIdForbiddenError).statusCode).end((error as Error).message);
        return;
      }
    }
    const seen: Seen = { spiffeId: spiffeIdOf(socket), serial: socket.getPeerX509Certificate()?.serialNumber, remotePort: socket.remotePort!, resumed: socket.isSessionReused() };
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(seen));
  });
  server.on('tlsClientError', (error, socket) => handshakeErrors.push(Object.assign(error, { authorizationError: socket.authorizationError })));
  server.on('secureConnection', () => state.secured++);
  mtls.attach(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  toClose.push(() => new Promise((resolve) => server.close(resolve)), () => server.closeAllConnections(), () => mtls.close());
  return Object.assign(state, { server, url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`, mtls, reloads, errors, handshakeErrors });
}

interface TestAgent {
  readonly agent: MtlsAgent;
  readonly files: { certFile: string; keyFile: string; caFile: string };
  readonly reloads: Events<ReloadEvent>;
  readonly errors: Events<Error>;
}

function startAgent(name: string, leaf: Issued, options: { allow?: readonly string[] } = {}): TestAgent {
  const files = workloadDir(name, leaf);
  const reloads = new Events<ReloadEvent>();
  const errors = new Events<Error>();
  const agent = createMtlsAgent({ ...files, debounceMs: DEBOUNCE_MS, onReload: reloads.push, onError: errors.push, ...options });
  toClose.push(() => agent.destroy());
  return { agent, files, reloads, errors };
}

interface Answer {
  readonly status: number;
  readonly body: string;
  /** The certificate the server presented on this connection. */
  readonly serverSerial: string | undefined;
}

function get(url: string, agent: MtlsAgent | false, extra: Record<string, unknown> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const outgoing = request(url, { agent, ...extra }, (response) => {
      // Read now: at 'end' the socket is back in the pool and no longer the response's.
      const serverSerial = (response.socket as TLSSocket).getPeerX509Certificate()?.serialNumber;
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode!, body, serverSerial }));
    });
    outgoing.on('error', reject);
    outgoing.end();
  });
}

async function seen(url: string, agent: MtlsAgent): Promise<Seen & { serverSerial: string | undefined }> {
  const answer = await get(url, agent);
  assert.equal(answer.status, 200, answer.body);
  return { ...(JSON.parse(answer.body) as Seen), serverSerial: answer.serverSerial };
}

describe('portcullis/sdk/mtls on real sockets', () => {
  let main: TestServer;

  before(async () => {
    main = await startServer('main-server', serverV1);
  });

  it('node:https through createMtlsAgent: the handshake succeeds and the server reads the SPIFFE ID of the client certificate', async () => {
    const { agent } = startAgent('https-client', billingV1);
    const first = await seen(`${main.url}/whoami`, agent);
    assert.equal(first.spiffeId, BILLING);
    assert.equal(first.serial, billingV1.serial);
    assert.equal(first.serverSerial, serverV1.serial);
    assert.equal(agent.certificate.serialNumber, billingV1.serial);
  });

  it('undici through agent.connect: the same handshake, the same SPIFFE ID', async () => {
    const { agent } = startAgent('undici-client', billingV1);
    const dispatcher = new UndiciAgent({ connect: agent.connect });
    toClose.push(() => dispatcher.close());
    const response = await undiciRequest(`${main.url}/whoami`, { dispatcher });
    assert.equal(response.statusCode, 200);
    const body = (await response.body.json()) as Seen;
    assert.equal(body.spiffeId, BILLING);
    assert.equal(body.serial, billingV1.serial);
  });

  it('undici through agent.connect refuses a server whose certificate the CA bundle does not verify', async () => {
    const foreignServer = await startServer('foreign-server', newLeaf('foreign-server', foreignCa, 'IP:127.0.0.1'));
    const { agent } = startAgent('undici-client-2', billingV1);
    const dispatcher = new UndiciAgent({ connect: agent.connect });
    toClose.push(() => dispatcher.close());
    await assert.rejects(undiciRequest(`${foreignServer.url}/whoami`, { dispatcher }), { code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' });
    assert.equal(foreignServer.handled, 0);
  });

  it('a client without a certificate is refused at the handshake, before any request', async () => {
    main.handshakeErrors.drain();
    const handled = main.handled;
    const secured = main.secured;
    await assert.rejects(get(`${main.url}/whoami`, false, { ca: readFileSync(ca.cert) }), (error: NodeJS.ErrnoException) => {
      assert.match(String(error.code), /CERTIFICATE_REQUIRED|ECONNRESET/);
      return true;
    });
    const refused = await main.handshakeErrors.next('tlsClientError');
    assert.match(refused.message, /peer did not return a certificate/);
    assert.equal(main.secured, secured);
    assert.equal(main.handled, handled);
  });

  it("a client certificate from a foreign CA is refused as the handshake ends, before 'secureConnection', whatever SPIFFE ID it names", async () => {
    const { agent } = startAgent('foreign-client', foreignBilling);
    main.handshakeErrors.drain();
    const handled = main.handled;
    const secured = main.secured;
    await assert.rejects(get(`${main.url}/whoami`, agent), { code: 'ECONNRESET' });
    // Node completes the TLS handshake, finds the chain unverified and closes the connection before 'secureConnection'.
    const refused = await main.handshakeErrors.next('tlsClientError');
    assert.equal(refused.authorizationError, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE');
    assert.equal(main.secured, secured);
    assert.equal(main.handled, handled);
  });

  it('rotation: a certificate renamed over the old one is used by the next new connection (no resumed old session), an open keep-alive connection keeps working', async () => {
    const { agent, files, reloads, errors } = startAgent('rotating-client', billingV1);
    const first = await seen(`${main.url}/whoami`, agent);
    assert.equal(first.serial, billingV1.serial);
    // Two at once: one takes the idle connection, the other opens a second one, which resumes the
    // first one's TLS session. That is why rotation has to drop sessions: a resumed session keeps
    // the identity of the handshake that made it.
    const [reused, second] = await Promise.all([seen(`${main.url}/whoami`, agent), seen(`${main.url}/whoami`, agent)]);
    assert.equal(reused.remotePort, first.remotePort);
    assert.notEqual(second.remotePort, first.remotePort);
    assert.equal(second.resumed, true, 'the second connection resumed the session of the first');

    replaceAtomically(billingV2.cert, files.certFile);
    const reload = await reloads.next('onReload');
    assert.equal(reload.certificate.serialNumber, billingV2.serial);
    assert.equal(agent.certificate.serialNumber, billingV2.serial);
    assert.equal(errors.pending, 0);

    // Three at once: two take the idle connections, opened with the old certificate; the third is new.
    const after = await Promise.all([seen(`${main.url}/whoami`, agent), seen(`${main.url}/whoami`, agent), seen(`${main.url}/whoami`, agent)]);
    const oldPorts = new Set([first.remotePort, second.remotePort]);
    const onOld = after.filter((answer) => oldPorts.has(answer.remotePort));
    const onNew = after.filter((answer) => !oldPorts.has(answer.remotePort));
    assert.equal(onOld.length, 2);
    for (const answer of onOld) assert.equal(answer.serial, billingV1.serial, 'an open connection keeps its certificate');
    assert.equal(onNew.length, 1);
    assert.equal(onNew[0]!.serial, billingV2.serial, 'a new connection presents the new certificate');
    assert.equal(onNew[0]!.resumed, false);
    assert.equal(onNew[0]!.spiffeId, BILLING);

    // destroyIdle closes the old connections: everything after it is on the new certificate.
    agent.destroyIdle();
    assert.equal((await seen(`${main.url}/whoami`, agent)).serial, billingV2.serial);
  });

  it('undici picks up a rotation on its next new connection', async () => {
    const { agent, files, reloads } = startAgent('rotating-undici', billingV1);
    const before = new UndiciAgent({ connect: agent.connect });
    toClose.push(() => before.close());
    const first = (await (await undiciRequest(`${main.url}/whoami`, { dispatcher: before })).body.json()) as Seen;
    assert.equal(first.serial, billingV1.serial);
    replaceAtomically(billingV2.cert, files.certFile);
    await reloads.next('onReload');
    // The open connection of the first dispatcher still works, with the old certificate.
    const kept = (await (await undiciRequest(`${main.url}/whoami`, { dispatcher: before })).body.json()) as Seen;
    assert.equal(kept.remotePort, first.remotePort);
    assert.equal(kept.serial, billingV1.serial);
    const fresh = new UndiciAgent({ connect: agent.connect });
    toClose.push(() => fresh.close());
    const body = (await (await undiciRequest(`${main.url}/whoami`, { dispatcher: fresh })).body.json()) as Seen;
    assert.equal(body.serial, billingV2.serial);
    assert.equal(body.resumed, false);
  });

  it('a corrupt certificate written in place is refused through onError and the previous one keeps serving; so is a certificate of another key', async () => {
    const { agent, files, reloads, errors } = startAgent('corrupted-client', billingV1);
    assert.equal((await seen(`${main.url}/whoami`, agent)).serial, billingV1.serial);

    writeFileSync(files.certFile, '-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n');
    const corrupt = await errors.next('onError');
    assert.ok(corrupt instanceof MtlsMaterialError);
    assert.equal(corrupt.code, 'MTLS_MATERIAL_INVALID');
    agent.destroyIdle();
    assert.equal((await seen(`${main.url}/whoami`, agent)).serial, billingV1.serial);

    copyFileSync(serverV2.cert, files.certFile);
    const mismatch = await errors.next('onError');
    assert.ok(mismatch instanceof MtlsMaterialError);
    assert.match(mismatch.message, /do not make a TLS context/);
    agent.destroyIdle();
    assert.equal((await seen(`${main.url}/whoami`, agent)).serial, billingV1.serial);
    assert.equal(reloads.pending, 0);

    // Good material again is taken.
    replaceAtomically(billingV2.cert, files.certFile);
    assert.equal((await reloads.next('onReload')).certificate.serialNumber, billingV2.serial);
    agent.destroyIdle();
    assert.equal((await seen(`${main.url}/whoami`, agent)).serial, billingV2.serial);
  });

  it('server rotation through attach(server): new handshakes get the new certificate and key, open connections keep the old', async () => {
    const rotating = await startServer('rotating-server', serverV1);
    const { agent } = startAgent('rotation-watcher', billingV1);
    const first = await seen(`${rotating.url}/whoami`, agent);
    assert.equal(first.serverSerial, serverV1.serial);

    // Key first, then certificate: within one debounce interval, read as a pair.
    const dir = join(root, 'rotating-server');
    replaceAtomically(serverV2.key, join(dir, 'key.pem'));
    replaceAtomically(serverV2.cert, join(dir, 'cert.pem'));
    assert.equal((await rotating.reloads.next('onReload')).certificate.serialNumber, serverV2.serial);
    assert.equal(rotating.mtls.certificate.serialNumber, serverV2.serial);
    assert.equal(rotating.errors.pending, 0);

    const [old, fresh] = await Promise.all([seen(`${rotating.url}/whoami`, agent), seen(`${rotating.url}/whoami`, agent)]);
    assert.equal(old.remotePort, first.remotePort);
    assert.equal(old.serverSerial, serverV1.serial);
    assert.equal(fresh.serverSerial, serverV2.serial);
    assert.equal(fresh.spiffeId, BILLING);
  });

  it("the server's allow closes connections of other SPIFFE IDs before any request; requireSpiffeId answers 403", async () => {
    const strict = await startServer('strict-server', serverV1, ['spiffe://example.org/ns/prod/sa/admin']);
    const { agent } = startAgent('strict-client', billingV1);
    await assert.rejects(get(`${strict.url}/whoami`, agent), { code: 'ECONNRESET' });
    assert.equal(strict.handled, 0);

    const forbidden = await get(`${main.url}/admin`, agent);
    assert.equal(forbidden.status, 403);
    assert.match(forbidden.body, /spiffe:\/\/example\.org\/ns\/prod\/sa\/billing is not allowed/);
  });

  it("the agent's allow checks the server's SPIFFE ID after the host name", async () => {
    const trusting = startAgent('allowing-client', billingV1, { allow: ['spiffe://example.org/ns/prod/*'] });
    assert.equal((await seen(`${main.url}/whoami`, trusting.agent)).spiffeId, BILLING);
    const picky = startAgent('picky-client', billingV1, { allow: ['spiffe://example.org/ns/prod/sa/payments'] });
    await assert.rejects(get(`${main.url}/whoami`, picky.agent), { code: 'ERR_SPIFFE_ID_NOT_ALLOWED' });
  });

  it('spiffeIdOf a socket needs a verified peer: an unverified certificate names no identity', async () => {
    const files = workloadDir('unverified-client', billingV1);
    const port = (main.server.address() as AddressInfo).port;
    const socket = await new Promise<TLSSocket>((resolve, reject) => {
      const opened = connect({ host: '127.0.0.1', port, cert: readFileSync(files.certFile), key: readFileSync(files.keyFile), rejectUnauthorized: false }, () => resolve(opened));
      opened.once('error', reject);
    });
    toClose.push(() => socket.destroy());
    assert.equal(socket.authorized, false);
    assert.equal(spiffeIdOf(socket), undefined);
    assert.equal(spiffeIdOf(socket.getPeerX509Certificate()!), API);
  });

  it('refuses unusable files at start with an MtlsMaterialError', () => {
    const files = workloadDir('broken-start', billingV1);
    assert.throws(() => createMtlsAgent({ ...files, certFile: join(root, 'missing.pem') }), { name: 'MtlsMaterialError', code: 'MTLS_FILE_UNREADABLE' });
    assert.throws(() => createMtlsAgent({ ...files, keyFile: serverV1.key }), { name: 'MtlsMaterialError', code: 'MTLS_MATERIAL_INVALID' });
    assert.throws(() => createMtlsServerOptions({ ...files, caFile: files.keyFile }), { name: 'MtlsMaterialError', code: 'MTLS_MATERIAL_INVALID' });
  });
});

describe('spiffeIdOf a certificate (X509-SVID section 5.2)', () => {
  const read = (issuedCert: Issued) => new X509Certificate(readFileSync(issuedCert.cert));

  it('the one URI SAN of a leaf, DNS SANs beside it', () => {
    assert.equal(spiffeIdOf(read(billingV1)), BILLING);
  });

  it('undefined for two URI SANs, an invalid or path-less ID, no URI SAN, or a CA certificate', () => {
    assert.equal(spiffeIdOf(read(twoUris)), undefined);
    assert.equal(spiffeIdOf(read(upperCaseDomain)), undefined);
    assert.equal(spiffeIdOf(read(withQuery)), undefined);
    assert.equal(spiffeIdOf(read(rootId)), undefined);
    assert.equal(spiffeIdOf(read(noUri)), undefined);
    assert.equal(spiffeIdOf(read(ca)), undefined);
  });
});

describe('parseSpiffeId (SPIFFE-ID section 2)', () => {
  it('reads a trust domain and a path', () => {
    assert.deepEqual(parseSpiffeId(BILLING), { trustDomain: 'example.org', path: '/ns/prod/sa/billing' });
    assert.deepEqual(parseSpiffeId('spiffe://example.org'), { trustDomain: 'example.org', path: '' });
    assert.deepEqual(parseSpiffeId('spiffe://td_1.a-b/A.b_c-9/..x'), { trustDomain: 'td_1.a-b', path: '/A.b_c-9/..x' });
  });

  it('accepts 2048 bytes, refuses 2049', () => {
    const prefix = 'spiffe://example.org/';
    assert.equal(parseSpiffeId(prefix + 'a'.repeat(2048 - prefix.length)).path.length, 2048 - prefix.length + 1);
    assert.throws(() => parseSpiffeId(prefix + 'a'.repeat(2049 - prefix.length)), TypeError);
  });

  const refused: [string, unknown][] = [
    ['an uppercase trust domain', 'spiffe://Example.org/ns/prod'],
    ['an uppercase scheme', 'SPIFFE://example.org/ns/prod'],
    ['another scheme', 'https://example.org/ns/prod'],
    ['no trust domain', 'spiffe:///ns/prod'],
    ['a .. segment', 'spiffe://example.org/ns/../admin'],
    ['a . segment', 'spiffe://example.org/./ns'],
    ['an empty segment', 'spiffe://example.org/ns//prod'],
    ['a trailing slash', 'spiffe://example.org/ns/prod/'],
    ['a query', 'spiffe://example.org/ns/prod?x=1'],
    ['a fragment', 'spiffe://example.org/ns/prod#x'],
    ['percent-encoding in the path', 'spiffe://example.org/ns/pr%6fd'],
    ['percent-encoding in the trust domain', 'spiffe://ex%61mple.org/ns'],
    ['a port', 'spiffe://example.org:8443/ns'],
    ['user info', 'spiffe://user@example.org/ns'],
    ['an IPv6 literal', 'spiffe://[::1]/ns'],
    ['a space', 'spiffe://example.org/ns prod'],
    ['a 256-byte trust domain', `spiffe://${'a'.repeat(256)}/ns`],
    ['not a string', 42],
  ];
  for (const [what, text] of refused) {
    it(`refuses ${what}`, () => {
      assert.throws(() => parseSpiffeId(text as string), TypeError);
    });
  }
});

describe('allowSpiffeIds and requireSpiffeId', () => {
  it('an exact ID matches itself only', () => {
    const allow = allowSpiffeIds([BILLING]);
    assert.equal(allow(BILLING), true);
    assert.equal(allow(`${BILLING}2`), false);
    assert.equal(allow('spiffe://example.org/ns/prod/sa/Billing'), false);
    assert.equal(allow(undefined), false);
  });

  it('a trailing /* matches one or more further segments, in that trust domain only', () => {
    const allow = allowSpiffeIds(['spiffe://example.org/ns/prod/*']);
    assert.equal(allow('spiffe://example.org/ns/prod/sa/billing'), true);
    assert.equal(allow('spiffe://example.org/ns/prod/x'), true);
    assert.equal(allow('spiffe://example.org/ns/prod'), false);
    assert.equal(allow('spiffe://example.org/ns/production/x'), false);
    assert.equal(allow('spiffe://example.com/ns/prod/x'), false);
    assert.equal(allow('spiffe://example.org/ns/prod/../admin'), false);
    assert.equal(allow('spiffe://example.org/ns/prod/a%2F..'), false);
    assert.equal(allow('spiffe://EXAMPLE.org/ns/prod/x'), false);
    assert.equal(allow('spiffe://example.org/ns/prod/x?y'), false);
    const domain = allowSpiffeIds(['spiffe://example.org/*']);
    assert.equal(domain(BILLING), true);
    assert.equal(domain('spiffe://example.org'), false);
  });

  it('an empty list allows nothing; a malformed pattern is a TypeError', () => {
    assert.equal(allowSpiffeIds([])(BILLING), false);
    for (const pattern of ['spiffe://example.org/ns/*/sa', 'spiffe://example.org/ns/prod*', '*', 'spiffe://*', 'spiffe://Example.org/ns', 'spiffe://example.org/ns/']) {
      assert.throws(() => allowSpiffeIds([pattern]), TypeError, pattern);
    }
  });

  it('requireSpiffeId refuses a request that did not come over TLS with a 403 error', () => {
    const check = requireSpiffeId(() => true);
    const plain = new IncomingMessage(new Socket());
    assert.throws(() => check(plain), (error: SpiffeIdForbiddenError) => error instanceof SpiffeIdForbiddenError && error.statusCode === 403 && error.spiffeId === undefined);
  });
});
