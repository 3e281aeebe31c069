/**
 * Telling a recipient of an erasure (GDPR Art. 19): the outbox deliverer of
 * ERASURE_NOTICE_TOPIC. A client with an `erasure_notification_uri` gets a
 * RISC account-purged SET POSTed there (RFC 8935 framing: the receiver
 * answers 202 or 200); a client with signal streams is told once each of its
 * streams that takes account-purged has received the event (signals
 * receipts). Until then the delivery fails and the outbox retries it with
 * backoff, however long the recipient is away; the job flags a notice past
 * its deadline as overdue meanwhile. A notice delivered is recorded on the
 * erasure and audited (privacy.recipient.notified).
 */
import { createHash } from 'node:crypto';
import type { DomainEvents } from '../events/index.ts';
import { postBody } from '../net/index.ts';
import type { AuthorizationServer } from '../oauth/index.ts';
import { SECURITY_EVENT_TYPES, SET_MEDIA_TYPE, SET_TYP } from '../sdk/index.ts';
import { streamReceipt } from '../signals/index.ts';
import type { Clock, OutboxDelivery, RecordStore } from '../store/index.ts';
import { signJwtAsync, type Keyring } from '../tokens/index.ts';
import type { SigningAlgorithm } from '../crypto/index.ts';
import type { ErasureNoticePayload } from './erasure.ts';
import { updateRecipient } from './erasure-records.ts';

/** Not delivered yet; the outbox tries again later. The message is fit for the outbox's last_error. */
export class NoticeNotDeliveredError extends Error {
  override readonly name = 'NoticeNotDeliveredError';
}

export interface NoticeDelivererOptions {
  readonly records: RecordStore;
  readonly oauth: Pick<AuthorizationServer, 'clients'>;
  readonly keyring: Pick<Keyring, 'signingKey'>;
  readonly signingAlgorithm: SigningAlgorithm;
  readonly issuer: string;
  readonly events: DomainEvents;
  readonly clock: Clock;
  /** privacy.notifyPrivateNetworks: loopback and private addresses allowed (tests, closed networks). */
  readonly allowPrivateNetworks: boolean;
  readonly timeoutMs?: number;
}

function checkPayload(payload: unknown): ErasureNoticePayload {
  const value = payload as Partial<ErasureNoticePayload> | null;
  if (value === null || typeof value !== 'object' || typeof value.erasure !== 'string' || typeof value.clientId !== 'string' || typeof value.sub !== 'string' || (value.channel !== 'uri' && value.channel !== 'ssf') || typeof value.signalSource !== 'string') {
    throw new Error('malformed erasure notice in the outbox');
  }
  return value as ErasureNoticePayload;
}

export function erasureNoticeDeliverer(options: NoticeDelivererOptions): (message: OutboxDelivery, signal: AbortSignal) => Promise<void> {
  return async (message, signal) => {
    const notice = checkPayload(message.payload);
    const client = await options.oauth.clients.get(notice.clientId);
    if (client === null) {
      // A deleted client holds nothing to erase any more: recorded, not retried.
      await settle(options, notice, 'gone');
      return;
    }
    if (notice.channel === 'uri') {
      if (client.erasure_notification_uri === undefined) throw new NoticeNotDeliveredError('the client no longer has an erasure_notification_uri');
      const set = await purgedSet(options, notice, message);
      const response = await postBody(client.erasure_notification_uri, set, SET_MEDIA_TYPE, {
        publicOnly: !options.allowPrivateNetworks,
        timeoutMs: options.timeoutMs ?? 10_000,
        signal,
      });
      // RFC 8935 section 2.2: 202 Accepted; 200 is taken too (receivers built on webhooks answer it).
      if (response.status !== 202 && response.status !== 200) throw new NoticeNotDeliveredError(`the recipient answered ${response.status}`);
    } else {
      const receipt = await streamReceipt(options.records, notice.clientId, notice.signalSource);
      if (receipt === 'not_appended' || receipt === 'pending') throw new NoticeNotDeliveredError(`the account-purged event is ${receipt === 'pending' ? 'not yet received by the client\'s streams' : 'not yet in the signal log'}`);
      if (receipt === 'no_stream') {
        await settle(options, notice, 'gone');
        return;
      }
    }
    await settle(options, notice, 'delivered');
  };
}

async function settle(options: NoticeDelivererOptions, notice: ErasureNoticePayload, state: 'delivered' | 'gone'): Promise<void> {
  const now = options.clock();
  const changed = await updateRecipient(options.records, notice.erasure, notice.clientId, (current) =>
    current.state === 'pending' || current.state === 'overdue' ? { ...current, state, ...(state === 'delivered' && { deliveredAt: now }) } : null,
  );
  if (changed === null) return;
  await options.events.emit({
    type: 'privacy.recipient.notified',
    outcome: state === 'delivered' ? 'success' : 'failure',
    clientId: notice.clientId,
    actorService: 'system',
    detail: { erasure: notice.erasure, channel: notice.channel, result: state, late: changed.before.state === 'overdue' },
  });
}

/**
 * The account-purged SET for one recipient (RFC 8417; RISC 1.0 section 2.4),
 * the same on every retry: its jti comes from the message's idempotency key
 * and its iat from when the message was queued (the erasure's commit), not
 * from the attempt, so a retransmission is the same SET that the receiver
 * deduplicates by jti (RFC 8935 section 2; RFC 8417 section 2.2).
 */
async function purgedSet(options: NoticeDelivererOptions, notice: ErasureNoticePayload, message: Pick<OutboxDelivery, 'idempotencyKey' | 'createdAt'>): Promise<string> {
  const jti = createHash('sha256').update(message.idempotencyKey).digest('base64url').slice(0, 32);
  return signJwtAsync(
    options.keyring.signingKey(options.signingAlgorithm),
    {
      iss: options.issuer,
      jti,
      iat: Math.floor(message.createdAt / 1000),
      aud: notice.clientId,
      txn: notice.signalSource.replace(/^signal:/, ''),
      sub_id: { format: 'iss_sub', iss: options.issuer, sub: notice.sub },
      events: { [SECURITY_EVENT_TYPES.accountPurged]: {} },
    },
    { typ: SET_TYP },
  );
}
