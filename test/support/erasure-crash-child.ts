/**
 * A `portcullis user erase` that dies by SIGKILL right after the erasure's
 * transaction commits, before anything after it runs (the clean-up's first
 * pass, the events' publication): what a crash, an OOM kill or a power cut
 * at the worst moment leaves behind. For test/privacy/erasure-cleanup.test.ts.
 *
 *   node --disable-warning=ExperimentalWarning test/support/erasure-crash-child.ts <configFile> <userId>
 *
 * It starts the services as the command line's privacy commands do, wraps
 * the durable store's `transaction` and, once a transaction that ran during
 * the erase call has committed and a clean-up record for the user exists
 * (there was none before), writes `committed <erasure id>` on standard
 * output and sends itself SIGKILL. Any other end (the erasure returning,
 * failing, or the record never appearing) exits with a non-zero code and
 * says why on standard error, which the test reports as a failure.
 */
import { writeSync } from 'node:fs';
import { loadConfig } from '../../src/config/index.ts';
import { PROFILES, withServices } from '../../src/runtime/index.ts';
import type { DurableTransaction } from '../../src/store/index.ts';

const CLEANUPS = 'privacy_erasure_cleanups';

const [configFile, userId] = process.argv.slice(2);
if (configFile === undefined || userId === undefined) {
  process.stderr.write('usage: erasure-crash-child.ts <configFile> <userId>\n');
  process.exit(64);
}

const config = loadConfig({ env: {}, file: configFile });
await withServices({ config, profile: PROFILES.admin() }, ['erasure'], async (services) => {
  const { durable } = services.get('stores');
  const cleanupOf = async (): Promise<string | undefined> => (await durable.records.list<{ userId: string }>(CLEANUPS, { limit: 1000 })).find((record) => record.data.userId === userId)?.id;
  if ((await cleanupOf()) !== undefined) throw new Error('a clean-up record for the user exists before the erasure');

  const original = durable.transaction.bind(durable);
  let armed = false;
  durable.transaction = async <T>(fn: (tx: DurableTransaction) => Promise<T>): Promise<T> => {
    const result = await original(fn);
    if (armed) {
      const erasureId = await cleanupOf();
      if (erasureId !== undefined) {
        // Synchronous, so the line is out before the signal.
        writeSync(1, `committed ${erasureId}\n`);
        process.kill(process.pid, 'SIGKILL');
      }
    }
    return result;
  };

  armed = true;
  const outcome = await services.get('erasure').erasures.request(userId, { channel: 'cli', actorService: 'cli' }, { grace: false });
  throw new Error(`the erasure returned (${outcome.kind}) without a committed clean-up record to stop at`);
}).catch((error: unknown) => {
  process.stderr.write(`erasure-crash-child: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
process.stderr.write('erasure-crash-child: ended without being killed\n');
process.exit(2);
