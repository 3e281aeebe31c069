/**
 * The built-in CA for tests that talk to it as a service would: a real
 * deployment (`init`, `ca init` through the command line) served in this
 * process on a fixed loopback port, whose clock a test can move forward;
 * `portcullis agent` as a child process whose lines a test waits for; and
 * a stand-in for the mTLS listener (`tls.mtlsPort`): an HTTPS server that
 * requires a client certificate chained to the CA, checks the CA's CRLs
 * (OpenSSL wants one for every CA in the chain) and hands each request to
 * the server's own routes, so `POST /ca/renew` is the real route.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { rmSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import { createInterface } from 'node:readline';
import { Writable } from 'node:stream';
import { loadConfig } from '../../src/config/index.ts';
import { toPem } from '../../src/pki/index.ts';
import { startPortcullis, type RunningPortcullis } from '../../src/server/index.ts';
import { initDeployment, runCli, type CliRun } from './cli.ts';
import { BIN, freePort, within } from './process.ts';

export const TRUST_DOMAIN = 'agent.test';

export interface CaDeployment {
  readonly dir: string;
  readonly configFile: string;
  readonly port: number;
  readonly url: string;
  /** Added to the server's clock (to expire tokens without waiting). */
  clockOffsetMs: number;
  /** The running server, once `start` resolved. */
  readonly running: RunningPortcullis;
  start(): Promise<RunningPortcullis>;
  /** Stops the server (if started); the deployment stays. */
  stop(): Promise<void>;
  /** `portcullis ...args --config FILE`, in this process. */
  cli(args: string[]): Promise<CliRun>;
  /** A one-time enrolment token for these names. */
  token(sans: string[], ttl?: string): Promise<string>;
  /** Registers a client_credentials client with scope ca:issue and these cert_sans; its id and secret. */
  client(certSans: string[], scope?: string): Promise<{ readonly clientId: string; readonly secret: string }>;
  /** Stops the server and deletes the deployment. */
  remove(): Promise<void>;
}

/**
 * A deployment with an initialised CA (trust domain agent.test) on a fixed
 * free port; `start` serves it. `config` adds settings to the file.
 */
