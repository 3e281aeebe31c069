/**
 * The plugin host of one server instance: runs every enabled plugin (one
 * supervised child each), keeps that set equal to the registry's, and puts
 * the running ones behind the chains' `plugins.host` slot.
 *
 * - Reconciles at start, when a plugin event arrives (installed, enabled,
 *   disabled, removed, quarantined: they cross instances where a bus
 *   carries events) and every `pollMs` (where none does, e.g. an admin
 *   command on another process).
 * - Before every start of a plugin's process, restarts included, its
 *   installed copy is digested again and compared with the pinned digest:
 *   a copy changed on disk never runs (the plugin is quarantined).
 * - A quarantined plugin, or one that cannot be set up, stays enabled and
 *   is held on its chains (held.ts): each hook it serves fails as its
 *   onFailure says, on every instance (the quarantine is recorded in the
 *   registry), until an operator enables it again, disables or removes it.
 * - Publishes each plugin's status (state, breaker, restarts, p50/p99) in
 *   the hot store for `portcullis plugin status`.
 */
import type { Tracer } from '@opentelemetry/api';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DomainEvents, EventDetail, EventSubscriptions } from '../../events/index.ts';
import type { PluginSlot } from '../../hooks/index.ts';
import type { HotStore } from '../../store/index.ts';
import { digestDirectory } from '../digest.ts';
import type { InstalledPlugin, PluginRegistry } from '../installed.ts';
import { MANIFEST_FILE, parseManifestText } from '../manifest.ts';
import { PluginHookDispatcher, type PluginFailureReport } from './dispatcher.ts';
import { ALL_POINTS, HeldPlugin } from './held.ts';
import { hostMethodsFor, type HostCallOptions } from './host-calls.ts';
import { SupervisedPlugin, type PluginStatus, type SupervisorEvent, type SupervisorSettings } from './supervisor.ts';

export interface PluginHostSettings extends SupervisorSettings {
  readonly fetchPrivateNetworks: boolean;
  readonly fetchCa?: string;
}

export interface PluginHostLog {
  info(detail: Record<string, unknown>, message: string): void;
  warn(detail: Record<string, unknown>, message: string): void;
  error(detail: Record<string, unknown>, message: string): void;
}

export interface PluginHostOptions {
  readonly registry: Pick<PluginRegistry, 'list' | 'setQuarantined'>;
  readonly events: Pick<DomainEvents, 'emit'>;
  /** Where plugin events from other processes arrive. */
  readonly subscriptions?: Pick<EventSubscriptions, 'on'>;
  readonly users: HostCallOptions['users'];
  readonly slot: PluginSlot;
  readonly settings: PluginHostSettings;
  readonly log: PluginHostLog;
  /**
   * The host's secrets on disk: the data directory (the embedded database,
   * the master key file by default, the installed plugins), the master key
   * file and the TLS private keys. A plugin whose manifest `fs` paths are,
   * contain or lie inside one of them does not start (its supervisor counts
   * a crash, so it ends quarantined).
   */
  readonly protectedPaths: readonly string[];
  /** Where the status is published for `plugin status`; none when absent. */
  readonly hot?: HotStore;
  /** How often the registry is read again (default 2 s). */
  readonly pollMs?: number;
  /** OpenTelemetry: a span per plugin call within a traced request. */
  readonly tracer?: Tracer;
  /** How long start() waits for the enabled plugins to run (default 10 s). */
  readonly startWaitMs?: number;
}

/** One instance's published status. */
export interface InstanceStatus {
  readonly instance: string;
  readonly updatedAt: number;
  readonly plugins: readonly (PluginStatus & { readonly problem?: string })[];
}

const STATUS_INSTANCES = 'plugins:status:instances';
const statusKey = (instance: string) => `plugins:status:${instance}`;
const PLUGIN_EVENTS = ['plugin.installed', 'plugin.enabled', 'plugin.disabled', 'plugin.removed', 'plugin.quarantined'] as const;

export class PluginHost {
  readonly instance = randomUUID();
  readonly #options: PluginHostOptions;
  readonly #dispatcher: PluginHookDispatcher;
  readonly #running = new Map<string, SupervisedPlugin>();
  /** Enabled plugins that do not run (quarantined, or a copy that no longer checks): on the chains, failing as their onFailure says. */
  readonly #held = new Map<string, HeldPlugin>();
  /** Quarantines this host decided, until the registry's record says the operator ended them. */
  readonly #quarantined = new Map<string, { readonly digest: string; readonly at: number; readonly reason: string }>();
  #reconciling: Promise<void> = Promise.resolve();
  #timer: NodeJS.Timeout | undefined;
  #unsubscribe: (() => void) | undefined;
  #closed = false;

