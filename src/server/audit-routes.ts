import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { decodeEntry, type Ledger } from '../audit/index.ts';
import type { DomainEvents } from '../events/index.ts';
import { HttpError } from './errors.ts';
import type { AdminAuthenticator } from './admin-auth.ts';
import type { PortcullisRouteConfig } from './error-handler.ts';

export interface AuditRoutesOptions {
  /** Read only: what is recorded is emitted through `events`. */
  readonly ledger: Ledger;
  readonly events: DomainEvents;
  readonly admin: AdminAuthenticator;
}

/** Largest entry range one GET /audit/entries returns. */
const MAX_ENTRY_RANGE = 1000;
/** A cosigned checkpoint note: a few hundred bytes; anything far larger is not one. */
const MAX_NOTE_BYTES = 16 * 1024;
const MAX_INTEGER_DIGITS = 16;

const base64 = (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');

/** A required non-negative integer query parameter, or a 400 naming it. */
function integerParameter(request: FastifyRequest, name: string, fallback?: number): number {
  const raw = (request.query as Record<string, unknown>)[name];
  if (raw === undefined && fallback !== undefined) return fallback;
  if (typeof raw !== 'string' || raw.length === 0 || raw.length > MAX_INTEGER_DIGITS || !/^(0|[1-9][0-9]*)$/.test(raw)) {
    throw new HttpError('bad_request', `Query parameter "${name}" must be a non-negative integer.`);
  }
  return Number(raw);
}

/**
 * The audit ledger over HTTP. Checkpoints, the log key and proofs are public:
 * anyone may check the log. Entries need the admin credential: they are
 * pseudonymous, but still a record of who did what.
 */
export const auditRoutes: FastifyPluginAsync<AuditRoutesOptions> = async (app, { ledger, events, admin }) => {
  app.addContentTypeParser('text/plain', { parseAs: 'string', bodyLimit: MAX_NOTE_BYTES }, (_request, body, done) => done(null, body));

  // The latest signed checkpoint (C2SP tlog-checkpoint) with witness cosignatures; ?size=N for the newest of that size.
  app.get('/audit/checkpoint', async (request, reply) => {
    const query = request.query as Record<string, unknown>;
    const checkpoint = query['size'] === undefined ? await ledger.latestCheckpoint() : await ledger.checkpointOfSize(integerParameter(request, 'size'));
    if (checkpoint === null) throw new HttpError('not_found', 'There is no checkpoint of that size.');
    return reply.type('text/plain; charset=utf-8').header('cache-control', 'no-cache').send(await ledger.cosignedNote(checkpoint));
  });

  // Signs a checkpoint now (admin): the interval schedule is the usual way; this is for a witness round or an audit.
  app.post('/audit/checkpoint', async (request, reply) => {
    await admin.authenticate(request);
    const checkpoint = await ledger.signCheckpoint();
    return reply.code(201).type('text/plain; charset=utf-8').send(checkpoint.note);
  });

  // Every checkpoint, oldest first, keyset-paginated by id.
  app.get('/audit/checkpoints', async (request) => {
    const after = integerParameter(request, 'after', 0);
    const limit = Math.min(integerParameter(request, 'limit', 100), 1000) || 1;
    const checkpoints = await ledger.checkpoints({ afterId: after, limit });
    return {
      checkpoints: await Promise.all(checkpoints.map(async (checkpoint) => ({ id: checkpoint.id, size: checkpoint.size, note: await ledger.cosignedNote(checkpoint) }))),
      next: checkpoints.length === limit ? checkpoints.at(-1)!.id : null,
    };
  });

  // The log's public key, to verify checkpoints (C2SP signed-note verifier key).
  app.get('/audit/key', async (_request, reply) => reply.type('text/plain; charset=utf-8').send(`${ledger.verifierKey}\n`));

  // RFC 9162 2.1.3: the audit path of entry `index` in the tree of `size` entries.
  app.get('/audit/proof/inclusion', async (request) => {
    const index = integerParameter(request, 'index');
    const size = integerParameter(request, 'size');
    const { leafHash, proof } = await ledger.inclusionProof(index, size);
    return { index, size, leafHash: base64(leafHash), proof: proof.map(base64) };
  });

  // RFC 9162 2.1.4: the proof that the tree of `from` entries is a prefix of the tree of `to`.
  app.get('/audit/proof/consistency', async (request) => {
    const from = integerParameter(request, 'from');
    const to = integerParameter(request, 'to');
    const proof = await ledger.consistencyProof(from, to);
    return { from, to, proof: proof.map(base64) };
  });

  // Entries [start, end), at most 1000, for an administrator (or a SIEM export).
  app.get('/audit/entries', async (request) => {
    await admin.authenticate(request);
    const start = integerParameter(request, 'start');
    const end = integerParameter(request, 'end');
    if (end < start) throw new HttpError('bad_request', '"end" must not be less than "start".');
    if (end - start > MAX_ENTRY_RANGE) throw new HttpError('bad_request', `At most ${MAX_ENTRY_RANGE} entries per request.`);
    const size = await ledger.size();
    if (end > size) throw new HttpError('bad_request', `The log holds ${size} entries; "end" is beyond it.`);
    const rows = await ledger.entries(start, end);
    await events.emit({ type: 'audit.entries.read', outcome: 'success', actorService: 'admin', requestId: request.id, traceId: request.traceId, ip: request.ip, detail: { start, end } });
    return {
      size,
      entries: rows.map((row) => ({ index: row.index, entry: decodeEntry(row.entry), entryBase64: base64(row.entry) })),
    };
  });

  // A witness posts a checkpoint it cosigned (C2SP tlog-cosignature); the server verifies and keeps the lines.
  app.post('/audit/cosignatures', { config: { accepts: ['text/plain'] } satisfies PortcullisRouteConfig }, async (request, reply) => {
    if (typeof request.body !== 'string') throw new HttpError('unsupported_media_type', 'Send the cosigned checkpoint note as text/plain.');
    const result = await ledger.addCosignatures(request.body);
    for (const witness of result.stored) {
      await events.emit({ type: 'audit.cosignature.added', outcome: 'success', actorService: witness.slice(0, 128), requestId: request.id, traceId: request.traceId, detail: { size: result.checkpoint.size } });
    }
    return reply.code(result.stored.length > 0 ? 201 : 200).send({ size: result.checkpoint.size, stored: result.stored, alreadyStored: result.duplicates });
  });
};
