/** Outbound HTTP requests to addresses clients registered, under the SSRF rules. */
export { OutboundAddressError, isPublicAddress, postBody, postForm, type OutboundOptions, type OutboundResponse } from './outbound.ts';
/** Plugins' `http.fetch`: HTTPS to allow-listed origins under the same address rule. */
export {
  FETCH_METHODS,
  FetchPolicyError,
  fetchWithPolicy,
  type FetchMethod,
  type FetchPolicy,
  type FetchPolicyErrorCode,
  type FetchRequest,
  type FetchResponse,
} from './fetch.ts';
