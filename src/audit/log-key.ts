import { Type } from '@sinclair/typebox';
import { createSealedLogKey, openSealedLogKey, parseVerifierKey, type KeyVault, type NoteSigner, type NoteVerifier } from '../crypto/index.ts';
import { collection, typeboxCodec, type Codec, type Collection, type RecordStore } from '../store/index.ts';

const COLLECTION = 'audit';
const ID = 'log-key';

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
export async function loadOrCreateLogKey(records: RecordStore, vault: KeyVault, origin: string): Promise<LogKey> {
  const keys = logKeys(records);
  let record = await keys.get(ID);
  if (record === null) {
    await keys.create(ID, { origin, ...createSealedLogKey(vault, origin) });
    record = await keys.get(ID);
    if (record === null) throw new Error('the audit log key vanished while it was being created');
  }
  const signer = openSealedLogKey(vault, record.data.sealedSignerKey);
  return { origin: record.data.origin, signer, verifier: parseVerifierKey(record.data.verifierKey), verifierKey: record.data.verifierKey };
}

/** `http://127.0.0.1:9000` → `127.0.0.1:9000/audit`: a schema-less log name, as C2SP origins are. */
export function defaultOrigin(issuer: string): string {
  const url = new URL(issuer);
  const path = url.pathname.replace(/\/+$/, '');
  return `${url.host}${path}/audit`;
}

/** The log's public key as stored, without the vault (null before the first start). */
export async function storedLogVerifierKey(records: RecordStore): Promise<string | null> {
  const record = await logKeys(records).get(ID);
  return record?.data.verifierKey ?? null;
}
