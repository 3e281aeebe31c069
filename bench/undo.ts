/**
 * What a bench must undo on the way out (a temporary directory, a schema,
 * a connection), newest first: by `finally` normally, by the signal handler
 * on Ctrl-C mid-population. Shared by the benches that populate a store.
 */

interface Undo {
  /** Runs the undo once; a second caller waits for the same run. */
  run(): Promise<void>;
}

const pending: Undo[] = [];
let interrupted = false;
let handlersInstalled = false;

/** Whether Ctrl-C (or SIGTERM) came: a long population loop checks it between batches. */
export function wasInterrupted(): boolean {
  return interrupted;
}

/** Runs every registered undo, newest first; a failing one is reported and the rest still run. */
export async function runUndos(): Promise<void> {
  while (pending.length > 0) {
    try {
      await pending.pop()!.run();
    } catch (error) {
      console.error(`cleanup failed: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
}

/** Registers `undo`; the returned function runs it now (or waits for the run the signal handler started). */
export function deferUndo(undo: () => Promise<void>): () => Promise<void> {
  if (!handlersInstalled) {
    handlersInstalled = true;
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      process.once(signal, () => {
        interrupted = true;
        console.error(`\n${signal}: cleaning up`);
        void runUndos().finally(() => process.exit(130));
      });
    }
  }
  let running: Promise<void> | undefined;
  const entry: Undo = { run: () => (running ??= undo()) };
  pending.push(entry);
  return async () => {
    const at = pending.indexOf(entry);
    if (at >= 0) pending.splice(at, 1);
    await entry.run();
  };
}

/** xorshift128: deterministic, so every driver holds the same data and draws the same samples. */
export function prng(seed: number): () => number {
  let [a, b, c, d] = [seed ^ 0x9e3779b9, seed * 0x85ebca6b, 0xc2b2ae35, 0x27d4eb2f].map((v) => v >>> 0) as [number, number, number, number];
  const next = () => {
    const t = a ^ (a << 11);
    [a, b, c] = [b, c, d];
    d = (d ^ (d >>> 19) ^ (t ^ (t >>> 8))) >>> 0;
    return d;
  };
  for (let i = 0; i < 16; i++) next();
  return next;
}
