/**
 * Signs each example plugin with the deterministic TEST key
 * (test/fixtures/plugins/seed-ed25519.pem, public test material, never a
 * real signer) and writes its public key beside them:
 *
 *     node examples/plugins/sign.ts
 *
 * writes examples/plugins/<name>.minisig for each example directory (the
 * detached signature beside the package, as `portcullis plugin sign` does)
 * and examples/plugins/test-key.pub. Run it after changing an example:
 * test/plugins/examples.test.ts verifies every signature over a fresh digest
 * and fails on an example changed but not re-signed.
 *
 * The trusted comment carries no timestamp: Ed25519 is deterministic, so
 * re-signing an unchanged example rewrites the same bytes (no diff).
 */
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { formatPublicKey, inspectPackage, parseSecretKey, signMessage, signaturePath } from '../../src/plugins/index.ts';

export const EXAMPLES_DIRECTORY = import.meta.dirname;
export const TEST_KEY_FILE = join(import.meta.dirname, '../../test/fixtures/plugins/seed-ed25519.pem');
export const PUBLIC_KEY_FILE = join(import.meta.dirname, 'test-key.pub');

/** The example plugin directories (each holds a portcullis-plugin.json). */
export function exampleDirectories(): string[] {
  return readdirSync(EXAMPLES_DIRECTORY, { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .map((entry) => join(EXAMPLES_DIRECTORY, entry.name))
    .sort();
}

async function main(): Promise<void> {
  const secret = parseSecretKey(readFileSync(TEST_KEY_FILE, 'utf8'));
  writeFileSync(PUBLIC_KEY_FILE, formatPublicKey(secret.publicKey));
  for (const directory of exampleDirectories()) {
    const pkg = await inspectPackage(directory);
    const target = signaturePath(directory);
    const trustedComment = `file:${basename(target, '.minisig')}\tdigest:${pkg.digest}`;
    writeFileSync(target, signMessage(Buffer.from(pkg.digest, 'latin1'), secret, { trustedComment, untrustedComment: 'signature from the portcullis TEST key (test/fixtures/plugins/seed-ed25519.pem)' }));
    console.log(`signed ${pkg.manifest.name} ${pkg.manifest.version}: digest ${pkg.digest} -> ${target}`);
  }
}

if (import.meta.main) await main();
