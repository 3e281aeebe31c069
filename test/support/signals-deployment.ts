/**
 * A real deployment with the built-in CA and an mTLS port, for the signal
 * tests that authenticate receivers by certificate: on the embedded store,
 * or on a private PostgreSQL schema and Redis key prefix removed afterwards.
 */
import { caDeployment, TRUST_DOMAIN, type CaDeployment } from './ca.ts';
import { freePort } from './process.ts';
import type { TestBackend } from './server.ts';
import { createTestSchema, deleteRedisKeys, redisTestPrefix, testDatabaseUrl, testRedisUrl } from './services.ts';

export interface SignalsCaDeployment {
  readonly ca: CaDeployment;
  readonly mtlsPort: number;
  /** The CA bundle (PEM) clients trust the mTLS listener by. */
  readonly bundle: string;
  /** Stops the server and removes its data, schema and keys. */
  remove(): Promise<void>;
}

export async function startSignalsCaDeployment(prefix: string, backend: TestBackend): Promise<SignalsCaDeployment> {
  const cleanups: (() => Promise<void>)[] = [];
  let stores: Record<string, unknown> = {};
  if (backend === 'postgres+redis') {
    const schema = await createTestSchema(testDatabaseUrl!);
    const keyPrefix = redisTestPrefix();
    cleanups.push(schema.drop, () => deleteRedisKeys(testRedisUrl!, keyPrefix));
    stores = { database: { url: testDatabaseUrl!, schema: schema.schema }, redis: { url: testRedisUrl!, keyPrefix } };
  }
  const mtlsPort = await freePort();
  const ca = await caDeployment(prefix, { pki: { trustDomain: TRUST_DOMAIN }, tls: { mtlsPort }, ...stores });
  await ca.start();
  const bundle = await (await fetch(`${ca.url}/ca/bundle`)).text();
  return {
    ca,
    mtlsPort,
    bundle,
    remove: async () => {
      await ca.remove();
      for (const cleanup of cleanups) await cleanup();
    },
  };
}
