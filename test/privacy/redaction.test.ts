import { it } from 'node:test';
import assert from 'node:assert/strict';
import { ERASED, namesAddress, redactDeep } from '../../src/privacy/index.ts';

// Security review of issue 15, finding 1: erasing al@example.com cut sal@example.com out of the signal log and the outbox.
it('redacts the erased address and its subject key exactly, and never another address that contains it', () => {
  const erased = 'al@example.com';
  const shared = {
    subject: { format: 'email', email: 'AL@example.com' },
    subjectKeys: ['iss_sub:https://id.example u_1', 'email:al@example.com', 'email:sal@example.com', 'email:al@example.com.au'],
    members: { previous_value: 'al@example.com', new_value: 'hal@example.com', note: 'mail al@example.com later' },
    to: 'sal@example.com',
  };
  assert.deepEqual(redactDeep(shared, erased), {
    subject: { format: 'email', email: ERASED },
    subjectKeys: ['iss_sub:https://id.example u_1', ERASED, 'email:sal@example.com', 'email:al@example.com.au'],
    members: { previous_value: ERASED, new_value: 'hal@example.com', note: ERASED },
    to: 'sal@example.com',
  });
  for (const other of ['sal@example.com', 'al@example.com.au', 'email:hal@example.com', 'xal@example.com']) assert.equal(namesAddress(other, erased), false, other);
  for (const same of ['al@example.com', 'AL@EXAMPLE.COM', 'email:al@example.com', 'Al <al@example.com>', 'to al@example.com.', 'sal@example.com and al@example.com']) assert.equal(namesAddress(same, erased), true, same);
});
