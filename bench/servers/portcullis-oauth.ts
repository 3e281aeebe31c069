/**
 * Portcullis for bench/oauth.ts: as servers/portcullis.ts runs it (config
 * from the environment, a throwaway data directory, the embedded SQLite
 * default), on a port chosen before it starts so that the development issuer
 * derived from the port is the URL it is reached at. Before it says it is
 * ready it registers the clients, the API and the accounts BENCH_OAUTH
 * (JSON: emails, password, redirectUri, apiScope, resource) names
 * (./oauth-setup.ts).
 *
 * Prints `ready {"url", "service", "web"}` (client ids and secrets) on stdout
 * once listening; exits on SIGTERM through the product's own graceful
 * shutdown, or when the parent's IPC channel closes.
 */
import { oauthSetupFromEnv, setUpOAuth } from './oauth-setup.ts';
import { startBenchPortcullis } from './start-portcullis.ts';

const setup = oauthSetupFromEnv();
const { running } = await startBenchPortcullis({ fixedPort: true });
const clients = await setUpOAuth(running, setup);
process.stdout.write(`ready ${JSON.stringify({ url: running.url, ...clients })}\n`);
