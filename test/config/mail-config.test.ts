/**
 * mail.* and the inactivity rule's settings: the SMTP URL is a secret, bad
 * values are refused in words, a notice period as long as the inactivity
 * period is refused, and inactivity retention without mail is warned about
 * (it cannot give notice, so it erases nobody).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, configWarnings, loadConfig, maskConfig } from '../../src/config/index.ts';

const NO_MAIL = 'privacy.retention.inactiveAccountDays is set but mail.smtpUrl is not: no inactivity notice can be sent, so no inactive account is erased';

describe('config: mail and inactivity retention', () => {
  it('reads mail.smtpUrl and mail.from from the environment and masks the SMTP password', () => {
    const config = loadConfig({ env: { PORTCULLIS_MAIL_SMTP_URL: 'smtps://notices:sm7p-pw@mail.example.com:465', PORTCULLIS_MAIL_FROM: 'Portcullis <no-reply@example.com>' } });
    assert.equal(config.mail.smtpUrl, 'smtps://notices:sm7p-pw@mail.example.com:465');
    assert.equal(config.mail.from, 'Portcullis <no-reply@example.com>');
    const printed = JSON.stringify(maskConfig(config));
    assert.ok(!printed.includes('sm7p-pw'));
    assert.ok(printed.includes('mail.example.com'), 'the host stays visible');
  });

  it('refuses other schemes and malformed senders, without echoing the URL', () => {
    assert.throws(
      () => loadConfig({ env: { PORTCULLIS_MAIL_SMTP_URL: 'http://user:pw-xyz@mail.example.com' } }),
      (error: unknown) => error instanceof ConfigError && /PORTCULLIS_MAIL_SMTP_URL: expected an smtp:\/\/ or smtps:\/\/ URL/.test(error.message) && !error.message.includes('pw-xyz'),
    );
    assert.throws(() => loadConfig({ env: { PORTCULLIS_MAIL_FROM: 'nobody' } }), /PORTCULLIS_MAIL_FROM: expected an address, or a name and an address in angle brackets/);
    assert.throws(() => loadConfig({ env: { PORTCULLIS_MAIL_FROM: 'a@b.example, c@d.example' } }), /PORTCULLIS_MAIL_FROM/);
  });

  it('refuses a notice period as long as the inactivity period (the notice would precede the last sign-in)', () => {
    assert.throws(
      () => loadConfig({ env: { PORTCULLIS_PRIVACY_INACTIVE_ACCOUNT_DAYS: '30', PORTCULLIS_PRIVACY_INACTIVE_NOTICE_DAYS: '30' } }),
      (error: unknown) => error instanceof ConfigError && error.message.includes('"privacy.retention.inactiveAccountDays" must be more than "privacy.retention.inactiveNoticeDays"'),
    );
    assert.equal(loadConfig({ env: { PORTCULLIS_PRIVACY_INACTIVE_ACCOUNT_DAYS: '31', PORTCULLIS_PRIVACY_INACTIVE_NOTICE_DAYS: '30' } }).privacy.retention.inactiveAccountDays, 31);
    assert.equal(loadConfig({ env: { PORTCULLIS_PRIVACY_INACTIVE_NOTICE_DAYS: '300' } }).privacy.retention.inactiveAccountDays, 0, 'off: the notice period does not matter');
  });

  it('warns that inactivity retention without mail erases nobody, and only then', () => {
    assert.ok(configWarnings(loadConfig({ env: { PORTCULLIS_PRIVACY_INACTIVE_ACCOUNT_DAYS: '400' } })).includes(NO_MAIL));
    assert.ok(!configWarnings(loadConfig({ env: { PORTCULLIS_PRIVACY_INACTIVE_ACCOUNT_DAYS: '400', PORTCULLIS_MAIL_SMTP_URL: 'smtp://127.0.0.1:2525' } })).includes(NO_MAIL));
    assert.ok(!configWarnings(loadConfig({ env: {} })).includes(NO_MAIL));
  });
});
