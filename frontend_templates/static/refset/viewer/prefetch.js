// The series pixel stream asked for while the page's head is parsed. The
// workstation's modules take a few round trips to arrive and evaluate; the first
// slice need not wait for them. The page names the stream in the head,
//   <meta name="refset-series-pixels" content="/api/v1/series/ID/pixels/">
// followed by <script type="module" async src=".../prefetch.js">, which runs as
// soon as it arrives (no imports: one request) and starts the request at once.
// pixels.js streamSeries() takes that response (once) instead of asking again:
// the same module instance, since a module is one per URL (static names are not
// hashed: STORAGES["staticfiles"] in settings).
//
// Until the page reads it, the response body waits in the browser's buffer and the
// connection's flow control holds the server back, so the early start costs the
// server nothing more than the stream itself.

/** The pixel record format's media type (annotation_server/imaging/pixels.py). */
export const MEDIA_TYPE = "application/vnd.refset.pixels";

const started = new Map();

/** The response (a promise) started early for `url`, handed out once; null if none. */
export function takeEarly(url) {
  const response = started.get(url) || null;
  started.delete(url);
  return response;
}

const meta = document.querySelector('meta[name="refset-series-pixels"]');
if (meta && meta.content) {
  const response = fetch(meta.content, {
    credentials: "same-origin",
    headers: { Accept: MEDIA_TYPE },
    priority: "high",
  });
  response.catch(() => {}); // a failure is the taker's: it asks again and reports
  started.set(meta.content, response);
  performance.mark("pixels:requested");
}