  constructor(options: PluginHostOptions) {
    this.#options = options;
    this.#dispatcher = new PluginHookDispatcher((report) => this.#failed(report), options.tracer);
  }

  /**
   * Runs the enabled plugins and attaches them to the chains. Waits (up to
   * `startWaitMs`) until each runs, so the listener does not open on a
   * window in which every request a plugin must check is refused; one that
   * does not come up in time is left to its supervisor (and `plugin status`).
   */
  async start(): Promise<void> {
    // SIGUSR1 opens a Node process's inspector; any process of the server's user can send it. Heard here, it opens nothing.
    process.on('SIGUSR1', this.#onSigusr1);
    this.#options.slot.attach(this.#dispatcher);
    await this.reconcile();
    const waitMs = this.#options.startWaitMs ?? 10_000;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, waitMs);
    });
    await Promise.race([Promise.allSettled([...this.#running.values()].map((plugin) => plugin.whenRunning())), deadline]);
    clearTimeout(timer);
    const pollMs = this.#options.pollMs ?? 2000;
    this.#timer = setInterval(() => void this.reconcile().catch((error: unknown) => this.#options.log.error({ err: error }, 'plugin reconcile failed')), pollMs);
    this.#timer.unref();
    this.#unsubscribe = this.#options.subscriptions?.on(PLUGIN_EVENTS, () => void this.reconcile().catch(() => undefined));
  }

  /** Brings the running set in line with the registry; serialised (one at a time). */
  reconcile(): Promise<void> {
    this.#reconciling = this.#reconciling.then(
      () => this.#reconcileOnce(),
      () => this.#reconcileOnce(),
    );
    return this.#reconciling;
  }

  async #reconcileOnce(): Promise<void> {
    if (this.#closed) return;
    const installed = await this.#options.registry.list();
    const wanted = new Map(installed.filter((plugin) => plugin.enabled).map((plugin) => [plugin.name, plugin]));
    // A quarantine this host recorded holds until the operator enables the plugin again (or it changes).
    for (const [name, entry] of this.#quarantined) {
      const want = wanted.get(name);
      if (want === undefined || want.digest !== entry.digest || (want.enabledAt ?? 0) > entry.at) this.#quarantined.delete(name);
    }
    for (const [name, running] of this.#running) {
      const want = wanted.get(name);
      // Quarantined here, or by another instance (the registry's record): stopped, then held below.
      if (want === undefined || want.digest !== running.plugin.digest || running.state === 'quarantined' || this.#quarantineOf(want) !== undefined) {
        this.#running.delete(name);
        await running.close();
        this.#options.log.info({ plugin: name }, 'plugin stopped');
      }
    }
    for (const [name, held] of this.#held) {
      const want = wanted.get(name);
      // Released when it changes, when its quarantine ends, or when the operator enables it again (a copy that did not check is tried anew).
      if (want === undefined || want.digest !== held.digest || want.enabledAt !== held.enabledAt || (held.state === 'quarantined' && this.#quarantineOf(want) === undefined)) this.#held.delete(name);
    }
    for (const [name, plugin] of wanted) {
      if (this.#running.has(name) || this.#held.has(name)) continue;
      const quarantine = this.#quarantineOf(plugin);
      if (quarantine !== undefined) {
        this.#hold(plugin, 'quarantined', quarantine);
        continue;
      }
      const supervised = this.#prepare(plugin);
      if (supervised === undefined) continue;
      this.#running.set(name, supervised);
      supervised.start();
    }
    // Held plugins stay on the chains: an enabled plugin that cannot run fails as its onFailure says (a deny rule stays closed).
    this.#dispatcher.setPlugins([...this.#running.values(), ...this.#held.values()]);
    await this.#publish();
  }

  /** Why an enabled plugin is quarantined (the registry's record, or this host's own), or undefined. */
  #quarantineOf(plugin: InstalledPlugin): string | undefined {
    if (plugin.quarantined !== undefined && plugin.quarantined.digest === plugin.digest) return plugin.quarantined.reason;
    return this.#quarantined.get(plugin.name)?.reason;
  }

  /** What the chains know of a plugin that does not run: the manifest it was signed with (kept at installation). */
  #hold(installed: InstalledPlugin, state: 'quarantined' | 'stopped', reason: string): void {
    let manifest: HeldPlugin['plugin']['manifest'] = ALL_POINTS;
    try {
      // The manifest kept at installation; for an older record, the copy's, if the copy still checks.
      if (installed.manifest !== undefined) manifest = parseManifestText(installed.manifest);
      else if (digestDirectory(installed.path).digest === installed.digest) manifest = parseManifestText(readFileSync(join(installed.path, MANIFEST_FILE), 'utf8'));
    } catch {
      // Nothing trustworthy says which hooks it serves: all of them, failing closed.
    }
    this.#held.set(installed.name, new HeldPlugin(installed, manifest, state, reason));
  }

  /** The supervisor of an installed plugin, or undefined (held, with its problem) when it cannot be set up. */
  #prepare(installed: InstalledPlugin): SupervisedPlugin | undefined {
    const verify = (): string | undefined => {
      try {
        return digestDirectory(installed.path).digest === installed.digest ? undefined : 'the installed copy differs from the pinned digest';
      } catch (error) {
        return error instanceof Error ? `the installed copy does not check: ${error.message.slice(0, 200)}` : 'the installed copy cannot be read';
      }
    };
    let problem = verify();
    if (problem === undefined) {
      try {
        // The manifest as signed (kept at installation); an older record has only the checked copy's.
        const manifest = parseManifestText(installed.manifest ?? readFileSync(join(installed.path, MANIFEST_FILE), 'utf8'));
        const plugin = { name: installed.name, version: installed.version, digest: installed.digest, directory: installed.path, manifest };
        return new SupervisedPlugin(plugin, {
          settings: this.#options.settings,
          deniedPaths: this.#options.protectedPaths,
          hostMethods: hostMethodsFor(manifest, {
            events: this.#options.events,
            users: this.#options.users,
            fetchPrivateNetworks: this.#options.settings.fetchPrivateNetworks,
            ...(this.#options.settings.fetchCa !== undefined && { fetchCa: this.#options.settings.fetchCa }),
          }),
          // What runs is what was signed: the copy is digested again before every start, restarts included.
          verify,
          onEvent: (event) => void this.#supervisorEvent(installed, event).catch((error: unknown) => this.#options.log.error({ err: error, plugin: installed.name }, 'plugin event not recorded')),
          onStderr: stderrLogger(installed.name, this.#options.log),
        });
      } catch (error) {
        problem = error instanceof Error ? error.message.slice(0, 300) : 'the manifest cannot be read';
      }
    }
    this.#hold(installed, 'stopped', problem);
    this.#options.log.error({ plugin: installed.name, problem }, 'plugin not started');
    void this.#options.events.emit({ type: 'plugin.failed', outcome: 'failure', actorService: 'plugins', detail: { plugin: installed.name, failure: 'not_started', problem } }).catch(() => undefined);
    return undefined;
  }

  async #failed(report: PluginFailureReport): Promise<void> {
    await this.#options.events.emit({
      type: 'plugin.failed',
      outcome: report.action === 'denied' ? 'denied' : 'failure',
      actorService: 'plugins',
      detail: { plugin: report.plugin, hook: report.point, failure: report.failure, action: report.action },
    });
  }

  async #supervisorEvent(installed: InstalledPlugin, event: SupervisorEvent): Promise<void> {
    const { log, events } = this.#options;
    const plugin = installed.name;
    const emit = (type: 'plugin.crashed' | 'plugin.violation' | 'plugin.quarantined', detail: EventDetail) => events.emit({ type, outcome: 'failure', actorService: 'plugins', detail: { plugin, ...detail } });
    switch (event.kind) {
      case 'started':
        log.info({ plugin, pid: event.pid }, 'plugin started');
        break;
      case 'breaker':
        log.warn({ plugin, breaker: event.state }, `plugin circuit breaker ${event.state}`);
        break;
      case 'crashed':
        log.error({ plugin, reason: event.reason, restartInMs: event.restartInMs }, 'plugin crashed');
        await emit('plugin.crashed', { reason: event.reason.slice(0, 200), restartInMs: event.restartInMs });
        break;
      case 'violation':
        log.warn({ plugin, violation: event.violation, method: event.method }, 'plugin protocol violation');
        await emit('plugin.violation', { violation: event.violation, ...(event.method !== undefined && { method: event.method.slice(0, 64) }), counted: event.counted });
        break;
      case 'quarantined': {
        log.error({ plugin, reason: event.reason }, 'plugin quarantined');
        // Held here at once, whatever the registry says; recorded there for every instance (retried: a store blip must not end it).
        this.#quarantined.set(plugin, { digest: installed.digest, at: Date.now(), reason: event.reason.slice(0, 200) });
        let recorded = false;
        for (let attempt = 0; attempt < 3 && !recorded; attempt++) {
          recorded = await this.#options.registry.setQuarantined(plugin, installed.digest, event.reason).catch((error: unknown) => {
            log.error({ err: error, plugin }, 'quarantine not recorded in the registry');
            return false;
          });
        }
        await emit('plugin.quarantined', { reason: event.reason.slice(0, 200), recorded });
        await this.reconcile();
        break;
      }
    }
  }

  /** The status of every enabled plugin of this instance. */
  status(): InstanceStatus {
    const plugins: (PluginStatus & { problem?: string })[] = [...this.#running.values()].map((plugin) => plugin.status());
    for (const held of this.#held.values()) plugins.push(held.status());
    plugins.sort((a, b) => (a.name < b.name ? -1 : 1));
    return { instance: this.instance, updatedAt: Date.now(), plugins };
  }

  async #publish(): Promise<void> {
    const hot = this.#options.hot;
    if (hot === undefined) return;
    const ttl = 3 * (this.#options.pollMs ?? 2000) + 1000;
    await hot.set(statusKey(this.instance), JSON.stringify(this.status()), ttl);
    await hot.boundedSetAdd(STATUS_INSTANCES, this.instance, Date.now() + ttl, 256);
  }

  /** The plugin by name, while it runs (tests, benches). */
  plugin(name: string): SupervisedPlugin | undefined {
    return this.#running.get(name);
  }

  readonly #onSigusr1 = (): void => this.#options.log.warn({}, 'SIGUSR1 received and ignored: the inspector is not opened by a signal while plugins run');

  async close(): Promise<void> {
    process.off('SIGUSR1', this.#onSigusr1);
    this.#closed = true;
    clearInterval(this.#timer);
    this.#unsubscribe?.();
    this.#options.slot.detach(this.#dispatcher);
    await this.#reconciling.catch(() => undefined);
    await Promise.all([...this.#running.values()].map((plugin) => plugin.close()));
    this.#running.clear();
    this.#held.clear();
    if (this.#options.hot !== undefined) {
      await this.#options.hot.delete(statusKey(this.instance)).catch(() => false);
      await this.#options.hot.boundedSetRemove(STATUS_INSTANCES, this.instance).catch(() => false);
    }
  }
}

/**
 * A plugin's stderr in the log, at most STDERR_LINES_PER_SECOND chunks a
 * second (the rest counted and reported once the second is over): a chatty
 * or hostile plugin cannot flood the server's log.
 */
const STDERR_LINES_PER_SECOND = 20;

function stderrLogger(plugin: string, log: PluginHostLog): (text: string) => void {
  let windowStart = 0;
  let logged = 0;
  let dropped = 0;
  return (text) => {
    const now = Date.now();
    if (now - windowStart >= 1000) {
      if (dropped > 0) log.warn({ plugin, dropped }, 'plugin output dropped (more than 20 chunks a second)');
      windowStart = now;
      logged = 0;
      dropped = 0;
    }
    if (logged >= STDERR_LINES_PER_SECOND) {
      dropped++;
      return;
    }
    logged++;
    log.info({ plugin, stderr: text.slice(0, 2000) }, 'plugin output');
  };
}

/** Every instance's published plugin status (what `plugin status` prints). */
export async function readPluginStatus(hot: HotStore): Promise<InstanceStatus[]> {
  const statuses: InstanceStatus[] = [];
  for (const member of await hot.boundedSetMembers(STATUS_INSTANCES)) {
    const text = await hot.get(statusKey(member.member));
    if (text !== null) statuses.push(JSON.parse(text) as InstanceStatus);
  }
  return statuses;
}
