/**
 * `portcullis resource create | list | show | delete`: the resource servers
 * (APIs) tokens are issued for. A resource owns its API scopes; a client
 * gets an API scope only when an operator grants it
 * (`portcullis client create --scope`), and its tokens then name the
 * resource as their audience (RFC 8707, RFC 9068 section 3). Every change is
 * audited (`resource.created`, `resource.deleted`).
 */
import { Option, type Command } from 'commander';
import type { Config, ConfigInput } from '../config/index.ts';
import { RESOURCE_TOKEN_ALGORITHMS, ResourceRegistryError, type ClientRegistry, type ResourceRegistry, type ResourceServer } from '../oauth/index.ts';
import { PROFILES, withServices } from '../runtime/index.ts';

export interface ResourceCliContext {
  readonly out: (line: string) => void;
  readonly err: (line: string) => void;
  readonly load: (options: { config?: string }, overrides?: ConfigInput) => Readonly<Config>;
  readonly configOption: () => Option;
}

/** A refusal the operator can act on: one line, exit 1. */
export class ResourceCommandError extends Error {
  override readonly name = 'ResourceCommandError';
}

const ACTOR = 'admin-cli';

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

interface Registries {
  readonly resources: ResourceRegistry;
  readonly clients: ClientRegistry;
}

/** The registries (no cache: the command reads what is stored now) over an existing deployment, audited. */
function withRegistries<T>(config: Readonly<Config>, work: (registries: Registries) => Promise<T>): Promise<T> {
  return withServices({ config, profile: PROFILES.admin() }, ['registries'], (services) => work(services.get('registries')));
}

async function findResource(resources: ResourceRegistry, uri: string): Promise<ResourceServer> {
  const found = await resources.get(uri);
  if (found === null) throw new ResourceCommandError(`no resource ${uri.slice(0, 200)} (see portcullis resource list)`);
  return found;
}

function describe(resource: ResourceServer): string[] {
  return [
    `uri: ${resource.uri}`,
    `scopes: ${resource.scopes.join(' ')}`,
    `access token algorithm: ${resource.accessTokenAlg ?? 'server default (tokens.signingAlgorithm)'}`,
    `clients acting for it (may introspect its tokens): ${resource.clients.length === 0 ? '-' : resource.clients.join(' ')}`,
    `created: ${new Date(resource.createdAt).toISOString()}`,
  ];
}

export function registerResourceCommands(program: Command, context: ResourceCliContext): void {
  const resource = program.command('resource').description('Manage resource servers (APIs): their URI (the token audience), their scopes, how their tokens are signed.');

  resource
    .command('create')
    .description('Register a resource server and the API scopes it defines (scope names are unique across resources).')
    .addOption(context.configOption())
    .requiredOption('--uri <uri>', 'the resource\'s absolute URI, without a fragment (RFC 8707): the `aud` of its access tokens')
    .option('--scope <scope>', 'an API scope of this resource; repeat for several (at least one)', collect)
    .addOption(new Option('--access-token-alg <alg>', 'sign its access tokens with this algorithm (default: tokens.signingAlgorithm)').choices(RESOURCE_TOKEN_ALGORITHMS))
    .option('--client <client-id>', 'a client that acts for this resource server: it may introspect tokens issued for it (RFC 7662 section 4); repeatable', collect)
    .option('--json', 'print the resource as JSON')
    .action(async (options: { config?: string; uri: string; scope?: string[]; accessTokenAlg?: string; client?: string[]; json?: boolean }) => {
      const config = context.load(options);
      if (options.scope === undefined || options.scope.length === 0) throw new ResourceCommandError('a resource needs at least one --scope');
      // Several scopes in one --scope "a b" are accepted, as with client create.
      const scopes = options.scope.flatMap((value) => value.split(' ')).filter((value) => value !== '');
      await withRegistries(config, async ({ resources, clients }) => {
        for (const clientId of options.client ?? []) {
          if ((await clients.get(clientId)) === null) throw new ResourceCommandError(`no client ${clientId.slice(0, 128)} (--client names an existing client; see portcullis client list)`);
        }
        let created: ResourceServer;
        try {
          created = await resources.create({ uri: options.uri, scopes, ...(options.accessTokenAlg !== undefined && { accessTokenAlg: options.accessTokenAlg }), clients: options.client ?? [] }, { actor: ACTOR });
        } catch (error) {
          if (error instanceof ResourceRegistryError) throw new ResourceCommandError(error.message);
          throw error;
        }
        if (options.json === true) {
          context.out(JSON.stringify(created, null, 2));
          return;
        }
        context.out(`Created resource ${created.uri} with scopes ${created.scopes.join(' ')}.`);
        context.out(`Grant a client its scopes: portcullis client create --name <name> --grant-type client_credentials --scope "${created.scopes.join(' ')}"`);
      });
    });

  resource
    .command('list')
    .description('List resource servers: URI, scopes, access token algorithm.')
    .addOption(context.configOption())
    .option('--json', 'print a JSON array')
    .action(async (options: { config?: string; json?: boolean }) => {
      const config = context.load(options);
      await withRegistries(config, async ({ resources }) => {
        const all = await resources.list();
        if (options.json === true) context.out(JSON.stringify(all, null, 2));
        else if (all.length === 0) context.out('No resources yet: portcullis resource create --uri <uri> --scope <scope>');
        else for (const listed of all) context.out(`${listed.uri}  ${listed.scopes.join(' ')}  ${listed.accessTokenAlg ?? 'default'}`);
      });
    });

  resource
    .command('show')
    .description('Show one resource server.')
    .addOption(context.configOption())
    .argument('<uri>', 'the resource URI')
    .option('--json', 'print JSON')
    .action(async (uri: string, options: { config?: string; json?: boolean }) => {
      const config = context.load(options);
      await withRegistries(config, async ({ resources }) => {
        const found = await findResource(resources, uri);
        if (options.json === true) context.out(JSON.stringify(found, null, 2));
        else for (const line of describe(found)) context.out(line);
      });
    });

  resource
    .command('delete')
    .description('Delete a resource server: its scopes can no longer be requested; tokens already issued expire as usual.')
    .addOption(context.configOption())
    .argument('<uri>', 'the resource URI')
    .action(async (uri: string, options: { config?: string }) => {
      const config = context.load(options);
      await withRegistries(config, async ({ resources }) => {
        const found = await findResource(resources, uri);
        if (!(await resources.delete(found.uri, { actor: ACTOR }))) throw new ResourceCommandError(`no resource ${uri.slice(0, 200)}`);
        context.out(`Deleted resource ${found.uri} and its scopes ${found.scopes.join(' ')}.`);
      });
    });
}
