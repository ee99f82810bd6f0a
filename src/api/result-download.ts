// POST /v1/jobs/:id/result: the web UI's result download. The browser submits a form
// (into a hidden frame of the page) and writes the answer, the same tar as GET
// /v1/jobs/:id/result, straight to disk as it arrives: the page never holds the tar.
// A form cannot send an Authorization header, so the token comes as the form's
// `token` field, in the body: never in a URL, where history, logs and Referer would
// keep it. There is no cookie or other ambient credential, so a page of another site
// can only send a token it already has; a request a browser marks as cross-site is
// refused anyway, so no other page can make this one download what it chooses.
// Reasoning and alternatives: docs/security.md ("Result downloads in the browser").
import type { IncomingMessage } from 'node:http';
import { HttpError, readBody } from './http.js';
import { authorize, tokenHolder, type Credentials } from './roles.js';

/** The form holds one token (about 90 bytes); anything much larger is not this form. */
export const MAX_DOWNLOAD_FORM_BYTES = 4096;

/**
 * Refuses a request a browser says came from another site: Sec-Fetch-Site when the
 * browser sends it, else an Origin whose host is not the one the request was sent to.
 * A client that sends neither (curl, the CLI) is no browser page and passes.
 */
export function refuseCrossSite(req: IncomingMessage): void {
  const site = req.headers['sec-fetch-site'];
  if (typeof site === 'string') {
    if (site !== 'same-origin' && site !== 'none') throw crossSite(`Sec-Fetch-Site is ${site}`);
    return;
  }
  const origin = req.headers.origin;
  if (origin === undefined) return;
  let host: string | null = null;
  try {
    host = new URL(origin).host;
  } catch {
    // "null" (a sandboxed or opaque origin) or garbage: not this node's page
  }
  if (host !== req.headers.host) throw crossSite(`Origin ${origin} is not this node`);
}

function crossSite(why: string): HttpError {
  return new HttpError(403, 'CROSS_SITE', `a result download form must come from this node's own page (${why})`);
}

/** The form's fields (application/x-www-form-urlencoded, at most MAX_DOWNLOAD_FORM_BYTES). */
export async function readDownloadForm(req: IncomingMessage): Promise<URLSearchParams> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
  if (type !== 'application/x-www-form-urlencoded') {
    throw new HttpError(415, 'UNSUPPORTED_MEDIA_TYPE', `send the download form as application/x-www-form-urlencoded (got ${type || 'no content type'}); other clients GET the result with Authorization`);
  }
  return new URLSearchParams((await readBody(req, MAX_DOWNLOAD_FORM_BYTES)).toString('utf8'));
}

/**
 * Checks a download form in secure mode: from this node's page, with a token of at
 * least the read role. Throws the 401/403/413/415 to answer otherwise.
 */
export async function authorizeDownloadForm(req: IncomingMessage, creds: Credentials, what: string): Promise<void> {
  refuseCrossSite(req);
  const form = await readDownloadForm(req);
  authorize(tokenHolder(form.get('token') ?? '', creds), 'read', what);
}
