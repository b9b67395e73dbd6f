// The slice view the reading workstation and the arbitration view share, installed
// on both page controllers' prototypes (Workstation, Arbitration): frames arriving
// from the series stream or one slice fetched alone, the first frame's header, one
// paint per animation frame, loading progress, window preset buttons, the save
// indicator, the flash line, tool buttons and reader toggles. What differs between
// the two pages (their own windowing memory, tools and panels) stays in each.
//
// A controller provides: boot, apiRoot, geometry, viewport, canvas, count, slice,
// frames, requested, loadedCount, presets, windowName, rgb, sliderEl, tools, and the
// methods paint(), goToSlice(), setTool(), applyPreset(), kindFor(), whyCannotDraw().

import { round2 } from "./geometry.js";
import { fetchInstance, streamSeries } from "./pixels.js";
import { $, h, presetLabel } from "./ui.js";

export const PRESET_KEYS = { lung: "1", mediastinum: "2", bone: "3", brain: "4" };

/** What a save indicator says for a saver's state; `savedText` is the page's own words. */
export function saveStateText(state, savedText) {
  const texts = {
    saved: savedText,
    pending: gettext("Unsaved changes…"),
    saving: gettext("Saving…"),
    retrying: gettext("Saving… retrying"),
    error: gettext("Not saved: error"),
    conflict: gettext("Conflict: not saved"),
    locked: gettext("Read-only"),
  };
  return texts[state] || state;
}

