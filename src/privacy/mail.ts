/**
 * Mail from Portcullis: today, the notice an inactive account's owner gets
 * before retention erases the account (privacy.retention.inactiveAccountDays).
 *
 * A message is queued in the outbox in the same transaction as the change
 * that decided it (topic NOTICE_EMAIL_TOPIC, payload {to, subject, text}) and
 * sent by the outbox worker over SMTP (mail.smtpUrl), at least once. Its
 * idempotency key is its Message-ID (RFC 5322 section 3.6.4), so a message
 * sent again after a lost answer is the same message to the receiving side.
 * Until mail.smtpUrl is set, delivery fails and the outbox retries it with
 * its backoff: a notice is never dropped unsent.
 */
import { createHash } from 'node:crypto';
import { createTransport } from 'nodemailer';
import { isLoopbackHost } from '../config/index.ts';
import type { OutboxDeliverer, OutboxDelivery } from '../store/index.ts';
import { ERASED } from './redaction.ts';

/** The outbox topic of one email. */
export const NOTICE_EMAIL_TOPIC = 'privacy.notice.email';

export interface NoticeEmailPayload {
  readonly to: string;
  readonly subject: string;
  readonly text: string;
}

export interface OutgoingMail extends NoticeEmailPayload {
  /** `<id@domain>` (RFC 5322 section 3.6.4). */
  readonly messageId: string;
}

/** Sends one message; rejects when the SMTP server did not take it. */
export interface MailSender {
  send(mail: OutgoingMail): Promise<void>;
  close(): void;
}

/** No mail.smtpUrl: the message waits in the outbox (retried with backoff) until one is set. */
export class MailNotConfiguredError extends Error {
  override readonly name = 'MailNotConfiguredError';
}

const TIMEOUT_MS = 30_000;

/**
 * A sender over the SMTP server of `smtpUrl` (smtp:// or smtps://, user and
 * password in the URL). smtps:// is TLS from the first byte (RFC 8314
 * section 3.3); smtp:// to anything but loopback must upgrade with STARTTLS
 * (RFC 3207), so the addresses and the text of a notice never cross a
 * network in clear; a relay on this host may speak plain SMTP.
 */
export function smtpSender(options: { readonly smtpUrl: string; readonly from: string; readonly timeoutMs?: number }): MailSender {
  const url = new URL(options.smtpUrl);
  const secure = url.protocol === 'smtps:';
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const timeout = options.timeoutMs ?? TIMEOUT_MS;
  // Options built from the URL here, not nodemailer's URL parser (which uses the deprecated url.parse).
  const transport = createTransport({
    pool: true,
    maxConnections: 1,
    host,
    port: url.port === '' ? (secure ? 465 : 587) : Number(url.port),
    secure,
    requireTLS: !secure && !isLoopbackHost(host),
    ...(url.username !== '' && { auth: { user: decodeURIComponent(url.username), pass: decodeURIComponent(url.password) } }),
    connectionTimeout: timeout,
    greetingTimeout: timeout,
    socketTimeout: timeout,
    logger: false,
    debug: false,
  });
  return {
    async send(mail) {
      await transport.sendMail({ from: options.from, to: mail.to, subject: mail.subject, text: mail.text, messageId: mail.messageId, disableFileAccess: true, disableUrlAccess: true });
    },
    close() {
      transport.close();
    },
  };
}

/** atext and dots (RFC 5322 section 3.2.3): what the left of a Message-ID may be as it is. */
const DOT_ATOM = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$/;

/** The Message-ID of an outbox message: its idempotency key at `domain` (a digest of the key where it is no dot-atom). */
export function messageIdOf(idempotencyKey: string, domain: string): string {
  const left = DOT_ATOM.test(idempotencyKey) ? idempotencyKey : createHash('sha256').update(idempotencyKey).digest('hex').slice(0, 40);
  return `<${left}@${domain}>`;
}

function checkPayload(payload: unknown): NoticeEmailPayload {
  const value = payload as Partial<NoticeEmailPayload> | null;
  if (value === null || typeof value !== 'object' || typeof value.to !== 'string' || typeof value.subject !== 'string' || typeof value.text !== 'string') {
    throw new Error('malformed email in the outbox');
  }
  // One recipient, no header folding: the address was checked when the account was made (identity/users.ts).
  if (/[\s,;<>]/.test(value.to) || !value.to.includes('@') || /[\r\n]/.test(value.subject)) throw new Error('malformed email in the outbox');
  return value as NoticeEmailPayload;
}

/**
 * The outbox deliverer of NOTICE_EMAIL_TOPIC. `sender` undefined: no
 * mail.smtpUrl, the message is retried until there is one. `sent` runs after
 * the SMTP server took the message (retention records when the notice went out).
 */
export function noticeEmailDeliverer(options: { readonly sender: MailSender | undefined; readonly domain: string; readonly sent?: (message: OutboxDelivery) => Promise<void> }): OutboxDeliverer {
  return async (message, signal) => {
    // The addressee was erased before the mail went out (redaction.ts cut the address out of the outbox): nobody is left to tell.
    if ((message.payload as Partial<NoticeEmailPayload> | null)?.to === ERASED) return;
    const mail = checkPayload(message.payload);
    if (options.sender === undefined) throw new MailNotConfiguredError('mail.smtpUrl is not set: the email waits until it is');
    signal.throwIfAborted();
    await options.sender.send({ ...mail, messageId: messageIdOf(message.idempotencyKey, options.domain) });
    await options.sent?.(message);
  };
}
