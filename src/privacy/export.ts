/**
 * Right of access and to data portability (GDPR Art. 15 and 20; CCPA
 * 1798.110): one JSON document with everything Portcullis keeps about a
 * person, built from the data map. Each place the map marks `export`
 * names the section it feeds; each section has one builder below, keyed by
 * the section's name (a test holds the two lists equal), so a place added to
 * the map without a way to show it fails there, not in front of a person.
 *
 * What is never in it (Art. 15(4): the copy must not give away what
 * protects the person or others): password and recovery code hashes, the
 * TOTP secret, session ids and handles, refresh token hashes and sealed
 * successors, DPoP keys and certificate thumbprints. The closed schema
 * (export-schema.ts) leaves no field for them.
 *
 * The audit section is the ledger's own answer (`subjectHistory`): every
 * entry about the person, with its inclusion proof and the signed
 * checkpoint it leads to, so the person can check offline that the log
 * shown to them is the one everyone else sees.
 *
 * Reads of collections other modules own go through read-only views with
 * the few fields used here (their codecs keep what they do not name), so a
 * field added there does not break the export, and a place that does not
 * exist yet (the consent log, the recipients) reads as empty.
 */
import { Type } from '@sinclair/typebox';
import type { DomainEvents } from '../events/index.ts';
import { RefreshGrantSchema } from '../oauth/index.ts';
import { collection, typeboxCodec, type Clock, type Collection, type RecordStore, type StoredRecord } from '../store/index.ts';
import { DATA_MAP, type ExportSection } from './data-map.ts';
import { EXPORT_FORMAT, EXPORT_VERSION, type PrivacyExport } from './export-schema.ts';
import type { ConsumerRequest, ConsumerRequests, RequestChannel } from './requests.ts';
import type { SubjectHasher } from './subjects.ts';

/** What the ledger answers for one person (audit `Ledger.subjectHistory`). */
export interface SubjectAuditHistory {
  /** The signed checkpoint note the proofs lead to. */
  readonly checkpoint: string;
  readonly size: number;
  readonly logKey: string;
  readonly origin: string;
  readonly entries: readonly { readonly index: number; readonly entry: object; readonly entryBase64: string; readonly proof: readonly string[] }[];
}

export interface SubjectAuditSource {
  subjectHistory(userId: string): Promise<SubjectAuditHistory>;
}

/** The sections in the order the document (and its schema) lists them. */
export const EXPORT_SECTIONS = ['profile', 'sessions', 'consents', 'applications', 'grants', 'secondFactors', 'preferences', 'requests', 'audit'] as const satisfies readonly ExportSection[];

/** The sections the data map feeds, in document order. */
export function mappedSections(): ExportSection[] {
  const named = new Set(DATA_MAP.flatMap((place) => (place.export === null ? [] : [place.export])));
  return EXPORT_SECTIONS.filter((section) => named.has(section));
}

/** A request the exporter refuses because of what was asked (the caller answers 404 or a clear line). */
export class PrivacyExportError extends Error {
  override readonly name = 'PrivacyExportError';
  readonly code: 'unknown_user';
  constructor(code: 'unknown_user', message: string) {
    super(message);
    this.code = code;
  }
}

// Read-only views of other modules' collections: only the fields the export shows (or must check).
const UserView = Type.Object({
  email: Type.String(),
  passwordHash: Type.Union([Type.String(), Type.Null()]),
  disabled: Type.Boolean(),
  passwordChangedAt: Type.Union([Type.Number(), Type.Null()]),
  totpSecret: Type.Optional(Type.Union([Type.String(), Type.Null()])),
  profile: Type.Optional(Type.Record(Type.String(), Type.Union([Type.String(), Type.Number()]))),
  tokensNotBefore: Type.Optional(Type.Number()),
  lastSignInAt: Type.Optional(Type.Number()),
  privacy: Type.Optional(Type.Unknown()),
});
type UserRecord = StoredRecord<typeof UserView.static>;

