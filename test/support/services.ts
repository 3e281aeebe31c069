import { randomBytes } from 'node:crypto';
import pg from 'pg';

/**
 * The external services the suite may use. A URL that is set MUST be
 * reachable: CI sets both and a silent skip would hide a broken driver.
 */
export const testDatabaseUrl = process.env['PORTCULLIS_TEST_DATABASE_URL'] || undefined;
export const testRedisUrl = process.env['PORTCULLIS_TEST_REDIS_URL'] || undefined;

export function uniqueName(prefix: string): string {
  return `${prefix}_${randomBytes(6).toString('hex')}`;
}

/** Creates a private schema for one test file; drop it with the returned function. */
export async function createTestSchema(url: string): Promise<{ schema: string; drop: () => Promise<void> }> {
  const schema = uniqueName('portcullis_test');
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`CREATE SCHEMA ${schema}`);
  } finally {
    await client.end();
  }
  return {
    schema,
    drop: async () => {
      const admin = new pg.Client({ connectionString: url });
      await admin.connect();
      try {
        await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      } finally {
        await admin.end();
      }
    },
  };
}

/** A key prefix private to one test file; remove its keys with the returned function. */
export function redisTestPrefix(): string {
  return `portcullis:test:${randomBytes(6).toString('hex')}:`;
}

/** Deletes every key under a test prefix (single-node Redis). */
export async function deleteRedisKeys(url: string, prefix: string): Promise<void> {
  const { Redis } = await import('ioredis');
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await client.connect();
  try {
    let cursor = '0';
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
      cursor = next;
      if (keys.length > 0) await client.del(...keys);
    } while (cursor !== '0');
  } finally {
    client.disconnect();
  }
}
