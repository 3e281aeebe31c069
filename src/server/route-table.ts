import type { FastifyInstance } from 'fastify';

interface RouteEntry {
  readonly pattern: RegExp;
  readonly methods: Set<string>;
}

/** Every route of an app, as it is registered: call before any route is added. */
export interface RouteTable {
  readonly entries: Map<string, RouteEntry>;
}

/** A Fastify path (`/a/:id`, `/b/*`) as an anchored regular expression. */
function patternOf(url: string): RegExp {
  const source = url
    .split('/')
    .map((segment) => (segment === '*' ? '.*' : segment.startsWith(':') ? '[^/]+' : segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
    .join('/');
  return new RegExp(`^${source}$`);
}

/**
 * Learns the routes from Fastify itself (its onRoute hook), so routes that
 * plugins add later are known too: used to tell "no such path" (404) from
 * "not with this method" (405), and by the tests to reach every route.
 */
export function routeTable(app: FastifyInstance): RouteTable {
  const entries = new Map<string, RouteEntry>();
  tables.set(app, { entries });
  app.addHook('onRoute', (route) => {
    let entry = entries.get(route.url);
    if (entry === undefined) entries.set(route.url, (entry = { pattern: patternOf(route.url), methods: new Set() }));
    for (const method of [route.method].flat()) entry.methods.add(method.toUpperCase());
    // Fastify answers HEAD for every GET route (exposeHeadRoutes).
    if (entry.methods.has('GET')) entry.methods.add('HEAD');
  });
  return { entries };
}

const tables = new WeakMap<FastifyInstance, RouteTable>();

/** Every route of an app built by buildServer: its path pattern and methods (the fuzz test reaches each). */
export function registeredRoutes(app: FastifyInstance): { url: string; methods: string[] }[] {
  return [...(tables.get(app)?.entries ?? new Map<string, RouteEntry>())].map(([url, entry]) => ({ url, methods: [...entry.methods].sort() }));
}

/** The methods some route answers at this path (query ignored), sorted; empty when none. */
export function methodsOf(table: RouteTable, url: string): string[] {
  const question = url.indexOf('?');
  const path = question === -1 ? url : url.slice(0, question);
  const methods = new Set<string>();
  for (const entry of table.entries.values()) {
    if (entry.pattern.test(path)) for (const method of entry.methods) methods.add(method);
  }
  return [...methods].sort();
}
