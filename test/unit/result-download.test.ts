// The web UI's download form (src/api/result-download.ts): which requests count as
// cross-site, and what a form must be. The whole download runs in chromium in
// test/browser/web-ui.test.ts.
import type { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import t from 'tap';
import { MAX_DOWNLOAD_FORM_BYTES, readDownloadForm, refuseCrossSite } from '../../src/api/result-download.js';

function request(headers: Record<string, string>, body = ''): IncomingMessage {
  const req = Readable.from([Buffer.from(body)]) as unknown as IncomingMessage;
  req.headers = { host: 'box:7701', ...headers };
  return req;
}

t.test('a form from another site is refused; the node\'s own page and non-browsers pass', async (t) => {
  const refused = (h: Record<string, string>): boolean => {
    try {
      refuseCrossSite(request(h));
      return false;
    } catch (err) {
      t.match(err, { code: 'CROSS_SITE', httpStatus: 403 });
      return true;
    }
  };
  t.equal(refused({ 'sec-fetch-site': 'same-origin', origin: 'https://box:7701' }), false, 'the page itself');
  t.equal(refused({ 'sec-fetch-site': 'none' }), false, 'typed by the user');
  t.equal(refused({ 'sec-fetch-site': 'cross-site', origin: 'https://evil.example' }), true, 'another site');
  t.equal(refused({ 'sec-fetch-site': 'same-site', origin: 'https://box:7702' }), true, 'another port of the same host is another origin');
  t.equal(refused({ origin: 'https://box:7701' }), false, 'a browser without Sec-Fetch-Site, same origin');
  t.equal(refused({ origin: 'https://evil.example' }), true, 'a browser without Sec-Fetch-Site, another origin');
  t.equal(refused({ origin: 'null' }), true, 'an opaque origin');
  t.equal(refused({}), false, 'curl: no browser headers');
});

t.test('the form is url-encoded and small', async (t) => {
  const form = await readDownloadForm(request({ 'content-type': 'application/x-www-form-urlencoded' }, 'token=wrs_abc&x=1'));
  t.equal(form.get('token'), 'wrs_abc');
  await t.rejects(readDownloadForm(request({ 'content-type': 'application/json' }, '{}')), { code: 'UNSUPPORTED_MEDIA_TYPE' });
  await t.rejects(readDownloadForm(request({ 'content-type': 'application/x-www-form-urlencoded' }, 'x'.repeat(MAX_DOWNLOAD_FORM_BYTES + 1))), { code: 'BODY_TOO_LARGE' });
});