const FamilyView = Type.Object({
  // The stored grant without its session handle, which names a session and is not the person's to see.
  grant: Type.Omit(RefreshGrantSchema, ['sessionHandle']),
  createdAt: Type.Number(),
  absoluteExpiresAt: Type.Number(),
  current: Type.Object({ issuedAt: Type.Number() }),
  revoked: Type.Optional(Type.Object({ at: Type.Number(), reason: Type.String() })),
});

const ConsentView = Type.Object({ userId: Type.String(), clientId: Type.String(), scopes: Type.Array(Type.String()), resources: Type.Optional(Type.Array(Type.String())), grantedAt: Type.Number() });

const users = (records: RecordStore) => collection(records, { name: 'users', codec: typeboxCodec(UserView) });
const oauthConsents = (records: RecordStore): Collection<typeof ConsentView.static, 'user'> => collection(records, { name: 'consents', codec: typeboxCodec(ConsentView), indexes: { user: (consent) => consent.userId } });
const families = (records: RecordStore): Collection<typeof FamilyView.static, 'user'> =>
  collection(records, { name: 'refresh-families', codec: typeboxCodec(FamilyView), indexes: { user: (family) => family.grant.userId } });

const iso = (ms: number) => new Date(ms).toISOString();
const isoOrNull = (ms: number | null | undefined) => (ms === null || ms === undefined ? null : iso(ms));
/** A time another module stored as ms or as text; null when it is neither. */
function looseTime(value: unknown): string | null {
  if (typeof value === 'number' && Number.isFinite(value)) return iso(value);
  if (typeof value === 'string' && !Number.isNaN(Date.parse(value))) return new Date(value).toISOString();
  return null;
}
const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/** Every record of `collection` under the person in its `user` index, read raw (a collection another module owns, or that may not exist yet). */
async function rawByUser(records: RecordStore, name: string, userId: string): Promise<Record<string, unknown>[]> {
  const found: Record<string, unknown>[] = [];
  for (let after: string | undefined; ; ) {
    const page = await records.findBy(name, 'user', userId, { limit: 200, ...(after !== undefined && { after }) });
    for (const record of page) if (isRecord(record.data)) found.push(record.data);
    if (page.length < 200) return found;
    after = page.at(-1)!.id;
  }
}

export interface PrivacyExporterOptions {
  readonly records: RecordStore;
  readonly issuer: string;
  readonly clock: Clock;
  readonly events: DomainEvents;
  readonly requests: ConsumerRequests;
  readonly subjects: SubjectHasher;
  /** The user's sessions (identity's SessionManager). */
  readonly sessions: {
    list(userId: string): Promise<readonly { createdAt: number; lastSeenAt: number; absoluteExpiresAt: number; authTime: number; device: string; ip: string; amr: readonly string[] }[]>;
  };
  readonly secondFactor: { remainingRecoveryCodes(userId: string): Promise<number> };
  /** Registered clients, for their names (the uncached registry: an export reads what is stored now). */
  readonly clients: { get(clientId: string): Promise<{ readonly client_name?: string } | null> };
  readonly audit: SubjectAuditSource;
}

/** What the section builders read from, per export. */
interface ExportSubject {
  readonly userId: string;
  readonly user: UserRecord;
  /** The client's registered name, or its id when it has none (or is gone); looked up once per export. */
  clientName(clientId: string): Promise<string>;
}

type SectionBuilders = { readonly [S in ExportSection]: (subject: ExportSubject) => Promise<PrivacyExport[S]> };

/** Who asked for an export, for its consumer request and audit entry. */
export interface ExportRequester {
  readonly channel: Extract<RequestChannel, 'account' | 'cli' | 'admin'>;
  readonly requestId?: string;
  readonly traceId?: string;
  readonly ip?: string;
}

export class PrivacyExporter {
  readonly #options: PrivacyExporterOptions;
  readonly #builders: SectionBuilders;

  constructor(options: PrivacyExporterOptions) {
    this.#options = options;
    this.#builders = sectionBuilders(options);
  }

