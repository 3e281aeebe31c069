/**
 * Privacy workflows (issue 15): the data map, consumer requests and their
 * deadlines, access and portability, erasure with notice to recipients,
 * GPC opt-out, consent per purpose, retention and legal holds.
 */
export { DATA_MAP, deletedCollections, placeOf, placesIn, type DataCategory, type DataPlace, type DataStore, type Erasure, type ExportSection, type Locator } from './data-map.ts';
export { ANSWER_DAYS, CONFIRM_BUSINESS_DAYS, ConsumerRequests, REQUEST_KINDS, addBusinessDays, deadlinesOf, type ConsumerRequest, type RequestChannel, type RequestKind } from './requests.ts';
export { subjectHasher, type SubjectHasher } from './subjects.ts';
export { ERASURE_NOTICE_TOPIC, ErasureRefusedError, Erasures, type ErasureContext, type ErasureNoticePayload, type ErasureOptions, type ErasureOutcome } from './erasure.ts';
export { RECIPIENT_STATES, type ErasureRecord, type RecipientNotice, type RecipientState } from './erasure-records.ts';
export { NoticeNotDeliveredError, erasureNoticeDeliverer, type NoticeDelivererOptions } from './notices.ts';
export { ERASED, addressesInSignalLog, namesAddress, redactDeep, redactSharedRecords, type RedactionReport } from './redaction.ts';
export { appendTombstoneFile, readTombstoneFile, storedTombstones, writeTombstone, type Tombstone } from './tombstones.ts';
export { LegalHolds, type LegalHold } from './holds.ts';
export { createErasureService, type ErasureService, type ErasureServiceOptions, type JobReport } from './erasure-service.ts';
export { EXPORT_SECTIONS, PrivacyExportError, PrivacyExporter, mappedSections, type ExportRequester, type PrivacyExporterOptions, type SubjectAuditHistory, type SubjectAuditSource } from './export.ts';
export { EXPORT_FORMAT, EXPORT_SCHEMA_PATH, EXPORT_VERSION, PrivacyExportSchema, privacyExportJsonSchema, type PrivacyExport } from './export-schema.ts';
export { ExportLimit, EXPORT_LIMIT_PREFIX, type ExportAllowance } from './export-limit.ts';
export { createPrivacy, type Privacy } from './privacy.ts';
export {
  CONSENT_LOG,
  OPT_OUT_PURPOSE,
  PreferenceError,
  PrivacyPreferences,
  createPrivacyPreferences,
  decisionOf,
  type ConsentRecord,
  type ConsentSource,
  type OptOutSource,
  type PreferenceAudit,
  type Purpose,
  type PurposeState,
} from './preferences.ts';
export { MailNotConfiguredError, NOTICE_EMAIL_TOPIC, messageIdOf, noticeEmailDeliverer, smtpSender, type MailSender, type NoticeEmailPayload, type OutgoingMail } from './mail.ts';
export { Retention, ipPseudonym, isIpPseudonym, type InactivityNotice, type RetentionOptions, type RetentionReport, type RetentionRules } from './retention.ts';
