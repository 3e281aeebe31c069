/**
 * Watches a listener's certificate and key files and hands a changed pair
 * to the listener once the writing has settled.
 *
 * The watch is on the directories, not on the files: deploy tools replace
 * a file by renaming another over it (`mv`, certbot's live/ links,
 * Kubernetes secret volumes swapping their `..data` link), and a watch on
 * the replaced inode would never fire again. Every event restarts the
 * debounce timer, so a pair is read only after the last write of a burst;
 * a pair read half-way is refused by the listener's checks like any bad
 * pair and the current certificate keeps serving until the next event.
 */
import { createHash } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { ConfigError } from '../config/index.ts';
import type { Logger } from '../observability/index.ts';
import type { Clock } from '../store/index.ts';
import { CertificateNotYetValidError, readTlsFiles, type CertificateInfo, type TlsFiles, type TlsMaterial } from './tls.ts';

/** setTimeout's longest delay (2^31 - 1 ms, about 24.8 days); a longer one fires at once. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** What a listener did with a pair it was handed. */
export type TlsLoadOutcome = { readonly kind: 'loaded'; readonly certificate: CertificateInfo } | { readonly kind: 'unchanged' };

export type TlsWatchEvent =
  | { readonly kind: 'reloaded'; readonly certificate: CertificateInfo }
  /** `retryAt`: a certificate that is not valid yet is tried again then, without another file event. */
  | { readonly kind: 'refused'; readonly reason: string; readonly retryAt?: Date }
  | { readonly kind: 'watch-failed'; readonly reason: string };

export interface TlsFileWatchOptions {
  readonly files: TlsFiles;
  readonly debounceMs: number;
  readonly clock: Clock;
  /** Checks the pair and swaps it in (or says it is what already serves); throws a ConfigError to refuse it. */
  readonly load: (material: TlsMaterial) => TlsLoadOutcome;
  /** Hears each reload, and each refusal once: the same bad pair for the same reason is not reported again. */
  readonly report: (event: TlsWatchEvent) => void;
}

export interface TlsFileWatch {
  close(): void;
}

export function watchTlsFiles(options: TlsFileWatchOptions): TlsFileWatch {
  const { files, debounceMs, clock, load, report } = options;
  const namesByDirectory = new Map<string, Set<string>>();
  for (const path of [files.certFile, files.keyFile]) {
    const directory = dirname(resolve(path));
    namesByDirectory.set(directory, (namesByDirectory.get(directory) ?? new Set()).add(basename(path)));
  }
  let debounce: NodeJS.Timeout | undefined;
  let retry: NodeJS.Timeout | undefined;
  let lastRefusal: string | undefined;
  let closed = false;

  const settle = () => {
    debounce = undefined;
    if (closed) return;
    let material: TlsMaterial | undefined;
    try {
      material = readTlsFiles(files);
      const outcome = load(material);
      lastRefusal = undefined;
      if (outcome.kind === 'loaded') report({ kind: 'reloaded', certificate: outcome.certificate });
    } catch (error) {
      // ConfigError messages name the problem, never a path or key material.
      const reason = error instanceof ConfigError ? error.message : 'the TLS certificate or key could not be loaded';
      const retryAt = error instanceof CertificateNotYetValidError ? error.notBefore : undefined;
      if (retryAt !== undefined && retryAt.getTime() - clock() <= MAX_TIMER_MS) {
        clearTimeout(retry);
        retry = setTimeout(changed, Math.max(0, retryAt.getTime() - clock())).unref();
      }
      const refusal = `${reason}\n${material === undefined ? '' : digest(material)}`;
      if (refusal === lastRefusal) return;
      lastRefusal = refusal;
      report({ kind: 'refused', reason, ...(retryAt !== undefined && { retryAt }) });
    }
  };
  function changed(): void {
    if (closed) return;
    clearTimeout(debounce);
    debounce = setTimeout(settle, debounceMs).unref();
  }

  const watchers: FSWatcher[] = [];
  let watchFailed = false;
  for (const [directory, names] of namesByDirectory) {
    try {
      const watcher = watch(directory, { persistent: false }, (_event, filename) => {
        // `..data` and the like: a Kubernetes secret volume swaps one link for all its files.
        if (filename === null || names.has(filename) || filename.startsWith('..')) changed();
      });
      watcher.on('error', (error: NodeJS.ErrnoException) => failed(error));
      watchers.push(watcher);
    } catch (error) {
      failed(error as NodeJS.ErrnoException);
    }
  }
  function failed(error: NodeJS.ErrnoException): void {
    // Reloading on SIGHUP still works; said once.
    if (watchFailed) return;
    watchFailed = true;
    report({ kind: 'watch-failed', reason: `cannot watch the TLS certificate directory (${error.code ?? 'error'}); reload with SIGHUP` });
  }

  return {
    close() {
      closed = true;
      clearTimeout(debounce);
      clearTimeout(retry);
      for (const watcher of watchers) watcher.close();
    },
  };
}

/** The log lines of a watch: a reload at info, a refusal at warn (once per bad pair), naming the listener and never a path or key. */
export function logTlsWatchEvent(logger: Logger, listener: 'main' | 'mtls', event: TlsWatchEvent): void {
  const trigger = 'file-watch';
  if (event.kind === 'reloaded') {
    logger.info({ listener, trigger, serialNumber: event.certificate.serialNumber, notAfter: event.certificate.notAfter.toISOString() }, 'TLS certificate reloaded');
  } else if (event.kind === 'refused') {
    logger.warn({ listener, trigger, reason: event.reason, ...(event.retryAt !== undefined && { retryAt: event.retryAt.toISOString() }) }, 'TLS certificate reload refused; still serving the previous certificate');
  } else {
    logger.warn({ listener, trigger, reason: event.reason }, 'TLS certificate files are not watched');
  }
}

function digest(material: TlsMaterial): string {
  return createHash('sha256').update(material.cert).update('\0').update(material.key).digest('hex');
}