  /** The section builders, by name (for the test that holds them equal to the data map's sections). */
  get sections(): readonly ExportSection[] {
    return Object.keys(this.#builders) as ExportSection[];
  }

  /**
   * The person's export, as of now. Reads only: no request is recorded and
   * nothing is audited (see `export`). Throws PrivacyExportError for an
   * unknown user.
   */
  async build(userId: string): Promise<PrivacyExport> {
    const user = await users(this.#options.records).get(userId);
    if (user === null) throw new PrivacyExportError('unknown_user', 'no such user');
    const names = new Map<string, Promise<string>>();
    const subject: ExportSubject = {
      userId,
      user,
      clientName: (clientId) => {
        let name = names.get(clientId);
        if (name === undefined) names.set(clientId, (name = this.#options.clients.get(clientId).then((client) => client?.client_name ?? clientId)));
        return name;
      },
    };
    const generatedAt = iso(this.#options.clock());
    const sections = await Promise.all(mappedSections().map(async (section) => [section, await this.#builders[section](subject)] as const));
    return { format: EXPORT_FORMAT, version: EXPORT_VERSION, generatedAt, issuer: this.#options.issuer, subject: { sub: userId }, ...Object.fromEntries(sections) } as PrivacyExport;
  }

  /**
   * Builds the export for someone who asked for it, records their request
   * (kind `access`, answered now: CCPA regulations section 7021) and audits
   * it (`privacy.export`), before the caller hands it over. The entry names
   * the person (their audit pseudonym: the copy is in their own history
   * next time) and, when an operator made it, the service; its detail holds
   * counts and the channel, never personal data.
   */
  async export(userId: string, requester: ExportRequester): Promise<PrivacyExport> {
    const document = await this.build(userId);
    // Answered only once its audit entry is durable: a copy the ledger could
    // not record is not handed over, and its request stays open (and is
    // flagged when its deadline passes) instead of claiming an answer.
    const request = await this.#options.requests.open('access', this.#options.subjects.ofUser(userId), requester.channel);
    await this.#options.events.emit({
      type: 'privacy.export',
      outcome: 'success',
      actorUserId: userId,
      ...(requester.channel !== 'account' && { actorService: requester.channel }),
      ...(requester.requestId !== undefined && { requestId: requester.requestId }),
      ...(requester.traceId !== undefined && { traceId: requester.traceId }),
      ...(requester.ip !== undefined && { ip: requester.ip }),
      detail: { channel: requester.channel, request: request.id, auditEntries: document.audit.entries.length },
    });
    await this.#options.requests.answer(request.id, 'fulfilled');
    return document;
  }
}

function sectionBuilders(options: PrivacyExporterOptions): SectionBuilders {
  const { records } = options;
  return {
    async profile({ user }) {
      const { data } = user;
      return {
        email: data.email,
        claims: { ...data.profile },
        createdAt: iso(user.createdAt),
        passwordChangedAt: isoOrNull(data.passwordChangedAt),
        lastSignInAt: isoOrNull(data.lastSignInAt),
        tokensNotBefore: isoOrNull(data.tokensNotBefore),
        disabled: data.disabled,
        hasPassword: data.passwordHash !== null,
      };
    },

    // The handle (the hash of the cookie's id) is how the store knows a
    // session: it is left out like the id itself.
    async sessions({ userId }) {
      return (await options.sessions.list(userId)).map((session) => ({
        createdAt: iso(session.createdAt),
        lastSeenAt: iso(session.lastSeenAt),
        expiresAt: iso(session.absoluteExpiresAt),
        authTime: iso(session.authTime),
        device: session.device,
        ip: session.ip,
        amr: [...session.amr],
      }));
    },

    // The consent log is the privacy preferences' collection; until it
    // exists (or when the person never chose), the history is empty.
    async consents({ userId }) {
      const entries = (await rawByUser(records, 'privacy_consent_log', userId)).filter((entry) => typeof entry['purpose'] === 'string' && typeof entry['granted'] === 'boolean');
      return entries
        .map((entry) => ({
          purpose: entry['purpose'] as string,
          version: Number.isSafeInteger(entry['version']) ? (entry['version'] as number) : null,
          granted: entry['granted'] as boolean,
          at: looseTime(entry['at']),
          source: typeof entry['source'] === 'string' ? entry['source'] : null,
        }))
        .sort((a, b) => (a.at ?? '').localeCompare(b.at ?? ''));
    },

    // Per application: what the person approved (OAuth consent) and when it
    // received data about them (the recipients the erasure must tell).
    async applications(subject) {
      const consents = (await oauthConsents(records).findAllBy('user', subject.userId)).map((record) => record.data).filter((consent) => consent.userId === subject.userId);
      const received = await rawByUser(records, 'data_recipients', subject.userId);
      const clientIds = [...new Set([...consents.map((consent) => consent.clientId), ...received.flatMap((entry) => (typeof entry['clientId'] === 'string' ? [entry['clientId']] : []))])].sort();
      return Promise.all(
        clientIds.map(async (clientId) => {
          const consent = consents.find((candidate) => candidate.clientId === clientId);
          const recipient = received.find((entry) => entry['clientId'] === clientId);
          return {
            clientId,
            clientName: await subject.clientName(clientId),
            consent: consent === undefined ? null : { scopes: [...consent.scopes], resources: [...(consent.resources ?? [])], grantedAt: iso(consent.grantedAt) },
            received: recipient === undefined ? null : { firstAt: looseTime(recipient['firstAt']), lastAt: looseTime(recipient['lastAt']) },
          };
        }),
      );
    },

    // Every family still stored, revoked ones too (they are kept a while
    // after revocation); never a token hash, successor or binding key.
    async grants(subject) {
      const found = (await families(records).findAllBy('user', subject.userId)).filter((family) => family.data.grant.userId === subject.userId);
      const grants = await Promise.all(
        found.map(async ({ data }) => ({
          clientId: data.grant.clientId,
          clientName: await subject.clientName(data.grant.clientId),
          scope: data.grant.scope,
          resources: [...data.grant.resources],
          authTime: iso(data.grant.authTime),
          amr: [...data.grant.amr],
          createdAt: iso(data.createdAt),
          lastRefreshedAt: iso(data.current.issuedAt),
          expiresAt: iso(data.absoluteExpiresAt),
          boundTo: data.grant.dpopJkt !== undefined ? ('dpop' as const) : data.grant.certificateThumbprint !== undefined ? ('mtls' as const) : null,
          revoked: data.revoked === undefined ? null : { at: iso(data.revoked.at), reason: data.revoked.reason },
        })),
      );
      return grants.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
    },

    // That a factor exists, never the factor (GDPR Art. 15(4)).
    async secondFactors({ userId, user }) {
      const enrolled = user.data.totpSecret !== null && user.data.totpSecret !== undefined;
      return { totp: { enrolled }, recoveryCodes: { remaining: await options.secondFactor.remainingRecoveryCodes(userId) } };
    },

    async preferences({ user }) {
      const privacy = user.data.privacy;
      return isRecord(privacy) ? privacy : null;
    },

    // The subject's keyed hash is how the requests find the person; it is
    // the server's key to them, not data about them, and is left out.
    async requests({ userId }) {
      return (await options.requests.ofSubject(options.subjects.ofUser(userId))).map((request: ConsumerRequest) => ({
        id: request.id,
        kind: request.kind,
        channel: request.channel,
        receivedAt: iso(request.receivedAt),
        confirmBy: iso(request.confirmBy),
        answerBy: iso(request.answerBy),
        confirmedAt: isoOrNull(request.confirmedAt),
        answeredAt: isoOrNull(request.answeredAt),
        outcome: request.outcome ?? null,
      }));
    },

    async audit({ userId }) {
      const history = await options.audit.subjectHistory(userId);
      return {
        origin: history.origin,
        logKey: history.logKey,
        size: history.size,
        checkpoint: history.checkpoint,
        entries: history.entries.map((entry) => ({ index: entry.index, entry: entry.entry as { type: string; time: string }, entryBase64: entry.entryBase64, proof: [...entry.proof] })),
      };
    },
  };
}
