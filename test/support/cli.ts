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
