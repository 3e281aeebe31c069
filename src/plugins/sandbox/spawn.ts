/**
 * Starts one plugin in a sandboxed child process and speaks JSON-RPC 2.0 with
 * it over stdin/stdout, length-delimited (issue 14).
 *
 * What holds the plugin, and who enforces it:
 *
 * Enforced by Node's permission model (`--permission`), in the runtime's C++
 * layer below any JavaScript the plugin can reach, verified by
 * test/plugins/sandbox-attacks.test.ts (and the network claim by
 * test/platform/node-permission.test.ts):
 * - file reads only under `--allow-fs-read`: the sandbox runtime's own
 *   directory (child.ts, framing.ts, json-rpc.ts, plugin-sdk.ts: the code
 *   that starts the plugin), the plugin SDK's one file
 *   (src/sdk/plugin/index.ts, or dist/sdk/plugin/index.js: a file grant,
 *   the rest of src/sdk stays unreadable, test/plugins/examples.test.ts),
 *   the plugin's directory and the manifest's declared read paths. No
 *   `--allow-fs-write`: no file is written, anywhere.
 * - no `--allow-child-process`, `--allow-worker`, `--allow-addons`,
 *   `--allow-wasi`: spawning, workers, native addons and WASI throw
 *   ERR_ACCESS_DENIED; so does `process.binding`.
 * - no `--allow-net`: on Node 26 the permission model covers the network;
 *   TCP connect and listen, UDP, DNS lookups and `fetch` are all refused.
 *   The plugin's only way out is the `http.fetch` host call.
 * Not enforced by the permission model, checked here before the start:
 * - what the declared read paths reach: after symlinks resolve, none may be
 *   `/` or under /proc, /sys, /dev (PID 1's environment holds the master
 *   key where the server runs in a container), nor be, contain or lie
 *   inside a `deniedPaths` entry (the host passes its data directory, the
 *   master key file and the TLS keys).
 * - symlinks: Node 26 grants a path, and a symlink under a granted path is
 *   followed to wherever it points (/etc/passwd included). `checkSymlinks`
 *   refuses to start a plugin if any symlink under a readable path leads out
 *   of the readable paths. Hard links cannot be told apart from files: a
 *   plugin directory must come from the installer (which unpacks regular
 *   files only), not be assembled by hand with links.
 * Enforced by V8 flags:
 * - `--max-old-space-size=<memoryMb>`: a heap past the cap is a fatal error
 *   and the child exits. Off-heap memory (Buffers, ArrayBuffers) is NOT
 *   capped by it; an operating-system limit (cgroup) is still missing.
 * - `--disallow-code-generation-from-strings`: `eval` and `new Function`
 *   throw (defence in depth; the permission model is what contains code).
 * - `--no-addons`: native addons refused a second time.
 * Enforced by how the process is started (spawn.ts, the host side):
 * - an explicit, empty environment: no PORTCULLIS_*, no DATABASE_URL, no
 *   master key, no NODE_OPTIONS (which could add flags), no PATH.
 * - the working directory is the plugin's directory.
 * Enforced on the host side of the channel (not by the child):
 * - the maximum message size: a larger frame closes the channel at its
 *   header (its body is never buffered) and the child is killed;
 * - only the listed host methods are answered, ids are checked, and each
 *   call has a deadline (json-rpc.ts).
 * In-process, inside the child (the plugin could undo it, and that only
 * hurts its own channel): console output and `process.stdout` go to stderr
 * so stray logging cannot corrupt the framing (child.ts).
 * Not covered by the permission model, taken away inside the child before
 * the plugin loads (child.ts; non-configurable, no reference left):
 * `process.kill` of any other process (the server is the parent, and shares
 * the process group), `process._kill` and `os.setPriority`.
 * Not enforced here: CPU time (an infinite loop only misses its deadlines;
 * the supervisor kills after repeated misses), off-heap memory (the
 * supervisor watches the resident memory and kills past a limit), and the
 * count of open file descriptors.
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { lstatSync, readdirSync, realpathSync } from 'node:fs';
import { basename, dirname, extname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { DEFAULT_MAX_MESSAGE_BYTES, FrameChannel, FramingError, NotReadingError } from './framing.ts';
import { JsonRpcPeer, RpcError, type ProtocolViolation, type RpcMethod } from './json-rpc.ts';
import { PLUGIN_SDK_ENTRY } from './plugin-sdk.ts';

export interface SandboxLimits {
  /** The V8 heap cap of the child (`--max-old-space-size`). */
  readonly memoryMb: number;
  /** The deadline of a call either way that names none. */
  readonly callTimeoutMs: number;
  /** The largest message either way; defaults to 1 MiB. */
  readonly maxMessageBytes?: number;
  /** How long the plugin's module may take to load before the child is killed; defaults to 10 s. */
  readonly startTimeoutMs?: number;
  /** How much of the child's stderr is kept (its tail); defaults to 64 KiB. */
  readonly stderrBytes?: number;
}

