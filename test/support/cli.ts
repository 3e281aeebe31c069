import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { main } from '../../src/cli/main.ts';

/** What one in-process run of the `portcullis` command printed and returned. */
export interface CliRun {
  code: number;
  out: string[];
  err: string[];
}

/** Runs the command line in this process with captured output (and, if given, text on standard input). */
export async function runCli(args: string[], stdin?: string): Promise<CliRun> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(args, { out: (line) => out.push(line), err: (line) => err.push(line), ...(stdin !== undefined && { stdin: Readable.from([stdin]) }) });
  return { code, out, err };
}

/**
 * A new deployment in a temporary directory, as `portcullis init` makes it
 * (data directory, master key, migrated database), with a config file that
 * points at it. `config` adds settings to the file.
 */
export async function initDeployment(prefix: string, config: Record<string, unknown> = {}): Promise<{ dir: string; configFile: string }> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const configFile = join(dir, 'portcullis.json');
  writeFileSync(configFile, JSON.stringify({ dataDir: join(dir, 'data'), log: { level: 'silent' }, ...config }));
  const init = await runCli(['init', '--config', configFile]);
  if (init.code !== 0) throw new Error(`portcullis init failed: ${init.err.join(' ')}`);
  return { dir, configFile };
}
