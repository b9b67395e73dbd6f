// The slice view the reading workstation and the arbitration view share, installed
// on both page controllers' prototypes (Workstation, Arbitration): the view's state,
// frames arriving from the series stream or one slice fetched alone, the first
// frame's header, slice navigation, the window and its presets, the view commands
// of the shortcut table, one paint per animation frame, loading progress, the save
// indicator, the flash line, tool buttons and reader toggles. What differs between
// the two pages is an option of _initSliceView(): the workstation remembers the view
// and previews a window drag; each page keeps its own tools, panels and overlay.
//
// A controller calls _initSliceView(boot, options) first and provides: sliderEl,
// tools, and the methods _initWindow(header), _overlay(ctx, frame), setTool(),
// kindFor(), whyCannotDraw(), hitFinding().

import { round2, SeriesGeometry } from "./geometry.js";
import { SliceRenderer } from "./lut.js";
import { edgeMarkers, viewText } from "./markers.js";
import { fetchInstance, streamSeries } from "./pixels.js";
import { buildHelp, keymap } from "./shortcuts.js";
import { $, h, loadJSON, presetLabel, saveJSON } from "./ui.js";
import { Viewport } from "./viewport.js";

// A window drag on an image this large and minified paints a reduced preview per
// frame (lut.js), and the full-resolution image once the drag rests this long.
const PREVIEW_MIN_PIXELS = 2_000_000;
const SHARP_AFTER_MS = 160;