export interface SandboxOptions {
  /** The plugin's directory (its files are readable, nothing else of it matters here). */
  readonly directory: string;
  /** The entry module, relative to the directory and inside it. */
  readonly entry: string;
  /** Read-only paths beyond the directory (the manifest's `fs`), absolute. */
  readonly readPaths?: readonly string[];
  /**
   * Paths no read path may be, contain or be inside (the host's secrets: the
   * data directory, the master key file, the TLS keys), absolute. Compared
   * after symlinks resolve, both ways.
   */
  readonly deniedPaths?: readonly string[];
  readonly limits: SandboxLimits;
  /** The host methods the plugin may call (the manifest's `hostCalls`, already bound). */
  readonly hostMethods?: Readonly<Record<string, RpcMethod>>;
  /** Every protocol violation of the plugin, for the audit and quarantine count. */
  readonly onViolation?: (violation: SandboxViolation) => void;
  /** The child's stderr, chunk by chunk (each at most `stderrBytes`). */
  readonly onStderr?: (text: string) => void;
}

export type SandboxViolation = ProtocolViolation | { readonly kind: 'message-too-large' | 'not-reading' | 'ready-twice'; readonly detail: string };

export interface SandboxExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** The host method the child runtime calls once the plugin's module is loaded. */
export const READY_METHOD = 'sandbox.ready';

const RUNTIME_ENTRY = join(import.meta.dirname, `child${extname(import.meta.filename)}`);

export class SandboxSetupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SandboxSetupError';
  }
}

/** How many entries `checkSymlinks` looks at before it gives up (and refuses). */
const MAX_CHECKED_ENTRIES = 20_000;

const isWithin = (root: string, path: string) => {
  const inside = relative(root, path);
  // By segment: `..x` is a name inside root, `..` or `../x` is out.
  return inside === '' || (inside.split(sep)[0] !== '..' && !isAbsolute(inside));
};

/** Kernel views no plugin reads whatever the host configures: /proc (every process's environment and memory), /sys, /dev; and `/`, which holds them. */
const ALWAYS_DENIED = ['/proc', '/sys', '/dev'];

/** A denied path as given and as its symlinks resolve (one that does not exist yet: as its nearest existing parent resolves). */
function deniedForms(path: string): string[] {
  const given = resolve(path);
  let existing = given;
  let rest = '';
  for (;;) {
    try {
      return [given, join(realpathSync(existing), rest)];
    } catch {
      const parent = dirname(existing);
      if (parent === existing) return [given];
      rest = join(basename(existing), rest);
      existing = parent;
    }
  }
}

/**
 * Refuses a read path that is, contains or lies inside a denied path: a
 * grant of `/srv` would expose `/srv/portcullis/master.key` as surely as a
 * grant of the key. The message names the declared path only.
 */
function checkDenied(declared: string, real: string, denied: readonly string[]): void {
  for (const form of [resolve(declared), real]) {
    if (form === '/' || ALWAYS_DENIED.some((root) => isWithin(root, form))) throw new SandboxSetupError(`the read path ${declared} is, or leads to, a path no plugin may read (/, /proc, /sys, /dev)`);
    if (denied.some((path) => isWithin(path, form) || isWithin(form, path))) throw new SandboxSetupError(`the read path ${declared} is, contains or is inside a path the host protects`);
  }
}

