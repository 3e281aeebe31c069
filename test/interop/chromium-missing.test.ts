/**
 * First-hour D2: without Chromium, `npm test` hung for ever (an after() hook
 * threw on the browser that never launched, so the servers stayed open). The
 * browser test files must now fail at once, with one clear message, and end:
 * failing, not skipping, because CI needs them to run.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { collectRun } from '../support/process.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BROWSER_TEST_FILES = ['test/interop/browser.test.ts', 'test/interop/code-flow-browser.test.ts'];
/** A hung file is killed after this long and the test fails; the real run takes about two seconds. */
const BOUND_MS = 60_000;

/** The environment without the variable that makes a nested `node --test` report to its parent runner. */
function withoutTestRunnerContext(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const copy = { ...env };
  delete copy['NODE_TEST_CONTEXT'];
  return copy;
}

describe('browser tests without Chromium (first-hour D2)', () => {
  for (const file of BROWSER_TEST_FILES) {
    it(`${file} fails at once with "Chromium is missing", and its process ends`, { timeout: BOUND_MS + 5_000 }, async () => {
      const child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', '--test', '--test-reporter=spec', file], {
        cwd: ROOT,
        env: { ...withoutTestRunnerContext(process.env), PORTCULLIS_TEST_CHROMIUM: '/nonexistent/chromium' },
      });
      const run = await collectRun(child, `node --test ${file}`, BOUND_MS);
      const output = `${run.stdout}\n${run.stderr}`;
      assert.equal(run.signal, null, 'it ended by itself');
      assert.notEqual(run.code, 0, `it fails, not skips:\n${output}`);
      assert.match(output, /Chromium is missing: apt-get install -y chromium/);
      assert.doesNotMatch(output, /\bpass [1-9]/, 'no browser test ran');
    });
  }
});
