/**
 * The certificate authority on every durable driver, checked from outside
 * by Debian's openssl: `ca init` makes a root and an intermediate; issued
 * X509-SVIDs verify as chains (strict, TLS server and client purposes) and
 * carry the SPIFFE profile; the issuance policy refuses every name and
 * lifetime it does not grant; renewal keeps the names and refuses revoked,
 * expired and foreign certificates; revocation is in a CRL openssl verifies
 * and honours; the ledger records issue, renewal and revocation with the
 * certificate's hash; rotation keeps the old intermediate in the bundles
 * exactly as long as what it signed may live; an offline root is needed
 * (and checked) for rotation. Races run real concurrent calls: revocations
 * of one serial, of many serials, issuance on two connections, two
 * initialisations.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { connect as tlsConnect, createServer as createTlsServer, type Server as TlsServer } from 'node:tls';
import { auditedEvents, decodeEntry, openLedger, type Ledger } from '../../src/audit/index.ts';
import type { AuditEntry } from '../../src/audit/events.ts';
import { KeyVault } from '../../src/crypto/index.ts';
import type { EventHub } from '../../src/events/index.ts';
import { AuthorityError, CertificateAuthority, CertificateRequestError, certificateFacts, fromPem, type AuthorityRefusal, type IssuedCertificate, type RequestRefusal } from '../../src/pki/index.ts';
import type { DurableStore, RecordStore } from '../../src/store/index.ts';
import { ManualClock } from '../support/clock.ts';
import { durableDrivers, type DurableDriver, type DurableFixture } from '../store/drivers.ts';
import { Openssl, splitPem, type OpensslKeyKind } from './openssl.ts';

const HOUR = 3_600_000;
const TD = 'id.example.com';
const ISSUER = 'https://id.example.com';
const DEFAULT_TTL = 24 * HOUR;
const MAX_TTL = 72 * HOUR;
const CRL_TTL = HOUR;
const vault = KeyVault.generate();
const ORDERS = `spiffe://${TD}/ns/prod/sa/orders`;
const ALLOWED = [ORDERS, 'dns:orders.internal', 'ip:10.0.0.7'];
const ORDERS_SANS = [`URI:${ORDERS}`, 'DNS:orders.internal', 'IP:10.0.0.7'];

/** A deployment on one driver: its stores, one ledger and one event hub per connection, and a clock. */
interface Bench {
  readonly fixture: DurableFixture;
  readonly clock: ManualClock;
  readonly ledgers: Ledger[];
  readonly hubs: EventHub[];
  /** A CA instance on connection `i` (through `records`, when given, wrapping that connection's). */
  open(i: number, records?: (records: RecordStore) => RecordStore): Promise<CertificateAuthority>;
  close(): Promise<void>;
}

async function openBench(driver: DurableDriver, peers: number): Promise<Bench> {
  const fixture = await driver.open(peers);
  // Whole seconds: X.509 times have no milliseconds, so lifetimes compare exactly.
  const clock = new ManualClock(Math.floor(Date.now() / 1000) * 1000);
  const ledgers: Ledger[] = [];
  for (const store of fixture.stores) {
    ledgers.push(await openLedger({ log: store.auditLog, records: store.records, vault, issuer: ISSUER, clock: clock.now, audit: { ipAddresses: 'truncate', witnesses: [], maxPendingEntries: 10_000 } }));
  }
  const hubs = ledgers.map((ledger) => auditedEvents(ledger));
  const opened: CertificateAuthority[] = [];
  return {
    fixture,
    clock,
    ledgers,
    hubs,
    async open(i, records) {
      const ca = await CertificateAuthority.open({
        records: records === undefined ? fixture.stores[i]!.records : records(fixture.stores[i]!.records),
        vault,
        clock: clock.now,
        events: hubs[i]!,
        subscriptions: hubs[i]!,
        issuer: ISSUER,
        trustDomain: TD,
        defaultTtlMs: DEFAULT_TTL,
        maxTtlMs: MAX_TTL,
        crlTtlMs: CRL_TTL,
      });
      opened.push(ca);
      return ca;
    },
    async close() {
      for (const ca of opened) ca.close();
      for (const hub of hubs) hub.close();
      for (const ledger of ledgers) await ledger.close();
      await fixture.close();
    },
  };
}

/**
 * A RecordStore that holds the first write to `ca_authorities` (a CRL
 * re-signing) until the test opens the gate: what another instance does
 * meanwhile happens, deterministically, between this one's read and its write.
 */
function holdingFirstCrlWrite(records: RecordStore): { records: RecordStore; reached: Promise<void>; open: () => void } {
  const reached = Promise.withResolvers<void>();
  const gate = Promise.withResolvers<void>();
  let held = false;
  return {
    reached: reached.promise,
    open: () => gate.resolve(),
    records: {
      get: records.get.bind(records),
      create: records.create.bind(records),
      delete: records.delete.bind(records),
      list: records.list.bind(records),
      findBy: records.findBy.bind(records),
      async update(collection, id, expectedVersion, data, options) {
        if (collection === 'ca_authorities' && !held) {
          held = true;
          reached.resolve();
          await gate.promise;
        }
        return records.update(collection, id, expectedVersion, data, options);
      },
    },
  };
}

async function entriesOf(store: DurableStore): Promise<AuditEntry[]> {
  const size = await store.auditLog.size();
  const rows = [];
  for (let start = 0; start < size; start += 1000) rows.push(...(await store.auditLog.entries(start, Math.min(size, start + 1000))));
  return rows.map((row) => decodeEntry(row.entry));
}

