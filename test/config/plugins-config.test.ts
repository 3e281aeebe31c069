import { it } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, loadConfig } from '../../src/config/index.ts';

const KEY = 'RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3';

it('plugins.trustedKeys: none by default, minisign public key lines from the file or the environment', () => {
  assert.deepEqual(loadConfig({ env: {} }).plugins.trustedKeys, []);
  assert.deepEqual(loadConfig({ env: {}, overrides: { plugins: { trustedKeys: [KEY] } } }).plugins.trustedKeys, [KEY]);
  assert.deepEqual(loadConfig({ env: { PORTCULLIS_PLUGINS_TRUSTED_KEYS: `${KEY},${KEY.replace('Y7', 'Y8')}` } }).plugins.trustedKeys, [KEY, KEY.replace('Y7', 'Y8')]);
});

it('plugins.trustedKeys refuses what is not a minisign Ed25519 public key line', () => {
  for (const bad of ['untrusted comment: minisign public key E7620F1842B4E81F', KEY.slice(0, -1), `RX${KEY.slice(2)}`]) {
    assert.throws(() => loadConfig({ env: {}, overrides: { plugins: { trustedKeys: [bad] } } }), (error: unknown) => error instanceof ConfigError && /plugins\.trustedKeys\.0/.test(error.message));
  }
  assert.throws(() => loadConfig({ env: {}, overrides: { plugins: { trusted: [KEY] } } }), ConfigError);
});
