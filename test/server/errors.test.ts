import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { errorCodes, errorRegistry, HttpError, problemType } from '../../src/server/errors.ts';
import { classifyError } from '../../src/server/error-handler.ts';

/** RFC 6749 section 5.2 and 4.1.2.1, RFC 6750 section 3.1, RFC 8628 section 3.5. */
const OAUTH_ERRORS = new Set([
  'invalid_request',
  'invalid_client',
  'invalid_grant',
  'unauthorized_client',
  'unsupported_grant_type',
  'invalid_scope',
  'access_denied',
  'unsupported_response_type',
  'server_error',
  'temporarily_unavailable',
  'invalid_token',
  'insufficient_scope',
  'slow_down',
  // RFC 8707 section 2, RFC 7009 section 2.2.1, RFC 7591 section 3.2.2, RFC 9449 sections 7.1 and 8.
  'invalid_target',
  'unsupported_token_type',
  'invalid_client_metadata',
  'invalid_redirect_uri',
  'invalid_dpop_proof',
  'use_dpop_nonce',
]);

describe('error registry', () => {
  it('every code has an error status, a title, a registered OAuth error and a unique problem type', () => {
    const types = new Set<string>();
    for (const code of errorCodes) {
      const spec = errorRegistry[code];
      assert.ok(spec.status >= 400 && spec.status <= 599, `${code}: status ${spec.status}`);
      assert.ok(spec.title.length > 0, `${code}: title`);
      assert.ok(OAUTH_ERRORS.has(spec.oauth), `${code}: ${spec.oauth} is not an RFC 6749/6750 error code`);
      assert.match(problemType(code), /^urn:portcullis:problem:[a-z-]+$/);
      assert.ok(!types.has(problemType(code)), `${code}: duplicate problem type`);
      types.add(problemType(code));
    }
  });

  it('client mistakes are 4xx and server faults 5xx', () => {
    for (const code of ['bad_request', 'malformed_body', 'validation_failed', 'body_too_large', 'unsupported_media_type'] as const) {
      assert.ok(errorRegistry[code].status < 500, code);
    }
    assert.equal(errorRegistry.internal_error.status, 500);
  });
});

describe('classifyError', () => {
  it('keeps the detail of an error we raised, and its headers', () => {
    const answer = classifyError(new HttpError('too_many_requests', 'Slow down.', { headers: { 'retry-after': '30' } }));
    assert.deepEqual(answer, { code: 'too_many_requests', detail: 'Slow down.', headers: { 'retry-after': '30' } });
  });

  it('hides the message of any other error', () => {
    const answer = classifyError(new Error('connect ECONNREFUSED 10.0.0.5:5432 password=hunter2'));
    assert.equal(answer.code, 'internal_error');
    assert.ok(!answer.detail.includes('hunter2') && !answer.detail.includes('10.0.0.5'));
  });

  it('keeps a 4xx status chosen by a library, with a generic detail', () => {
    const error = Object.assign(new Error('internal wording'), { statusCode: 405 });
    assert.deepEqual(classifyError(error), { code: 'method_not_allowed', detail: 'Method not allowed.', headers: {} });
  });
});
