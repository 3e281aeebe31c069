/**
 * The notice-email deliverer against a real SMTP server in this process:
 * a message the server refused once is sent again with the same
 * Message-ID (at least once, deduplicable by the receiving side); without
 * mail.smtpUrl the message is kept for later, never dropped; one whose
 * addressee was erased meanwhile is settled unsent; a malformed payload is
 * refused before anything is sent.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';
import { ERASED, MailNotConfiguredError, NOTICE_EMAIL_TOPIC, messageIdOf, noticeEmailDeliverer, redactDeep, smtpSender, type MailSender } from '../../src/privacy/index.ts';
import type { OutboxDelivery } from '../../src/store/index.ts';

const message = (payload: unknown, idempotencyKey = 'inactive-notice.u_abc-DEF_1.1767225600000'): OutboxDelivery => ({ id: 1, topic: NOTICE_EMAIL_TOPIC, payload, idempotencyKey, attempts: 0, attempt: 1, createdAt: 0 });

describe('notice email delivery over SMTP', () => {
  const received: { to: string[]; messageId: string | undefined }[] = [];
  let refuseNext = 0;
  let server: SMTPServer;
  let sender: MailSender;

  before(async () => {
    server = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS', 'AUTH'],
      logger: false,
      onData(stream, session, callback) {
        const chunks: Buffer[] = [];
        stream.on('data', (chunk: Buffer) => chunks.push(chunk));
        stream.on('end', () => {
          const raw = Buffer.concat(chunks).toString('utf8');
          received.push({ to: session.envelope.rcptTo.map((address) => address.address), messageId: /^Message-ID:\s*(.*)$/im.exec(raw)?.[1]?.trim() });
          if (refuseNext > 0) {
            refuseNext -= 1;
            callback(Object.assign(new Error('try again later'), { responseCode: 451 }));
          } else callback();
        });
      },
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    sender = smtpSender({ smtpUrl: `smtp://127.0.0.1:${(server.server.address() as AddressInfo).port}`, from: 'no-reply@example.com' });
  });
  after(async () => {
    sender.close();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('a refused message is sent again with the same Message-ID, and "sent" runs once, after the success', async () => {
    const sent: string[] = [];
    const deliver = noticeEmailDeliverer({ sender, domain: 'id.example.com', sent: async (delivery) => void sent.push(delivery.idempotencyKey) });
    const delivery = message({ to: 'person@example.com', subject: 'Your account', text: 'Sign in to keep it.' });
    refuseNext = 1;
    await assert.rejects(deliver(delivery, new AbortController().signal), /try again later/);
    assert.deepEqual(sent, [], 'not recorded as sent');
    await deliver({ ...delivery, attempts: 1, attempt: 2 }, new AbortController().signal);
    assert.equal(received.length, 2);
    assert.deepEqual(
      received.map((mail) => mail.messageId),
      ['<inactive-notice.u_abc-DEF_1.1767225600000@id.example.com>', '<inactive-notice.u_abc-DEF_1.1767225600000@id.example.com>'],
    );
    assert.deepEqual(received[1]!.to, ['person@example.com']);
    assert.deepEqual(sent, ['inactive-notice.u_abc-DEF_1.1767225600000']);
  });

  it('without mail.smtpUrl the message stays in the outbox (the delivery fails, to be retried)', async () => {
    const deliver = noticeEmailDeliverer({ sender: undefined, domain: 'id.example.com' });
    await assert.rejects(deliver(message({ to: 'person@example.com', subject: 's', text: 't' }), new AbortController().signal), MailNotConfiguredError);
  });

  it('a mail whose addressee was erased meanwhile (the address cut out of the outbox) is settled without sending', async () => {
    const count = received.length;
    const sent: string[] = [];
    const deliver = noticeEmailDeliverer({ sender, domain: 'id.example.com', sent: async (delivery) => void sent.push(delivery.idempotencyKey) });
    await deliver(message(redactDeep({ to: 'gone@example.com', subject: 'Your account', text: 'The account gone@example.com ...' }, 'gone@example.com')), new AbortController().signal);
    await noticeEmailDeliverer({ sender: undefined, domain: 'id.example.com' })(message({ to: ERASED, subject: 's', text: ERASED }), new AbortController().signal);
    assert.equal(received.length, count, 'nothing sent');
    assert.deepEqual(sent, [], 'and not recorded as a notice given');
  });

  it('refuses a malformed payload before sending anything: several recipients, a folded subject, missing fields', async () => {
    const deliver = noticeEmailDeliverer({ sender, domain: 'id.example.com' });
    const count = received.length;
    for (const payload of [
      { to: 'a@example.com, b@example.com', subject: 's', text: 't' },
      { to: 'a@example.com', subject: 's\r\nBcc: b@example.com', text: 't' },
      { to: 'a@example.com', subject: 's' },
      null,
    ]) {
      await assert.rejects(deliver(message(payload), new AbortController().signal), /malformed email/);
    }
    assert.equal(received.length, count);
  });

  it('a key that is no dot-atom becomes a digest in the Message-ID (RFC 5322 section 3.6.4)', () => {
    assert.equal(messageIdOf('inactive-notice.u_x.1', 'example.com'), '<inactive-notice.u_x.1@example.com>');
    assert.match(messageIdOf('privacy-erasure:e1:client 2', 'example.com'), /^<[0-9a-f]{40}@example\.com>$/);
  });
});