/** Methods both page controllers share for showing one series slice by slice. */
export const sliceViewMethods = {
  // -- frames ------------------------------------------------------------------------

  _acceptFrame(frame) {
    const index = frame.header.index;
    const at = Number.isInteger(frame.header.slice_index) ? frame.header.slice_index : index;
    if (at == null || at < 0 || at >= this.count || this.frames[at]) return;
    this.frames[at] = frame;
    this.loadedCount += 1;
    if (!this.defaultWindow && frame.values) this._initWindow(frame.header);
    if (at === this.slice) this.redraw();
  },

  /** The first frame's header: pixel spacing and size for the geometry, fit the
   * viewport, and the series' own window, inversion, colour and presets. */
  _adoptHeader(header) {
    this.geometry.setSpacingFromFrame(header.pixel_spacing);
    if (!this.geometry.rows) {
      this.geometry.rows = header.rows;
      this.geometry.columns = header.columns;
    }
    this.viewport.fitted = false;
    this.viewport.resize();
    this.defaultWindow = header.default_window || { center: 0, width: 1 };
    this.headerInvert = Boolean(header.invert);
    this.rgb = Boolean(header.rgb);
    this.presets = header.window_presets || [];
  },

  /** Stream the whole series into this.frames, showing the progress; resolves once all arrived. */
  _streamFrames() {
    return streamSeries(this.apiRoot, this.boot.series.id, {
      onFrame: (frame) => this._acceptFrame(frame),
      onProgress: ({ frames, expected, bytes, total }) => {
        const of = expected || this.count;
        const pct = total ? Math.round((100 * bytes) / total) : Math.round((100 * frames) / of);
        this._progress(pct, frames, of);
      },
    });
  },

  async _fetchSlice(index) {
    const slice = this.geometry.slices[index];
    if (!slice || this.requested.has(index) || this.frames[index]) return;
    this.requested.add(index);
    try {
      const frame = await fetchInstance(this.apiRoot, slice.id);
      frame.header.slice_index = index;
      this._acceptFrame(frame);
    } catch {
      this.requested.delete(index);
    }
  },

  _fetchSliceSoon() {
    clearTimeout(this._sliceTimer);
    const index = this.slice;
    // The stream may be about to deliver it: ask for it alone only if it does not.
    this._sliceTimer = setTimeout(() => {
      if (!this.frames[index] && index === this.slice) this._fetchSlice(index);
    }, 150);
  },

  // -- painting ----------------------------------------------------------------------

  redraw() {
    if (this.needsPaint) return;
    this.needsPaint = true;
    requestAnimationFrame(() => this.paint());
  },

  _paintLoading(ctx) {
    const vp = this.viewport;
    ctx.fillStyle = "#9aa6bb";
    ctx.font = "14px system-ui, sans-serif";
    ctx.textAlign = "center";
    ctx.fillText(gettext("Loading slice…"), vp.cssWidth / 2, vp.cssHeight / 2);
    ctx.textAlign = "start";
  },

  pointerAt(p) {
    this.pointer = p;
    if (this.tool !== "select") return;
    const hit = this.hitFinding(p);
    this.canvas.classList.toggle("over-shape", Boolean(hit));
  },

  // -- chrome --------------------------------------------------------------------------

  /** The canvas follows its box; the slider and the tool buttons drive the view. */
  _bindView() {
    new ResizeObserver(() => {
      this.viewport.resize();
      this.redraw();
    }).observe(this.canvas);
    this.sliderEl.addEventListener("input", () => this.goToSlice(Number(this.sliderEl.value)));
    for (const b of document.querySelectorAll(".ws-tool")) b.addEventListener("click", () => this.setTool(b.dataset.tool));
  },

  _progress(pct, frames, of, done = false, error = "") {
    const text = $("#ws-progress");
    if (error) {
      text.textContent = interpolate(gettext("Series loading failed: %s"), [error]);
      text.classList.add("bad");
      return;
    }
    $("#ws-progress-bar").style.width = `${pct}%`;
    text.textContent = done
      ? interpolate(gettext("%s slices loaded"), [frames])
      : interpolate(gettext("Loading %s%% (%s / %s)"), [pct, frames, of]);
    text.parentElement.classList.toggle("done", done);
    text.parentElement.dataset.state = done ? "done" : "loading";
  },

  /** One button per window preset; `fileText` names the series' own window. */
  _buildPresets(fileText) {
    const box = $("#ws-presets");
    box.textContent = "";
    if (this.rgb) return;
    const add = (name, text, key) => {
      const b = h("button", { type: "button", class: "ws-preset", text, title: key ? `${text} (${key})` : text, "data-preset": name });
      b.addEventListener("click", () => this.applyPreset(name));
      box.append(b);
    };
    add("file", fileText, "0");
    for (const p of this.presets.filter((x) => x.source === "modality")) add(p.name, presetLabel(p.name), PRESET_KEYS[p.name]);
    this._markPreset();
  },

  _markPreset() {
    for (const b of document.querySelectorAll(".ws-preset")) b.classList.toggle("on", b.dataset.preset === this.windowName);
  },

  /** The save indicator `el` and the conflict `banner` show a saver's state. */
  _showSaveState(el, banner, state, message, savedText) {
    el.textContent = saveStateText(state, savedText);
    el.dataset.state = state;
    el.title = message || "";
    if (state === "conflict" || state === "error") {
      banner.hidden = false;
      banner.querySelector(".ws-conflict-text").textContent = message;
      banner.dataset.kind = state;
    } else if (state !== "retrying") {
      banner.hidden = true;
    }
    if (state === "retrying") this.flash(message);
  },

  flash(text) {
    if (!text) return;
    const el = $("#ws-flash");
    el.textContent = text;
    el.hidden = false;
    clearTimeout(this._flashTimer);
    this._flashTimer = setTimeout(() => (el.hidden = true), 4000);
  },

  // -- tools and readers -----------------------------------------------------------------

  /** Switch to a tool the page has allowed: its button lit, the canvas cursor set. */
  _useTool(tool) {
    this.tools.cancel();
    this.tool = tool;
    for (const b of document.querySelectorAll(".ws-tool")) b.classList.toggle("on", b.dataset.tool === tool);
    this.canvas.dataset.tool = tool;
  },

  /** The shape a drawing tool made on this slice, or null (the reason flashed) where
   * the tool cannot draw now. */
  _drawnShape(tool, points) {
    const kind = this.kindFor(tool);
    if (!kind) {
      this.flash(this.whyCannotDraw(tool));
      return null;
    }
    return { kind, shape: { slice_index: this.slice, points: round2(points) } };
  },

  /** A reader's marks shown or hidden on the image. */
  _toggleReader(reader, shown) {
    if (shown) this.hiddenReaders.delete(reader);
    else this.hiddenReaders.add(reader);
    this.redraw();
  },
};
