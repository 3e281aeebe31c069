/**
 * `portcullis client create | list | show | approve | delete | rotate-secret`: OAuth
 * clients from the command line, through the same metadata validation and
 * registry as dynamic registration (RFC 7591), so every client is checked and
 * audited the same way whoever made it.
 */
import { readFileSync } from 'node:fs';
import { Option, type Command } from 'commander';
import type { Config, ConfigInput } from '../config/index.ts';
import { SIGNING_ALGORITHMS } from '../crypto/index.ts';
import { ClientMetadataError, USER_SCOPE_NAMES, isApproved, validateClientMetadata, type ClientRegistry, type OAuthClient } from '../oauth/index.ts';
import { PROFILES, SSF_STREAM_SCOPE, ensureSignalsResource, withServices, type Registries } from '../runtime/index.ts';

export interface ClientCliContext {
  readonly out: (line: string) => void;
  readonly err: (line: string) => void;
  readonly load: (options: { config?: string }, overrides?: ConfigInput) => Readonly<Config>;
  readonly configOption: () => Option;
}

/** A refusal the operator can act on: one line, exit 1. */
export class ClientCommandError extends Error {
  override readonly name = 'ClientCommandError';
}

/** Who the audit log names for changes made here. */
const ACTOR = 'admin-cli';
const PAGE = 1000;

/** The registries over an existing deployment (never created or migrated from here), audited; stopped however the work ends. */
function withRegistries<T>(config: Readonly<Config>, work: (registries: Registries) => Promise<T>): Promise<T> {
  return withServices({ config, profile: PROFILES.admin() }, ['registries'], (services) => work(services.get('registries')));
}

function withRegistry<T>(config: Readonly<Config>, work: (registry: ClientRegistry) => Promise<T>): Promise<T> {
  return withRegistries(config, ({ clients }) => work(clients));
}

/** What may be shown of a client: its metadata and id, never a hash (RFC 7592 section 3 read response, without secrets). */
function publicView(client: OAuthClient): Record<string, unknown> {
  return Object.fromEntries(Object.entries(client).filter(([key]) => !INTERNAL_FIELDS.has(key)));
}

/** Stored alongside the metadata but never shown: hashes of credentials, the record version. */
const INTERNAL_FIELDS: ReadonlySet<string> = new Set(['secretHash', 'registrationTokenHash', 'version']);

function formatValue(value: unknown): string {
  if (Array.isArray(value)) return value.join(' ');
  if (typeof value === 'string') return value;
  return JSON.stringify(value);
}

async function findClient(registry: ClientRegistry, clientId: string): Promise<OAuthClient> {
  const client = await registry.get(clientId);
  if (client === null) throw new ClientCommandError(`no client ${clientId}`);
  return client;
}

function approvalLabel(client: OAuthClient): string {
  return isApproved(client) ? 'approved' : 'unapproved';
}

