// Asks a company webhook whether a client may register (RFC 7591 dynamic
// registration). The webhook answers 2xx with { "allow": false, "reason": "..." }
// to refuse; any other 2xx lets the registration go on. A non-2xx, or no
// answer, throws: the hook failed, and the manifest's onFailure (deny, the
// default) refuses the registration, so a webhook that is down does not let
// every client in.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { definePlugin } from 'portcullis/sdk/plugin';

// The URL is configuration, beside the code; its origin must be one of the
// manifest's http.fetch origins, or the host refuses the request.
const { url: WEBHOOK_URL } = JSON.parse(readFileSync(join(import.meta.dirname, 'webhook.json'), 'utf8'));

const DEFAULT_REASON = 'The registration was refused.';
// The host shows a deny reason to the client: printable ASCII, at most 200 characters.
const shownReason = (reason) => (typeof reason === 'string' && /^[\x20-\x7e]{1,200}$/.test(reason) ? reason : DEFAULT_REASON);

export default definePlugin({
  hooks: {
    'registration.before': async ({ metadata, host }) => {
      // The metadata is not validated yet: take only well-typed fields.
      const fields = metadata !== null && typeof metadata === 'object' ? metadata : {};
      const event = {
        event: 'client.registering',
        client_name: typeof fields.client_name === 'string' ? fields.client_name : null,
        redirect_uris: Array.isArray(fields.redirect_uris) ? fields.redirect_uris.filter((uri) => typeof uri === 'string') : [],
      };
      const response = await host.fetch(WEBHOOK_URL, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(event),
      });
      if (!response.ok) throw new Error(`the registration webhook answered ${response.status}`);
      let verdict;
      try {
        verdict = response.json();
      } catch {
        return undefined; // a 2xx without JSON: nothing to object to
      }
      if (verdict !== null && typeof verdict === 'object' && verdict.allow === false) return { deny: shownReason(verdict.reason) };
      return undefined;
    },
  },
});
