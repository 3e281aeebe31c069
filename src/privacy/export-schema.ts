/**
 * The privacy export's format (GDPR Art. 20(1): "a structured, commonly
 * used and machine-readable format"), one source of truth: the TypeBox
 * schema below types the document the exporter builds (`PrivacyExport`)
 * and, as plain JSON Schema draft 2020-12, is what
 * `GET /privacy/export-schema.json` publishes, so another controller
 * receiving the file (Art. 20(2)) can check it before importing it.
 *
 * Objects name their properties closed (`additionalProperties: false`):
 * a field the exporter adds by mistake (a session handle, a hash) makes
 * the export fail its own schema in the tests instead of leaving quietly.
 * Only the parts whose shape belongs to another module or format are open:
 * the person's privacy preferences and the audit entries (whose bytes the
 * proofs cover; `entryBase64` is what a verifier hashes).
 */
import { Type, type Static, type TProperties, type TSchema } from '@sinclair/typebox';

export const EXPORT_FORMAT = 'portcullis-privacy-export';
export const EXPORT_VERSION = 1;
/** Where the schema is served, relative to the issuer. */
export const EXPORT_SCHEMA_PATH = '/privacy/export-schema.json';

/** RFC 3339 date-time, UTC (JSON Schema 2020-12 section 7.3.1 of the validation vocabulary). */
const Time = Type.String({ format: 'date-time' });
const TimeOrNull = Type.Union([Time, Type.Null()]);
const closed = <T extends TProperties>(properties: T, description?: string) =>
  Type.Object(properties, { additionalProperties: false, ...(description !== undefined && { description }) });

const Profile = closed(
  {
    email: Type.String({ description: 'The sign-in name; the email claim applications receive.' }),
    claims: Type.Record(Type.String(), Type.Union([Type.String(), Type.Number()]), { description: 'OpenID Connect Core section 5.1 profile claims, with updated_at in seconds.' }),
    createdAt: Time,
    passwordChangedAt: TimeOrNull,
    lastSignInAt: TimeOrNull,
    tokensNotBefore: Type.Union([Time, Type.Null()], { description: 'Tokens granted before this time were ended (an administrator reset the password).' }),
    disabled: Type.Boolean(),
    hasPassword: Type.Boolean(),
  },
  'The account (data map places users.email, users.profile, users.activity).',
);

const Session = closed({
  createdAt: Time,
  lastSeenAt: Time,
  expiresAt: Time,
  authTime: Time,
  device: Type.String({ description: 'A short description made from the User-Agent.' }),
  ip: Type.String({ description: 'The address signed in from, masked (or replaced by a keyed pseudonym after privacy.retention.ipPseudonymiseDays).' }),
  amr: Type.Array(Type.String(), { description: 'Authentication methods (RFC 8176).' }),
});

const PurposeConsent = closed(
  {
    purpose: Type.String(),
    version: Type.Union([Type.Integer(), Type.Null()]),
    granted: Type.Boolean(),
    at: TimeOrNull,
    source: Type.Union([Type.String(), Type.Null()]),
  },
  'One entry of the consent history (GDPR Art. 7(1)).',
);

const Application = closed(
  {
    clientId: Type.String(),
    clientName: Type.String(),
    consent: Type.Union([closed({ scopes: Type.Array(Type.String()), resources: Type.Array(Type.String()), grantedAt: Time }), Type.Null()], {
      description: 'What the person approved for the application (OIDC Core section 3.1.2.4); null when they withdrew it.',
    }),
    received: Type.Union([closed({ firstAt: TimeOrNull, lastAt: TimeOrNull }), Type.Null()], { description: 'When the application first and last received data about the person (GDPR Art. 15(1)(c), 19).' }),
  },
  'An application (OAuth client) that holds or held access.',
);

const Grant = closed(
  {
    clientId: Type.String(),
    clientName: Type.String(),
    scope: Type.String(),
    resources: Type.Array(Type.String()),
    authTime: Time,
    amr: Type.Array(Type.String()),
    createdAt: Time,
    lastRefreshedAt: Time,
    expiresAt: Time,
    boundTo: Type.Union([Type.Literal('dpop'), Type.Literal('mtls'), Type.Null()], { description: 'A sender-constrained grant: RFC 9449 (DPoP) or RFC 8705 (mTLS).' }),
    revoked: Type.Union([closed({ at: Time, reason: Type.String() }), Type.Null()]),
  },
  'A refresh token family (RFC 9700 section 4.14): what an application may keep asking for. The tokens themselves are not exported.',
);

