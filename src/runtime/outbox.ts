/**
 * The outbox's delivery worker as a runtime service: messages written with
 * `tx.outbox.add` in a durable transaction are handed to the deliverer
 * registered for their topic (the signal stream and privacy notifications
 * register theirs). The worker holds the outbox lease (store/outbox-worker.ts),
 * so of all instances one delivers at a time, at least once, with the
 * message's stable idempotency key.
 */
import { SpanKind, inSpan, type Tracer } from '../observability/index.ts';
import { createOutboxWorker, type Clock, type OutboxDeliverer, type OutboxStore, type OutboxWorker } from '../store/index.ts';

/** Topic -> deliverer. A topic nobody registered is not lost: it fails and is retried with backoff until a build that knows it runs. */
export type OutboxDeliverers = Readonly<Record<string, OutboxDeliverer>>;

export class UnknownOutboxTopicError extends Error {
  override readonly name = 'UnknownOutboxTopicError';
}

export function outboxDispatcher(deliverers: OutboxDeliverers): OutboxDeliverer {
  return (message, signal) => {
    const deliver = Object.hasOwn(deliverers, message.topic) ? deliverers[message.topic] : undefined;
    if (deliver === undefined) return Promise.reject(new UnknownOutboxTopicError(`no deliverer for outbox topic ${JSON.stringify(message.topic)}`));
    return deliver(message, signal);
  };
}

/**
 * Delivered messages are kept this long, then pruned after a batch: long
 * enough to look into a delivery (and for an idempotency key re-added by a
 * retried transaction to add nothing), short enough that the table does
 * not grow with every security event for ever (the data map's "the
 * outbox's retention of delivered messages").
 */
export const OUTBOX_RETAIN_DELIVERED_MS = 7 * 24 * 3_600_000;

export function startOutboxWorker(options: { readonly outbox: OutboxStore; readonly deliverers: OutboxDeliverers; readonly clock: Clock; readonly onError: (error: unknown) => void; readonly tracer?: Tracer }): OutboxWorker {
  const dispatch = outboxDispatcher(options.deliverers);
  const { tracer } = options;
  // OpenTelemetry: a span per delivery attempt (a trace of its own: the request that queued it has long answered).
  const deliver: OutboxDeliverer =
    tracer === undefined
      ? dispatch
      : (message, signal) =>
          inSpan(tracer, `outbox deliver ${message.topic}`, SpanKind.CONSUMER, { 'messaging.system': 'portcullis.outbox', 'messaging.destination.name': message.topic, 'messaging.message.id': String(message.id) }, () => dispatch(message, signal));
  const worker = createOutboxWorker({ outbox: options.outbox, deliver, clock: options.clock, onError: options.onError, retainDeliveredMs: OUTBOX_RETAIN_DELIVERED_MS });
  worker.start();
  return worker;
}
