/**
 * The bench side of servers/portcullis-plugins.ts, shared by
 * plugin-tokens.ts and plugin-refuse.ts: starting it, switching which
 * plugin is enabled over IPC, its plugin events, and one token request.
 */
import { join } from 'node:path';
import { startChild, type Child } from './children.ts';
import { portcullisChildEnvironment } from './lib.ts';

export const RESOURCE = 'https://api.bench.example/';
export const API_SCOPE = 'api:read';
export type BenchPlugin = 'bench-claims' | 'bench-crash';
export const TOKEN_BODY = new URLSearchParams({ grant_type: 'client_credentials', scope: API_SCOPE, resource: RESOURCE }).toString();
export const FORM = 'application/x-www-form-urlencoded';

export interface PluginEvent {
  readonly event: string;
  /** ms since the epoch, performance.timeOrigin + performance.now() of the server. */
  readonly at: number;
  readonly detail: Record<string, unknown>;
}

export interface PluginServer {
  readonly child: Child;
  readonly url: string;
  readonly authorization: string;
  /** Every plugin event the server reported, in order. */
  readonly events: PluginEvent[];
  /** Makes `plugin` the one enabled plugin (null: none) and waits until it runs; its pid. */
  enable(plugin: BenchPlugin | null): Promise<number | null>;
  status(): Promise<{ plugins: { name: string; state: string; breaker: string; restarts: number; calls: number; failures: number; p50Ms: number | null; p99Ms: number | null }[] }>;
  /** One client_credentials token request: status, body, and the access token's claims when there is one. */
  token(): Promise<{ status: number; body: Record<string, unknown>; claims: Record<string, unknown> | null; retryAfter: string | null }>;
  stop(): Promise<void>;
}

export async function startPluginServer(name: string, env: Readonly<Record<string, string>>, nodeFlags: readonly string[]): Promise<PluginServer> {
  const { portcullisEnv } = portcullisChildEnvironment(env);
  const child = await startChild(
    name,
    [join(import.meta.dirname, 'servers', 'portcullis-plugins.ts')],
    { ...portcullisEnv, BENCH_PLUGINS: JSON.stringify({ resource: RESOURCE, apiScope: API_SCOPE }) },
    /^ready \{/,
    nodeFlags,
    60_000,
  );
  const ready = JSON.parse(child.ready.slice('ready '.length)) as { url: string; service: { id: string; secret: string } };
  const authorization = `Basic ${Buffer.from(`${encodeURIComponent(ready.service.id)}:${encodeURIComponent(ready.service.secret)}`).toString('base64')}`;
  const events: PluginEvent[] = [];
  const waiting = new Map<number, { resolve: (value: Record<string, unknown>) => void; reject: (error: Error) => void }>();
  child.process.on('message', (message: Record<string, unknown>) => {
    if (message['type'] === 'event') {
      events.push({ event: message['event'] as string, at: message['at'] as number, detail: message['detail'] as Record<string, unknown> });
      return;
    }
    const waiter = waiting.get(message['id'] as number);
    if (waiter === undefined) return;
    waiting.delete(message['id'] as number);
    if (message['type'] === 'error') waiter.reject(new Error(`${name}: ${String(message['message'])}`));
    else waiter.resolve(message);
  });
  let nextId = 1;
  const ask = (message: Record<string, unknown>) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const id = nextId++;
      waiting.set(id, { resolve, reject });
      child.process.send({ ...message, id });
    });
  return {
    child,
    url: ready.url,
    authorization,
    events,
    enable: async (plugin) => (await ask({ type: 'set', enabled: plugin }))['pid'] as number | null,
    status: async () => (await ask({ type: 'status' }))['status'] as Awaited<ReturnType<PluginServer['status']>>,
    token: async () => {
      const response = await fetch(`${ready.url}/token`, { method: 'POST', headers: { authorization, 'content-type': FORM, accept: 'application/json' }, body: TOKEN_BODY });
      const body = (await response.json()) as Record<string, unknown>;
      const token = body['access_token'];
      const claims = typeof token === 'string' ? (JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown>) : null;
      return { status: response.status, body, claims, retryAfter: response.headers.get('retry-after') };
    },
    stop: () => child.stop(),
  };
}
