/**
 * Certificate files are watched (the directory, since deploy tools rename
 * files in) and a changed pair is loaded once the writing settles, after
 * the same checks as any reload: it parses, the key is the certificate's,
 * the certificate is valid now. A bad pair is refused, logged once at warn
 * without contents or paths, and the current certificate keeps serving.
 * The watch itself with a spy, then a real Portcullis whose main and mTLS
 * listeners both take their certificates from watched files.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { ConfigError, loadConfig } from '../../src/config/index.ts';
import { watchTlsFiles, type TlsFiles, type TlsMaterial, type TlsWatchEvent } from '../../src/runtime/index.ts';
import { reloadTlsOnHangup, startPortcullis, type RunningPortcullis } from '../../src/server/index.ts';
import { systemClock } from '../../src/store/index.ts';
import { CapturedLogs } from '../support/server.ts';
import { OpensslCa, type IssuedFiles } from '../support/openssl-ca.ts';
import { TestAuthority } from '../support/listener-authority.ts';
import { assertRefused, tlsGet } from '../support/tls-client.ts';

const dir = mkdtempSync(join(tmpdir(), 'portcullis-tls-watch-'));
let ca: OpensslCa;

after(() => rmSync(dir, { recursive: true, force: true }));
before(() => {
  ca = OpensslCa.create(join(dir, 'ca'), 'Watch test CA');
});

/** Writes the pair beside the target files and renames them over it, as deploy tools do. */
function installByRename(from: { cert: string; key: string }, to: TlsFiles): void {
  writeFileSync(`${to.certFile}.new`, from.cert);
  writeFileSync(`${to.keyFile}.new`, from.key);
  renameSync(`${to.certFile}.new`, to.certFile);
  renameSync(`${to.keyFile}.new`, to.keyFile);
}

function filesIn(directory: string): TlsFiles {
  mkdirSync(directory, { recursive: true });
  return { certFile: join(directory, 'tls.crt'), keyFile: join(directory, 'tls.key') };
}

/** A watch whose loads and reports the test can wait for, one by one. */
function spyWatch(files: TlsFiles, debounceMs: number, load: (material: TlsMaterial) => void) {
  const loads: TlsMaterial[] = [];
  const reports: TlsWatchEvent[] = [];
  let loaded: (() => void) | undefined;
  const watch = watchTlsFiles({
    files,
    debounceMs,
    clock: systemClock,
    load: (material) => {
      loads.push(material);
      loaded?.();
      load(material);
      return { kind: 'loaded', certificate: { serialNumber: '01', notBefore: new Date(0), notAfter: new Date(0) } };
    },
    report: (event) => reports.push(event),
  });
  return {
    watch,
    loads,
    reports,
    /** Resolves at the next load. */
    nextLoad: () => new Promise<void>((resolve) => (loaded = resolve)),
  };
}

describe('watching certificate files', () => {
  it('a burst of writes (cert, then key, then both renamed in) is read once, after it settles', async () => {
    const files = filesIn(join(dir, 'burst'));
    const first = ca.issue('burst', { kind: 'server' });
    const spy = spyWatch(files, 100, () => undefined);
    try {
      const loaded = spy.nextLoad();
      writeFileSync(files.certFile, first.cert.slice(0, 100));
      writeFileSync(files.certFile, first.cert);
      installByRename(first, files);
      await loaded;
      assert.equal(spy.loads.length, 1);
      assert.equal(spy.loads[0]!.cert.toString(), first.cert, 'the settled pair, not the half-written one');
      assert.equal(spy.reports.length, 1);
    } finally {
      spy.watch.close();
    }
  });

  it('the same refusal is reported once; a different bad pair is reported again', async () => {
    const files = filesIn(join(dir, 'refusals'));
    const spy = spyWatch(files, 20, () => {
      throw new ConfigError('the TLS certificate or key is not usable (test)');
    });
    try {
      for (const content of ['garbage', 'garbage', 'garbage', 'other garbage']) {
        const loaded = spy.nextLoad();
        installByRename({ cert: content, key: content }, files);
        await loaded;
      }
      assert.equal(spy.loads.length, 4);
      assert.deepEqual(
        spy.reports.map((event) => event.kind),
        ['refused', 'refused'],
      );
    } finally {
      spy.watch.close();
    }
  });

  it('a closed watch reads nothing more (a second watch on the same files is the witness)', async () => {
    const files = filesIn(join(dir, 'closed'));
    const closed = spyWatch(files, 20, () => undefined);
    closed.watch.close();
    const witness = spyWatch(files, 200, () => undefined);
    try {
      const loaded = witness.nextLoad();
      installByRename({ cert: 'x', key: 'y' }, files);
      await loaded;
      assert.equal(closed.loads.length, 0);
    } finally {
      witness.watch.close();
    }
  });
});

