/**
 * Keeps the current material of a set of files: watches the directories
 * that hold them, and after a quiet interval reads them again, checks
 * them, and swaps them in; refused material leaves the current one in
 * place.
 *
 * The directories are watched, not the files: tools replace a file by
 * writing a temporary one and renaming it over the old (cert-manager,
 * spiffe-helper, `mv`), and a watch on the old file's inode would see
 * nothing after the first rename. Kubernetes secret volumes swap a `..data`
 * symlink instead, so every event in a directory counts, whatever file it
 * names; a reading whose bytes equal the current ones is simply not news.
 */
import type { X509Certificate } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { checkMaterial, readMaterial, readMaterialSync, sameBytes, type MtlsBytes, type MtlsFiles, type MtlsMaterial } from './material.ts';

/** What the SDK's factories accept besides the files. */
export interface ReloadOptions {
  /**
   * Quiet time after the last change before the files are read again, so
   * that a certificate and key written one after the other are read as a
   * pair. Default 250 ms (the server's `tls.watchDebounceMs`).
   */
  readonly debounceMs?: number;
  /** Called after new material was swapped in, with its leaf certificate. */
  readonly onReload?: (event: ReloadEvent) => void;
  /**
   * Called when changed files could not be read or were refused; the
   * previous material stays in use. Default: `process.emitWarning`.
   */
  readonly onError?: (error: Error) => void;
}

export interface ReloadEvent {
  /** The new leaf certificate. */
  readonly certificate: X509Certificate;
}

export const DEFAULT_DEBOUNCE_MS = 250;

export class MaterialWatcher {
  readonly #files: MtlsFiles;
  readonly #debounceMs: number;
  readonly #onChange: (material: MtlsMaterial) => void;
  readonly #onError: (error: Error) => void;
  readonly #watchers: FSWatcher[] = [];
  #current: MtlsMaterial;
  /** The last bytes refused, so the same bad files are reported once, not on every event in the directory. */
  #refused: MtlsBytes | undefined;
  #timer: NodeJS.Timeout | undefined;
  /** The reading loop in progress, if any. */
  #reading: Promise<void> | undefined;
  #again = false;
  #closed = false;

  /** Reads and checks the files at once (throws MtlsMaterialError if they are unusable), then starts watching. */
  constructor(files: MtlsFiles, options: ReloadOptions, onChange: (material: MtlsMaterial) => void) {
    const debounceMs = options.debounceMs ?? DEFAULT_DEBOUNCE_MS;
    if (!Number.isInteger(debounceMs) || debounceMs < 0) throw new TypeError('debounceMs is a whole number of milliseconds, 0 or more');
    for (const key of ['certFile', 'keyFile', 'caFile'] as const) {
      if (typeof files[key] !== 'string' || files[key] === '') throw new TypeError(`${key} is the path of a PEM file`);
    }
    this.#files = { certFile: resolve(files.certFile), keyFile: resolve(files.keyFile), caFile: resolve(files.caFile) };
    this.#debounceMs = debounceMs;
    this.#onChange = (material) => {
      onChange(material);
      options.onReload?.({ certificate: material.certificate });
    };
    this.#onError = options.onError ?? ((error) => process.emitWarning(error));
    this.#current = checkMaterial(readMaterialSync(this.#files));
    const directories = new Set([this.#files.certFile, this.#files.keyFile, this.#files.caFile].map((file) => dirname(file)));
    try {
      for (const directory of directories) {
        // persistent: false, so a forgotten close() does not keep the process alive.
        const watcher = watch(directory, { persistent: false }, () => this.#schedule());
        watcher.on('error', (error) => this.#onError(error));
        this.#watchers.push(watcher);
      }
    } catch (error) {
      this.close();
      throw error;
    }
  }

  get current(): MtlsMaterial {
    return this.#current;
  }

  /** Reads the files now instead of waiting for an event; resolves when that reading is done (applied, unchanged or refused). */
  async reload(): Promise<void> {
    clearTimeout(this.#timer);
    await this.#read();
  }

  /** Stops watching; the current material stays readable. Idempotent. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    for (const watcher of this.#watchers.splice(0)) watcher.close();
  }

  #schedule(): void {
    if (this.#closed) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.#read(), this.#debounceMs);
    this.#timer.unref();
  }

  /** One reading at a time; a change during a reading asks for one more after it, and every caller waits for the loop. */
  #read(): Promise<void> {
    if (this.#reading !== undefined) {
      this.#again = true;
      return this.#reading;
    }
    const loop = async () => {
      try {
        do {
          this.#again = false;
          await this.#readOnce();
        } while (this.#again && !this.#closed);
      } finally {
        this.#reading = undefined;
      }
    };
    return (this.#reading = loop());
  }

  async #readOnce(): Promise<void> {
    let bytes: MtlsBytes;
    try {
      bytes = await readMaterial(this.#files);
    } catch (error) {
      // A file between unlink and rename, say; the rename's own event reads again.
      if (!this.#closed) this.#onError(error as Error);
      return;
    }
    if (this.#closed || sameBytes(bytes, this.#current) || (this.#refused !== undefined && sameBytes(bytes, this.#refused))) return;
    let material: MtlsMaterial;
    try {
      material = checkMaterial(bytes);
    } catch (error) {
      this.#refused = bytes;
      this.#onError(error as Error);
      return;
    }
    this.#refused = undefined;
    this.#current = material;
    this.#onChange(material);
  }
}
