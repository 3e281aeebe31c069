/** The plugin host: supervised plugin processes behind the chains' plugins.host slot. */
export { PluginHost, readPluginStatus, type InstanceStatus, type PluginHostLog, type PluginHostOptions, type PluginHostSettings } from './host.ts';
export { ALL_POINTS, HeldPlugin, type DispatchManifest } from './held.ts';
export { PluginFailedError, PluginHookDispatcher, type DispatchTarget, type PluginFailureKind, type PluginFailureReport } from './dispatcher.ts';
export { MAX_FETCH_RESPONSE_BYTES, hostMethodsFor, type HostCallOptions, type UserDirectory } from './host-calls.ts';
export { PluginCallError, SupervisedPlugin, type BreakerState, type CallFailure, type PluginState, type PluginStatus, type RunnablePlugin, type SupervisorEvent, type SupervisorSettings } from './supervisor.ts';
export { pluginHostSettings, pluginProtectedPaths } from './settings.ts';
export { readAnswer, wireContext, type WireAnswer, type WireParams } from './wire.ts';
