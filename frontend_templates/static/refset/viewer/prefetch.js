// The series pixel stream asked for, and its first slice painted, before the
// viewer's modules arrive. A classic script, not a module: the workstation's page
// puts its text inline at the top of <head>, before any style sheet
// (reading/_early_stream.html, tag {% inline_script %}; the Content-Security-Policy
// allows exactly this text by its sha256, annotation_server/csp.py), so it runs the
// moment the parser reaches it, with no request of its own. The page names the
// stream first,
//   <meta name="refset-series-pixels" content="/api/v1/series/ID/pixels/"
//         data-view-key="refset.view.TASK" data-paint="1">
// and holds its module preloads in <template id="refset-modules">, further down the
// head. The script, in this order:
//   1. starts the stream's request at once;
//   2. lets the module preloads of the template go once the stream's response has
//      begun (inert until then, so that the stream's request is not queued behind
//      some thirty module files: one server process answers them all, six
//      connections at a time);
//   3. reads the stream's first record on one branch of the body (tee) and paints
//      it, windowed and fitted as the slice view will (sliceview.js, viewport.js
//      fit(), lut.js), on a canvas of its own over the page's (#ws-early), which the
//      slice view removes when it paints its own first image. It paints only the
//      slice the view starts on, with the window it starts with (the remembered
//      view, data-view-key, else the file's default); colour images and anything
//      unusual are left to the viewer.
// pixels.js streamSeries() takes the other branch (once, window.refsetEarly.take)
// instead of asking again.
//
// Until the page reads it, the response body waits in the browser's buffer and the
// connection's flow control holds the server back, so the early start costs the
// server nothing more than the stream itself.
(() => {
  "use strict";

  /** The pixel record format's media type (annotation_server/imaging/pixels.py, pixels.js). */
  const MEDIA_TYPE = "application/vnd.refset.pixels";

  const started = new Map();

  window.refsetEarly = {
    /** The response (a promise) started early for `url`, handed out once; null if none. */
    take(url) {
      const response = started.get(url) || null;
      started.delete(url);
      return response;
    },
  };

  const ARRAYS = { int16: Int16Array, uint8: Uint8Array, uint16: Uint16Array, float32: Float32Array };

  /** The first complete record of `stream` ({header, values}), or null; the branch is cancelled after. */
  async function firstRecord(stream) {
    const reader = stream.getReader();
    let work = new Uint8Array(1 << 20); // grown by doubling: a large frame arrives in many chunks
    let filled = 0;
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return null;
        if (filled + value.length > work.length) {
          const bigger = new Uint8Array(Math.max(work.length * 2, filled + value.length));
          bigger.set(work.subarray(0, filled));
          work = bigger;
        }
        work.set(value, filled);
        filled += value.length;
        const bytes = work.subarray(0, filled);
        if (bytes.length < 4) continue;
        const n = new DataView(bytes.buffer).getUint32(0, true);
        if (bytes.length < 4 + n) continue;
        const header = JSON.parse(new TextDecoder().decode(bytes.subarray(4, 4 + n)));
        const Kind = ARRAYS[header.dtype];
        if (header.error || !header.nbytes || !Kind) return null;
        if (bytes.length < 4 + n + header.nbytes) continue;
        const start = 4 + n;
        return { header, values: new Kind(bytes.buffer.slice(start, start + header.nbytes)) };
      }
    } finally {
      reader.cancel().catch(() => {});
    }
  }

  function remembered(key) {
    try {
      return (key && JSON.parse(localStorage.getItem(key) || "null")) || {};
    } catch {
      return {};
    }
  }

  /** The element `id`, once the parser has reached it (null if the page has none). */
  function parsed(id) {
    const find = () => document.getElementById(id);
    if (find() || document.readyState !== "loading") return Promise.resolve(find());
    return new Promise((resolve) => {
      const done = () => {
        const canvas = find();
        if (!canvas && document.readyState === "loading") return;
        observer.disconnect();
        document.removeEventListener("readystatechange", done);
        resolve(canvas);
      };
      const observer = new MutationObserver(done);
      observer.observe(document.documentElement, { childList: true, subtree: true });
      document.addEventListener("readystatechange", done);
    });
  }

  /** Paint the stream's first slice as the slice view will, if it is the one shown first. */
  async function paintFirst(stream, meta) {
    const frame = await firstRecord(stream);
    if (!frame) return;
    performance.mark("ws:early-record"); // bench/viewer_browser.py --breakdown
    const h = frame.header;
    const view = remembered(meta.dataset.viewKey);
    const index = Number.isInteger(h.slice_index) ? h.slice_index : h.index;
    if (h.rgb || (view.slice || 0) !== index) return;
    const win = view.window || h.default_window;
    if (!win) return;
    const canvas = await parsed("ws-canvas");
    if (!canvas || document.body.dataset.firstImage) return; // the viewer was quicker
    const rect = canvas.getBoundingClientRect();
    if (rect.width < 2 || rect.height < 2) return;
    // The windowed image (lut.js _lutFor: DICOM's linear VOI function to 0..255).
    const { columns, rows } = h;
    const image = new ImageData(columns, rows);
    const out = new Uint32Array(image.data.buffer);
    const invert = Boolean(h.invert) !== Boolean(view.invert);
    const w = Math.max(win.width, 1);
    const lo = win.center - 0.5 - (w - 1) / 2;
    const hi = win.center - 0.5 + (w - 1) / 2;
    const scale = 255 / (w - 1 || 1);
    const values = frame.values;
    for (let p = 0; p < values.length; p += 1) {
      const x = values[p];
      let g = x <= lo ? 0 : x > hi ? 255 : Math.round((x - (win.center - 0.5)) * scale + 127.5);
      if (g < 0) g = 0;
      else if (g > 255) g = 255;
      if (invert) g = 255 - g;
      out[p] = 0xff000000 | (g << 16) | (g << 8) | g;
    }
    const source = document.createElement("canvas");
    source.width = columns;
    source.height = rows;
    source.getContext("2d").putImageData(image, 0, 0);
    // Fitted and centred (viewport.js fit()), in mm: a reduced rendition at its full size.
    const full = h.preview || h;
    const spacing = Array.isArray(h.pixel_spacing) && h.pixel_spacing[0] > 0 ? h.pixel_spacing : [1, 1];
    const worldW = full.columns * spacing[1];
    const worldH = full.rows * spacing[0];
    const cssW = Math.round(rect.width);
    const cssH = Math.round(rect.height);
    const zoom = Math.min(cssW / worldW, cssH / worldH) * 0.96;
    const dpr = window.devicePixelRatio || 1;
    const early = document.createElement("canvas");
    early.id = "ws-early";
    early.className = "ws-early";
    early.setAttribute("aria-hidden", "true");
    early.width = Math.round(cssW * dpr);
    early.height = Math.round(cssH * dpr);
    const ctx = early.getContext("2d", { alpha: false });
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, early.width, early.height);
    const sx = zoom * spacing[1] * (full.columns / columns);
    const sy = zoom * spacing[0] * (full.rows / rows);
    ctx.setTransform(dpr * sx, 0, 0, dpr * sy, dpr * (cssW - worldW * zoom) / 2, dpr * (cssH - worldH * zoom) / 2);
    ctx.imageSmoothingEnabled = zoom * Math.min(...spacing) * dpr < 1;
    ctx.imageSmoothingQuality = "high";
    ctx.drawImage(source, 0, 0);
    if (document.body.dataset.firstImage) return;
    canvas.after(early);
    performance.mark("ws:first-image"); // the viewer's own first paint marks it again (bench/viewer_browser.py)
    performance.mark("ws:early-image");
  }

  /** The page's module preloads, held back until the stream's response has begun. */
  async function release() {
    const held = await parsed("refset-modules");
    if (held && !held.dataset.released) {
      held.dataset.released = "1";
      document.head.append(held.content.cloneNode(true));
    }
  }

  const meta = document.querySelector('meta[name="refset-series-pixels"]');
  if (meta && meta.content) {
    const response = fetch(meta.content, {
      credentials: "same-origin",
      headers: { Accept: MEDIA_TYPE },
      priority: "high",
    });
    performance.mark("pixels:requested");
    response.then(release, release);
    const handed = !meta.dataset.paint
      ? response
      : response.then((r) => {
          if (!r.ok || !r.body) return r;
          const [mine, theirs] = r.body.tee();
          paintFirst(mine, meta).catch(() => {}); // a picture early or none: the viewer paints anyway
          return new Response(theirs, { status: r.status, statusText: r.statusText, headers: r.headers });
        });
    handed.catch(() => {}); // a failure is the taker's: it asks again and reports
    started.set(meta.content, handed);
  } else {
    release();
  }
})();