function label(client: OAuthClient): string {
  return client.client_name === undefined ? client.client_id : `${client.client_name} (${client.client_id})`;
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

function readJwks(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new ClientCommandError(`cannot read --jwks-file ${file} (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new ClientCommandError(`--jwks-file ${file} is not JSON (expected a JWK Set, {"keys": [...]}, or one public JWK)`);
  }
  // One bare JWK is accepted too, as key tools write it.
  return typeof parsed === 'object' && parsed !== null && Object.hasOwn(parsed, 'kty') ? { keys: [parsed] } : parsed;
}

interface CreateOptions {
  config?: string;
  name: string;
  redirectUri?: string[];
  postLogoutRedirectUri?: string[];
  erasureNotificationUri?: string;
  grantType?: string[];
  authMethod?: string;
  public?: boolean;
  scope?: string;
  native?: boolean;
  jwksFile?: string;
  requirePar?: boolean;
  dpop?: boolean;
  idTokenAlg?: string;
  tlsSubjectDn?: string;
  tlsSanDns?: string;
  tlsSanUri?: string;
  tlsSanIp?: string;
  tlsSanEmail?: string;
  certificateBoundTokens?: boolean;
  certSan?: string[];
  json?: boolean;
}

/** The RFC 7591 request the options describe; validateClientMetadata judges it like any other. */
function metadataRequest(options: CreateOptions): Record<string, unknown> {
  if (options.public === true && options.authMethod !== undefined && options.authMethod !== 'none') {
    throw new ClientCommandError(`--public and --auth-method ${options.authMethod} contradict each other (--public means --auth-method none)`);
  }
  return {
    client_name: options.name,
    ...(options.redirectUri !== undefined && { redirect_uris: options.redirectUri }),
    ...(options.postLogoutRedirectUri !== undefined && { post_logout_redirect_uris: options.postLogoutRedirectUri }),
    ...(options.erasureNotificationUri !== undefined && { erasure_notification_uri: options.erasureNotificationUri }),
    ...(options.grantType !== undefined && { grant_types: options.grantType }),
    ...(options.public === true ? { token_endpoint_auth_method: 'none' } : options.authMethod !== undefined && { token_endpoint_auth_method: options.authMethod }),
    ...(options.scope !== undefined && { scope: options.scope }),
    ...(options.native === true && { application_type: 'native' }),
    ...(options.jwksFile !== undefined && { jwks: readJwks(options.jwksFile) }),
    ...(options.requirePar === true && { require_pushed_authorization_requests: true }),
    ...(options.dpop === true && { dpop_bound_access_tokens: true }),
    ...(options.idTokenAlg !== undefined && { id_token_signed_response_alg: options.idTokenAlg }),
    ...(options.tlsSubjectDn !== undefined && { tls_client_auth_subject_dn: options.tlsSubjectDn }),
    ...(options.tlsSanDns !== undefined && { tls_client_auth_san_dns: options.tlsSanDns }),
    ...(options.tlsSanUri !== undefined && { tls_client_auth_san_uri: options.tlsSanUri }),
    ...(options.tlsSanIp !== undefined && { tls_client_auth_san_ip: options.tlsSanIp }),
    ...(options.tlsSanEmail !== undefined && { tls_client_auth_san_email: options.tlsSanEmail }),
    ...(options.certificateBoundTokens === true && { tls_client_certificate_bound_access_tokens: true }),
    ...(options.certSan !== undefined && { cert_sans: options.certSan }),
  };
}

/** How the new client proves who it is, when it has no secret to show. */
function authenticationNote(client: OAuthClient): string {
  switch (client.token_endpoint_auth_method) {
    case 'none':
      return 'It is a public client: no secret; it must use PKCE.';
    case 'tls_client_auth':
      return 'It authenticates with a TLS client certificate from a trusted CA carrying the registered name (tls_client_auth): no secret.';
    case 'self_signed_tls_client_auth':
      return 'It authenticates with the self-signed TLS client certificate registered in its jwks (self_signed_tls_client_auth): no secret.';
    default:
      return 'It authenticates with a JWT signed by its registered key (private_key_jwt): no secret.';
  }
}

function showSecret(context: ClientCliContext, clientId: string, secret: string): void {
  context.out(`  client_secret: ${secret}`);
  context.out('Store the client secret now: it is shown only this once (Portcullis keeps only a keyed hash of it).');
  context.out(`Lost it? \`portcullis client rotate-secret ${clientId}\` makes a new one.`);
}

export function registerClientCommands(program: Command, context: ClientCliContext): void {
  const client = program.command('client').description('Manage OAuth clients (the applications that sign users in or call APIs).');

  client
    .command('create')
    .description('Register a client. A confidential client gets a server-generated secret, printed once.')
    .addOption(context.configOption())
    .requiredOption('--name <name>', 'the name users see on the consent page')
    .option('--redirect-uri <uri>', 'where the authorization response goes; repeat for several (https, http://127.0.0.1, or com.example.app: for --native)', collect)
    .option('--post-logout-redirect-uri <uri>', 'where the user may land after signing out; repeatable', collect)
    .option('--erasure-notification-uri <uri>', 'where to POST a RISC account-purged SET when a person this client received data about is erased (GDPR Art. 19); for clients without a signal stream')
    .option('--grant-type <type>', 'authorization_code, refresh_token or client_credentials; repeat for several (default: authorization_code)', collect)
    .addOption(
      new Option('--auth-method <method>', 'token endpoint authentication (default: client_secret_basic)').choices([
        'client_secret_basic',
        'client_secret_post',
        'private_key_jwt',
        'tls_client_auth',
        'self_signed_tls_client_auth',
        'none',
      ]),
    )
    .option('--public', 'a public client (browser or native app): no secret, PKCE only; same as --auth-method none')
    .option('--scope <scopes>', 'space-separated scopes the client may request: OpenID scopes, and API scopes of resources (portcullis resource create); default: openid')
    .option('--native', 'a native app (application_type native): may use private-use URI schemes and http://localhost')
    .option('--jwks-file <file>', 'JSON file with the public key(s) for private_key_jwt, or the certificate (x5c) for self_signed_tls_client_auth (a JWK Set or one JWK)')
    .option('--tls-subject-dn <dn>', 'tls_client_auth: the certificate\'s subject DN, RFC 4514 (CN=client,O=Example,C=US)')
    .option('--tls-san-dns <name>', 'tls_client_auth: a DNS name the certificate carries')
    .option('--tls-san-uri <uri>', 'tls_client_auth: a URI the certificate carries (e.g. a SPIFFE ID)')
    .option('--tls-san-ip <address>', 'tls_client_auth: an IP address the certificate carries')
    .option('--tls-san-email <address>', 'tls_client_auth: an email address the certificate carries')
    .option('--certificate-bound-tokens', 'issue only access tokens bound to the client\'s TLS certificate (RFC 8705 section 3.4)')
    .option('--cert-san <name>', 'a name the built-in CA may put in this client\'s certificates: spiffe://trust-domain/path, dns:name or ip:address; repeatable', collect)
    .option('--require-par', 'require pushed authorization requests (RFC 9126)')
    .option('--dpop', 'issue only DPoP-bound access tokens to this client (RFC 9449)')
    .addOption(new Option('--id-token-alg <alg>', 'ID token signing algorithm (default: RS256, OIDC Dynamic Client Registration section 2)').choices(SIGNING_ALGORITHMS))
    .option('--json', 'print the registration response as JSON (RFC 7591 section 3.2.1)')
    .action(async (options: CreateOptions) => {
      const config = context.load(options);
      const request = metadataRequest(options);
      // An API scope exists only as the scope of a registered resource.
      await withRegistries(config, async ({ clients: registry, resources }) => {
        // The transmitter's own resource, made by the first serve; made here too so a receiver can be created first.
        if ((options.scope ?? '').split(' ').includes(SSF_STREAM_SCOPE)) await ensureSignalsResource(resources, config.issuer);
        let metadata;
        try {
          metadata = validateClientMetadata(request, {
            // The operator: cert_sans may be set here, and only here.
            operator: true,
            allowedScopes: [...USER_SCOPE_NAMES, ...(await resources.allScopes())],
            scopeHint: 'a scope is OpenID (openid, profile, email, offline_access) or a scope of a resource: portcullis resource create --uri <uri> --scope <scope>',
          });
        } catch (error) {
          if (error instanceof ClientMetadataError) throw new ClientCommandError(`client refused (${error.error}): ${error.message}`);
          throw error;
        }
        // The operator wrote these URIs: approved (see OAuthClient.approved).
        const { client: created, clientSecret } = await registry.register(metadata, { actor: ACTOR }, { approved: true });
        if (options.json === true) {
          context.out(JSON.stringify({ ...publicView(created), ...(clientSecret !== undefined && { client_secret: clientSecret, client_secret_expires_at: 0 }) }, null, 2));
          return;
        }
        context.out(`Created client ${label(created)}.`);
        context.out(`  client_id:     ${created.client_id}`);
        if (clientSecret !== undefined) showSecret(context, created.client_id, clientSecret);
        else context.out(authenticationNote(created));
        if (created.cert_sans !== undefined) context.out(`  cert_sans:     ${created.cert_sans.join(' ')}`);
      });
    });

  client
    .command('list')
    .description('List clients: id, name, authentication method, grant types, approved or not.')
    .addOption(context.configOption())
    .option('--json', 'print a JSON array')
    .action(async (options: { config?: string; json?: boolean }) => {
      const config = context.load(options);
      await withRegistry(config, async (registry) => {
        const all: OAuthClient[] = [];
        let after: string | undefined;
        for (;;) {
          const page = await registry.list({ ...(after !== undefined && { after }), limit: PAGE });
          all.push(...page);
          if (page.length < PAGE) break;
          after = page.at(-1)!.client_id;
        }
        if (options.json === true) context.out(JSON.stringify(all.map(publicView), null, 2));
        else if (all.length === 0) context.out('No clients yet: portcullis client create --name <name> --redirect-uri <uri>');
        else for (const listed of all) context.out(`${listed.client_id}  ${listed.client_name ?? '-'}  ${listed.token_endpoint_auth_method}  ${listed.grant_types.join(',')}  ${approvalLabel(listed)}`);
      });
    });

  client
    .command('show')
    .description('Show one client\'s registered metadata (never its secret or any hash of it).')
    .addOption(context.configOption())
    .argument('<client-id>', 'the client_id')
    .option('--json', 'print JSON')
    .action(async (clientId: string, options: { config?: string; json?: boolean }) => {
      const config = context.load(options);
      await withRegistry(config, async (registry) => {
        const found = await findClient(registry, clientId);
        const view = publicView(found);
        if (options.json === true) {
          context.out(JSON.stringify({ ...view, approved: isApproved(found), has_client_secret: found.secretHash !== undefined, has_registration_access_token: found.registrationTokenHash !== undefined }, null, 2));
          return;
        }
        for (const [key, value] of Object.entries({ ...view, approved: isApproved(found) })) context.out(`${key}: ${formatValue(value)}`);
        context.out(`client_secret: ${found.secretHash !== undefined ? 'set (only a keyed hash is stored; rotate-secret makes a new one)' : 'none'}`);
        if (found.registrationTokenHash !== undefined) context.out('registration_access_token: set (RFC 7592 self-management)');
      });
    });

  client
    .command('approve')
    .description('Vouch for a self-registered client\'s redirect URIs: errors and sign-outs then return to them without an interstitial page.')
    .addOption(context.configOption())
    .argument('<client-id>', 'the client_id')
    .action(async (clientId: string, options: { config?: string }) => {
      const config = context.load(options);
      await withRegistry(config, async (registry) => {
        const found = await findClient(registry, clientId);
        const changed = await registry.approve(found.client_id, { actor: ACTOR });
        context.out(changed ? `Approved client ${label(found)}. Its redirect URIs: ${[...found.redirect_uris, ...found.post_logout_redirect_uris].join(' ') || 'none'}` : `Client ${label(found)} was already approved.`);
      });
    });

  client
    .command('delete')
    .description('Delete a client: it can no longer authenticate or obtain tokens.')
    .addOption(context.configOption())
    .argument('<client-id>', 'the client_id')
    .action(async (clientId: string, options: { config?: string }) => {
      const config = context.load(options);
      await withRegistry(config, async (registry) => {
        const found = await findClient(registry, clientId);
        if (!(await registry.delete(found.client_id, { actor: ACTOR }))) throw new ClientCommandError(`no client ${clientId}`);
        context.out(`Deleted client ${label(found)}.`);
      });
    });

  client
    .command('rotate-secret')
    .description('Replace a client\'s secret with a new one, printed once. The old secret stops working at once.')
    .addOption(context.configOption())
    .argument('<client-id>', 'the client_id')
    .option('--json', 'print {"client_id", "client_secret"} as JSON')
    .action(async (clientId: string, options: { config?: string; json?: boolean }) => {
      const config = context.load(options);
      await withRegistry(config, async (registry) => {
        const found = await findClient(registry, clientId);
        if (found.secretHash === undefined) throw new ClientCommandError(`client ${clientId} authenticates with ${found.token_endpoint_auth_method}; it has no secret to rotate`);
        const secret = await registry.rotateSecret(found.client_id, { actor: ACTOR });
        if (options.json === true) {
          context.out(JSON.stringify({ client_id: found.client_id, client_secret: secret, client_secret_expires_at: 0 }, null, 2));
          return;
        }
        context.out(`New secret for client ${label(found)}; the old one no longer works.`);
        showSecret(context, found.client_id, secret);
      });
    });
}