/**
 * Node 26's permission model grants a path, not what a symlink under it
 * points to: a link in the plugin directory to /etc/passwd is readable
 * (test/plugins/sandbox-attacks.test.ts pins this). So every symlink under a
 * granted root must resolve inside a granted root, or the plugin does not
 * start. The child cannot make links itself (creating one needs write
 * access); a link made by someone else after this check is not seen.
 */
export function checkSymlinks(roots: readonly string[]): void {
  let seen = 0;
  const visit = (path: string): void => {
    if (++seen > MAX_CHECKED_ENTRIES) throw new SandboxSetupError(`more than ${MAX_CHECKED_ENTRIES} files to check under ${roots.join(', ')}`);
    const stat = lstatSync(path);
    if (stat.isSymbolicLink()) {
      let target: string;
      try {
        target = realpathSync(path);
      } catch {
        throw new SandboxSetupError(`the symlink ${path} does not resolve`);
      }
      if (!roots.some((root) => isWithin(root, target))) throw new SandboxSetupError(`the symlink ${path} leads out of the readable paths (to ${target})`);
      return;
    }
    if (stat.isDirectory()) for (const name of readdirSync(path)) visit(join(path, name));
  };
  for (const root of roots) visit(root);
}

/** The exact command line of a plugin child: `process.execPath` and its flags, the runtime entry and its arguments. */
export function sandboxCommand(options: SandboxOptions): { readonly command: string; readonly args: readonly string[]; readonly cwd: string } {
  const directory = realpathSync(options.directory);
  const entry = resolve(directory, options.entry);
  const inside = relative(directory, entry);
  if (inside === '' || inside.startsWith('..') || isAbsolute(inside)) throw new SandboxSetupError(`the entry ${options.entry} is not inside ${directory}`);
  for (const path of options.readPaths ?? []) if (!isAbsolute(path)) throw new SandboxSetupError(`the read path ${path} is not absolute`);
  const { memoryMb, callTimeoutMs } = options.limits;
  if (!Number.isInteger(memoryMb) || memoryMb < 8) throw new SandboxSetupError('limits.memoryMb must be an integer of at least 8');
  const denied = (options.deniedPaths ?? []).flatMap((path) => {
    if (!isAbsolute(path)) throw new SandboxSetupError('a denied path is not absolute');
    return deniedForms(path);
  });
  const readPaths = (options.readPaths ?? []).map((path) => {
    const real = realpathSync(path);
    checkDenied(path, real, denied);
    return real;
  });
  checkSymlinks([directory, ...readPaths]);
  const readable = [dirname(RUNTIME_ENTRY), PLUGIN_SDK_ENTRY, directory, ...readPaths];
  return {
    command: process.execPath,
    args: [
      '--permission',
      ...readable.map((path) => `--allow-fs-read=${path}`),
      `--max-old-space-size=${memoryMb}`,
      '--disallow-code-generation-from-strings',
      '--no-addons',
      '--disable-warning=ExperimentalWarning',
      RUNTIME_ENTRY,
      entry,
      String(options.limits.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES),
      String(callTimeoutMs),
    ],
    cwd: directory,
  };
}

/** One running plugin child. */
export class Sandbox {
  readonly #child: ChildProcessByStdio<Writable, Readable, Readable>;
  readonly #peer: JsonRpcPeer;
  readonly #stderrLimit: number;
  #stderrChunks: string[] = [];
  #stderrLength = 0;
  #exit: SandboxExit | undefined;
  /** Resolves with the hook points the plugin serves once its module is loaded; rejects if it exits first. */
  readonly ready: Promise<readonly string[]>;
  /** Resolves when the child has exited (it never rejects). */
  readonly exited: Promise<SandboxExit>;

