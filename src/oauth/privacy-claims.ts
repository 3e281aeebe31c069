/**
 * The `privacy` scope's claims (issue 15), from the choices kept on the user
 * record (the privacy module writes them; the authorization server only
 * reads, so it needs nothing of that module):
 * - `privacy_opt_out`: true when the person asked not to have their personal
 *   information sold or shared (CCPA 1798.120), by the account page or a
 *   Global Privacy Control signal (CCPA regulations section 7025);
 * - `privacy_consents`: purpose id → the version the person consented to,
 *   for the purposes they granted only (GDPR Art. 7: no consent is assumed;
 *   an application compares the version with the purpose's current one).
 */
import type { UserPrivacy } from '../identity/index.ts';

export function privacyClaimValues(privacy: UserPrivacy | undefined): { privacy_opt_out: boolean; privacy_consents: Record<string, number> } {
  const consents: Record<string, number> = {};
  for (const [purpose, decision] of Object.entries(privacy?.consents ?? {})) {
    // Defined, not assigned: a purpose id such as `__proto__` stays a plain key.
    if (decision.granted) Object.defineProperty(consents, purpose, { value: decision.version, enumerable: true, writable: true, configurable: true });
  }
  return { privacy_opt_out: privacy?.optOut !== undefined, privacy_consents: consents };
}
