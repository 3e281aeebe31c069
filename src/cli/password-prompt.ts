/**
 * Where an admin command gets a new password: typed on the terminal with
 * the echo off (asked twice), or the first line of standard input with
 * --password-stdin. Never from the command line, where `ps` and the shell
 * history would keep it.
 */
import { createInterface } from 'node:readline';
import type { ReadStream } from 'node:tty';

/** A password could not be had: the message says what to do. */
export class PasswordInputError extends Error {
  override readonly name = 'PasswordInputError';
}

export interface PasswordSource {
  /** --password-stdin was given. */
  readonly fromStdin: boolean;
  readonly stdin: NodeJS.ReadableStream;
  /** Where the prompts go (stderr, so stdout stays clean for scripts). */
  readonly promptTo: NodeJS.WritableStream;
}

const CTRL_C = '\u0003';
const CTRL_D = '\u0004';
const BACKSPACE = new Set(['\u007f', '\b']);

/** The first line of stdin: `printf '%s' "$PW" | portcullis user create --email … --password-stdin`. */
export async function readPasswordLine(stdin: NodeJS.ReadableStream): Promise<string> {
  const reader = createInterface({ input: stdin, crlfDelay: Infinity, terminal: false });
  for await (const line of reader) {
    reader.close();
    return line;
  }
  throw new PasswordInputError('--password-stdin: nothing on standard input');
}

export function isTerminal(stream: NodeJS.ReadableStream): stream is ReadStream {
  const tty = stream as Partial<ReadStream>;
  return tty.isTTY === true && typeof tty.setRawMode === 'function';
}

/**
 * One line typed on the terminal with nothing echoed: raw mode turns the
 * terminal's echo off, and this loop writes nothing back for what is typed.
 * Backspace edits; Ctrl-C and Ctrl-D cancel.
 */
export function promptHidden(input: ReadStream, output: NodeJS.WritableStream, question: string): Promise<string> {
  // Echo off before the question shows: what is typed as soon as it appears must not be echoed.
  const wasRaw = input.isRaw;
  input.setRawMode(true);
  output.write(question);
  input.resume();
  return new Promise((resolve, reject) => {
    let typed: string[] = [];
    const finish = (error: Error | undefined) => {
      input.off('data', onData);
      input.setRawMode(wasRaw);
      input.pause();
      output.write('\n');
      if (error === undefined) resolve(typed.join(''));
      else reject(error);
      typed = [];
    };
    const onData = (chunk: Buffer | string) => {
      for (const character of chunk.toString('utf8')) {
        if (character === '\r' || character === '\n') return finish(undefined);
        if (character === CTRL_C || (character === CTRL_D && typed.length === 0)) return finish(new PasswordInputError('cancelled; nothing was changed'));
        if (BACKSPACE.has(character)) typed.pop();
        else if (character >= ' ') typed.push(character);
      }
    };
    input.on('data', onData);
  });
}

/**
 * A new password: from stdin with --password-stdin; on a terminal, typed
 * twice without echo and compared; otherwise refused, so no script makes an
 * account nobody can sign in to by forgetting the flag (first-hour D1).
 */
export async function readNewPassword(source: PasswordSource, whose: string): Promise<string> {
  if (source.fromStdin) return readPasswordLine(source.stdin);
  if (!isTerminal(source.stdin)) {
    throw new PasswordInputError('no password: standard input is not a terminal to type it on; pipe it in with --password-stdin');
  }
  const first = await promptHidden(source.stdin, source.promptTo, `New password for ${whose}: `);
  if (first === '') throw new PasswordInputError('no password typed; nothing was changed');
  const second = await promptHidden(source.stdin, source.promptTo, 'Type it again: ');
  if (first !== second) throw new PasswordInputError('the two passwords differ; nothing was changed');
  return first;
}