const SecondFactors = closed({
  totp: closed({ enrolled: Type.Boolean() }),
  recoveryCodes: closed({ remaining: Type.Integer({ minimum: 0 }) }),
});

const ConsumerRequest = closed(
  {
    id: Type.String(),
    kind: Type.Union([Type.Literal('access'), Type.Literal('deletion'), Type.Literal('correction'), Type.Literal('opt_out')]),
    channel: Type.String(),
    receivedAt: Time,
    confirmBy: Time,
    answerBy: Time,
    confirmedAt: TimeOrNull,
    answeredAt: TimeOrNull,
    outcome: Type.Union([Type.Literal('fulfilled'), Type.Literal('cancelled'), Type.Literal('refused'), Type.Null()]),
  },
  'A request about the person\'s data and its legal deadlines (CCPA regulations section 7021).',
);

const AuditEntry = closed({
  index: Type.Integer({ minimum: 0 }),
  entry: Type.Object({ type: Type.String(), time: Type.String() }, { description: 'The entry, decoded from entryBase64 for reading.' }),
  entryBase64: Type.String({ contentEncoding: 'base64', description: 'The entry\'s bytes: the leaf the proof covers (RFC 9162 section 2.1.1).' }),
  proof: Type.Array(Type.String({ contentEncoding: 'base64' }), { description: 'The inclusion proof of the leaf in the tree of the checkpoint\'s size (RFC 9162 section 2.1.3).' }),
});

const Audit = closed(
  {
    origin: Type.String({ description: 'The log\'s origin line (C2SP tlog-checkpoint).' }),
    logKey: Type.String({ description: 'The log\'s public key (C2SP signed-note verifier key); compare it with GET /audit/key or a copy you trust.' }),
    size: Type.Integer({ minimum: 0, description: 'The tree size the checkpoint commits to.' }),
    checkpoint: Type.String({ description: 'The signed checkpoint note the proofs lead to.' }),
    entries: Type.Array(AuditEntry),
  },
  'Every audit entry about the person (they appear under a keyed pseudonym), each with its proof of inclusion in the signed log.',
);

export const PrivacyExportSchema = closed({
  format: Type.Literal(EXPORT_FORMAT),
  version: Type.Literal(EXPORT_VERSION),
  generatedAt: Time,
  issuer: Type.String({ format: 'uri' }),
  subject: closed({ sub: Type.String({ description: 'The OpenID Connect subject identifier applications know the person by.' }) }),
  profile: Profile,
  sessions: Type.Array(Session),
  consents: Type.Array(PurposeConsent),
  applications: Type.Array(Application),
  grants: Type.Array(Grant),
  secondFactors: SecondFactors,
  preferences: Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.Null()], { description: 'The person\'s current privacy choices (opt-out of sale or sharing, consents per purpose).' }),
  requests: Type.Array(ConsumerRequest),
  audit: Audit,
});

export type PrivacyExport = Static<typeof PrivacyExportSchema>;

/** Plain JSON of a TypeBox schema: TypeBox's own symbol-keyed markers are not JSON Schema and do not survive. */
function plain(schema: TSchema): Record<string, unknown> {
  return JSON.parse(JSON.stringify(schema)) as Record<string, unknown>;
}

/** The JSON Schema (draft 2020-12) document served at EXPORT_SCHEMA_PATH, identified by its URL at `issuer`. */
export function privacyExportJsonSchema(issuer: string): Record<string, unknown> {
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    $id: `${issuer.replace(/\/+$/, '')}${EXPORT_SCHEMA_PATH}`,
    title: 'Portcullis privacy export',
    description: 'A copy of the personal data Portcullis keeps about one person (GDPR Art. 15 and 20). Times are RFC 3339, UTC.',
    ...plain(PrivacyExportSchema),
  };
}
