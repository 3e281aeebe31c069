/**
 * `npm run bench`: the HTTP overhead benchmark, the store latency one, the
 * audit ledger ones (append throughput, proof latency, verify rate, a
 * person's history with its proofs), sign-in,
 * session overhead, OAuth against node-oidc-provider, mTLS handshakes
 * against bare node:tls, traffic across certificate rotations, the
 * resource-server verifier, security signals (revocation to refusal,
 * WebSocket fan-out), the plugin host (a claims hook's latency, tokens/s
 * with it on and off, refusal when it crashed), and the privacy retention rules,
 * each in its own process (so the second does not inherit the first's heap
 * and JIT state), with this process's environment (the PORTCULLIS_TEST_*
 * service URLs). Exits non-zero if either failed; a failure of the first does
 * not prevent the second from running.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';

// node:sqlite prints an ExperimentalWarning on Node 24 that says nothing here.
const NODE_FLAGS = ['--disable-warning=ExperimentalWarning'];
let failed = false;
for (const script of ['overhead.ts', 'store-latency.ts', 'audit-append.ts', 'audit-proofs.ts', 'audit-verify.ts', 'privacy-export.ts', 'login.ts', 'session-overhead.ts', 'oauth.ts', 'mtls-handshakes.ts', 'rotation.ts', 'sdk-verify.ts', 'signals-revocation.ts', 'signals-fanout.ts', 'plugin-hook.ts', 'plugin-tokens.ts', 'plugin-refuse.ts', 'privacy-retention.ts', 'privacy-erasure.ts']) {
  console.log(`\n== ${script}`);
  const child = spawn(process.execPath, [...NODE_FLAGS, join(import.meta.dirname, script)], { stdio: 'inherit', env: process.env });
  const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
  if (code !== 0) {
    console.error(`${script} failed (${signal ?? `exit code ${code}`})`);
    failed = true;
  }
}
process.exitCode = failed ? 1 : 0;
