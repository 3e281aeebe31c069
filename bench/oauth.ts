/**
 * Portcullis against node-oidc-provider (`oidc-provider` v9) on the three
 * things an authorization server does most: client_credentials tokens/s and
 * introspections/s (autocannon), and full authorization-code flows/s (a
 * scripted browser and client: authorize, sign in with a password, consent,
 * token). The aims: Portcullis / oidc-provider >= 1.5 for client_credentials
 * and >= 2 for introspection and code flows. In the same run, the limit: how
 * many of the same JWT one core builds and signs with node:crypto's
 * synchronous Ed25519 `sign` in a loop, against which Portcullis'
 * client_credentials tokens/s is also reported.
 *
 *   node bench/oauth.ts [--rounds 5] [--duration 5] [--warmup 1]
 *     [--connections 50] [--pipelining 1]   autocannon, for tokens and introspection
 *     [--concurrency 8]                     code-flow loops, each with its own account
 *     [--consent every|remembered]          default every (see below)
 *     [--sign-seconds 2]                    the Ed25519 loop, per round
 *     [--only cc,introspect,flow]           a subset of the workloads
 *     [--env PORTCULLIS_KEY=value ...]      extra config for the Portcullis child
 *     [--node-flag --cpu-prof ...]          extra node flags for both servers
 *     [--server path/to/variant.ts]         in place of servers/portcullis-oauth.ts
 *                                           (same BENCH_OAUTH contract and ready line)
 *
 * Sides, each a child process with the same node flags and environment
 * (Portcullis also gets its PORTCULLIS_* config, none of the caller's):
 * - portcullis: servers/portcullis-oauth.ts, the default config on its
 *   embedded SQLite file in a throwaway directory, on a fixed free port (the
 *   development issuer is derived from it);
 * - oidc-provider: servers/oidc-provider.ts (its own comment lists the
 *   configuration and what could not be made the same);
 * - sign: this script again (`--sign-worker`), one synchronous loop.
 * Both servers register the same two clients (client_secret_basic) and
 * create the same accounts with argon2id hashes of Portcullis' configured
 * parameters; both sign with Ed25519 (EdDSA).
 *
 * Requests, identical on both sides:
 * - tokens: POST /token, Basic auth, `grant_type=client_credentials&
 *   scope=api:read&resource=<api>`: a JWT access token on both sides;
 * - introspection: POST /introspect, Basic auth, `token=<t>`, where t is a
 *   client_credentials token of the same client issued without a resource
 *   just before each run (a JWT on Portcullis; on oidc-provider an opaque
 *   token from its memory adapter, since it refuses to introspect JWTs), and
 *   answered `active: true` before and after the run;
 * - code flow: a fresh cookie jar per flow on a keep-alive connection per
 *   loop: GET /authorize (PKCE S256, state, nonce, scope `openid email
 *   api:read`, the API as resource; with `--consent every` also
 *   prompt=consent) and the redirects that follow, the sign-in form
 *   (GET, then POST email and password), the consent form (POST allow),
 *   then POST /token with the code and verifier; it must give a JWT access
 *   token and an ID token. With `--consent remembered` there is no
 *   prompt=consent: each side shows consent only when it has none on record.
 * Every answer must be the expected one (200s for autocannon; each step of a
 * flow): a refusal costs less and would flatter the figures.
 *
 * Each round runs every workload on both servers, each measured run after a
 * warm-up of the same server and workload, the order of the servers flipping
 * every round (ABBA); then the sign loop. Medians over rounds.
 */
import { generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { Agent } from 'node:http';
import { join } from 'node:path';
import { cpuMicros, startChild, type Child } from './children.ts';
import { table, basic, type ClientCredentials, codeFlow, type FlowResult, formPostLoad, giveUpAfter, machine, median, envOptions, option, options, portcullisChildEnvironment, positiveInteger, postForm, percentile, round2, writeResult, loadRoundOptions } from './lib.ts';

const PASSWORD = 'correct horse battery staple';
const REDIRECT_URI = 'http://127.0.0.1:9/callback';
const RESOURCE = 'https://api.bench.example/';
const API_SCOPE = 'api:read';
const FLOW_SCOPE = `openid email ${API_SCOPE}`;
const GOALS = { cc: 1.5, introspect: 2, flow: 2 } as const;
const STARTUP_TIMEOUT_MS = 60_000;
const READY = /^ready \{/;
const email = (slot: number) => `bench-oauth-${slot}@example.test`;

type Workload = 'cc' | 'introspect' | 'flow';
const WORKLOADS: readonly Workload[] = ['cc', 'introspect', 'flow'];
const LABELS: Record<Workload, string> = { cc: 'client_credentials tokens/s', introspect: 'introspections/s', flow: 'code flows/s' };
const SIDES = ['portcullis', 'oidc-provider'] as const;
type SideName = (typeof SIDES)[number];

function settings() {
  const consent = option('consent', 'every');
  if (consent !== 'every' && consent !== 'remembered') throw new Error('--consent must be every or remembered');
  const only = option('only')?.split(',') ?? [...WORKLOADS];
  if (only.some((name) => !WORKLOADS.includes(name as Workload))) throw new Error(`--only takes ${WORKLOADS.join(',')}`);
  return {
    ...loadRoundOptions(),
    concurrency: positiveInteger('concurrency', 8),
    signSeconds: positiveInteger('sign-seconds', 2),
    consent,
    workloads: WORKLOADS.filter((name) => only.includes(name)),
    // node:sqlite prints an ExperimentalWarning on Node 24; silence it in
    // every child alike so the flags stay identical.
    nodeFlags: ['--disable-warning=ExperimentalWarning', ...options('node-flag')],
    portcullisServer: option('server', join(import.meta.dirname, 'servers', 'portcullis-oauth.ts')),
    portcullisEnv: envOptions(),
  };
}
type Settings = ReturnType<typeof settings>;

interface Server {
  readonly name: SideName;
  readonly child: Child;
  readonly url: string;
  readonly service: ClientCredentials;
  readonly web: ClientCredentials;
}

/** The JOSE header and claims of a compact JWS, unverified (the sanity check reads them). */
function peek(jwt: unknown): { header: Record<string, unknown>; payload: Record<string, unknown> } | null {
  if (typeof jwt !== 'string') return null;
  const parts = jwt.split('.');
  if (parts.length !== 3) return null;
  try {
    const decode = (part: string) => JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as Record<string, unknown>;
    return { header: decode(parts[0]!), payload: decode(parts[1]!) };
  } catch {
    return null;
  }
}

/** One authorization code flow on either side (the scripted browser and client: lib.ts codeFlow). */
function runFlow(server: Server, agent: Agent, account: string, consent: Settings['consent']): Promise<FlowResult> {
  const target = { name: server.name, url: server.url, client: server.web, redirectUri: REDIRECT_URI, scope: FLOW_SCOPE, resource: RESOURCE, password: PASSWORD, promptConsent: consent === 'every' };
  return codeFlow(target, agent, account);
}

// ---------------------------------------------------------------------------
// Measured runs.

interface Run {
  readonly perSecond: number;
  readonly operations: number;
  readonly latencyMs: { readonly p50: number; readonly p99: number };
  /** The server process's CPU time (user + system, all threads) per operation; null where /proc is missing. */
  readonly cpuMicrosPerOperation: number | null;
  /** Code flows only: flows that showed a consent form. */
  readonly consents?: number;
  /** Code flows only: HTTP requests per flow (the median). */
  readonly requestsPerFlow?: number;
}

async function ccToken(server: Server, resource: boolean): Promise<string> {
  const answer = await postForm(undefined, new URL('/token', server.url), { grant_type: 'client_credentials', scope: API_SCOPE, ...(resource && { resource: RESOURCE }) }, server.service);
  if (answer.status !== 200 || typeof answer.json['access_token'] !== 'string') throw new Error(`${server.name}: client_credentials answered ${answer.status} ${JSON.stringify(answer.json)}`);
  return answer.json['access_token'];
}

async function introspect(server: Server, token: string): Promise<Record<string, unknown>> {
  const answer = await postForm(undefined, new URL('/introspect', server.url), { token }, server.service);
  if (answer.status !== 200) throw new Error(`${server.name}: introspection answered ${answer.status} ${JSON.stringify(answer.json)}`);
  return answer.json;
}

async function load(server: Server, path: string, body: string, seconds: number, settings: Settings): Promise<Run> {
  const cpuBefore = cpuMicros(server.child.pid);
  const { result, latencies } = await formPostLoad({ label: `${server.name} ${path}`, url: server.url + path, body, authorization: basic(server.service), connections: settings.connections, pipelining: settings.pipelining, seconds });
  const cpuAfter = cpuMicros(server.child.pid);
  return {
    perSecond: Math.round(result.requests.total / result.duration),
    operations: result.requests.total,
    latencyMs: { p50: round2(percentile(latencies, 50)), p99: round2(percentile(latencies, 99)) },
    cpuMicrosPerOperation: cpuBefore === null || cpuAfter === null ? null : round2((cpuAfter - cpuBefore) / result.requests.total),
  };
}

/**
 * `concurrency` loops, each running one flow after another until the
 * deadline; the flows in flight then are awaited (so the next run starts on
 * an idle server) but do not count.
 */
async function flows(server: Server, seconds: number, settings: Settings): Promise<Run> {
  const agents = Array.from({ length: settings.concurrency }, () => new Agent({ keepAlive: true, maxSockets: 1 }));
  const cpuBefore = cpuMicros(server.child.pid);
  const start = performance.now();
  const deadline = start + seconds * 1000;
  const latencies: number[] = [];
  let completed = 0;
  let total = 0;
  let consents = 0;
  const requests: number[] = [];
  let failed = false;
  try {
    const loops = await Promise.allSettled(
      agents.map(async (agent, slot) => {
        while (performance.now() < deadline && !failed) {
          const flow = await runFlow(server, agent, email(slot), settings.consent).catch((error: unknown) => {
            failed = true;
            throw error;
          });
          total += 1;
          if (performance.now() <= deadline) {
            completed += 1;
            consents += flow.consents;
            requests.push(flow.requests);
            latencies.push(flow.ms);
          }
        }
      }),
    );
    const failure = loops.find((loop) => loop.status === 'rejected');
    if (failure !== undefined) throw failure.reason;
  } finally {
    for (const agent of agents) agent.destroy();
  }
  const cpuAfter = cpuMicros(server.child.pid);
  return {
    perSecond: round2(completed / seconds),
    operations: completed,
    latencyMs: { p50: round2(percentile(latencies, 50)), p99: round2(percentile(latencies, 99)) },
    // Every flow the server did in the run, those in flight at the deadline too.
    cpuMicrosPerOperation: cpuBefore === null || cpuAfter === null ? null : Math.round((cpuAfter - cpuBefore) / total),
    consents,
    requestsPerFlow: median(requests),
  };
}

async function measure(server: Server, workload: Workload, seconds: number, settings: Settings): Promise<Run> {
  switch (workload) {
    case 'cc':
      return load(server, '/token', new URLSearchParams({ grant_type: 'client_credentials', scope: API_SCOPE, resource: RESOURCE }).toString(), seconds, settings);
    case 'introspect': {
      // A new token for every run: oidc-provider's memory adapter is an LRU
      // of 1000 entries that the code flows would have pushed it out of.
      const token = await ccToken(server, false);
      const check = async (when: string) => {
        const answer = await introspect(server, token);
        if (answer['active'] !== true) throw new Error(`${server.name}: the introspected token is not active ${when} the run: ${JSON.stringify(answer)}`);
      };
      await check('before');
      const run = await load(server, '/introspect', new URLSearchParams({ token }).toString(), seconds, settings);
      await check('after');
      return run;
    }
    case 'flow':
      return flows(server, seconds, settings);
  }
}

// ---------------------------------------------------------------------------
// The limit: one core building and signing the access token in a loop.

/**
 * Builds the claims Portcullis puts in a client_credentials access token
 * (src/oauth/access-tokens.ts: iss, sub, aud, exp, iat, a fresh 128-bit jti,
 * client_id, scope) and its header (alg, typ at+jwt, kid), encodes them as a
 * compact JWS and signs with node:crypto's synchronous Ed25519 `sign`, for
 * `seconds`, in one synchronous loop.
 */
function signLoop(seconds: number, privateKey: KeyObject, kid: string, issuer: string): { count: number; seconds: number; cpuSeconds: number } {
  const encode = (value: unknown) => Buffer.from(JSON.stringify(value), 'utf8').toString('base64url');
  const clientId = `c_${randomBytes(16).toString('base64url')}`;
  const cpuBefore = process.cpuUsage();
  const start = performance.now();
  const deadline = start + seconds * 1000;
  let count = 0;
  let sink = 0;
  while (performance.now() < deadline) {
    // 64 per clock read: reading the clock is not what is measured.
    for (let i = 0; i < 64; i++) {
      const iat = Math.floor(Date.now() / 1000);
      const payload = { iss: issuer, sub: clientId, aud: RESOURCE, exp: iat + 600, iat, jti: randomBytes(16).toString('base64url'), client_id: clientId, scope: API_SCOPE };
      const signingInput = `${encode({ alg: 'EdDSA', typ: 'at+jwt', kid })}.${encode(payload)}`;
      const token = `${signingInput}.${sign(null, Buffer.from(signingInput, 'ascii'), privateKey).toString('base64url')}`;
      sink += token.length;
    }
    count += 64;
  }
  const elapsed = (performance.now() - start) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  if (sink === 0) throw new Error('unreachable');
  return { count, seconds: elapsed, cpuSeconds: (cpu.user + cpu.system) / 1e6 };
}

async function signWorker(): Promise<void> {
  const { privateKey } = generateKeyPairSync('ed25519');
  const kid = randomBytes(32).toString('base64url');
  const issuer = 'http://127.0.0.1:65535';
  signLoop(0.3, privateKey, kid, issuer); // warm-up
  process.on('message', (message: { type?: string; seconds?: number }) => {
    if (message.type !== 'run') return;
    process.send?.({ type: 'signed', ...signLoop(message.seconds!, privateKey, kid, issuer) });
  });
  process.once('disconnect', () => process.exit(0));
  process.stdout.write('ready {}\n');
}

async function signRun(worker: Child, seconds: number): Promise<{ perSecond: number; cpuSeconds: number; seconds: number }> {
  const answer = new Promise<{ count: number; seconds: number; cpuSeconds: number }>((resolve) => worker.process.once('message', resolve));
  worker.process.send({ type: 'run', seconds });
  const { count, seconds: elapsed, cpuSeconds } = await answer;
  return { perSecond: Math.round(count / elapsed), cpuSeconds: round2(cpuSeconds), seconds: round2(elapsed) };
}

// ---------------------------------------------------------------------------

/** One flow and one token of each kind per side, read closely before anything is timed. */
async function sanityCheck(server: Server, settings: Settings): Promise<Record<string, unknown>> {
  const jwt = peek(await ccToken(server, true));
  if (jwt === null || jwt.header['alg'] !== 'EdDSA' || jwt.header['typ'] !== 'at+jwt' || jwt.payload['aud'] !== RESOURCE || jwt.payload['iss'] !== server.url || jwt.payload['scope'] !== API_SCOPE) {
    throw new Error(`${server.name}: the client_credentials token is not the expected JWT: ${JSON.stringify(jwt)}`);
  }
  const plain = await ccToken(server, false);
  const introspection = await introspect(server, plain);
  if (introspection['active'] !== true || introspection['client_id'] !== server.service.id) throw new Error(`${server.name}: introspection ${JSON.stringify(introspection)}`);
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const flow = await runFlow(server, agent, email(0), settings.consent);
    const access = peek(flow.tokens['access_token']);
    const id = peek(flow.tokens['id_token']);
    if (access?.header['alg'] !== 'EdDSA' || access.header['typ'] !== 'at+jwt' || access.payload['aud'] !== RESOURCE) throw new Error(`${server.name}: the code flow's access token: ${JSON.stringify(access)}`);
    if (id?.header['alg'] !== 'EdDSA' || id.payload['aud'] !== server.web.id || typeof id.payload['sub'] !== 'string') throw new Error(`${server.name}: the ID token: ${JSON.stringify(id)}`);
    return {
      ccToken: { header: jwt.header, claims: Object.keys(jwt.payload) },
      introspectedToken: { format: peek(plain) === null ? 'opaque' : 'jwt', length: plain.length, answer: Object.keys(introspection) },
      flow: { consents: flow.consents, requests: flow.requests, tokens: Object.keys(flow.tokens), accessTokenScope: access.payload['scope'], idTokenClaims: Object.keys(id.payload) },
    };
  } finally {
    agent.destroy();
  }
}

interface Round {
  readonly round: number;
  readonly order: SideName[];
  readonly runs: Partial<Record<Workload, Record<SideName, Run>>>;
  readonly sign: { perSecond: number; cpuSeconds: number; seconds: number };
}

interface WorkloadSummary {
  readonly workload: Workload;
  readonly medians: Record<SideName, { perSecond: number; latencyMs: { p50: number; p99: number }; cpuMicrosPerOperation: number | null }>;
  /** Portcullis / oidc-provider, of the medians and per round. */
  readonly ratio: number;
  readonly roundRatios: number[];
  readonly goal: number;
}

function medianOrNull(values: readonly (number | null)[]): number | null {
  return values.includes(null) ? null : round2(median(values as number[]));
}

function summarise(rounds: readonly Round[], workload: Workload): WorkloadSummary {
  const side = (name: SideName) => {
    const runs = rounds.map((r) => r.runs[workload]![name]);
    return {
      perSecond: round2(median(runs.map((r) => r.perSecond))),
      latencyMs: { p50: round2(median(runs.map((r) => r.latencyMs.p50))), p99: round2(median(runs.map((r) => r.latencyMs.p99))) },
      cpuMicrosPerOperation: medianOrNull(runs.map((r) => r.cpuMicrosPerOperation)),
    };
  };
  const medians = { portcullis: side('portcullis'), 'oidc-provider': side('oidc-provider') };
  return {
    workload,
    medians,
    ratio: round2(medians.portcullis.perSecond / medians['oidc-provider'].perSecond),
    roundRatios: rounds.map((r) => round2(r.runs[workload]!.portcullis.perSecond / r.runs[workload]!['oidc-provider'].perSecond)),
    goal: GOALS[workload],
  };
}

function print(rounds: readonly Round[], summaries: readonly WorkloadSummary[], sign: { perSecond: number }): void {
  const fmt = (value: number, workload: Workload) => (workload === 'flow' ? value.toFixed(1) : String(Math.round(value)));
  const cpu = (value: number | null) => (value === null ? '-' : value >= 1000 ? String(Math.round(value)) : value.toFixed(1));
  for (const summary of summaries) {
    const { workload } = summary;
    console.log(`\n${LABELS[workload]}:`);
    const cells = (run: { perSecond: number; latencyMs: { p50: number; p99: number }; cpuMicrosPerOperation: number | null }) => [
      fmt(run.perSecond, workload),
      `${run.latencyMs.p50.toFixed(1)} / ${run.latencyMs.p99.toFixed(1)}`,
      cpu(run.cpuMicrosPerOperation),
    ];
    console.log(
      table(
        ['round', 'first', 'portcullis', 'p50/p99 ms', 'CPU µs/op', 'oidc-provider', 'p50/p99 ms', 'CPU µs/op', 'ratio', ...(workload === 'flow' ? ['consents P/O'] : [])],
        [
          ...rounds.map((r) => {
            const runs = r.runs[workload]!;
            return [
              String(r.round),
              r.order[0]!,
              ...cells(runs.portcullis),
              ...cells(runs['oidc-provider']),
              (runs.portcullis.perSecond / runs['oidc-provider'].perSecond).toFixed(2),
              ...(workload === 'flow' ? [`${runs.portcullis.consents}/${runs.portcullis.operations} ${runs['oidc-provider'].consents}/${runs['oidc-provider'].operations}`] : []),
            ];
          }),
          ['median', '', ...cells(summary.medians.portcullis), ...cells(summary.medians['oidc-provider']), summary.ratio.toFixed(2), ...(workload === 'flow' ? [''] : [])],
        ],
      ),
    );
    console.log(
      `portcullis / oidc-provider (of medians) = ${summary.ratio.toFixed(2)} (rounds ${Math.min(...summary.roundRatios).toFixed(2)} to ${Math.max(...summary.roundRatios).toFixed(2)}); ` +
        `aim >= ${summary.goal}: ${summary.ratio >= summary.goal ? 'met' : 'NOT met'}`,
    );
    if (workload === 'flow') {
      const last = rounds.at(-1)!.runs.flow!;
      console.log(`HTTP requests per flow (token request included): portcullis ${last.portcullis.requestsPerFlow}, oidc-provider ${last['oidc-provider'].requestsPerFlow}`);
    }
  }
  const cc = summaries.find((s) => s.workload === 'cc');
  const spread = rounds.map((r) => r.sign.perSecond);
  console.log(`\nEd25519 JWT build + sign, one core, synchronous: median ${sign.perSecond} JWTs/s (rounds ${Math.min(...spread)} to ${Math.max(...spread)})`);
  if (cc !== undefined) {
    console.log(
      `client_credentials tokens/s against that limit: portcullis ${(cc.medians.portcullis.perSecond / sign.perSecond).toFixed(2)}, oidc-provider ${(cc.medians['oidc-provider'].perSecond / sign.perSecond).toFixed(2)}`,
    );
  }
}

async function main(): Promise<void> {
  const config = settings();
  process.once('SIGINT', () => process.exit(130));
  const perRound = config.workloads.length * 2 * (config.durationSeconds + config.warmupSeconds + 3) + config.signSeconds + 2;
  const budgetMs = (config.rounds * perRound + 180) * 1000;
  giveUpAfter('oauth', budgetMs);
  const { baseEnv, portcullisEnv, argon2 } = portcullisChildEnvironment(config.portcullisEnv);
  const setup = {
    emails: Array.from({ length: config.concurrency }, (_, slot) => email(slot)),
    password: PASSWORD,
    redirectUri: REDIRECT_URI,
    resource: RESOURCE,
    apiScope: API_SCOPE,
    consent: config.consent,
    argon2,
  };

  const children: Child[] = [];
  try {
    const servers: Server[] = [];
    for (const name of SIDES) {
      const script = name === 'portcullis' ? config.portcullisServer : join(import.meta.dirname, 'servers', 'oidc-provider.ts');
      const env = { ...(name === 'portcullis' ? portcullisEnv : baseEnv), BENCH_OAUTH: JSON.stringify(setup) };
      const child = await startChild(name, [script], env, READY, config.nodeFlags, STARTUP_TIMEOUT_MS);
      children.push(child);
      const ready = JSON.parse(child.ready.slice('ready '.length)) as { url: string; service: ClientCredentials; web: ClientCredentials };
      servers.push({ name, child, ...ready });
    }
    const signer = await startChild('sign', [import.meta.filename, '--sign-worker'], baseEnv, READY, ['--disable-warning=ExperimentalWarning'], STARTUP_TIMEOUT_MS);
    children.push(signer);

    const checks: Record<string, unknown> = {};
    for (const server of servers) checks[server.name] = await sanityCheck(server, config);

    console.log(
      `portcullis vs oidc-provider ${await providerVersion()}: ${config.workloads.map((w) => LABELS[w]).join(', ')}; ${config.rounds} rounds of ${config.durationSeconds} s per server and workload ` +
        `(after ${config.warmupSeconds} s warm-up), ABBA; autocannon ${config.connections} connections, pipelining ${config.pipelining}; ` +
        `${config.concurrency} code-flow loops, consent ${config.consent}; argon2id m=${argon2.memoryCostKiB} KiB t=${argon2.timeCost} p=${argon2.parallelism} on both sides; ` +
        `sign loop ${config.signSeconds} s per round` +
        (Object.keys(config.portcullisEnv).length > 0 ? `; portcullis env ${JSON.stringify(config.portcullisEnv)}` : ''),
    );

    const rounds: Round[] = [];
    for (let round = 1; round <= config.rounds; round++) {
      const order = round % 2 === 1 ? servers : [...servers].reverse();
      const runs: Round['runs'] = {};
      for (const workload of config.workloads) {
        const byServer = {} as Record<SideName, Run>;
        for (const server of order) {
          await measure(server, workload, config.warmupSeconds, config);
          byServer[server.name] = await measure(server, workload, config.durationSeconds, config);
        }
        runs[workload] = byServer;
      }
      const sign = await signRun(signer, config.signSeconds);
      rounds.push({ round, order: order.map((s) => s.name), runs, sign });
      process.stderr.write(`round ${round}/${config.rounds} done\n`);
    }

    const summaries = config.workloads.map((workload) => summarise(rounds, workload));
    const sign = { perSecond: Math.round(median(rounds.map((r) => r.sign.perSecond))) };
    print(rounds, summaries, sign);
    const cc = summaries.find((s) => s.workload === 'cc');
    const file = writeResult('oauth', {
      benchmark: 'oauth',
      at: new Date().toISOString(),
      machine: machine(),
      settings: { ...config, argon2, oidcProvider: await providerVersion() },
      checks,
      rounds,
      summaries,
      sign: {
        ...sign,
        ...(cc !== undefined && {
          portcullisCcRatio: round2(cc.medians.portcullis.perSecond / sign.perSecond),
          oidcProviderCcRatio: round2(cc.medians['oidc-provider'].perSecond / sign.perSecond),
        }),
      },
    });
    console.log(`wrote ${file}`);
  } finally {
    await Promise.all(children.map((child) => child.stop()));
  }
}

async function providerVersion(): Promise<string> {
  const { readFile } = await import('node:fs/promises');
  const path = join(import.meta.dirname, '..', 'node_modules', 'oidc-provider', 'package.json');
  return (JSON.parse(await readFile(path, 'utf8')) as { version: string }).version;
}

if (process.argv.includes('--sign-worker')) await signWorker();
else await main();
