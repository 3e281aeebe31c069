/**
 * The plugin host (issue 14). Built so far: packages, manifests and their
 * signatures. Installation, the sandbox and the JSON-RPC bridge come next.
 */
export { HOST_CALLS, MANIFEST_FILE, ManifestError, compareVersions, parseManifest, parseManifestText, type HostCall, type HostCallName, type OnFailure, type PluginLimits, type PluginManifest } from './manifest.ts';
