/**
 * The paths no plugin may read, whatever its manifest grants: the server's
 * data directory, master key file, TLS keys, and the config file it was
 * started with (it may hold the master key and database URLs).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, realpathSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/index.ts';
import { pluginProtectedPaths } from '../../src/plugins/index.ts';
import { SandboxSetupError, sandboxCommand } from '../../src/plugins/sandbox/spawn.ts';
import { tempDirectory } from '../support/plugin-packages.ts';

describe('paths protected from plugins', () => {
  it('include the config file the server was loaded from; a plugin granted it (or its directory) does not start', () => {
    const root = realpathSync(tempDirectory('portcullis-protected-'));
    const etc = join(root, 'etc');
    mkdirSync(etc);
    const configFile = join(etc, 'portcullis.json');
    writeFileSync(configFile, JSON.stringify({ dataDir: join(root, 'data'), masterKey: 'A'.repeat(43) }));
    const config = loadConfig({ file: configFile, env: {} });
    const protectedPaths = pluginProtectedPaths(config);
    assert.ok(protectedPaths.includes(configFile), JSON.stringify(protectedPaths));
    assert.ok(protectedPaths.includes(join(root, 'data')));
    const plugin = join(root, 'plugin');
    mkdirSync(plugin);
    writeFileSync(join(plugin, 'index.mjs'), 'export const hooks = {};\n');
    for (const granted of [configFile, etc]) {
      assert.throws(() => sandboxCommand({ directory: plugin, entry: 'index.mjs', readPaths: [granted], deniedPaths: protectedPaths, limits: { memoryMb: 64, callTimeoutMs: 1000 } }), SandboxSetupError, granted);
    }
    // A sibling file of the config file's directory is not protected by it.
    const other = join(root, 'other.json');
    writeFileSync(other, '{}');
    assert.doesNotThrow(() => sandboxCommand({ directory: plugin, entry: 'index.mjs', readPaths: [other], deniedPaths: protectedPaths, limits: { memoryMb: 64, callTimeoutMs: 1000 } }));
  });

  it('a config loaded from the environment alone names no file', () => {
    const config = loadConfig({ env: {}, overrides: { dataDir: join(realpathSync(tempDirectory('portcullis-protected-')), 'data') } });
    assert.deepEqual(pluginProtectedPaths(config).filter((path) => path.endsWith('.json')), []);
  });
});
