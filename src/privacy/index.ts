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
export { ERASED, addressesInSignalLog, redactDeep, redactSharedRecords, type RedactionReport } from './redaction.ts';
export { appendTombstoneFile, readTombstoneFile, storedTombstones, writeTombstone, type Tombstone } from './tombstones.ts';
export { LegalHolds, type LegalHold } from './holds.ts';
export { createPrivacy, type JobReport, type Privacy, type PrivacyOptions } from './service.ts';