describe('a running Portcullis reloads its listeners from watched files', () => {
  const logs = new CapturedLogs();
  let running: RunningPortcullis;
  let mainFiles: TlsFiles;
  let mtlsFiles: TlsFiles;
  let mainPort: number;
  let mtlsPort: number;
  let client: IssuedFiles;
  let foreignClient: IssuedFiles;
  let serving: IssuedFiles;

  const serverCertificate = (name: string, validity: { notBefore?: Date; notAfter?: Date } = {}) => ca.issue(name, { kind: 'server', ipAddresses: ['127.0.0.1'], ...validity });

  /** The serial of the certificate the main listener presents to a new connection. */
  function mainSerial(): Promise<string> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port: mainPort, ca: ca.cert }, () => {
        resolve(socket.getPeerX509Certificate()!.serialNumber);
        socket.destroy();
      });
      socket.once('error', reject);
    });
  }

  /** The next log line of `listener` with this message, parsed. */
  async function nextLine(listener: 'main' | 'mtls', message: string): Promise<Record<string, unknown>> {
    const pattern = new RegExp(`"listener":"${listener}".*"msg":"${message.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}"`);
    return JSON.parse(await logs.next(pattern)) as Record<string, unknown>;
  }

  before(async () => {
    mainFiles = filesIn(join(dir, 'main'));
    mtlsFiles = filesIn(join(dir, 'mtls'));
    serving = serverCertificate('main');
    installByRename(serving, mainFiles);
    installByRename(serverCertificate('mtls'), mtlsFiles);
    client = ca.issue('client', { kind: 'client' });
    foreignClient = OpensslCa.create(join(dir, 'foreign'), 'Foreign CA').issue('foreign', { kind: 'client' });
    const config = loadConfig({
      env: {},
      overrides: { dataDir: join(dir, 'data'), port: 0, tls: { certFile: mainFiles.certFile, keyFile: mainFiles.keyFile, mtlsPort: 0, mtlsCertFile: mtlsFiles.certFile, mtlsKeyFile: mtlsFiles.keyFile, watchDebounceMs: 50 } },
    });
    running = await startPortcullis(config, { logDestination: logs.stream, listenerAuthority: new TestAuthority(ca) });
    mainPort = Number(new URL(running.url).port);
    mtlsPort = Number(new URL(running.mtlsUrl!).port);
  });

  after(async () => {
    await running?.stop();
  });

  it('cert and key renamed in: new handshakes get the new serial, once the reload is logged', async () => {
    assert.equal(await mainSerial(), serving.serialNumber);
    const next = serverCertificate('main-renewed');
    const reloaded = nextLine('main', 'TLS certificate reloaded');
    installByRename(next, mainFiles);
    const line = await reloaded;
    assert.equal(line.serialNumber, next.serialNumber);
    assert.equal(line.trigger, 'file-watch');
    assert.equal(await mainSerial(), next.serialNumber);
    serving = next;
  });

  it('a garbage file is refused at warn, naming no path or contents, and the old certificate still serves', async () => {
    const refused = nextLine('main', 'TLS certificate reload refused; still serving the previous certificate');
    installByRename({ cert: 'garbage\n', key: 'more garbage\n' }, mainFiles);
    const line = await refused;
    assert.equal(line.level, 'warn');
    assert.match(String(line.reason), /not usable/);
    assert.doesNotMatch(JSON.stringify(line), /garbage|tls\.crt|tls\.key|BEGIN/);
    assert.equal(await mainSerial(), serving.serialNumber);
  });

  it('a certificate that arrives before its key is refused until the key follows', async () => {
    const next = serverCertificate('main-split');
    const refused = nextLine('main', 'TLS certificate reload refused; still serving the previous certificate');
    writeFileSync(`${mainFiles.certFile}.new`, next.cert);
    renameSync(`${mainFiles.certFile}.new`, mainFiles.certFile);
    await refused;
    assert.equal(await mainSerial(), serving.serialNumber);
    const reloaded = nextLine('main', 'TLS certificate reloaded');
    writeFileSync(`${mainFiles.keyFile}.new`, next.key);
    renameSync(`${mainFiles.keyFile}.new`, mainFiles.keyFile);
    await reloaded;
    assert.equal(await mainSerial(), next.serialNumber);
    serving = next;
  });

  it('an expired certificate is refused; the old one still serves', async () => {
    const expired = serverCertificate('main-expired', { notBefore: new Date(Date.now() - 2 * 86_400_000), notAfter: new Date(Date.now() - 86_400_000) });
    const refused = nextLine('main', 'TLS certificate reload refused; still serving the previous certificate');
    installByRename(expired, mainFiles);
    assert.match(String((await refused).reason), /^the TLS certificate expired at /);
    assert.equal(await mainSerial(), serving.serialNumber);
  });

  it('a certificate that is not valid yet is refused, then loaded at its notBefore without another file event', async () => {
    const notBefore = new Date(Math.ceil(Date.now() / 1000) * 1000 + 2000);
    const early = serverCertificate('main-early', { notBefore, notAfter: new Date(notBefore.getTime() + 86_400_000) });
    const refused = nextLine('main', 'TLS certificate reload refused; still serving the previous certificate');
    const reloaded = nextLine('main', 'TLS certificate reloaded');
    installByRename(early, mainFiles);
    const line = await refused;
    assert.equal(line.retryAt, notBefore.toISOString());
    assert.equal(await mainSerial(), serving.serialNumber);
    assert.equal((await reloaded).serialNumber, early.serialNumber);
    assert.equal(await mainSerial(), early.serialNumber);
    serving = early;
  });

  it("the mTLS listener's files: reloaded with the client trust intact (no certificate, or another CA's, still refused)", async () => {
    const next = serverCertificate('mtls-renewed');
    const reloaded = nextLine('mtls', 'TLS certificate reloaded');
    installByRename(next, mtlsFiles);
    await reloaded;
    const target = { port: mtlsPort, ca: ca.cert };
    const exchange = await tlsGet({ ...target, client: { cert: client.cert, key: client.key } });
    assert.equal(exchange.status, 200);
    assert.equal(exchange.serverSerial, next.serialNumber);
    await assertRefused(tlsGet(target), 'no client certificate');
    await assertRefused(tlsGet({ ...target, client: { cert: foreignClient.cert, key: foreignClient.key } }), 'a foreign client certificate');
  });

  it('SIGHUP still reloads both listeners from their files', async () => {
    const stop = reloadTlsOnHangup(running);
    try {
      const main = logs.next(/"signal":"SIGHUP","listener":"main".*"msg":"TLS certificate reloaded"/);
      const mtls = logs.next(/"signal":"SIGHUP","listener":"mtls".*"msg":"TLS certificate reloaded"/);
      process.kill(process.pid, 'SIGHUP');
      await Promise.all([main, mtls]);
    } finally {
      stop();
    }
  });
});
