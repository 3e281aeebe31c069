/** Outbound HTTP requests to addresses clients registered, under the SSRF rules. */
export { OutboundAddressError, isPublicAddress, postBody, postForm, type OutboundOptions, type OutboundResponse } from './outbound.ts';
