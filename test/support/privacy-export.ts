/**
 * Checking a privacy export as its recipient would: against the published
 * JSON Schema with a real validator (ajv, draft 2020-12, formats checked),
 * and its audit section against the log key with the Merkle proofs alone.
 */
import assert from 'node:assert/strict';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { checkpointFormat } from '../../src/audit/index.ts';
import { leafHash, verifyInclusion } from '../../src/audit/merkle/index.ts';
import type { PrivacyExport } from '../../src/privacy/index.ts';

// ajv-formats is CommonJS: its default export arrives as the module object under some loaders.
const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ?? addFormatsModule) as (ajv: Ajv2020) => void;

/** A validator of the schema as served (strict: a keyword ajv does not know is an error, not ignored). */
export function exportValidator(schema: Record<string, unknown>): (document: unknown) => void {
  const ajv = new Ajv2020({ strict: true, allErrors: true });
  addFormats(ajv);
  const validate: ValidateFunction = ajv.compile(schema);
  return (document) => {
    const valid = validate(document);
    assert.ok(valid, `the export does not match its schema: ${ajv.errorsText(validate.errors)}`);
  };
}

/**
 * Every audit entry's proof leads to the signed checkpoint, and the
 * checkpoint is signed by `logKey` (the key the verifier trusts, not the
 * one the document names). Resolves with the entries, decoded from their bytes.
 */
export function verifyAuditSection(document: PrivacyExport, logKey: string): Record<string, unknown>[] {
  const verifier = checkpointFormat.parseVerifierKey(logKey);
  const checkpoint = checkpointFormat.openCheckpoint(document.audit.checkpoint, verifier);
  assert.equal(checkpoint.size, document.audit.size);
  return document.audit.entries.map((item) => {
    const bytes = new Uint8Array(Buffer.from(item.entryBase64, 'base64'));
    const proof = item.proof.map((node) => new Uint8Array(Buffer.from(node, 'base64')));
    assert.ok(verifyInclusion(leafHash(bytes), item.index, checkpoint.size, proof, checkpoint.rootHash), `entry ${item.index}: its proof does not lead to the checkpoint`);
    const decoded = JSON.parse(Buffer.from(bytes).toString('utf8')) as Record<string, unknown>;
    assert.deepEqual(item.entry, decoded, `entry ${item.index}: the decoded entry is what its bytes hold`);
    return decoded;
  });
}