function refusedWith(code: RequestRefusal | AuthorityRefusal): (error: unknown) => boolean {
  return (error) => {
    assert.ok(error instanceof CertificateRequestError || error instanceof AuthorityError, `expected a refusal, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    return true;
  };
}

function keyIdOf(pem: string): string {
  return certificateFacts(fromPem(pem, 'CERTIFICATE')[0]!).keyId!.toString('hex');
}

function derOf(pem: string): Buffer {
  return fromPem(pem, 'CERTIFICATE')[0]!;
}

/** The PEM of a CA certificate the instance trusts, by key id. */
function trusted(ca: CertificateAuthority, keyId: string): string {
  const pem = ca.clientTrust().ca.find((item) => keyIdOf(item) === keyId);
  assert.ok(pem, `the CA certificate ${keyId} is trusted`);
  return pem;
}

function crlPem(der: Uint8Array): string {
  return `-----BEGIN X509 CRL-----\n${Buffer.from(der).toString('base64').replace(/.{1,64}/g, '$&\n')}-----END X509 CRL-----\n`;
}

/** openssl's ISO 8601 dates ("2026-01-01 00:00:00Z") as ms. */
function isoDate(text: string): number {
  return Date.parse(text.trim().replace(' ', 'T'));
}

for (const driver of durableDrivers) {
  describe(`certificate authority on ${driver.name}`, () => {
    let bench: Bench;
    let ca: CertificateAuthority;
    /** Another instance on its own connection, with its own event hub (no bus between them). */
    let peer: CertificateAuthority;
    let ssl: Openssl;
    let rootId: string;
    let intermediateId: string;
    const attime = () => ['-attime', String(Math.floor(bench.clock.now() / 1000))];

    before(async () => {
      ssl = new Openssl();
      bench = await openBench(driver, 2);
      ca = await bench.open(0);
    });
    after(async () => {
      await bench.close();
      ssl.close();
    });

    async function issue(sans: readonly string[] = ORDERS_SANS, options: { kind?: OpensslKeyKind; allowed?: readonly string[]; ttlMs?: number; on?: CertificateAuthority; addext?: readonly string[] } = {}): Promise<IssuedCertificate> {
      const { csr } = await ssl.request(options.kind ?? 'ec-p256', sans, options.addext);
      return (options.on ?? ca).issue({ csr, allowed: options.allowed ?? ALLOWED, requestedBy: 'client:c_orders', ...(options.ttlMs !== undefined && { ttlMs: options.ttlMs }), context: { clientId: 'c_orders', requestId: 'req-1' } });
    }

    /** openssl verify of an issued chain against the root, at the CA's clock. */
    function verify(issued: IssuedCertificate, extra: readonly string[] = [], crls?: readonly Uint8Array[]) {
      const [leaf, intermediate, ...rest] = splitPem(issued.chainPem);
      assert.equal(rest.length, 0, 'the chain is the leaf and its intermediate, no root');
      assert.equal(leaf, issued.certificatePem);
      return ssl.verify({ root: trusted(ca, rootId), intermediate: intermediate!, leaf, extra: [...attime(), ...extra], ...(crls !== undefined && { crls }) });
    }

    it('is not initialised before `ca init`, and refuses to issue', async () => {
      assert.equal(ca.initialised, false);
      assert.equal(ca.bundlePem(), '');
      const { csr } = await ssl.request('ec-p256', ORDERS_SANS);
      await assert.rejects(ca.issue({ csr, allowed: ALLOWED, requestedBy: 'client:c_orders' }), refusedWith('not_initialised'));
    });

    it('initialise makes a root and an intermediate it signed; a second initialise is refused', async () => {
      const made = await ca.initialise({ keepRootOffline: false });
      rootId = made.root;
      intermediateId = made.intermediate;
      assert.equal(made.rootKeyPem, undefined, 'an online root key is not handed out');
      assert.equal(ca.initialised, true);
      const bundle = splitPem(ca.bundlePem());
      assert.equal(bundle.length, 2);
      assert.deepEqual(bundle.map(keyIdOf).sort(), [rootId, intermediateId].sort());
      const root = trusted(ca, rootId);
      const intermediate = trusted(ca, intermediateId);
      // openssl: the root is a self-signed CA, the intermediate a CA of path length 0 the root signed.
      assert.equal((await ssl.run(['verify', '-x509_strict', '-CAfile', ssl.file('root.pem', root), ssl.file('root-again.pem', root)])).code, 0);
      const check = await ssl.run(['verify', '-x509_strict', '-CAfile', ssl.file('root.pem', root), ssl.file('intermediate.pem', intermediate)]);
      assert.equal(check.code, 0, check.stderr + check.stdout);
      const text = await ssl.text(intermediate);
      assert.match(text, /X509v3 Basic Constraints: critical\n\s+CA:TRUE, pathlen:0/);
      assert.match(text, /X509v3 Key Usage: critical\n\s+Certificate Sign, CRL Sign\n/);
      await assert.rejects(ca.initialise({ keepRootOffline: false }), refusedWith('already_initialised'));
      peer = await bench.open(1);
      assert.equal(peer.initialised, true, 'another instance reads the CA from the store');
    });

    it('issues X509-SVIDs that openssl verifies: plain, -x509_strict -purpose sslserver and sslclient', async () => {
      for (const kind of ['ec-p256', 'ec-p384', 'rsa-2048', 'ed25519'] as const) {
        const issued = await issue(ORDERS_SANS, { kind });
        const usage = /X509v3 Key Usage: critical\n\s+(.+)\n/.exec(await ssl.text(issued.certificatePem))?.[1];
        assert.equal(usage, kind === 'rsa-2048' ? 'Digital Signature, Key Encipherment' : 'Digital Signature', kind);
        assert.equal(keyIdOf(splitPem(issued.chainPem)[1]!), intermediateId, 'signed by the active intermediate');
        for (const extra of [[], ['-x509_strict', '-purpose', 'sslserver'], ['-x509_strict', '-purpose', 'sslclient']]) {
          const result = await verify(issued, extra);
          assert.equal(result.code, 0, `${kind} ${extra.join(' ')}: ${result.stderr}${result.stdout}`);
          assert.match(result.stdout, /: OK\n$/);
        }
      }
    });

    it('the chain openssl would refuse is refused: the leaf against another root, or without its intermediate', async () => {
      const issued = await issue();
      const other = await ssl.ok(['req', '-x509', '-key', await ssl.key('ec-p256'), '-subj', '/CN=other root', '-days', '1']);
      const [leaf, intermediate] = splitPem(issued.chainPem);
      const wrongRoot = await ssl.verify({ root: other, intermediate: intermediate!, leaf: leaf!, extra: attime() });
      assert.notEqual(wrongRoot.code, 0);
      const noIntermediate = await ssl.verify({ root: trusted(ca, rootId), intermediate: other, leaf: leaf!, extra: attime() });
      assert.notEqual(noIntermediate.code, 0);
      assert.match(noIntermediate.stderr + noIntermediate.stdout, /unable to get local issuer certificate/);
    });

    it('the X509-SVID profile as openssl prints it: CA:FALSE critical, Digital Signature, both EKUs, exactly one URI SAN', async () => {
      const issued = await issue();
      const text = await ssl.text(issued.certificatePem);
      assert.match(text, /X509v3 Basic Constraints: critical\n\s+CA:FALSE\n/);
      assert.match(text, /X509v3 Key Usage: critical\n\s+Digital Signature\n/);
      assert.match(text, /X509v3 Extended Key Usage: \n\s+TLS Web Server Authentication, TLS Web Client Authentication\n/);
      const san = /X509v3 Subject Alternative Name: critical\n\s+(.+)\n/.exec(text);
      assert.ok(san, text);
      assert.deepEqual(san[1]!.split(', '), [`URI:${ORDERS}`, 'DNS:orders.internal', 'IP Address:10.0.0.7']);
      assert.equal(text.match(/URI:/g)?.length, 1 + (text.match(/Full Name:\s+URI:/g)?.length ?? 0), 'one URI SAN (the CRL distribution point is the other URI)');
      assert.match(text, new RegExp(`Full Name:\\s+URI:${ISSUER}/ca/crl/${intermediateId}`));
      assert.match(text, /Subject: *\n/, 'an empty subject: the names are in the SAN');
      assert.equal(issued.spiffeId, ORDERS);
      const serial = (await ssl.ok(['x509', '-noout', '-serial', '-in', ssl.file('c.pem', issued.certificatePem)])).trim();
      assert.equal(serial, `serial=${issued.serial.toUpperCase()}`);
      assert.equal(issued.sha256, createHash('sha256').update(derOf(issued.certificatePem)).digest('hex'));
    });

    // node:tls checks validity against the real time: this runs before any test moves the clock.
    it('node:tls with clientTrust(): a server certificate from issueServerCertificate, an issued client certificate accepted, a revoked one refused', async () => {
      const server = await ca.issueServerCertificate({ dnsNames: ['portcullis.internal'], ipAddresses: ['127.0.0.1'] });
      const serverFacts = certificateFacts(derOf(server.cert));
      assert.deepEqual([serverFacts.names.uris, serverFacts.names.dns, serverFacts.names.ips], [[`spiffe://${TD}/portcullis/server`], ['portcullis.internal'], ['127.0.0.1']]);
      const serverKey = await ssl.ok(['pkey', '-pubout', '-in', ssl.file('server.key', server.key)]);
      assert.equal(serverKey, await ssl.ok(['x509', '-noout', '-pubkey', '-in', ssl.file('server.pem', splitPem(server.cert)[0]!)]), 'the key matches the certificate');
      const clients: Array<{ issued: IssuedCertificate; key: string }> = [];
      for (let i = 0; i < 2; i++) {
        const { keyPath, csr } = await ssl.request('ec-p256', ORDERS_SANS);
        clients.push({ issued: await ca.issue({ csr, allowed: ALLOWED, requestedBy: 'client:c_orders' }), key: readFileSync(keyPath, 'utf8') });
      }
      const [good, bad] = clients as [(typeof clients)[0], (typeof clients)[0]];
      assert.equal(await ca.revoke(bad.issued.serial, 'keyCompromise'), 'revoked');
      const trust = ca.clientTrust();
      /** A server that checks client certificates against clientTrust(): strict refuses, lax answers with the verdict. */
      const serve = async (strict: boolean) => {
        const listener = createTlsServer({ cert: server.cert, key: server.key, ca: [...trust.ca], crl: trust.crl.map(crlPem), requestCert: true, rejectUnauthorized: strict }, (socket) => {
          const san = (socket.getPeerCertificate() as { subjectaltname?: string }).subjectaltname ?? '';
          socket.end(socket.authorized ? `ok ${san}` : `refused ${String(socket.authorizationError)}`);
        });
        await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
        return listener;
      };
      const call = (listener: TlsServer, client: (typeof clients)[0]) =>
        new Promise<string>((resolve) => {
          let data = '';
          const socket = tlsConnect({ host: '127.0.0.1', port: (listener.address() as AddressInfo).port, servername: 'portcullis.internal', ca: [trusted(ca, rootId)], cert: client.issued.chainPem, key: client.key });
          socket.on('data', (chunk: Buffer) => (data += chunk.toString()));
          socket.on('error', () => undefined);
          socket.on('close', () => resolve(data));
        });
      const lax = await serve(false);
      const strict = await serve(true);
      try {
        assert.equal(await call(lax, good), `ok URI:${ORDERS}, DNS:orders.internal, IP Address:10.0.0.7`);
        assert.equal(await call(lax, bad), 'refused CERT_REVOKED');
        assert.equal(await call(strict, good), `ok URI:${ORDERS}, DNS:orders.internal, IP Address:10.0.0.7`);
        assert.equal(await call(strict, bad), '', 'the strict server gives the revoked client nothing');
      } finally {
        await new Promise((resolve) => lax.close(resolve));
        await new Promise((resolve) => strict.close(resolve));
      }
    });

    it('lifetime: 24h by default (backdated a minute), what is asked up to pki.maxTtl, lifetime_too_long beyond', async () => {
      const now = bench.clock.now();
      const dates = async (issued: IssuedCertificate) => {
        const out = await ssl.ok(['x509', '-noout', '-dateopt', 'iso_8601', '-startdate', '-enddate', '-in', ssl.file('c.pem', issued.certificatePem)]);
        return { notBefore: isoDate(/notBefore=(.+)/.exec(out)![1]!), notAfter: isoDate(/notAfter=(.+)/.exec(out)![1]!) };
      };
      const standard = await issue();
      assert.deepEqual(await dates(standard), { notBefore: now - 60_000, notAfter: now + DEFAULT_TTL });
      assert.equal(standard.notAfter.getTime(), now + DEFAULT_TTL);
      assert.deepEqual(await dates(await issue(ORDERS_SANS, { ttlMs: 2 * HOUR })), { notBefore: now - 60_000, notAfter: now + 2 * HOUR });
      assert.deepEqual(await dates(await issue(ORDERS_SANS, { ttlMs: MAX_TTL })), { notBefore: now - 60_000, notAfter: now + MAX_TTL });
      const before = (await ca.list()).length;
      for (const ttlMs of [MAX_TTL + 1000, MAX_TTL + 1, 365 * 24 * HOUR, 59_000, 0, -HOUR, Number.NaN, Infinity]) {
        await assert.rejects(issue(ORDERS_SANS, { ttlMs }), refusedWith('lifetime_too_long'), String(ttlMs));
      }
      assert.equal((await ca.list()).length, before, 'a refused request stores nothing');
    });

    it('refuses names the caller may not have (name_not_permitted): a URI, a DNS name, an IP address', async () => {
      const before = (await ca.list()).length;
      const entriesBefore = (await entriesOf(bench.fixture.store)).length;
      const cases: Array<[string, string[]]> = [
        ['another SPIFFE ID of this trust domain', [`URI:spiffe://${TD}/ns/prod/sa/billing`]],
        ['a DNS name not granted', [`URI:${ORDERS}`, 'DNS:billing.internal']],
        ['a DNS name differing in case', [`URI:${ORDERS}`, 'DNS:ORDERS.internal.evil']],
        ['an IP address not granted', [`URI:${ORDERS}`, 'IP:10.0.0.8']],
        ['an IPv6 address not granted', [`URI:${ORDERS}`, 'IP:::1']],
        ['another trust domain', [`URI:spiffe://evil.example/ns/prod/sa/orders`]],
      ];
      for (const [what, sans] of cases) await assert.rejects(issue(sans), refusedWith('name_not_permitted'), what);
      // The other trust domain is refused even when the caller's registration (wrongly) lists it.
      await assert.rejects(issue([`URI:spiffe://evil.example/ns/prod/sa/orders`], { allowed: [...ALLOWED, 'spiffe://evil.example/ns/prod/sa/orders'] }), refusedWith('name_not_permitted'));
      assert.equal((await ca.list()).length, before, 'nothing was issued');
      assert.equal((await entriesOf(bench.fixture.store)).length, entriesBefore, 'and nothing recorded as issued');
    });

    it('refuses a second URI SAN (multiple_uri_sans), a URI that is not a SPIFFE ID and no URI at all (spiffe_id_required)', async () => {
      const both = [ORDERS, `spiffe://${TD}/ns/prod/sa/orders-2`];
      await assert.rejects(issue(both.map((uri) => `URI:${uri}`), { allowed: both }), refusedWith('multiple_uri_sans'), 'both URIs allowed, still one per certificate');
      await assert.rejects(issue([`URI:${ORDERS}`, 'URI:https://orders.example.com/']), refusedWith('multiple_uri_sans'));
      await assert.rejects(issue(['URI:https://orders.example.com/'], { allowed: [...ALLOWED, 'https://orders.example.com/'] }), refusedWith('spiffe_id_required'), 'an https URI');
      await assert.rejects(issue([`URI:spiffe://${TD}`], { allowed: [...ALLOWED, `spiffe://${TD}`] }), refusedWith('spiffe_id_required'), 'the trust domain itself, no workload path');
      await assert.rejects(issue(['DNS:orders.internal', 'IP:10.0.0.7']), refusedWith('spiffe_id_required'), 'no URI');
      await assert.rejects(issue([]), refusedWith('spiffe_id_required'), 'no SAN at all');
      await assert.rejects(issue([`URI:${ORDERS}`, 'email:ops@example.com']), refusedWith('unsupported_name'));
      await assert.rejects(issue(ORDERS_SANS, { addext: ['basicConstraints=critical,CA:TRUE'] }), refusedWith('ca_requested'));
    });

    describe('renewal', () => {
      it('keeps the SPIFFE ID and names, with a new serial and lifetime; the renewed certificate verifies', async () => {
        const first = await issue();
        bench.clock.advance(HOUR);
        const renewed = await ca.renew({ presented: derOf(first.certificatePem), context: { requestId: 'req-renew' } });
        assert.notEqual(renewed.serial, first.serial);
        assert.equal(renewed.spiffeId, ORDERS);
        assert.equal(renewed.notAfter.getTime(), bench.clock.now() + DEFAULT_TTL);
        const facts = certificateFacts(derOf(renewed.certificatePem));
        assert.deepEqual([facts.names.uris, facts.names.dns, facts.names.ips], [[ORDERS], ['orders.internal'], ['10.0.0.7']]);
        assert.deepEqual(facts.spki, certificateFacts(derOf(first.certificatePem)).spki, 'without a CSR, the same key');
        const result = await verify(renewed, ['-x509_strict', '-purpose', 'sslclient']);
        assert.equal(result.code, 0, result.stderr);
        assert.equal((await ca.certificate(renewed.serial))?.requestedBy, (await ca.certificate(first.serial))?.requestedBy, 'a renewal keeps the original requester');
      });

      it('with a CSR: the new key, the same names; a CSR asking for a name the old certificate lacked is refused', async () => {
        const first = await issue();
        const { keyPath, csr } = await ssl.request('ec-p256', []);
        const renewed = await ca.renew({ presented: derOf(first.certificatePem), csr });
        const spki = await ssl.ok(['pkey', '-in', keyPath, '-pubout']);
        assert.deepEqual(certificateFacts(derOf(renewed.certificatePem)).spki, fromPem(spki, 'PUBLIC KEY')[0]);
        assert.deepEqual(certificateFacts(derOf(renewed.certificatePem)).names.dns, ['orders.internal']);
        const wider = await ssl.csr(keyPath, { sans: [`URI:${ORDERS}`, 'DNS:admin.internal'] });
        await assert.rejects(ca.renew({ presented: derOf(first.certificatePem), csr: wider }), refusedWith('name_not_permitted'));
        const other = await ssl.csr(keyPath, { sans: [`URI:spiffe://${TD}/ns/prod/sa/admin`] });
        await assert.rejects(ca.renew({ presented: derOf(first.certificatePem), csr: other }), refusedWith('name_not_permitted'));
        const asCa = await ssl.csr(keyPath, { addext: ['basicConstraints=critical,CA:TRUE'] });
        await assert.rejects(ca.renew({ presented: derOf(first.certificatePem), csr: asCa }), refusedWith('ca_requested'));
      });

      it('a revoked certificate cannot renew (certificate_revoked)', async () => {
        const first = await issue();
        assert.equal(await ca.revoke(first.serial, 'keyCompromise'), 'revoked');
        await assert.rejects(ca.renew({ presented: derOf(first.certificatePem) }), refusedWith('certificate_revoked'));
      });

      it('a certificate this CA did not issue is unknown_certificate, even one that copies a real serial and names', async () => {
        const real = await issue();
        const key = await ssl.key('ec-p256');
        const base = ['req', '-x509', '-key', key, '-subj', '/CN=orders', '-days', '1', '-addext', `subjectAltName=URI:${ORDERS}`];
        const selfMade = await ssl.ok(base);
        await assert.rejects(ca.renew({ presented: derOf(selfMade) }), refusedWith('unknown_certificate'));
        const sameSerial = await ssl.ok([...base, '-set_serial', `0x${real.serial}`]);
        assert.equal(certificateFacts(derOf(sameSerial)).serial, real.serial, 'openssl made a certificate with the real serial');
        await assert.rejects(ca.renew({ presented: derOf(sameSerial) }), refusedWith('unknown_certificate'));
      });

      it('an expired certificate cannot renew (certificate_expired)', async () => {
        const short = await issue(ORDERS_SANS, { ttlMs: HOUR });
        bench.clock.advance(HOUR - 1000);
        const renewed = await ca.renew({ presented: derOf(short.certificatePem) });
        assert.equal(renewed.spiffeId, ORDERS, 'a second before expiry it still renews');
        bench.clock.advance(1000);
        await assert.rejects(ca.renew({ presented: derOf(short.certificatePem) }), refusedWith('certificate_expired'));
      });
    });

    describe('revocation', () => {
      let revoked: IssuedCertificate;
      let kept: IssuedCertificate;

      it('revoke answers revoked, then already_revoked; unknown for serials it never issued', async () => {
        revoked = await issue();
        kept = await issue();
        // openssl's spelling of the serial (uppercase) is accepted.
        const serial = (await ssl.ok(['x509', '-noout', '-serial', '-in', ssl.file('r.pem', revoked.certificatePem)])).trim().slice('serial='.length);
        assert.equal(await ca.revoke(serial, 'keyCompromise', { actorUserId: 'u_admin' }), 'revoked');
        assert.equal(await ca.revoke(revoked.serial, 'superseded'), 'already_revoked');
        assert.equal(await ca.revoke('7f'.repeat(16), 'keyCompromise'), 'unknown');
        assert.equal(await ca.revoke('not hex', 'keyCompromise'), 'unknown');
        const record = await ca.certificate(revoked.serial);
        assert.equal(record?.reason, 'keyCompromise', 'the second revocation changed nothing');
        assert.equal(record?.revokedAt, bench.clock.now());
        assert.equal((await ca.certificate(kept.serial))?.revokedAt, undefined);
      });

      it('the CRL verifies with openssl under the intermediate, lists the serial with keyCompromise, nextUpdate within crlTtl', async () => {
        const crl = await ca.crl();
        assert.ok(crl);
        const file = ssl.file('crl.der', crl);
        const checked = await ssl.run(['crl', '-inform', 'DER', '-in', file, '-CAfile', ssl.file('i.pem', trusted(ca, intermediateId)), '-verify', '-noout']);
        assert.equal(checked.code, 0, checked.stderr);
        assert.match(checked.stderr + checked.stdout, /verify OK/);
        // Not under the root: the intermediate signs its own CRL.
        const wrong = await ssl.run(['crl', '-inform', 'DER', '-in', file, '-CAfile', ssl.file('r.pem', trusted(ca, rootId)), '-verify', '-noout']);
        assert.doesNotMatch(wrong.stderr + wrong.stdout, /verify OK/);
        const text = await ssl.ok(['crl', '-inform', 'DER', '-in', file, '-noout', '-text', '-dateopt', 'iso_8601']);
        const entry = new RegExp(`Serial Number: ${revoked.serial.toUpperCase()}\\n\\s+Revocation Date: .+\\n\\s+CRL entry extensions:\\n\\s+X509v3 CRL Reason Code: \\n\\s+Key Compromise`);
        assert.match(text, entry);
        assert.doesNotMatch(text, new RegExp(kept.serial.toUpperCase()));
        const lastUpdate = isoDate(/Last Update: (.+)/.exec(text)![1]!);
        const nextUpdate = isoDate(/Next Update: (.+)/.exec(text)![1]!);
        assert.ok(lastUpdate <= bench.clock.now() && nextUpdate > bench.clock.now(), text);
        assert.ok(nextUpdate <= bench.clock.now() + CRL_TTL, `nextUpdate ${new Date(nextUpdate).toISOString()} is within crlTtl`);
      });

      it('openssl verify -crl_check_all with the root and intermediate CRLs: the revoked certificate is revoked, the other OK', async () => {
        const { crl } = ca.clientTrust();
        assert.equal(crl.length, 2, 'a CRL for the root and one for the intermediate');
        const refused = await verify(revoked, ['-crl_check_all'], crl);
        assert.notEqual(refused.code, 0);
        assert.match(refused.stderr + refused.stdout, /certificate revoked/);
        const accepted = await verify(kept, ['-crl_check_all'], crl);
        assert.equal(accepted.code, 0, accepted.stderr);
        // Without the root's CRL openssl cannot check the whole chain: the listener needs both.
        const rootCrlMissing = await verify(kept, ['-crl_check_all'], [(await ca.crl())!]);
        assert.notEqual(rootCrlMissing.code, 0);
      });

      it('the CRL number grows with every re-signing', async () => {
        const number = async () => Number(/crlNumber=(0x[0-9A-F]+)/.exec(await ssl.ok(['crl', '-inform', 'DER', '-in', ssl.file('n.der', (await ca.crl())!), '-noout', '-crlnumber']))![1]);
        const first = await number();
        assert.equal(await ca.revoke(kept.serial, 'superseded'), 'revoked');
        const second = await number();
        assert.ok(second > first, `${second} > ${first}`);
        const unchanged = await number();
        assert.equal(unchanged, second, 'reading it does not re-sign it');
      });

      it('list({ revoked: true }) lists exactly the revoked; list({ expiringWithinMs }) only live, unrevoked ones that soon', async () => {
        const all = await ca.list();
        const revokedOnes = await ca.list({ revoked: true });
        assert.deepEqual(revokedOnes.map((item) => item.serial).sort(), all.filter((item) => item.revokedAt !== undefined).map((item) => item.serial).sort());
        assert.ok(revokedOnes.some((item) => item.serial === revoked.serial && item.reason === 'keyCompromise'));
        assert.ok(revokedOnes.length >= 3 && revokedOnes.length < all.length);
        const soon = await issue(ORDERS_SANS, { ttlMs: 2 * HOUR });
        const later = await issue(ORDERS_SANS, { ttlMs: 10 * HOUR });
        const soonRevoked = await issue(ORDERS_SANS, { ttlMs: 2 * HOUR });
        await ca.revoke(soonRevoked.serial, 'unspecified');
        const expiring = (await ca.list({ expiringWithinMs: 3 * HOUR })).map((item) => item.serial);
        assert.ok(expiring.includes(soon.serial));
        assert.ok(!expiring.includes(later.serial), 'expires after the window');
        assert.ok(!expiring.includes(soonRevoked.serial), 'revoked');
        const now = bench.clock.now();
        for (const item of await ca.list({ expiringWithinMs: 3 * HOUR })) assert.ok(item.notAfter > now && item.notAfter <= now + 3 * HOUR && item.revokedAt === undefined);
      });
    });

    it('the ledger has certificate.issued, .renewed and .revoked with the serial, SPIFFE ID and sha256 of the DER', async () => {
      const issued = await issue();
      const renewed = await ca.renew({ presented: derOf(issued.certificatePem) });
      assert.equal(await ca.revoke(renewed.serial, 'keyCompromise'), 'revoked');
      const entries = await entriesOf(bench.fixture.store);
      const find = (type: string, serial: string) => entries.filter((entry) => entry.type === type && entry.detail?.['serial'] === serial);
      const sha = (pem: string) => createHash('sha256').update(derOf(pem)).digest('hex');
      const [issuedEntry, ...moreIssued] = find('certificate.issued', issued.serial);
      assert.equal(moreIssued.length, 0);
      assert.equal(issuedEntry?.outcome, 'success');
      assert.equal(issuedEntry?.client, 'c_orders');
      assert.equal(issuedEntry?.detail?.['spiffeId'], ORDERS);
      assert.equal(issuedEntry?.detail?.['sha256'], sha(issued.certificatePem));
      assert.equal(issuedEntry?.detail?.['requestedBy'], 'client:c_orders');
      const [renewedEntry] = find('certificate.renewed', renewed.serial);
      assert.equal(renewedEntry?.detail?.['spiffeId'], ORDERS);
      assert.equal(renewedEntry?.detail?.['sha256'], sha(renewed.certificatePem));
      assert.equal(renewedEntry?.detail?.['previous'], issued.serial);
      const [revokedEntry, ...moreRevoked] = find('certificate.revoked', renewed.serial);
      assert.equal(moreRevoked.length, 0);
      assert.equal(revokedEntry?.detail?.['spiffeId'], ORDERS);
      assert.equal(revokedEntry?.detail?.['sha256'], sha(renewed.certificatePem));
      assert.equal(revokedEntry?.detail?.['reason'], 'keyCompromise');
      assert.ok(!JSON.stringify(entries).includes('PRIVATE KEY'));
    });

    it('trust listeners: told on this instance after a revocation, on another instance after its refresh()', async () => {
      const issued = await issue();
      let here = 0;
      let there = 0;
      const stopHere = ca.onTrustChange(() => (here += 1));
      const stopThere = peer.onTrustChange(() => (there += 1));
      try {
        await peer.refresh();
        there = 0;
        await peer.refresh();
        assert.equal(there, 0, 'nothing changed since');
        const crlBefore = peer.clientTrust().crl;
        assert.equal(await ca.revoke(issued.serial, 'keyCompromise'), 'revoked');
        assert.ok(here >= 1, 'told here');
        assert.ok(ca.clientTrust().crl.some((der) => der.includes(Buffer.from(issued.serial, 'hex'))), 'and what it reads now lists the serial');
        assert.equal(there, 0, 'no bus: the other instance has not heard yet');
        await peer.refresh();
        assert.equal(there, 1, 'told there once it re-read');
        assert.notDeepEqual(peer.clientTrust().crl, crlBefore);
        const refused = await verify(issued, ['-crl_check_all'], peer.clientTrust().crl);
        assert.match(refused.stderr + refused.stdout, /certificate revoked/, 'the other instance now refuses it');
        await peer.refresh();
        assert.equal(there, 1, 'a refresh that finds nothing new tells nobody');
      } finally {
        stopHere();
        stopThere();
      }
    });

    describe('races', () => {
      it('10 concurrent revocations of one serial: exactly one revoked, listed once in the CRL', async () => {
        const issued = await issue();
        const outcomes = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? ca : peer).revoke(issued.serial, 'keyCompromise')));
        assert.deepEqual(outcomes.filter((outcome) => outcome === 'revoked').length, 1, outcomes.join());
        assert.equal(outcomes.filter((outcome) => outcome === 'already_revoked').length, 9);
        await ca.refresh();
        const text = await ssl.ok(['crl', '-inform', 'DER', '-in', ssl.file('c.der', (await ca.crl())!), '-noout', '-text']);
        assert.equal(text.split(`Serial Number: ${issued.serial.toUpperCase()}`).length - 1, 1);
        const entries = (await entriesOf(bench.fixture.store)).filter((entry) => entry.type === 'certificate.revoked' && entry.detail?.['serial'] === issued.serial);
        assert.equal(entries.length, 1, 'one audit entry');
      });

      it('concurrent revocations of different certificates on two instances: the CRL lists every one', async () => {
        const issued = await Promise.all(Array.from({ length: 8 }, () => issue()));
        const outcomes = await Promise.all(issued.map((item, i) => (i % 2 === 0 ? ca : peer).revoke(item.serial, 'keyCompromise')));
        assert.deepEqual(outcomes, issued.map(() => 'revoked'));
        await ca.refresh();
        const crl = (await ca.crl())!;
        const text = await ssl.ok(['crl', '-inform', 'DER', '-in', ssl.file('c.der', crl), '-noout', '-text']);
        const missing = issued.filter((item) => !text.includes(`Serial Number: ${item.serial.toUpperCase()}`)).map((item) => item.serial);
        assert.deepEqual(missing, [], 'every revoked serial is in the CRL');
        for (const item of issued) {
          const result = await verify(item, ['-crl_check_all'], ca.clientTrust().crl);
          assert.match(result.stderr + result.stdout, /certificate revoked/, item.serial);
        }
      });

      it('a revocation that re-signs the CRL while another does cannot drop the other from it', async () => {
        const [first, second] = await Promise.all([issue(), issue()]);
        const holding = holdingFirstCrlWrite(bench.fixture.stores[0]!.records);
        const slow = await bench.open(0, () => holding.records);
        // The slow instance revokes `first` and reads the revoked list (only `first`), then waits before writing its CRL ...
        const revoking = slow.revoke(first.serial, 'keyCompromise');
        await holding.reached;
        // ... while the peer revokes `second` and writes its CRL (both serials) ...
        assert.equal(await peer.revoke(second.serial, 'keyCompromise'), 'revoked');
        // ... then the slow one's write loses its compare-and-set and tries again.
        holding.open();
        assert.equal(await revoking, 'revoked');
        await ca.refresh();
        const text = await ssl.ok(['crl', '-inform', 'DER', '-in', ssl.file('c.der', (await ca.crl())!), '-noout', '-text']);
        assert.match(text, new RegExp(`Serial Number: ${first.serial.toUpperCase()}`));
        assert.match(text, new RegExp(`Serial Number: ${second.serial.toUpperCase()}`), 'the peer\'s revocation is still in the CRL');
        const refused = await verify(second, ['-crl_check_all'], ca.clientTrust().crl);
        assert.match(refused.stderr + refused.stdout, /certificate revoked/);
      });

      it('concurrent issuance from two instances on two connections: distinct serials, every chain verifies', async () => {
        const requests = await Promise.all(Array.from({ length: 12 }, () => ssl.request('ec-p256', ORDERS_SANS)));
        const issued = await Promise.all(requests.map(({ csr }, i) => (i % 2 === 0 ? ca : peer).issue({ csr, allowed: ALLOWED, requestedBy: 'client:c_orders' })));
        assert.equal(new Set(issued.map((item) => item.serial)).size, issued.length);
        for (const item of issued) {
          const result = await verify(item, ['-x509_strict', '-purpose', 'sslclient']);
          assert.equal(result.code, 0, result.stderr);
          assert.equal((await ca.certificate(item.serial))?.sha256, item.sha256, 'stored');
        }
      });
    });

    describe('rotation', () => {
      it('after rotate(), issues chain to the new intermediate; the old one stays in the bundles until now + maxTtl', async () => {
        const before = await issue();
        const rotatedAt = bench.clock.now();
        const { intermediate: next, retired } = await ca.rotate({ context: { actorUserId: 'u_admin' } });
        assert.equal(retired, intermediateId);
        assert.notEqual(next, intermediateId);
        const after = await issue();
        assert.equal(keyIdOf(splitPem(after.chainPem)[1]!), next);
        const strict = await verify(after, ['-x509_strict', '-purpose', 'sslserver']);
        assert.equal(strict.code, 0, strict.stderr + strict.stdout);
        const crossed = await ssl.verify({ root: trusted(ca, rootId), intermediate: trusted(ca, intermediateId), leaf: after.certificatePem, extra: attime() });
        assert.notEqual(crossed.code, 0, 'the old intermediate did not sign it');
        const old = await verify(before);
        assert.equal(old.code, 0, `what the old one signed still verifies: ${old.stderr}${old.stdout}`);
        // Another instance follows once it re-reads.
        await peer.refresh();
        const fromPeer = await issue(ORDERS_SANS, { on: peer });
        assert.equal(keyIdOf(splitPem(fromPeer.chainPem)[1]!), next);

        const bundleIds = () => splitPem(ca.bundlePem()).map(keyIdOf).sort();
        const spiffeIds = () => ca.spiffeBundle().keys.map((key) => keyIdOf(`-----BEGIN CERTIFICATE-----\n${(key['x5c'] as string[])[0]}\n-----END CERTIFICATE-----\n`)).sort();
        assert.deepEqual(bundleIds(), [rootId, intermediateId, next].sort());
        assert.deepEqual(spiffeIds(), [rootId, intermediateId, next].sort());
        for (const key of ca.spiffeBundle().keys) {
          assert.equal(key['use'], 'x509-svid');
          assert.equal((key['x5c'] as string[]).length, 1);
          assert.equal(key['kty'], 'EC');
          assert.equal(key['d'], undefined, 'no private part');
        }
        // The old intermediate's CRL is still served, for what it signed.
        assert.ok(await ca.crl(intermediateId));
        assert.equal(ca.clientTrust().crl.length, 3);

        bench.clock.advance(rotatedAt + MAX_TTL - bench.clock.now() - 1);
        assert.deepEqual(bundleIds(), [rootId, intermediateId, next].sort(), 'still there a millisecond before');
        bench.clock.advance(1);
        assert.deepEqual(bundleIds(), [rootId, next].sort(), 'gone at now + maxTtl');
        assert.deepEqual(spiffeIds(), [rootId, next].sort());
        assert.equal(ca.spiffeBundle().keys.length, 2);
        assert.deepEqual(ca.clientTrust().ca.map(keyIdOf).sort(), [rootId, next].sort());
        intermediateId = next;
        const later = await issue();
        const stale = await verify(later, ['-crl_check_all'], ca.clientTrust().crl);
        assert.match(stale.stderr + stale.stdout, /CRL has expired/, 'nothing re-signed the CRL in 72 hours (the upkeep timer does)');
        assert.ok(await ca.crl(), 'crl() re-signs a CRL past its nextUpdate');
        const fresh = await verify(later, ['-crl_check_all'], ca.clientTrust().crl);
        assert.equal(fresh.code, 0, fresh.stderr + fresh.stdout);
      });
    });
  });

  describe(`certificate authority on ${driver.name}: a root kept offline`, () => {
    let bench: Bench;
    let ssl: Openssl;
    before(async () => {
      ssl = new Openssl();
      bench = await openBench(driver, 1);
    });
    after(async () => {
      await bench.close();
      ssl.close();
    });

    it('initialise returns the root key and keeps none; rotate needs that key back and refuses any other', async () => {
      const ca = await bench.open(0);
      const made = await ca.initialise({ keepRootOffline: true });
      const rootKeyPem = made.rootKeyPem;
      assert.ok(rootKeyPem !== undefined);
      // The root's key, handed out as a PEM Node loads (P-256).
      assert.equal(createPrivateKey(rootKeyPem).asymmetricKeyType, 'ec');
      const rootRecord = await bench.fixture.store.records.get<Record<string, unknown>>('ca_authorities', made.root);
      assert.ok(rootRecord);
      assert.equal(rootRecord.data['sealedKey'], undefined, 'the root key is not stored');
      assert.ok(!JSON.stringify(rootRecord.data).includes(rootKeyPem.split('\n')[1]!));
      const intermediateRecord = await bench.fixture.store.records.get<Record<string, unknown>>('ca_authorities', made.intermediate);
      assert.equal(typeof intermediateRecord?.data['sealedKey'], 'string', 'the intermediate key is (sealed)');
      // openssl: the key handed out is the root certificate's key.
      const root = trusted(ca, made.root);
      const certKey = await ssl.ok(['x509', '-noout', '-pubkey', '-in', ssl.file('root.pem', root)]);
      const givenKey = await ssl.ok(['pkey', '-pubout', '-in', ssl.file('root.key', rootKeyPem)]);
      assert.equal(givenKey, certKey);

      // Issuing needs only the intermediate.
      const { csr } = await ssl.request('ec-p256', [`URI:${ORDERS}`]);
      const issued = await ca.issue({ csr, allowed: ALLOWED, requestedBy: 'client:c_orders' });
      const at = ['-attime', String(Math.floor(bench.clock.now() / 1000))];
      assert.equal((await ssl.verify({ root, intermediate: splitPem(issued.chainPem)[1]!, leaf: issued.certificatePem, extra: [...at, '-crl_check_all'], crls: ca.clientTrust().crl })).code, 0);

      await assert.rejects(ca.rotate(), refusedWith('root_key_required'));
      const wrongKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
      await assert.rejects(ca.rotate({ rootKey: wrongKey }), refusedWith('root_key_required'));
      const wrongKind = generateKeyPairSync('ed25519').privateKey;
      await assert.rejects(ca.rotate({ rootKey: wrongKind }), refusedWith('root_key_required'));
      assert.deepEqual(splitPem(ca.bundlePem()).map(keyIdOf).sort(), [made.root, made.intermediate].sort(), 'a refused rotation changed nothing');

      const rotated = await ca.rotate({ rootKey: createPrivateKey(rootKeyPem) });
      assert.equal(rotated.retired, made.intermediate);
      const after = await ca.issue({ csr, allowed: ALLOWED, requestedBy: 'client:c_orders' });
      const [leaf, intermediate] = splitPem(after.chainPem);
      assert.equal(keyIdOf(intermediate!), rotated.intermediate);
      const result = await ssl.verify({ root, intermediate: intermediate!, leaf: leaf!, extra: [...at, '-x509_strict', '-crl_check_all'], crls: ca.clientTrust().crl });
      assert.equal(result.code, 0, result.stderr);
      assert.equal((await bench.fixture.store.records.get<Record<string, unknown>>('ca_authorities', made.root))?.data['sealedKey'], undefined, 'still not stored after rotation');
    });

    // Regression: crl() re-signed a due CRL and called itself again; a root's CRL stays due in the root's last crlTtl/2
    // (and an offline root's cannot be re-signed at all), so it never returned.
    it('the root CRL near the end of the root, its key offline: served, no endless re-signing', async () => {
      const ca = await bench.open(0);
      const root = trusted(ca, ca.clientTrust().ca.map(keyIdOf).find((id) => certificateFacts(derOf(trusted(ca, id))).authorityKeyId === undefined)!);
      const rootId = keyIdOf(root);
      const notAfter = certificateFacts(derOf(root)).notAfter.getTime();
      bench.clock.advance(notAfter - bench.clock.now() - CRL_TTL / 4);
      const crl = await ca.crl(rootId);
      assert.ok(crl, 'the root CRL is still served');
      const checked = await ssl.run(['crl', '-inform', 'DER', '-in', ssl.file('root.crl', crl), '-CAfile', ssl.file('root.pem', root), '-verify', '-noout']);
      assert.match(checked.stderr + checked.stdout, /verify OK/);
    });
  });

  describe(`certificate authority on ${driver.name}: initialisation race`, () => {
    it('two instances initialise at once: exactly one succeeds, one root and one intermediate are stored', async () => {
      const bench = await openBench(driver, 2);
      try {
        const [first, second] = [await bench.open(0), await bench.open(1)];
        // An mTLS listener may start before `ca init`: it must hear that there is now something to trust.
        const told = [0, 0];
        first.onTrustChange(() => (told[0]! += 1));
        second.onTrustChange(() => (told[1]! += 1));
        const results = await Promise.allSettled([first.initialise({ keepRootOffline: false }), second.initialise({ keepRootOffline: false })]);
        const won = results.filter((result) => result.status === 'fulfilled');
        const lost = results.filter((result) => result.status === 'rejected');
        assert.equal(won.length, 1, JSON.stringify(results.map((result) => result.status)));
        assert.equal(lost.length, 1);
        refusedWith('already_initialised')((lost[0] as PromiseRejectedResult).reason);
        const stored = await bench.fixture.store.records.list<{ role: string; active: boolean }>('ca_authorities');
        assert.deepEqual(stored.map((item) => item.data.role).sort(), ['intermediate', 'root']);
        assert.equal(stored.filter((item) => item.data.active).length, 1);
        // Both instances sign under the one root.
        await first.refresh();
        await second.refresh();
        assert.equal(first.bundlePem(), second.bundlePem());
        assert.equal(splitPem(first.bundlePem()).length, 2);
        assert.ok(told[0]! >= 1 && told[1]! >= 1, `both instances' trust listeners were told: ${told.join()}`);
        assert.equal(second.clientTrust().ca.length, 2);
        const entries = (await entriesOf(bench.fixture.store)).filter((entry) => entry.type === 'ca.created');
        assert.equal(entries.length, 1, 'one ca.created entry');
      } finally {
        await bench.close();
      }
    });
  });
}
