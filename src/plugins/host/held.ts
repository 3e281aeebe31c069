/**
 * An enabled plugin that does not run: quarantined, or its installed copy
 * no longer checks. It stays on the chains and every call fails at once, so
 * each hook it serves fails as its onFailure says: a login rule keeps
 * refusing (deny) rather than vanishing, which would let through what it
 * exists to refuse (fail open). It leaves the chains when an operator
 * disables or removes it, or enables it again (which ends a quarantine).
 */
import { HOOK_POINTS, type HookPoint } from '../../hooks/index.ts';
import type { InstalledPlugin } from '../installed.ts';
import type { PluginManifest } from '../manifest.ts';
import { PluginCallError, type PluginStatus } from './supervisor.ts';

/** What the dispatcher reads of a plugin's manifest. */
export type DispatchManifest = Pick<PluginManifest, 'name' | 'hooks' | 'claimsNamespace' | 'onFailure'>;

/** When nothing trustworthy says which hooks a plugin serves: all of them, each failing closed. */
export const ALL_POINTS: DispatchManifest = Object.freeze({ name: 'unknown', hooks: Object.keys(HOOK_POINTS) as HookPoint[], onFailure: {} });

export class HeldPlugin {
  readonly plugin: { readonly name: string; readonly version: string; readonly digest: string; readonly manifest: DispatchManifest };
  readonly state: 'quarantined' | 'stopped';
  readonly reason: string;
  /** The registry's enabledAt when it was held: enabling it again releases it. */
  readonly enabledAt: number | undefined;
  #failures = 0;

  constructor(installed: InstalledPlugin, manifest: DispatchManifest, state: 'quarantined' | 'stopped', reason: string) {
    // Reported under the installed name, whatever the manifest says.
    this.plugin = { name: installed.name, version: installed.version, digest: installed.digest, manifest: { ...manifest, name: installed.name } };
    this.state = state;
    this.reason = reason;
    this.enabledAt = installed.enabledAt;
  }

  get digest(): string {
    return this.plugin.digest;
  }

  call(): Promise<never> {
    this.#failures++;
    return Promise.reject(new PluginCallError(this.state === 'quarantined' ? 'quarantined' : 'not_running', `the plugin ${this.plugin.name} does not run (${this.reason})`));
  }

  status(): PluginStatus & { readonly problem: string } {
    const { name, version, digest } = this.plugin;
    return { name, version, digest, state: this.state, breaker: 'closed', pid: null, restarts: 0, calls: this.#failures, failures: this.#failures, p50Ms: null, p99Ms: null, problem: this.reason };
  }
}