/** The shortcut table's verbs that viewCommand() carries out on either page. */
// "help": the `?` overlay of the page's keys, where the page has one (#ws-help).
export const VIEW_VERBS = new Set(["tool", "slice", "preset", "invert", "reset", "zoom", "help"]);

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
  // -- state -------------------------------------------------------------------------

  /**
   * The page and view state both controllers start from. Options:
   *   viewKey               localStorage key remembering slice, window and inversion
   *                         across visits (none: each visit starts afresh);
   *   previewWhileDragging  a reduced preview per frame while a window drag runs on
   *                         a large minified image, one sharp paint once it rests;
   *   resetPreset           the window "reset" returns to (none: the window stays).
   */
  _initSliceView(boot, { viewKey = null, previewWhileDragging = false, resetPreset = null } = {}) {
    this.boot = boot;
    this.lang = boot.lang;
    this.schema = boot.schema;
    this.apiRoot = boot.urls.api;
    this.task = boot.task;
    this.writable = boot.writable;
    this.geometry = new SeriesGeometry(boot.series);
    this.count = Math.max(this.geometry.slices.length, 1);
    this.frames = new Array(this.count).fill(null);
    // Reduced renditions of large frames, painted until the full frame arrives.
    this.previews = new Array(this.count).fill(null);
    this.requested = new Set();
    this.loadedCount = 0;
    this.seriesDone = false;
    this.viewKey = viewKey;
    this.previewWhileDragging = previewWhileDragging;
    this.resetPreset = resetPreset;
    const view = (viewKey && loadJSON(viewKey)) || {};
    this.slice = Math.min(Math.max(view.slice || 0, 0), this.count - 1);
    this.window = view.window || null;
    this.windowName = view.windowName || "";
    this.invert = Boolean(view.invert);
    this.presets = [];
    this.defaultWindow = null;
    this.tool = "select";
    this.pointer = null;
    this.needsPaint = false;
    this.firstImageAt = null;
    this.hiddenReaders = new Set();
    this.canvas = $("#ws-canvas");
    this.viewport = new Viewport(this.canvas, this.geometry);
    this.renderer = new SliceRenderer();
    // One image (a radiograph): nothing to scroll through.
    const sliderRow = this.canvas.closest(".ws-view") && this.canvas.closest(".ws-view").querySelector(".ws-slider-row");
    if (sliderRow) sliderRow.hidden = this.count <= 1;
  },

  /** Remember the view where the page asked for it (viewKey). */
  _saveView() {
    if (!this.viewKey) return;
    saveJSON(this.viewKey, { slice: this.slice, window: this.window, windowName: this.windowName, invert: this.invert });
  },

  _shapeOn(geometry, index) {
    return ((geometry && geometry.shapes) || []).find((s) => s.slice_index === index) || null;
  },

  // -- frames ------------------------------------------------------------------------

  _acceptFrame(frame) {
    const index = frame.header.index;
    const at = Number.isInteger(frame.header.slice_index) ? frame.header.slice_index : index;
    if (at == null || at < 0 || at >= this.count || this.frames[at]) return;
    if (frame.header.preview) {
      // A large frame's reduced rendition: shown (and the view set up from its
      // header, which is the full frame's) until the full frame arrives.
      if (!frame.values) return;
      this.previews[at] = frame;
      if (!this.defaultWindow) this._initWindow(frame.header);
      if (at === this.slice) this.redraw();
      return;
    }
    this.previews[at] = null;
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
      const full = header.preview || header; // a preview's header gives the full size there
      this.geometry.rows = full.rows;
      this.geometry.columns = full.columns;
    }
    this.viewport.fitted = false;
    this.viewport.resize();
    this.defaultWindow = header.default_window || { center: 0, width: 1 };
    this.headerInvert = Boolean(header.invert);
    this.rgb = Boolean(header.rgb);
    this.presets = header.window_presets || [];
    this.windowSource = header.window_source || "";
    this._showMarkers(header.view);
  },

  /** The name of the default window's preset button: the file's, or computed ("Auto"). */
  _defaultWindowText() {
    return this.windowSource === "histogram" ? gettext("Auto") : gettext("File");
  },

  /** The preset the default window is (its name), "file" when none is: the button lit. */
  _defaultWindowName() {
    const w = this.defaultWindow;
    const same = this.presets.find((p) => w && p.center === w.center && p.width === w.width);
    return same && this.windowSource !== "histogram" ? same.name : "file";
  },

  /** Orientation letters at the edges (from ImageOrientationPatient, else from a
   * radiograph's PatientOrientation) and a radiograph's view and laterality. */
  _showMarkers(view) {
    const markers = this.geometry.markers() || edgeMarkers(view);
    for (const side of ["left", "right", "top", "bottom"]) {
      const el = document.getElementById(`ws-mark-${side}`);
      if (el) el.textContent = markers ? markers[side] : "";
    }
    const el = document.getElementById("ws-mark-view");
    if (el) {
      el.textContent = viewText(view);
      el.hidden = !el.textContent;
    }
  },

  /** Load the series: the slice the view starts on alone first unless the stream
   * starts there, then the whole stream with its progress. */
  async _load() {
    if (this.slice > 0) this._fetchSlice(this.slice);
    const t0 = performance.now();
    try {
      await this._streamFrames();
      this.seriesDone = true;
      performance.mark("ws:series-loaded");
      this.seriesMs = performance.now() - t0;
      this._progress(100, this.loadedCount, this.count, true);
    } catch (error) {
      this._progress(null, this.loadedCount, this.count, false, error.message);
    }
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

  // -- slices, window and view commands ------------------------------------------------

  goToSlice(index) {
    const next = Math.min(Math.max(Math.round(index), 0), this.count - 1);
    if (next === this.slice) return;
    this.slice = next;
    this.sliderEl.value = String(next);
    this._saveView();
    this.redraw();
  },

  setWindow(center, width, { custom = false, name = "" } = {}) {
    this.window = { center: Math.round(center * 10) / 10, width: Math.max(1, Math.round(width * 10) / 10) };
    this.windowName = custom ? "" : name;
    if (custom && this.previewWhileDragging) this._windowMoving();
    this._markPreset();
    this._saveView();
    this.redraw();
  },

  /** A drag is changing the window: previews until it rests, then one sharp paint. */
  _windowMoving() {
    this.windowMovingAt = performance.now();
    clearTimeout(this._sharpTimer);
    this._sharpTimer = setTimeout(() => {
      this.windowMovingAt = 0;
      this.redraw();
    }, SHARP_AFTER_MS);
  },

  /** 1 for a full-resolution paint, k > 1 for every k-th pixel during a window drag. */
  previewStep(frame) {
    if (!this.windowMovingAt || frame.header.rgb) return 1;
    if (frame.header.rows * frame.header.columns < PREVIEW_MIN_PIXELS) return 1;
    const step = Math.round(1 / this.viewport.devicePixelsPerImagePixel);
    return step >= 2 ? step : 1;
  },

  applyPreset(name) {
    if (!this.defaultWindow) return;
    if (name === "file") {
      this.setWindow(this.defaultWindow.center, this.defaultWindow.width, { name: "file" });
      return;
    }
    const preset = this.presets.find((p) => p.name === name);
    if (!preset) {
      this.flash(gettext("This series has no such window preset."));
      return;
    }
    this.setWindow(preset.center, preset.width, { name });
  },

  /** Carry out a view command of the shortcut table (VIEW_VERBS); false for any other. */
  viewCommand(action) {
    const [verb, arg] = action.split(":");
    if (verb === "tool") this.setTool(arg);
    else if (verb === "slice") {
      if (arg === "first") this.goToSlice(0);
      else if (arg === "last") this.goToSlice(this.count - 1);
      else this.goToSlice(this.slice + Number(arg));
    } else if (verb === "preset") this.applyPreset(arg);
    else if (verb === "invert") {
      this.invert = !this.invert;
      this._saveView();
      this.redraw();
    } else if (verb === "reset") {
      this.viewport.fit();
      this.invert = false;
      if (this.resetPreset && this.defaultWindow) this.applyPreset(this.resetPreset);
      this._saveView();
      this.redraw();
    } else if (verb === "zoom") {
      this.viewport.zoomAt(arg === "in" ? 1.25 : 0.8, this.viewport.cssWidth / 2, this.viewport.cssHeight / 2);
      this.redraw();
    } else if (verb === "help") this.toggleHelp();
    else return false;
    return true;
  },

  /** Show or hide the `?` overlay: the keys of this page (this.pageKeys), in its words. */
  toggleHelp(show = null) {
    const overlay = document.getElementById("ws-help");
    if (!overlay) return;
    const open = show === null ? overlay.hidden : show;
    if (open && !overlay.dataset.built) {
      buildHelp($("#ws-help-body"), this.pageKeys || null, overlay.dataset.page || "");
      overlay.dataset.built = "1";
    }
    overlay.hidden = !open;
  },

  /** The shortcut table's keys for this page: the view commands, the tools it has a
   * button for and the page's own `verbs`. */
  _pageKeys(verbs) {
    const tools = new Set([...document.querySelectorAll(".ws-tool")].map((b) => b.dataset.tool));
    const own = new Set(verbs);
    this.pageKeys = keymap((action) => {
      const [verb, arg] = action.split(":");
      return verb === "tool" ? tools.has(arg) : VIEW_VERBS.has(verb) || own.has(verb);
    });
    return this.pageKeys;
  },

  // -- painting ----------------------------------------------------------------------

  /** Paint the current slice (a preview while a window drag runs) and the page's
   * overlay; returns the slice's frame (null while it has not arrived). */
  _paintSlice() {
    this.needsPaint = false;
    const frame = this.frames[this.slice];
    // Until a large frame arrives, its reduced rendition (drawn at the full size).
    const preview = frame ? null : this.previews[this.slice];
    this.previewShown = Boolean(preview && preview.values && this.window);
    let image = null;
    if (this.previewShown) {
      const invert = this.headerInvert !== this.invert;
      image = this.renderer.render(preview, this.window.center, this.window.width, invert, `${this.slice}:preview`);
      if (!this.firstImageAt) {
        this.firstImageFrom = "preview";
        this.firstImageAt = performance.now();
        this._firstImage();
      }
      const full = preview.header.preview;
      this.viewport.draw(image, (ctx) => this._overlay(ctx, null), [full.columns, full.rows]);
      return null;
    }
    if (frame && frame.values && this.window) {
      const invert = this.headerInvert !== this.invert;
      // A thick slab around the slice where the page has one on (mpr.js), else the slice.
      const slab = this.slabFrame ? this.slabFrame() : null;
      image = this.renderer.render(slab || frame, this.window.center, this.window.width, invert, slab ? slab.key : this.slice, {
        step: slab ? 1 : this.previewStep(frame), view: !slab && this.windowMovingAt ? this.viewport : null, // lut.js renderVisible
      });
      if (!this.firstImageAt) {
        this.firstImageFrom = "full";
        this.firstImageAt = performance.now();
        this._firstImage();
      }
    } else if (!frame) {
      this._fetchSliceSoon();
    }
    const size = frame && frame.values ? [frame.header.columns, frame.header.rows] : null;
    this.viewport.draw(image, (ctx) => this._overlay(ctx, frame), size);
    return frame;
  },

  /** The first image is on the canvas: marked (the bench and the tests read it), and
   * the early picture prefetch.js may have put over the canvas goes. */
  _firstImage() {
    performance.mark("ws:first-image");
    document.body.dataset.firstImage = "1";
    const early = document.getElementById("ws-early");
    if (early) early.remove();
  },

  /** The corner texts every page shows over the image: {left, right} lines (slice
   * and position for a series, thickness; window, zoom and image size). */
  _viewInfo(frame) {
    const slice = this.geometry.slices[this.slice];
    const header = frame ? frame.header : null;
    const along = slice && slice.along != null ? slice.along : header && header.position_along_normal;
    const thickness = this.boot.series.slice_thickness_mm;
    const left = [
      this.count > 1 ? interpolate(gettext("Slice %s / %s"), [this.slice + 1, this.count]) : "",
      along != null && this.count > 1 ? interpolate(gettext("Position %s mm"), [Number(along).toFixed(1)]) : "",
      thickness ? interpolate(gettext("Thickness %s mm"), [thickness]) : "",
    ];
    const w = this.window;
    const name = this.windowName && this.windowName !== "file" ? ` · ${presetLabel(this.windowName)}` : "";
    const unit = this.boot.series.modality === "CT" ? " HU" : "";
    const vp = this.viewport;
    const right = [
      w && !this.rgb ? `W ${Math.round(w.width)}  L ${Math.round(w.center)}${unit}${name}${this.invert ? ` · ${gettext("inverted")}` : ""}` : "",
      `${gettext("Zoom")} ${Math.round(vp.zoom * Math.min(vp.sx, vp.sy) * 100)}%`,
      header ? `${header.columns} × ${header.rows} px${header.photometric ? ` · ${header.photometric}` : ""}` : "",
    ];
    return { left: left.filter(Boolean), right: right.filter(Boolean) };
  },

  redraw() {
    if (this.needsPaint) return;
    this.needsPaint = true;
    requestAnimationFrame(() => this.paint());
  },

  _paintLoading(ctx) {
    if (this.previewShown) return; // the reduced rendition is on the canvas
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
    // The `?` overlay, where the page has one: its buttons, and Esc closes it first.
    const help = document.getElementById("ws-help");
    if (help) {
      for (const id of ["ws-help-open", "ws-help-close"]) {
        const button = document.getElementById(id);
        if (button) button.addEventListener("click", () => this.toggleHelp());
      }
      window.addEventListener(
        "keydown",
        (e) => {
          if (e.key !== "Escape" || help.hidden) return;
          e.preventDefault();
          e.stopImmediatePropagation();
          this.toggleHelp(false);
        },
        true,
      );
    }
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
    // The percent sign goes in with the number: Django's interpolate() leaves a "%%" as it is.
    text.textContent = done ? this._loadedText(frames) : interpolate(gettext("Loading %s (%s / %s)"), [`${pct}%`, frames, of]);
    text.parentElement.classList.toggle("done", done);
    text.parentElement.dataset.state = done ? "done" : "loading";
  },

  /** What the progress line says once the series is in: a single image is an image, not a slice. */
  _loadedText(frames) {
    if (this.count <= 1) return frames === 1 ? gettext("Image loaded") : gettext("No image loaded");
    return interpolate(ngettext("%s slice loaded", "%s slices loaded", frames), [frames]);
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
