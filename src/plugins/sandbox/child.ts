/**
 * The plugin child's runtime (issue 14): the entry `spawn.ts` starts under
 * Node's permission model. It takes the JSON-RPC channel (stdin/stdout,
 * length-delimited), sends console output and anything written to
 * `process.stdout` to stderr (which the host logs, bounded), loads the
 * plugin's module, answers `hook.<point>` for each handler the module
 * exports, lets those handlers call the host, and exits when the host closes
 * the channel.
 *
 * Arguments: the plugin entry's absolute path, the maximum message size, the
 * deadline of a call to the host (ms).
 *
 * The plugin module exports its handlers as `hooks` (named) or as the
 * `hooks` of its default export (what `definePlugin` returns): each is
 * `(params, host) => result`, where `host.call(method, params)` calls a host
 * method (only the manifest's `hostCalls` are answered; the rest is -32601).
 *
 * The bare specifier `portcullis/sdk/plugin` resolves to the SDK file (a
 * synchronous, in-thread resolve hook, `module.registerHooks`): a plugin
 * directory has no node_modules, and the sandbox may read that one SDK file
 * and nothing else of the package (spawn.ts). Every other specifier
 * resolves as Node resolves it.
 *
 * Imports only `node:` built-ins and this directory's files: the sandbox may
 * read nothing else of the host's code.
 */
import { Console } from 'node:console';
import { registerHooks, syncBuiltinESMExports } from 'node:module';
import os from 'node:os';
import v8 from 'node:v8';
import { pathToFileURL } from 'node:url';
import { FrameChannel } from './framing.ts';
import { JsonRpcPeer, RpcError, INVALID_PARAMS, type RpcMethod } from './json-rpc.ts';
import { PLUGIN_SDK_ENTRY, PLUGIN_SDK_SPECIFIER } from './plugin-sdk.ts';

interface PluginHost {
  call(method: string, params?: unknown): Promise<unknown>;
}
type PluginHandler = (params: unknown, host: PluginHost) => unknown;

const [entry, maxBytesArgument, timeoutArgument] = process.argv.slice(2);
if (!entry) throw new Error('usage: child.ts <plugin entry> <max message bytes> <host call timeout ms>');

// The channel's streams are taken first; after that, what the plugin writes
// to stdout or the console goes to stderr and cannot break the framing.
const input = process.stdin;
const output = process.stdout;
const stderr = process.stderr;
Object.defineProperty(process, 'stdout', { configurable: true, enumerable: true, get: () => stderr });
globalThis.console = new Console({ stdout: stderr, stderr });

/**
 * Node's permission model does not cover signals (process.kill, and
 * process._debugProcess, which sends SIGUSR1) or scheduling priority,
 * and the child runs as the server's user: `process.kill(process.ppid,
 * 'SIGKILL')` would end the server, SIGSTOP freeze it, and
 * `os.setPriority(ppid, 19)` starve it. These are taken away before the
 * plugin loads, non-configurable so it cannot put them back (and the ESM
 * view of node:os is synced). A signal to itself is not needed either: a
 * plugin ends by throwing, or the host kills it. An operating-system
 * boundary (another uid, a PID namespace) is still the stronger fence.
 */
const refused = (what: string) => () => {
  throw Object.assign(new Error(`${what} is not allowed in a plugin`), { code: 'ERR_ACCESS_DENIED' });
};
// _debugProcess(pid) sends SIGUSR1, which opens the inspector of a Node process (the server) or kills another.
for (const name of ['kill', '_kill', '_debugProcess', '_debugEnd', '_startProfilerIdleNotifier', '_stopProfilerIdleNotifier'] as const) {
  if (name in process) Object.defineProperty(process, name, { value: refused(`process.${name}`), writable: false, configurable: false, enumerable: true });
}
Object.defineProperty(os, 'setPriority', { value: refused('os.setPriority'), writable: false, configurable: false });
// V8 flags set at run time (--allow-natives-syntax) would hand the plugin the engine's internals.
Object.defineProperty(v8, 'setFlagsFromString', { value: refused('v8.setFlagsFromString'), writable: false, configurable: false });
syncBuiltinESMExports();

const methods: Record<string, RpcMethod> = {};
const channel = new FrameChannel({
  input,
  output,
  maxMessageBytes: Number(maxBytesArgument),
  onMessage: (text) => peer.receive(text),
  onClose: (error) => {
    peer.close(error ? error.message : 'the host closed the channel');
    process.exit(error ? 2 : 0);
  },
});
const peer = new JsonRpcPeer({ channel, methods, defaultTimeoutMs: Number(timeoutArgument), exposeErrors: true });
const host: PluginHost = { call: (method, params) => peer.call(method, params) };

const sdkUrl = pathToFileURL(PLUGIN_SDK_ENTRY).href;
registerHooks({
  resolve: (specifier, context, nextResolve) => (specifier === PLUGIN_SDK_SPECIFIER ? { url: sdkUrl, shortCircuit: true } : nextResolve(specifier, context)),
});

const plugin = (await import(pathToFileURL(entry).href)) as { hooks?: unknown; default?: { hooks?: unknown } };
const hooks = plugin.hooks ?? plugin.default?.hooks;
if (typeof hooks !== 'object' || hooks === null) throw new Error(`${entry} exports no hooks`);
for (const [point, handler] of Object.entries(hooks)) {
  if (typeof handler !== 'function') throw new Error(`the hook ${point} of ${entry} is not a function`);
  methods[`hook.${point}`] = (params) => {
    if (typeof params !== 'object' || params === null || Array.isArray(params)) throw new RpcError(INVALID_PARAMS, 'Invalid params');
    return (handler as PluginHandler)(params, host);
  };
}
await peer.call('sandbox.ready', { hooks: Object.keys(hooks) });
