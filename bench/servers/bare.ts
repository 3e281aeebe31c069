/**
 * The baseline of bench/overhead.ts: a Fastify app with default options that
 * answers GET /healthz with the same bytes and content type as Portcullis.
 * The gap between the two is what Portcullis' own layers cost per request.
 *
 * Prints its URL on stdout once listening; exits on SIGTERM, or when the
 * parent's IPC channel closes (so a crashed benchmark leaves no server behind).
 */
import Fastify from 'fastify';

const body = JSON.stringify({ status: 'ok' });
const app = Fastify();
app.get('/healthz', async (_request, reply) => reply.type('application/json; charset=utf-8').send(body));

const url = await app.listen({ host: '127.0.0.1', port: 0 });
process.stdout.write(`${url}\n`);

const stop = () => {
  app.close().then(
    () => process.exit(0),
    () => process.exit(1),
  );
};
process.once('SIGTERM', stop);
process.once('disconnect', stop);