export async function caDeployment(prefix: string, config: Record<string, unknown> = {}): Promise<CaDeployment> {
  const port = await freePort();
  const { dir, configFile } = await initDeployment(prefix, { port, pki: { trustDomain: TRUST_DOMAIN }, ...config });
  const cli = (args: string[]) => runCli([...args, '--config', configFile]);
  const init = await cli(['ca', 'init']);
  if (init.code !== 0) throw new Error(`ca init failed: ${init.err.join(' ')}`);
  let running: RunningPortcullis | undefined;
  const deployment: CaDeployment = {
    dir,
    configFile,
    port,
    url: `http://127.0.0.1:${port}`,
    clockOffsetMs: 0,
    get running() {
      if (running === undefined) throw new Error('the CA server is not started');
      return running;
    },
    start: async () => {
      running = await startPortcullis(loadConfig({ env: {}, file: configFile }), {
        clock: () => Date.now() + deployment.clockOffsetMs,
        logDestination: new Writable({ write: (_chunk, _encoding, done) => done() }),
      });
      return running;
    },
    stop: async () => {
      const current = running;
      running = undefined;
      await current?.stop();
    },
    cli,
    token: async (sans, ttl = '10m') => {
      const made = await cli(['ca', 'token', ...sans.flatMap((san) => ['--san', san]), '--ttl', ttl]);
      if (made.code !== 0) throw new Error(`ca token failed: ${made.err.join(' ')}`);
      return made.out[0]!;
    },
    client: async (certSans, scope = 'ca:issue') => {
      const made = await cli(['client', 'create', '--name', 'agent test', '--grant-type', 'client_credentials', '--scope', scope, ...certSans.flatMap((san) => ['--cert-san', san])]);
      if (made.code !== 0) throw new Error(`client create failed: ${made.err.join(' ')}`);
      const text = made.out.join('\n');
      return { clientId: /client_id: +(\S+)/.exec(text)![1]!, secret: /client_secret: +(\S+)/.exec(text)![1]! };
    },
    remove: async () => {
      await deployment.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return deployment;
}

export interface RenewalListener {
  readonly url: string;
  /** Re-reads the CA records and serves the current CA certificates and CRLs (after `ca revoke` in another process). */
  refreshTrust(): Promise<void>;
  close(): Promise<void>;
}

/**
 * The mTLS listener's stand-in: requires a client certificate that chains
 * to the CA and is not on its CRLs (`clientTrust()`), presents a server
 * certificate from the CA (127.0.0.1, localhost), and passes requests to
 * the server's routes. `port`: a fixed one (default: any free port).
 */
export async function startRenewalListener(running: RunningPortcullis, port = 0): Promise<RenewalListener> {
  const { authority } = running.runtime.get('pki');
  const own = await authority.issueServerCertificate({ dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  const context = () => {
    const trust = authority.clientTrust();
    // node:tls reads CRLs as PEM.
    return { cert: own.cert, key: own.key, ca: [...trust.ca], crl: trust.crl.map((der) => toPem('X509 CRL', der)) };
  };
  const server: Server = createServer({ ...context(), requestCert: true, rejectUnauthorized: true }, (request, response) => running.app.routing(request, response));
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const address = server.address();
  const bound = typeof address === 'object' && address !== null ? address.port : 0;
  return {
    url: `https://127.0.0.1:${bound}/ca/renew`,
    refreshTrust: async () => {
      await authority.refresh();
      server.setSecureContext(context());
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export interface AgentProcess {
  readonly child: ChildProcessWithoutNullStreams;
  /** Every line so far, stdout and stderr, in arrival order, each marked with its stream. */
  readonly lines: { readonly stream: 'out' | 'err'; readonly text: string }[];
  /** The first line matching `pattern` after the last line this returned (waiting for it up to `ms`). */
  line(pattern: RegExp, ms?: number): Promise<string>;
  /** Resolves with the exit code once the process closed (both pipes drained). */
  readonly exited: Promise<number | null>;
  /** SIGTERM, then the exit code. */
  stop(): Promise<number | null>;
}

/** `portcullis agent ...args` as a child process. */
export function spawnAgent(args: string[], options: { readonly cwd: string }): AgentProcess {
  const child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', BIN, 'agent', ...args], { cwd: options.cwd, env: { PATH: process.env['PATH'] ?? '', HOME: options.cwd } });
  const lines: { stream: 'out' | 'err'; text: string }[] = [];
  let cursor = 0;
  let waiter: { pattern: RegExp; resolve: (line: string) => void } | undefined;
  const take = (stream: 'out' | 'err') => (text: string) => {
    lines.push({ stream, text });
    if (waiter?.pattern.test(text) === true) {
      cursor = lines.length;
      const { resolve } = waiter;
      waiter = undefined;
      resolve(text);
    }
  };
  const line = (pattern: RegExp): Promise<string> => {
    const index = lines.findIndex((candidate, at) => at >= cursor && pattern.test(candidate.text));
    if (index >= 0) {
      cursor = index + 1;
      return Promise.resolve(lines[index]!.text);
    }
    cursor = lines.length;
    return new Promise((resolve) => (waiter = { pattern, resolve }));
  };
  createInterface({ input: child.stdout }).on('line', take('out'));
  createInterface({ input: child.stderr }).on('line', take('err'));
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  return {
    child,
    lines,
    line: (pattern, ms = 20_000) => within(line(pattern), ms, `a line matching ${pattern} (so far: ${lines.map((item) => item.text).join(' | ')})`),
    exited,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return within(exited, 20_000, 'the agent stopping');
    },
  };
}
