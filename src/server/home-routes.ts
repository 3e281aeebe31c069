import type { FastifyPluginAsync } from 'fastify';
import { html } from './views/html.ts';
import { layout } from './views/pages.ts';
import { page } from './identity-routes.ts';

export interface HomeRoutesOptions {
  /** The issuer identifier (OIDC Discovery section 4: discovery lives under it). */
  readonly issuer: () => string;
}

/** A portcullis on a dark square: 32×32, no script, no external reference. */
const FAVICON = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="6" fill="#1f2937"/><path d="M7 26V11a9 9 0 0 1 18 0v15M12 8v18M16 6v20M20 8v18M7 15h18M7 20h18" fill="none" stroke="#f9fafb" stroke-width="2"/></svg>`;

/** A year: the icon never changes under the same URL in a deployed version. */
const FAVICON_CACHE = 'public, max-age=31536000, immutable';

/**
 * The root URL (first-hour D10): the URL the start log prints. A browser
 * (Accept: text/html) gets a small page that says what this is and where to
 * go; any other client gets a small JSON pointer to the discovery document
 * (OIDC Discovery section 4), which is what a program looking at the root
 * of an issuer wants next. Plus the favicon browsers ask for on every page.
 */
export const homeRoutes: FastifyPluginAsync<HomeRoutesOptions> = async (app, options) => {
  app.get('/', async (request, reply) => {
    const issuer = options.issuer();
    const discovery = `${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`;
    reply.header('vary', 'accept');
    if (!wantsHtml(request.headers.accept)) {
      return reply.type('application/json; charset=utf-8').send({ issuer, openid_configuration: discovery });
    }
    return page(
      reply,
      200,
      layout(
        'Portcullis',
        html`<h1>Portcullis</h1>
<p>The identity server of this site: sign-in, OAuth 2.1 and OpenID Connect.</p>
<ul>
<li><a href="/account">Your account</a> (sign in, sessions, two-step verification)</li>
<li><a href="/.well-known/openid-configuration">OpenID Connect discovery document</a>, for application developers</li>
</ul>
<p>Operators: see the README of Portcullis for configuration and the <code>portcullis</code> command.</p>`,
      ),
    );
  });

  app.get('/favicon.ico', async (_request, reply) => reply.type('image/svg+xml').header('cache-control', FAVICON_CACHE).send(FAVICON));
};

/** Whether the client prefers HTML (a browser navigating), by the Accept header (RFC 9110 section 12.5.1), simply. */
function wantsHtml(accept: string | undefined): boolean {
  if (accept === undefined) return false;
  return accept.split(',').some((range) => {
    const [type, ...parameters] = range.trim().toLowerCase().split(';');
    const refused = parameters.some((parameter) => /^\s*q\s*=\s*0(\.0*)?\s*$/.test(parameter));
    return !refused && (type === 'text/html' || type === 'application/xhtml+xml');
  });
}