  constructor(options: SandboxOptions) {
    const { command, args, cwd } = sandboxCommand(options);
    this.#stderrLimit = options.limits.stderrBytes ?? 64 * 1024;
    let onReady!: (hooks: readonly string[]) => void;
    let onNotReady!: (error: Error) => void;
    this.ready = new Promise((resolve, reject) => {
      onReady = (hooks) => {
        clearTimeout(startTimer);
        resolve(hooks);
      };
      onNotReady = (error) => {
        clearTimeout(startTimer);
        reject(error);
      };
    });
    const startTimeoutMs = options.limits.startTimeoutMs ?? 10_000;
    const startTimer = setTimeout(() => {
      onNotReady(new Error(`the plugin was not ready within ${startTimeoutMs} ms`));
      this.kill();
    }, startTimeoutMs);
    // A caller that only awaits `exited` must not see an unhandled rejection.
    this.ready.catch(() => undefined);
    this.#child = spawn(command, args, { cwd, env: {}, stdio: ['pipe', 'pipe', 'pipe'], windowsHide: true });
    const channel = new FrameChannel({
      input: this.#child.stdout,
      output: this.#child.stdin,
      maxMessageBytes: options.limits.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES,
      // Four largest messages unread: the plugin is sending without reading our answers.
      maxBufferedBytes: 4 * (options.limits.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES),
      onMessage: (text) => this.#peer.receive(text),
      onClose: (error) => {
        this.#peer.close(error ? error.message : 'the plugin closed its channel');
        if (error instanceof FramingError || error instanceof NotReadingError) {
          options.onViolation?.({ kind: error instanceof FramingError ? 'message-too-large' : 'not-reading', detail: error.message });
          this.kill();
        }
      },
    });
    const hostMethods = options.hostMethods ?? {};
    let readyCalled = false;
    this.#peer = new JsonRpcPeer({
      channel,
      methods: {
        ...hostMethods,
        [READY_METHOD]: (params) => {
          const hooks = (params as { hooks?: unknown }).hooks;
          if (!Array.isArray(hooks) || !hooks.every((hook) => typeof hook === 'string')) throw new RpcError(-32602, 'Invalid params');
          // Once, by the runtime, before the plugin's code runs its hooks: a second one is the plugin's doing.
          if (readyCalled) {
            options.onViolation?.({ kind: 'ready-twice', detail: 'sandbox.ready called again' });
            throw new RpcError(-32600, 'Invalid Request');
          }
          readyCalled = true;
          onReady(hooks);
          return null;
        },
      },
      defaultTimeoutMs: options.limits.callTimeoutMs,
      ...(options.onViolation ? { onViolation: options.onViolation } : {}),
    });
    this.#child.stderr.setEncoding('utf8');
    this.#child.stderr.on('data', (text: string) => {
      const bounded = text.length > this.#stderrLimit ? text.slice(-this.#stderrLimit) : text;
      // The tail as chunks, trimmed from the front: a flood costs a push per chunk, not a copy of the whole tail.
      this.#stderrChunks.push(bounded);
      this.#stderrLength += bounded.length;
      while (this.#stderrLength - this.#stderrChunks[0]!.length >= this.#stderrLimit) this.#stderrLength -= this.#stderrChunks.shift()!.length;
      options.onStderr?.(bounded);
    });
    this.exited = new Promise((resolve) => {
      this.#child.on('error', (error) => {
        // The executable could not be started: the child never existed.
        channel.close(error);
        this.#exit = { code: null, signal: null };
        onNotReady(error);
        resolve(this.#exit);
      });
      this.#child.on('exit', (code, signal) => {
        this.#exit = { code, signal };
        channel.close();
        this.#peer.close(`the plugin exited (${signal ?? `code ${code}`})`);
        onNotReady(new Error(`the plugin exited before it was ready (${signal ?? `code ${code}`})`));
        resolve(this.#exit);
      });
    });
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  /** The exit, once the child has exited. */
  get exit(): SandboxExit | undefined {
    return this.#exit;
  }

  /** The last `stderrBytes` of the child's stderr. */
  get stderrTail(): string {
    return this.#stderrChunks.join('').slice(-this.#stderrLimit);
  }

  /** Calls a method of the plugin (`hook.<point>`); a missed deadline rejects the call and leaves the child running. */
  call(method: string, params: unknown, options: { readonly timeoutMs?: number } = {}): Promise<unknown> {
    return this.#peer.call(method, params, options);
  }

  /** Kills the child at once (SIGKILL); `exited` tells when it is gone. */
  kill(): void {
    if (this.#exit === undefined) this.#child.kill('SIGKILL');
  }

  /** Closes the channel: the child runtime exits on its own. */
  close(): void {
    this.#child.stdin.end();
  }
}

export function startSandbox(options: SandboxOptions): Sandbox {
  return new Sandbox(options);
}
