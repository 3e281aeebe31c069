/**
 * Privacy workflows (issue 15): the data map, consumer requests and their
 * deadlines, access and portability, erasure with notice to recipients,
 * GPC opt-out, consent per purpose, retention and legal holds.
 */
export { DATA_MAP, deletedCollections, placeOf, placesIn, type DataCategory, type DataPlace, type DataStore, type Erasure, type ExportSection, type Locator } from './data-map.ts';
export { ANSWER_DAYS, CONFIRM_BUSINESS_DAYS, ConsumerRequests, REQUEST_KINDS, addBusinessDays, deadlinesOf, type ConsumerRequest, type RequestChannel, type RequestKind } from './requests.ts';
export { subjectHasher, type SubjectHasher } from './subjects.ts';
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
