// Adds a company directory's department and employee id to ID tokens,
// access tokens and UserInfo, under the namespace the manifest declares
// (the host drops any claim outside it).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { definePlugin } from 'portcullis/sdk/plugin';

const NAMESPACE = 'https://acme.example/';

// Read once, at load: the sandbox may read this plugin's own directory, and a
// changed directory.json is a changed package (its signature no longer holds),
// so it arrives with a reinstall and a restart anyway.
const directory = new Map(
  Object.entries(JSON.parse(readFileSync(join(import.meta.dirname, 'directory.json'), 'utf8'))).map(([email, entry]) => [email.toLowerCase(), entry]),
);

/** The claims for one user, or undefined (pass: the claims stay as they are). */
async function claimsFor(host, userId) {
  const user = await host.users.read(userId);
  if (user === null || user.disabled) return undefined;
  // Portcullis does not verify addresses by mail yet (emailVerified is
  // false for everyone), but every account is made by an operator
  // (`portcullis user create`), so the address is the operator's own
  // statement. Where people could choose their own address, match only a
  // verified one: otherwise anyone registering alice@acme.example would get
  // Alice's employee id.
  const entry = directory.get(user.email.toLowerCase());
  if (entry === undefined) return undefined;
  return {
    claims: {
      [`${NAMESPACE}department`]: entry.department,
      [`${NAMESPACE}employee_id`]: entry.employee_id,
    },
  };
}

export default definePlugin({
  hooks: {
    'token.claims': (ctx) => claimsFor(ctx.host, ctx.userId),
    'userinfo.claims': (ctx) => claimsFor(ctx.host, ctx.userId),
    // client_credentials (userId null): the client acts for itself, there is
    // no person to describe, so the token is left as it is.
    'access-token.claims': (ctx) => (ctx.userId === null ? undefined : claimsFor(ctx.host, ctx.userId)),
  },
});
