/**
 * The peer of bench/mtls-handshakes.ts: a bare `node:tls` server with the
 * same certificate and the same mTLS settings as Portcullis' mTLS listener
 * (requestCert, rejectUnauthorized, the CA bundle, the CRL, ALPN http/1.1,
 * TLS 1.2 minimum: the very options object, from the runtime's
 * tlsServerOptions), answering every request with the body /healthz sends.
 * No HTTP parser, no framework: what is left is the handshake.
 *
 * Files from the environment: BENCH_TLS_CERT_FILE, BENCH_TLS_KEY_FILE,
 * BENCH_MTLS_CA_FILE, BENCH_MTLS_CRL_FILE (DER). Prints its URL once
 * listening; exits on SIGTERM or when the parent's IPC channel closes.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:tls';
import { tlsServerOptions } from '../../src/runtime/index.ts';

function required(name: string): string {
  const value = process.env[name];
  if (value === undefined) throw new Error(`${name} is not set`);
  return value;
}

const options = tlsServerOptions(
  { cert: readFileSync(required('BENCH_TLS_CERT_FILE')), key: readFileSync(required('BENCH_TLS_KEY_FILE')) },
  { ca: [readFileSync(required('BENCH_MTLS_CA_FILE'), 'utf8')], crl: [readFileSync(required('BENCH_MTLS_CRL_FILE'))] },
);
const BODY = '{"status":"ok"}';
const RESPONSE = `HTTP/1.1 200 OK\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: ${BODY.length}\r\n\r\n${BODY}`;

const server = createServer({ ...options }, (socket) => {
  let pending = '';
  socket.on('data', (chunk: Buffer) => {
    pending += chunk.toString('latin1');
    // One answer per request head; the client asks for Connection: close.
    while (pending.includes('\r\n\r\n')) {
      const head = pending.slice(0, pending.indexOf('\r\n\r\n'));
      pending = pending.slice(head.length + 4);
      if (/\r\nconnection: *close/i.test(head)) socket.end(RESPONSE);
      else socket.write(RESPONSE);
    }
  });
  socket.on('error', () => socket.destroy());
});
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  process.stdout.write(`https://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}\n`);
});
const stop = () => server.close(() => process.exit(0));
process.once('SIGTERM', stop);
process.once('disconnect', stop);
