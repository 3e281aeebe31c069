import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, configLeaves, configWarnings, isLoopbackHost, loadConfig, maskConfig } from '../../src/config/index.ts';
import { TABLE_END, TABLE_START, configTable } from '../../src/config/table.ts';

function withConfigFile(content: string, run: (path: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-config-'));
  try {
    const path = join(dir, 'portcullis.json');
    writeFileSync(path, content);
    run(path);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('config: defaults', () => {
  it('development on loopback port 9000 with the embedded stores', () => {
    const config = loadConfig({ env: {} });
    assert.equal(config.mode, 'development');
    assert.equal(config.host, '127.0.0.1');
    assert.equal(config.port, 9000);
    assert.equal(config.issuer, 'http://127.0.0.1:9000');
    assert.equal(config.dataDir, './data');
    assert.equal(config.masterKeyFile, join('./data', 'master.key'));
    assert.equal(config.database.url, undefined);
    assert.equal(config.hotStore, 'auto');
  });

  it('derives the issuer from the port, so --port alone starts a second correct instance', () => {
    assert.equal(loadConfig({ env: {}, overrides: { port: 9001 } }).issuer, 'http://127.0.0.1:9001');
    assert.equal(loadConfig({ env: { PORTCULLIS_PORT: '9002' } }).issuer, 'http://127.0.0.1:9002');
  });

  it('is immutable', () => {
    const config = loadConfig({ env: {} });
    assert.throws(() => {
      (config as { port: number }).port = 1;
    }, TypeError);
    assert.throws(() => {
      (config.http as { bodyLimitBytes: number }).bodyLimitBytes = 1;
    }, TypeError);
  });
});

describe('config: sources and precedence', () => {
  it('file < environment < command line', () => {
    withConfigFile(JSON.stringify({ port: 9100, log: { level: 'debug' }, http: { bodyLimitBytes: 2048 } }), (file) => {
      const config = loadConfig({ file, env: { PORTCULLIS_PORT: '9200' }, overrides: { http: { bodyLimitBytes: 4096 } } });
      assert.equal(config.port, 9200);
      assert.equal(config.log.level, 'debug');
      assert.equal(config.http.bodyLimitBytes, 4096);
    });
  });

  it('reads the file named by PORTCULLIS_CONFIG', () => {
    withConfigFile(JSON.stringify({ port: 9300 }), (file) => {
      assert.equal(loadConfig({ env: { PORTCULLIS_CONFIG: file } }).port, 9300);
    });
  });

  it('parses typed environment values: integers, booleans, lists', () => {
    const config = loadConfig({
      env: { PORTCULLIS_HTTP_BODY_LIMIT_BYTES: '65536', PORTCULLIS_METRICS_ENABLED: 'false', PORTCULLIS_TRUST_PROXY: '10.0.0.0/8, loopback' },
    });
    assert.equal(config.http.bodyLimitBytes, 65536);
    assert.equal(config.metrics.enabled, false);
    assert.deepEqual(config.trustProxy, ['10.0.0.0/8', 'loopback']);
  });

  it('ignores PORTCULLIS_CONFIG and PORTCULLIS_TEST_* as settings', () => {
    assert.equal(loadConfig({ env: { PORTCULLIS_TEST_DATABASE_URL: 'postgres://x' } }).database.url, undefined);
  });
});

describe('config: refusals name the key', () => {
  const refuses = (options: Parameters<typeof loadConfig>[0], pattern: RegExp) =>
    assert.throws(() => loadConfig(options), (error: unknown) => error instanceof ConfigError && pattern.test(error.message));

  it('an unknown key in the file', () => {
    withConfigFile(JSON.stringify({ databse: { url: 'postgres://x' } }), (file) => refuses({ file, env: {} }, /"databse": unknown key/));
    withConfigFile(JSON.stringify({ http: { bodyLimit: 1 } }), (file) => refuses({ file, env: {} }, /"http\.bodyLimit": unknown key/));
  });

  it('an unknown PORTCULLIS_ variable (a typo must not silently fall back to defaults)', () => {
    refuses({ env: { PORTCULLIS_DATABSE_URL: 'postgres://x' } }, /PORTCULLIS_DATABSE_URL: unknown setting/);
  });

  it('bad values, from each source', () => {
    refuses({ env: { PORTCULLIS_PORT: 'abc' } }, /PORTCULLIS_PORT: expected an integer, got "abc"/);
    refuses({ env: { PORTCULLIS_PORT: '70000' } }, /PORTCULLIS_PORT: .*65535/);
    refuses({ env: { PORTCULLIS_MODE: 'prod' } }, /PORTCULLIS_MODE: must be one of development, production/);
    refuses({ env: { PORTCULLIS_METRICS_ENABLED: 'maybe' } }, /PORTCULLIS_METRICS_ENABLED: expected true or false/);
    refuses({ env: { PORTCULLIS_DATABASE_URL: 'mysql://db' } }, /PORTCULLIS_DATABASE_URL/);
    refuses({ env: {}, overrides: { port: -1 } }, /command line: key "port"/);
    withConfigFile(JSON.stringify({ log: { level: 'loud' } }), (file) => refuses({ file, env: {} }, /key "log\.level": must be one of/));
  });

  it('a missing, unreadable or non-JSON file', () => {
    refuses({ env: {}, file: '/nonexistent/portcullis.json' }, /cannot read it \(no such file\)/);
    withConfigFile('{ not json', (file) => refuses({ file, env: {} }, /not valid JSON/));
    withConfigFile('[1, 2]', (file) => refuses({ file, env: {} }, /must hold a JSON object/));
  });

  it('never echoes a secret value it refuses', () => {
    assert.throws(
      () => loadConfig({ env: { PORTCULLIS_MASTER_KEY: 'hunter2-not-a-key' } }),
      (error: unknown) => error instanceof ConfigError && error.message.includes('PORTCULLIS_MASTER_KEY') && !error.message.includes('hunter2'),
    );
  });

  it('an issuer with a query or fragment (RFC 8414 section 2)', () => {
    refuses({ env: { PORTCULLIS_ISSUER: 'http://127.0.0.1:9000/?x=1' } }, /issuer.*no query or fragment/);
  });

  it('half a TLS pair, and a redis hot store without a URL', () => {
    refuses({ env: { PORTCULLIS_TLS_CERT_FILE: '/x.pem' } }, /tls\.certFile.*tls\.keyFile/);
    refuses({ env: { PORTCULLIS_HOT_STORE: 'redis' } }, /redis\.url/);
  });
});

describe('config: production mode', () => {
  it('refuses to start without an issuer', () => {
    assert.throws(() => loadConfig({ env: { PORTCULLIS_MODE: 'production', PORTCULLIS_TRUST_PROXY: 'loopback' } }), /issuer/);
  });

  it('refuses a plain-http issuer', () => {
    assert.throws(
      () => loadConfig({ env: { PORTCULLIS_MODE: 'production', PORTCULLIS_ISSUER: 'http://id.example.com', PORTCULLIS_TRUST_PROXY: 'loopback' } }),
      /https issuer/,
    );
  });

  it('refuses to start without TLS or a trusted proxy', () => {
    assert.throws(() => loadConfig({ env: { PORTCULLIS_MODE: 'production', PORTCULLIS_ISSUER: 'https://id.example.com' } }), /TLS/);
  });

  it('starts behind a trusted proxy, binding all interfaces by default', () => {
    const config = loadConfig({ env: { PORTCULLIS_MODE: 'production', PORTCULLIS_ISSUER: 'https://id.example.com', PORTCULLIS_TRUST_PROXY: '10.0.0.0/8' } });
    assert.equal(config.host, '0.0.0.0');
    assert.equal(config.issuer, 'https://id.example.com');
  });
});

describe('config: masking and documentation', () => {
  it('masks secrets, including the password inside a database URL', () => {
    const key = 'A'.repeat(43);
    const config = loadConfig({
      env: {
        PORTCULLIS_MASTER_KEY: key,
        PORTCULLIS_DATABASE_URL: 'postgres://app:s3cret-pw@db.internal:5432/portcullis',
        PORTCULLIS_REDIS_URL: 'redis://:r3dis-pw@cache.internal:6379',
      },
    });
    const printed = JSON.stringify(maskConfig(config));
    assert.ok(!printed.includes(key));
    assert.ok(!printed.includes('s3cret-pw'));
    assert.ok(!printed.includes('r3dis-pw'));
    assert.ok(printed.includes('db.internal'), 'the host stays visible');
  });

  it('every key has an env variable, a description and a default or a derivation', () => {
    const envs = new Set<string>();
    for (const leaf of configLeaves()) {
      assert.match(leaf.env, /^PORTCULLIS_[A-Z0-9_]+$/, leaf.path);
      assert.ok(!envs.has(leaf.env), `${leaf.env} is used twice`);
      envs.add(leaf.env);
      assert.ok(leaf.schema.description, `${leaf.path} has no description`);
    }
  });

  it("the README's configuration table is the one generated from the schema", () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const start = readme.indexOf(TABLE_START);
    const end = readme.indexOf(TABLE_END);
    assert.ok(start !== -1 && end > start, 'README has the table markers');
    assert.equal(readme.slice(start, end + TABLE_END.length), configTable(), 'run `npm run config:table` and paste the output into the README');
  });
});

describe('config errors in words (first-hour D11)', () => {
  const message = (env: Record<string, string>): string => {
    try {
      loadConfig({ env });
    } catch (error) {
      if (error instanceof ConfigError) return error.message;
      throw error;
    }
    assert.fail('the config was accepted');
  };

  it('a short master key: "expected 43 base64url characters (32 bytes)", not a lower-cased pattern, and not the value', () => {
    const text = message({ PORTCULLIS_MASTER_KEY: 'short' });
    assert.equal(text, 'environment variable PORTCULLIS_MASTER_KEY: expected 43 base64url characters (32 bytes)');
    assert.doesNotMatch(text, /a-za-z|\^|\$|short/);
  });

  it('a short admin token: "at least 32 characters", without echoing it', () => {
    assert.equal(message({ PORTCULLIS_ADMIN_TOKEN: 'short' }), 'environment variable PORTCULLIS_ADMIN_TOKEN: expected at least 32 characters');
    assert.equal(message({ PORTCULLIS_ADMIN_TOKEN: `${'x'.repeat(32)} with spaces` }), 'environment variable PORTCULLIS_ADMIN_TOKEN: expected printable ASCII characters, no spaces');
  });

  it('patterns, ranges and lengths of other keys are worded, and a pattern is never lower-cased', () => {
    assert.equal(message({ PORTCULLIS_DATABASE_URL: 'mysql://db' }), 'environment variable PORTCULLIS_DATABASE_URL: expected a postgres:// or postgresql:// URL');
    assert.match(message({ PORTCULLIS_DATABASE_SCHEMA: 'Bad' }), /PORTCULLIS_DATABASE_SCHEMA: expected a schema name: a lower-case letter or _, .* \(got "Bad"\)$/);
    assert.equal(message({ PORTCULLIS_PORT: '70000' }), 'environment variable PORTCULLIS_PORT: expected at most 65535 (got 70000)');
    assert.equal(message({ PORTCULLIS_REDIS_KEY_PREFIX: 'p'.repeat(65) }), 'environment variable PORTCULLIS_REDIS_KEY_PREFIX: expected at most 64 characters');
    for (const leaf of configLeaves()) {
      if (typeof leaf.schema['pattern'] === 'string' && /[A-Z]/.test(leaf.schema['pattern'])) {
        assert.ok(leaf.schema.expected !== undefined, `${leaf.path}: a pattern with capitals needs wording in "expected"`);
      }
    }
  });
});

describe('development mode off loopback (first-hour D17)', () => {
  it('the warning says all interfaces, plain HTTP and open registration when the host is not loopback', () => {
    const wide = configWarnings(loadConfig({ env: { PORTCULLIS_HOST: '0.0.0.0' } }));
    assert.ok(wide.includes('development mode listening on all interfaces (0.0.0.0) over plain HTTP, and dynamic client registration is open to anyone who can reach it; set PORTCULLIS_MODE=production to deploy'), wide.join('\n'));
    const one = configWarnings(loadConfig({ env: { PORTCULLIS_HOST: '192.0.2.7' } }));
    assert.ok(one.some((warning) => warning.startsWith('development mode listening on 192.0.2.7, reachable from other machines')), one.join('\n'));
    assert.ok(configWarnings(loadConfig({ env: {} })).includes('development mode: plain HTTP on loopback only; set PORTCULLIS_MODE=production to deploy'));
  });

  it('knows loopback from the rest', () => {
    for (const host of ['127.0.0.1', '127.1.2.3', '::1', 'localhost']) assert.equal(isLoopbackHost(host), true, host);
    for (const host of ['0.0.0.0', '::', '192.0.2.1', '128.0.0.1', 'example.com', '::ffff:10.0.0.1']) assert.equal(isLoopbackHost(host), false, host);
  });
});
