/**
 * Portcullis with its mTLS listener, for bench/mtls-handshakes.ts and
 * bench/rotation.ts: `startPortcullis` with the config from the environment
 * (the parent sets PORTCULLIS_TLS_MTLS_PORT, PORTCULLIS_TLS_MTLS_CERT_FILE
 * and PORTCULLIS_TLS_MTLS_KEY_FILE), a throwaway data directory, and a
 * ListenerAuthority read from files (the built-in CA is not there yet):
 * BENCH_MTLS_CA_FILE and BENCH_MTLS_CRL_FILE (DER) are the client trust;
 * BENCH_MTLS_EXTRA_CA_FILE and BENCH_MTLS_EXTRA_CRL_FILE, when given, a
 * second CA that a trust change adds and the next one removes again.
 *
 * IPC, for rotations: `{ rotate: n, certFile, keyFile, trust }` swaps the
 * listener's certificate (Listener#setSecureContext, as a renewal does)
 * and, with `trust`, announces a client trust change; it answers
 * `{ rotated: n }` once both are in force, or `{ failed: n, reason }`.
 *
 * Prints the mTLS listener's URL on a line of its own once listening;
 * exits on SIGTERM, or when the parent's IPC channel closes.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/index.ts';
import type { ListenerAuthority } from '../../src/runtime/index.ts';
import { exitGracefullyOnSignals, startPortcullis } from '../../src/server/index.ts';

const dataDir = mkdtempSync(join(tmpdir(), 'portcullis-bench-mtls-'));
process.on('exit', () => rmSync(dataDir, { recursive: true, force: true }));

function required(name: string): string {
  const value = process.env[name];
  if (value === undefined) throw new Error(`${name} is not set`);
  return value;
}

const primary = { ca: [readFileSync(required('BENCH_MTLS_CA_FILE'), 'utf8')], crl: [readFileSync(required('BENCH_MTLS_CRL_FILE'))] };
const extraCa = process.env.BENCH_MTLS_EXTRA_CA_FILE;
const extraCrl = process.env.BENCH_MTLS_EXTRA_CRL_FILE;
const widened = extraCa !== undefined && extraCrl !== undefined ? { ca: [...primary.ca, readFileSync(extraCa, 'utf8')], crl: [...primary.crl, readFileSync(extraCrl)] } : primary;
let trust = primary;
const listeners = new Set<() => void>();
const authority: ListenerAuthority = {
  clientTrust: () => trust,
  onClientTrustChange: (listener) => {
    listeners.add(listener);
    return () => listeners.delete(listener);
  },
  issueServerCertificate: () => Promise.reject(new Error('the bench gives the listener certificate files')),
  // The per-connection check the built-in CA answers (runtime/ca-authority.ts): the peer's certificate read and its serial looked up.
  refuses: (certificate) => revoked.has(certificate.serialNumber.toLowerCase()),
};
/** Nothing is revoked in the bench; the lookup is what each connection pays. */
const revoked = new Set<string>();

const config = loadConfig({ env: process.env, overrides: { dataDir, port: 0 } });
const running = await startPortcullis(config, { listenerAuthority: authority });
exitGracefullyOnSignals(running, config.http.shutdownTimeoutMs);
process.once('disconnect', () => process.kill(process.pid, 'SIGTERM'));

process.on('message', (message: { rotate: number; certFile: string; keyFile: string; trust: boolean }) => {
  try {
    running.mtlsListener!.listener.setSecureContext({ cert: readFileSync(message.certFile), key: readFileSync(message.keyFile) });
    if (message.trust) {
      trust = trust === primary ? widened : primary;
      for (const listener of listeners) listener();
    }
    process.send!({ rotated: message.rotate });
  } catch (error) {
    process.send!({ failed: message.rotate, reason: error instanceof Error ? error.message : String(error) });
  }
});
process.stdout.write(`${running.mtlsUrl!}\n`);
