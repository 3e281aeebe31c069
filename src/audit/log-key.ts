import { Type } from '@sinclair/typebox';
import { collection, typeboxCodec, type Codec, type Collection, type RecordStore } from '../store/index.ts';
import { openSecret, sealSecret } from '../tokens/index.ts';
import { generateSignerKey, parseSignerKey, parseVerifierKey, type NoteSigner, type NoteVerifier } from './checkpoint/index.ts';

const COLLECTION = 'audit';
const ID = 'log-key';
const SEAL_PURPOSE = 'audit-log-key';

interface LogKeyRecord {
  readonly origin: string;
  /** C2SP signed-note verifier key (public). */
  readonly verifierKey: string;
  /** The signer key, sealed with the master key (AES-256-GCM). */
  readonly sealedSignerKey: string;
}

const logKeyCodec: Codec<LogKeyRecord> = typeboxCodec(Type.Object({ origin: Type.String(), verifierKey: Type.String(), sealedSignerKey: Type.String() }));

const logKeys = (records: RecordStore): Collection<LogKeyRecord> => collection(records, { name: COLLECTION, codec: logKeyCodec });

export interface LogKey {
  readonly origin: string;
  readonly signer: NoteSigner;
  readonly verifier: NoteVerifier;
  readonly verifierKey: string;
}

/**
 * The log's Ed25519 checkpoint key, made once per deployment. Its name is the
 * log's origin; both are fixed at creation, so a later change of port or
 * issuer does not silently start a "different" log. Of several instances
 * starting together, one creates it and all read the same record.
 */
export async function loadOrCreateLogKey(records: RecordStore, masterKey: Uint8Array, origin: string): Promise<LogKey> {
  const keys = logKeys(records);
  let record = await keys.get(ID);
  if (record === null) {
    const generated = generateSignerKey(origin);
    await keys.create(ID, {
      origin,
      verifierKey: generated.verifierKey,
      sealedSignerKey: sealSecret(masterKey, SEAL_PURPOSE, new TextEncoder().encode(generated.signerKey)),
    });
    record = await keys.get(ID);
    if (record === null) throw new Error('the audit log key vanished while it was being created');
  }
  const signer = parseSignerKey(new TextDecoder().decode(openSecret(masterKey, SEAL_PURPOSE, record.data.sealedSignerKey)));
  return { origin: record.data.origin, signer, verifier: parseVerifierKey(record.data.verifierKey), verifierKey: record.data.verifierKey };
}

/** `http://127.0.0.1:9000` → `127.0.0.1:9000/audit`: a schema-less log name, as C2SP origins are. */
export function defaultOrigin(issuer: string): string {
  const url = new URL(issuer);
  const path = url.pathname.replace(/\/+$/, '');
  return `${url.host}${path}/audit`;
}

/** The log's public key as stored, without the master key (null before the first start). */
export async function storedLogVerifierKey(records: RecordStore): Promise<string | null> {
  const record = await logKeys(records).get(ID);
  return record?.data.verifierKey ?? null;
}
