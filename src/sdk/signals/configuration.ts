/**
 * The transmitter configuration document (SSF 1.0 section 7.1), fetched
 * from the issuer's well-known URL (section 7.2) and checked: a receiver
 * takes its key set location from it, so nothing in it is used unless it
 * validated (section 7.2.3).
 */
import { SignalsUnavailableError } from './errors.ts';
import { isObject, requestJson, type HttpOptions } from './fetch.ts';
import { checkSecureUrl, ssfConfigurationUrl } from './url.ts';

/** SSF 1.0 section 7.1 metadata; members this SDK does not read are kept as they came. */
export interface SsfConfiguration {
  readonly issuer: string;
  readonly jwks_uri: string;
  readonly delivery_methods_supported?: readonly string[];
  readonly configuration_endpoint?: string;
  readonly status_endpoint?: string;
  readonly add_subject_endpoint?: string;
  readonly remove_subject_endpoint?: string;
  readonly verification_endpoint?: string;
  readonly [member: string]: unknown;
}

const CONFIGURATION_LIMIT = 64 * 1024;
const ENDPOINTS = ['configuration_endpoint', 'status_endpoint', 'add_subject_endpoint', 'remove_subject_endpoint', 'verification_endpoint'] as const;

/** GETs and checks the configuration of `issuer`. Throws SignalsUnavailableError when it cannot be had or does not validate. */
export async function fetchSsfConfiguration(issuer: string, http: HttpOptions = {}): Promise<SsfConfiguration> {
  const url = ssfConfigurationUrl(issuer);
  let answer;
  try {
    answer = await requestJson(url, { method: 'GET', headers: { accept: 'application/json' } }, http, CONFIGURATION_LIMIT);
  } catch (error) {
    throw new SignalsUnavailableError(`the SSF configuration at ${url.href} could not be fetched`, { cause: error });
  }
  if (answer.status !== 200) throw new SignalsUnavailableError(`the SSF configuration at ${url.href} answered ${answer.status}`);
  return checkConfiguration(answer.json, issuer, url.href);
}

function checkConfiguration(document: unknown, issuer: string, where: string): SsfConfiguration {
  if (!isObject(document)) throw new SignalsUnavailableError(`the SSF configuration at ${where} is not a JSON object`);
  // SSF 1.0 section 7.2.3: identical to the issuer used to fetch it, else an attacker's document for another issuer could be served.
  if (document.issuer !== issuer) throw new SignalsUnavailableError(`the SSF configuration at ${where} names issuer ${JSON.stringify(document.issuer)}, not ${issuer}`);
  if (typeof document.jwks_uri !== 'string') throw new SignalsUnavailableError(`the SSF configuration at ${where} has no jwks_uri`);
  try {
    checkSecureUrl(document.jwks_uri, 'jwks_uri');
    for (const name of ENDPOINTS) {
      const endpoint = document[name];
      if (endpoint === undefined) continue;
      if (typeof endpoint !== 'string') throw new TypeError(`${name} is not a string`);
      checkSecureUrl(endpoint, name);
    }
  } catch (error) {
    throw new SignalsUnavailableError(`the SSF configuration at ${where} is unusable: ${(error as Error).message}`, { cause: error });
  }
  const methods = document.delivery_methods_supported;
  if (methods !== undefined && !(Array.isArray(methods) && methods.every((method) => typeof method === 'string'))) {
    throw new SignalsUnavailableError(`the SSF configuration at ${where} has a delivery_methods_supported that is not a list of URIs`);
  }
  return document as SsfConfiguration;
}
