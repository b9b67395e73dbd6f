// The reading workstation: wires the pixel stream, renderer, viewport, tools,
// findings store, save queue, schema forms and shortcuts to the page.

import "./i18n.js";
import { api, HttpError, SaveQueue } from "./autosave.js";
import { buildForm, isEmpty, label, validate } from "./forms.js";
import { findingCentreMm, hitShape, round2, SeriesGeometry } from "./geometry.js";
import { SliceRenderer } from "./lut.js";
import { fetchInstance, streamSeries } from "./pixels.js";
import { buildHelp, comboOf, keymap } from "./shortcuts.js";
import { FindingStore } from "./store.js";
import { DRAW_TOOLS, ToolController } from "./tools.js";
import { Viewport } from "./viewport.js";

const OWN_COLOURS = ["#ffd54a", "#4fc3f7", "#81c784", "#ff8a65", "#ba68c8", "#f06292", "#aed581", "#4db6ac"];
const OTHER_COLOURS = ["#ff5252", "#40c4ff", "#69f0ae", "#ffab40", "#e040fb", "#eeff41"];
const PROPOSAL_COLOUR = "#00e5ff";
const PRESET_KEYS = { lung: "1", mediastinum: "2", bone: "3", brain: "4" };
// A window drag on an image this large and minified paints a reduced preview per
// frame (lut.js), and the full-resolution image once the drag rests this long.
const PREVIEW_MIN_PIXELS = 2_000_000;
const SHARP_AFTER_MS = 160;

const $ = (selector) => document.querySelector(selector);

function h(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("data-") || k.startsWith("aria-") || k === "role") node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const child of children) if (child != null) node.append(child);
  return node;
}

function presetLabel(name) {
  const names = {
    lung: gettext("Lung"),
    mediastinum: gettext("Mediastinum"),
    bone: gettext("Bone"),
    brain: gettext("Brain"),
  };
  return names[name] || name;
}

function formatTime(seconds) {
  const m = Math.floor(seconds / 60);
  const s = seconds % 60;
  return `${m}:${String(s).padStart(2, "0")}`;
}

export class Workstation {
  constructor(boot) {
    this.boot = boot;
    this.lang = boot.lang;
    this.schema = boot.schema;
    this.apiRoot = boot.urls.api;
    this.task = boot.task;
    this.writable = boot.writable;
    this.geometry = new SeriesGeometry(boot.series);
    this.count = Math.max(this.geometry.slices.length, 1);
    this.frames = new Array(this.count).fill(null);
    this.requested = new Set();
    this.loadedCount = 0;
    this.seriesDone = false;
    this.viewKey = `refset.view.${this.task.id}`;
    const view = this._loadJSON(this.viewKey) || {};
    this.slice = Math.min(Math.max(view.slice || 0, 0), this.count - 1);
    this.window = view.window || null;
    this.windowName = view.windowName || "";
    this.invert = Boolean(view.invert);
    this.presets = [];
    this.defaultWindow = null;
    this.tool = "select";
    this.selected = null;
    this.types = this.schema.finding_types || [];
    this.typeKey = this.types.length ? this.types[0].key : null;
    this.measureKey = `refset.measure.${this.task.id}`;
    this.measurements = this._loadJSON(this.measureKey) || [];
    this.showOthers = true;
    this.hiddenReaders = new Set();
    this.pointer = null;
    this.needsPaint = false;
    this.paintTimes = [];
    this.firstImageAt = null;
    this.lastActivity = Date.now();
    this.pendingSeconds = 0;
    this.activeSeconds = this.task.active_seconds || 0;

    this.canvas = $("#ws-canvas");
    this.viewport = new Viewport(this.canvas, this.geometry);
    this.renderer = new SliceRenderer();
    this.store = new FindingStore(boot.findings);
    this.store.readOnly = !this.writable;
    const server = {};
    for (const f of boot.findings) server[f.uid] = { id: f.id, version: f.version };
    this.queue = new SaveQueue({
      apiRoot: this.apiRoot,
      taskId: this.task.id,
      store: this.store,
      server,
      caseLabel: boot.case_label,
      taskVersion: this.task.version,
    });
    this.tools = new ToolController(this);
    this._buildChrome();
    this._bind();
    if (this.writable) {
      const restored = this.queue.restoreBuffer();
      if (restored) this.flash(gettext("Unsaved changes from your last session were restored and are being saved."));
    } else {
      this.queue.discardBuffer();
    }
    this.caseForm.setValues(this.queue.caseLabel.values);
    this.renderFindings();
    this._setSaveState(this.queue.state, "");
    this._load();
    if (boot.review) this._loadOthers();
    this._startClock();
    if (this.writable && this.task.state === "assigned") this._start();
  }

  _loadJSON(key) {
    try {
      return JSON.parse(localStorage.getItem(key) || "null");
    } catch {
      return null;
    }
  }

  _saveJSON(key, value) {
    try {
      localStorage.setItem(key, JSON.stringify(value));
    } catch {
      /* storage unavailable: the view state is a convenience */
    }
  }

  _saveView() {
    this._saveJSON(this.viewKey, {
      slice: this.slice,
      window: this.window,
      windowName: this.windowName,
      invert: this.invert,
    });
  }

  // -- loading -----------------------------------------------------------------

  async _start() {
    try {
      const { data } = await api("POST", `${this.apiRoot}reading-tasks/${this.task.id}/start/`, {});
      this.task = { ...this.task, ...data };
      this.queue.taskVersion = data.version;
      $("#ws-state").textContent = gettext("in progress");
      $("#ws-state").className = "pill pill-in_progress";
    } catch (error) {
      this.flash(error.message);
    }
  }

  _acceptFrame(frame) {
    const index = frame.header.index;
    const at = Number.isInteger(frame.header.slice_index) ? frame.header.slice_index : index;
    if (at == null || at < 0 || at >= this.count || this.frames[at]) return;
    this.frames[at] = frame;
    this.loadedCount += 1;
    if (!this.defaultWindow && frame.values) this._initWindow(frame.header);
    if (at === this.slice) this.redraw();
  }

  _initWindow(header) {
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
    if (!this.window) {
      this.window = { ...this.defaultWindow };
      this.windowName = this.presets.length ? this.presets[0].name : "";
    }
    this._buildPresets();
  }

  async _load() {
    const seriesId = this.boot.series.id;
    const first = this.slice;
    // The slice the reader starts on comes alone first unless the stream starts there.
    if (first > 0) this._fetchSlice(first);
    const t0 = performance.now();
    try {
      await streamSeries(this.apiRoot, seriesId, {
        onFrame: (frame) => this._acceptFrame(frame),
        onProgress: ({ frames, expected, bytes, total }) => {
          const of = expected || this.count;
          const pct = total ? Math.round((100 * bytes) / total) : Math.round((100 * frames) / of);
          this._progress(pct, frames, of);
        },
      });
      this.seriesDone = true;
      performance.mark("ws:series-loaded");
      this.seriesMs = performance.now() - t0;
      this._progress(100, this.loadedCount, this.count, true);
    } catch (error) {
      this._progress(null, this.loadedCount, this.count, false, error.message);
    }
  }

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
  }

  async _loadOthers() {
    const found = [];
    let url = `${this.apiRoot}findings/?task__case=${this.boot.case.id}&limit=500`;
    try {
      while (url) {
        const { data } = await api("GET", url);
        const rows = Array.isArray(data) ? data : data.results;
        found.push(...rows);
        url = Array.isArray(data) ? null : data.next;
      }
    } catch (error) {
      this.flash(error.message);
      return;
    }
    const others = found.filter((f) => f.task !== this.task.id && f.reader !== "me");
    this.store.setOthers(others);
  }

  // -- chrome ------------------------------------------------------------------

  _buildChrome() {
    this.statusEl = $("#ws-save");
    this.progressEl = $("#ws-progress");
    this.progressBar = $("#ws-progress-bar");
    this.sliderEl = $("#ws-slider");
    this.sliderEl.max = String(this.count - 1);
    this.sliderEl.value = String(this.slice);
    this.flashEl = $("#ws-flash");
    this.findingsEl = $("#ws-findings");
    this.attrsEl = $("#ws-attrs");
    this.caseFormEl = $("#ws-caseform");
    this.typeSelect = $("#ws-type");
    for (const type of this.types) {
      this.typeSelect.append(h("option", { value: type.key, text: label(type.label, this.lang) }));
    }
    this.typeSelect.value = this.typeKey || "";
    this.typeSelect.addEventListener("change", () => this.setType(this.typeSelect.value));
    this.caseForm = buildForm(this.caseFormEl, this.schema.case_fields || [], this.queue.caseLabel.values, {
      lang: this.lang,
      idPrefix: "case",
      disabled: !this.writable,
      onChange: (values) => {
        this.queue.setCaseLabel(values);
        this.caseForm.showErrors({});
      },
    });
    buildHelp($("#ws-help-body"));
    const markers = this.geometry.markers();
    if (markers) {
      for (const side of ["left", "right", "top", "bottom"]) $(`#ws-mark-${side}`).textContent = markers[side];
    }
    this._applyWritable();
    this.setTool("select");
    this._markAllowedTools();
  }

  _buildPresets() {
    const box = $("#ws-presets");
    box.textContent = "";
    if (this.rgb) return;
    const add = (name, text, key, window) => {
      const b = h("button", { type: "button", class: "ws-preset", text, title: key ? `${text} (${key})` : text, "data-preset": name });
      b.addEventListener("click", () => this.applyPreset(name));
      box.append(b);
      return window;
    };
    const own = this.presets.filter((p) => p.source === "file");
    add("file", own.length ? gettext("File") : gettext("Auto"), "0");
    for (const p of this.presets.filter((x) => x.source === "modality")) add(p.name, presetLabel(p.name), PRESET_KEYS[p.name]);
    this._markPreset();
  }

  _markPreset() {
    for (const b of document.querySelectorAll(".ws-preset")) b.classList.toggle("on", b.dataset.preset === this.windowName || (b.dataset.preset === "file" && this.windowName === "file"));
  }

  _applyWritable() {
    document.body.classList.toggle("ws-readonly", !this.writable);
    $("#ws-submit").hidden = !this.writable;
    $("#ws-locked").hidden = this.writable;
    this.store.readOnly = !this.writable;
    if (this.caseForm) this.caseForm.setDisabled(!this.writable);
    for (const b of document.querySelectorAll(".ws-tool[data-draw]")) b.disabled = !this.writable;
  }

  _progress(pct, frames, of, done = false, error = "") {
    if (error) {
      this.progressEl.textContent = interpolate(gettext("Series loading failed: %s"), [error]);
      this.progressEl.classList.add("bad");
      return;
    }
    this.progressBar.style.width = `${pct}%`;
    this.progressEl.textContent = done
      ? interpolate(gettext("%s slices loaded"), [frames])
      : interpolate(gettext("Loading %s%% (%s / %s)"), [pct, frames, of]);
    this.progressEl.parentElement.classList.toggle("done", done);
    this.progressEl.parentElement.dataset.state = done ? "done" : "loading";
  }

  _setSaveState(state, message) {
    const texts = {
      saved: gettext("All changes saved"),
      pending: gettext("Unsaved changes…"),
      saving: gettext("Saving…"),
      retrying: gettext("Saving… retrying"),
      error: gettext("Not saved: error"),
      conflict: gettext("Conflict: not saved"),
      locked: gettext("Read-only"),
    };
    this.statusEl.textContent = texts[state] || state;
    this.statusEl.dataset.state = state;
    this.statusEl.title = message || "";
    const banner = $("#ws-conflict");
    if (state === "conflict" || state === "error") {
      banner.hidden = false;
      banner.querySelector(".ws-conflict-text").textContent = message;
      banner.dataset.kind = state;
    } else if (state !== "retrying") {
      banner.hidden = true;
    }
    if (state === "retrying") this.flash(message);
  }

  flash(text) {
    if (!text) return;
    this.flashEl.textContent = text;
    this.flashEl.hidden = false;
    clearTimeout(this._flashTimer);
    this._flashTimer = setTimeout(() => (this.flashEl.hidden = true), 4000);
  }

  // -- events --------------------------------------------------------------------

  _bind() {
    new ResizeObserver(() => {
      this.viewport.resize();
      this.redraw();
    }).observe(this.canvas);
    this.sliderEl.addEventListener("input", () => this.goToSlice(Number(this.sliderEl.value)));
    for (const b of document.querySelectorAll(".ws-tool")) b.addEventListener("click", () => this.setTool(b.dataset.tool));
    $("#ws-undo").addEventListener("click", () => this.command("undo"));
    $("#ws-redo").addEventListener("click", () => this.command("redo"));
    $("#ws-reset").addEventListener("click", () => this.command("reset"));
    $("#ws-invert").addEventListener("click", () => this.command("invert"));
    $("#ws-help-open").addEventListener("click", () => this.command("help"));
    $("#ws-help-close").addEventListener("click", () => this.command("help"));
    $("#ws-clear-rulers").addEventListener("click", () => {
      this.measurements = [];
      this._saveJSON(this.measureKey, this.measurements);
      this.redraw();
    });
    $("#ws-submit").addEventListener("click", () => this.askSubmit());
    $("#ws-confirm-yes").addEventListener("click", () => this.submit());
    $("#ws-confirm-no").addEventListener("click", () => ($("#ws-confirm").hidden = true));
    $("#ws-reload").addEventListener("click", () => {
      this.queue.discardBuffer();
      window.location.reload();
    });
    this.store.addEventListener("change", (e) => {
      if (!this.store.get(this.selected) && !String(this.selected || "").startsWith("other:")) this.selected = null;
      if (e.detail.why === "undo" || e.detail.why === "redo") this._jumpTo(e.detail.uid);
      this.renderFindings();
      this.redraw();
    });
    this.store.addEventListener("others", () => {
      this.renderFindings();
      this.redraw();
    });
    this.store.addEventListener("proposals", () => {
      this.renderFindings();
      this.redraw();
    });
    this.queue.addEventListener("state", (e) => {
      this._setSaveState(e.detail.state, e.detail.message);
      if (e.detail.state === "locked") {
        this.writable = false;
        this._applyWritable();
      }
    });
    const keys = keymap();
    document.addEventListener("keydown", (e) => {
      this.lastActivity = Date.now();
      const combo = comboOf(e);
      const target = e.target;
      const typing = target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA" || target.tagName === "SELECT");
      if (typing && target.type !== "range" && !["escape", "ctrl+s", "ctrl+enter"].includes(combo)) return;
      if (this.tools.key(combo)) {
        e.preventDefault();
        return;
      }
      const action = keys.get(combo);
      if (!action) return;
      e.preventDefault();
      if (typing && combo === "escape") target.blur();
      this.command(action);
    });
    for (const type of ["pointerdown", "wheel", "pointermove"]) {
      document.addEventListener(type, () => (this.lastActivity = Date.now()), { passive: true });
    }
    window.addEventListener("pagehide", () => this._heartbeat(true));
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "hidden") this._heartbeat(true);
    });
  }

  command(action) {
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
      if (this.defaultWindow) this.applyPreset("file");
      this.redraw();
    } else if (verb === "zoom") {
      this.viewport.zoomAt(arg === "in" ? 1.25 : 0.8, this.viewport.cssWidth / 2, this.viewport.cssHeight / 2);
      this.redraw();
    } else if (verb === "type") this.cycleType();
    else if (verb === "finding") this.stepFinding(arg === "next" ? 1 : -1);
    else if (verb === "copy") this.copyOutline(arg === "next" ? 1 : -1);
    else if (verb === "delete") this.deleteSelected(arg === "finding");
    else if (verb === "escape") {
      if (!this.tools.cancel()) {
        if (!$("#ws-help").hidden) $("#ws-help").hidden = true;
        else if (!$("#ws-confirm").hidden) $("#ws-confirm").hidden = true;
        else this.select(null);
      }
    } else if (verb === "undo") this.store.undo();
    else if (verb === "redo") this.store.redo();
    else if (verb === "others") {
      this.showOthers = !this.showOthers;
      this.renderFindings();
      this.redraw();
    } else if (verb === "save") this.queue.flush();
    else if (verb === "submit") this.askSubmit();
    else if (verb === "next") {
      if (!this.writable) window.location.href = this.boot.urls.next;
      else this.flash(gettext("Submit this read first, or go back to the worklist."));
    } else if (verb === "help") $("#ws-help").hidden = !$("#ws-help").hidden;
  }

  setTool(tool) {
    if (DRAW_TOOLS.has(tool) && !this.writable) return;
    if ((tool === "axes" || DRAW_TOOLS.has(tool)) && !this.canDraw(tool)) {
      this.flash(this.whyCannotDraw(tool));
      return;
    }
    this.tools.cancel();
    this.tool = tool;
    for (const b of document.querySelectorAll(".ws-tool")) b.classList.toggle("on", b.dataset.tool === tool);
    this.canvas.dataset.tool = tool;
  }

  setType(key) {
    this.typeKey = key;
    this.typeSelect.value = key;
    this._markAllowedTools();
    if (DRAW_TOOLS.has(this.tool) && !this.canDraw(this.tool)) this.setTool("select");
  }

  cycleType() {
    if (!this.types.length) return;
    const i = this.types.findIndex((t) => t.key === this.typeKey);
    this.setType(this.types[(i + 1) % this.types.length].key);
    this.flash(label(this.types.find((t) => t.key === this.typeKey).label, this.lang));
  }

  _markAllowedTools() {
    for (const b of document.querySelectorAll(".ws-tool[data-draw]")) {
      b.classList.toggle("unavailable", !this.canDraw(b.dataset.tool));
    }
  }

  /** The geometry kind a drawing tool makes for the current type (or null). */
  kindFor(tool) {
    const type = this.types.find((t) => t.key === this.typeKey);
    const allowed = type ? type.geometry : [];
    const wants = {
      point: ["point"],
      box: ["box"],
      ellipse: ["ellipse"],
      polygon: ["polygon", "contour"],
      freehand: ["contour", "polygon"],
    }[tool];
    if (!wants) return null;
    return wants.find((k) => allowed.includes(k)) || null;
  }

  canDraw(tool) {
    if (!this.writable) return false;
    if (tool === "line") return true;
    if (tool === "axes") return true;
    return Boolean(this.kindFor(tool));
  }

  whyCannotDraw(tool) {
    if (!this.writable) return gettext("This read is read-only.");
    const type = this.types.find((t) => t.key === this.typeKey);
    return interpolate(gettext("%(type)s cannot be drawn with this tool (allowed: %(kinds)s)."), {
      type: type ? label(type.label, this.lang) : "?",
      kinds: type ? type.geometry.join(", ") : "",
    }, true);
  }

  // -- slices and window ---------------------------------------------------------

  goToSlice(index) {
    const next = Math.min(Math.max(Math.round(index), 0), this.count - 1);
    if (next === this.slice) return;
    this.slice = next;
    this.sliderEl.value = String(next);
    this._saveView();
    this.redraw();
  }

  setWindow(center, width, { custom = false, name = "" } = {}) {
    this.window = { center: Math.round(center * 10) / 10, width: Math.max(1, Math.round(width * 10) / 10) };
    this.windowName = custom ? "" : name;
    if (custom) this._windowMoving();
    this._markPreset();
    this._saveView();
    this.redraw();
  }

  /** A drag is changing the window: previews until it rests, then one sharp paint. */
  _windowMoving() {
    this.windowMovingAt = performance.now();
    clearTimeout(this._sharpTimer);
    this._sharpTimer = setTimeout(() => {
      this.windowMovingAt = 0;
      this.redraw();
    }, SHARP_AFTER_MS);
  }

  /** 1 for a full-resolution paint, k > 1 for every k-th pixel during a window drag. */
  previewStep(frame) {
    if (!this.windowMovingAt || frame.header.rgb) return 1;
    if (frame.header.rows * frame.header.columns < PREVIEW_MIN_PIXELS) return 1;
    const step = Math.round(1 / this.viewport.devicePixelsPerImagePixel);
    return step >= 2 ? step : 1;
  }

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
  }

  // -- findings --------------------------------------------------------------------

  _number(uid) {
    return this.store.list().findIndex((f) => f.uid === uid) + 1;
  }

  _colour(uid) {
    const n = this._number(uid);
    return OWN_COLOURS[(n - 1 + OWN_COLOURS.length) % OWN_COLOURS.length];
  }

  _otherColour(reader) {
    const n = Number(String(reader).replace(/\D/g, "")) || 1;
    return OTHER_COLOURS[(n - 1) % OTHER_COLOURS.length];
  }

  isOwn(uid) {
    return Boolean(this.store.get(uid));
  }

  _shapeOn(geometry, index) {
    return (geometry.shapes || []).find((s) => s.slice_index === index) || null;
  }

  selectedShape() {
    const f = this.store.get(this.selected);
    if (!f) return null;
    const shape = this._shapeOn(f.geometry, this.slice);
    return shape ? { uid: f.uid, kind: f.geometry.kind, points: shape.points } : null;
  }

  hitFinding(p) {
    const toScreen = this.viewport.toScreen;
    const own = this.store.list().reverse();
    for (const f of own) {
      const shape = this._shapeOn(f.geometry, this.slice);
      if (shape && hitShape(f.geometry.kind, shape.points, p, toScreen)) return f.uid;
    }
    if (this.showOthers) {
      for (const f of this.store.others) {
        if (this.hiddenReaders.has(f.reader)) continue;
        const shape = this._shapeOn(f.geometry, this.slice);
        if (shape && hitShape(f.geometry.kind, shape.points, p, toScreen)) return `other:${f.id}`;
      }
    }
    return null;
  }

  select(uid) {
    this.selected = uid;
    this.renderFindings();
    this.redraw();
  }

  _withCentre(geometry) {
    geometry.centre_mm = findingCentreMm(geometry, this.geometry);
    return geometry;
  }

  commitShape(tool, points) {
    const kind = this.kindFor(tool);
    if (!kind) {
      this.flash(this.whyCannotDraw(tool));
      return;
    }
    const shape = { slice_index: this.slice, points: round2(points) };
    const current = this.store.get(this.selected);
    if (current && current.geometry.kind === kind && !this._shapeOn(current.geometry, this.slice)) {
      this.store.update(current.uid, (f) => {
        f.geometry.shapes.push(shape);
        f.geometry.shapes.sort((a, b) => a.slice_index - b.slice_index);
        this._withCentre(f.geometry);
        if (f.source === "model_accepted") f.source = "model_edited";
        return f;
      });
      this.flash(interpolate(gettext("Added to finding #%s on slice %s."), [this._number(current.uid), this.slice + 1]));
      return;
    }
    const uid = this.store.create({
      finding_type: this.typeKey,
      geometry: this._withCentre({ kind, shapes: [shape], centre_mm: null }),
      attributes: {},
      source: "manual",
    });
    this.select(uid);
  }

  updateShape(uid, points, { merge } = {}) {
    this.store.update(
      uid,
      (f) => {
        const shape = this._shapeOn(f.geometry, this.slice);
        if (shape) shape.points = round2(points);
        this._withCentre(f.geometry);
        if (f.source === "model_accepted") f.source = "model_edited";
        return f;
      },
      { merge },
    );
  }

  deleteSelected(whole) {
    const f = this.store.get(this.selected);
    if (!f) return;
    if (whole || f.geometry.shapes.length <= 1) {
      this.store.remove(f.uid);
      this.selected = null;
      return;
    }
    if (!this._shapeOn(f.geometry, this.slice)) {
      this.flash(gettext("The selected finding has no outline on this slice; Shift + Delete removes it entirely."));
      return;
    }
    this.store.update(f.uid, (g) => {
      g.geometry.shapes = g.geometry.shapes.filter((s) => s.slice_index !== this.slice);
      if (g.geometry.axes && g.geometry.axes.slice_index === this.slice) delete g.geometry.axes;
      this._withCentre(g.geometry);
      return g;
    });
  }

  copyOutline(step) {
    const f = this.store.get(this.selected);
    const shape = f && this._shapeOn(f.geometry, this.slice);
    if (!shape) {
      this.flash(gettext("Select a finding with an outline on this slice first."));
      return;
    }
    const target = this.slice + step;
    if (target < 0 || target >= this.count) return;
    if (this._shapeOn(f.geometry, target)) {
      this.goToSlice(target);
      this.flash(gettext("That slice already has an outline of this finding."));
      return;
    }
    this.store.update(f.uid, (g) => {
      g.geometry.shapes.push({ slice_index: target, points: shape.points.map((p) => [...p]) });
      g.geometry.shapes.sort((a, b) => a.slice_index - b.slice_index);
      this._withCentre(g.geometry);
      return g;
    });
    this.goToSlice(target);
  }

  stepFinding(step) {
    const list = this.store.list();
    if (!list.length) return;
    const i = list.findIndex((f) => f.uid === this.selected);
    const next = list[(i + step + list.length) % list.length];
    this.selected = next.uid;
    this._jumpTo(next.uid);
    this.renderFindings();
  }

  _jumpTo(uid) {
    const f = this.store.get(uid);
    if (!f || !f.geometry.shapes.length) return;
    if (!this._shapeOn(f.geometry, this.slice)) {
      const slices = f.geometry.shapes.map((s) => s.slice_index);
      const mid = slices[Math.floor(slices.length / 2)];
      this.goToSlice(mid);
    }
    this.redraw();
  }

  addMeasurement(a, b) {
    this.measurements.push({ slice_index: this.slice, a: round2([a])[0], b: round2([b])[0] });
    this._saveJSON(this.measureKey, this.measurements);
    this.flash(this._lengthText(a, b));
  }

  _lengthText(a, b) {
    const v = this.geometry.length(a, b);
    return this.geometry.hasSpacing ? `${v.toFixed(1)} mm` : `${v.toFixed(1)} px`;
  }

  /** Long axis first, then the short axis; they fill the finding's axis attributes. */
  addAxis(a, b) {
    const f = this.store.get(this.selected);
    if (!f || !this._shapeOn(f.geometry, this.slice)) {
      this.flash(gettext("Select the finding on this slice first, then draw its long axis and then its short axis."));
      return;
    }
    const type = this.types.find((t) => t.key === f.finding_type);
    const attrs = (type && type.attributes) || [];
    const longAttr = attrs.find((x) => x.kind === "number" && /long_axis|diameter/.test(x.key));
    const shortAttr = attrs.find((x) => x.kind === "number" && /short_axis/.test(x.key));
    const line = round2([a, b]);
    const mm = Math.round(this.geometry.length(a, b) * 10) / 10;
    this.store.update(f.uid, (g) => {
      const axes = g.geometry.axes && g.geometry.axes.slice_index === this.slice && !g.geometry.axes.short ? g.geometry.axes : null;
      if (!axes) {
        g.geometry.axes = { slice_index: this.slice, long: line, short: null };
        if (longAttr && this.geometry.hasSpacing) g.attributes[longAttr.key] = mm;
      } else {
        axes.short = line;
        if (shortAttr && this.geometry.hasSpacing) g.attributes[shortAttr.key] = mm;
      }
      return g;
    });
    const axes = this.store.get(f.uid).geometry.axes;
    this.flash(
      interpolate(axes.short ? gettext("Short axis %s") : gettext("Long axis %s: now draw the short axis."), [
        this._lengthText(a, b),
      ]),
    );
    if (!this.geometry.hasSpacing) this.flash(gettext("No pixel spacing: lengths are in pixels and not filled in."));
  }

  // -- findings panel ------------------------------------------------------------

  _typeOf(key) {
    return this.types.find((t) => t.key === key) || { key, label: key, attributes: [], geometry: [] };
  }

  renderFindings() {
    const list = this.store.list();
    const box = this.findingsEl;
    box.textContent = "";
    if (!list.length) {
      box.append(h("li", { class: "ws-empty", text: gettext("No findings yet. Pick a tool and draw on the image.") }));
    }
    for (const f of list) {
      const n = this._number(f.uid);
      const type = this._typeOf(f.finding_type);
      const slices = f.geometry.shapes.map((s) => s.slice_index + 1);
      const missing = Object.keys(validate(type.attributes || [], f.attributes, { complete: true })).length;
      const where =
        this.count > 1
          ? slices.length > 1
            ? interpolate(gettext("slices %s–%s (%s)"), [slices[0], slices[slices.length - 1], slices.length])
            : interpolate(gettext("slice %s"), [slices[0]])
          : "";
      const item = h(
        "li",
        {
          class: `ws-finding${f.uid === this.selected ? " on" : ""}`,
          "data-uid": f.uid,
          "data-testid": "finding",
          tabIndex: 0,
        },
        [
          h("span", { class: "ws-swatch", style: `background:${this._colour(f.uid)}` }),
          h("span", { class: "ws-finding-name", text: `#${n} ${label(type.label, this.lang)}` }),
          h("span", { class: "ws-finding-where", text: where }),
          f.source !== "manual" ? h("span", { class: "ws-badge", text: gettext("model"), title: f.source }) : null,
          h("span", {
            class: `ws-finding-state ${missing ? "todo" : "ok"}`,
            text: missing ? interpolate(gettext("%s to fill"), [missing]) : "✓",
          }),
        ],
      );
      item.addEventListener("click", () => {
        this.selected = f.uid;
        this._jumpTo(f.uid);
        this.renderFindings();
      });
      box.append(item);
    }
    this._renderOthers();
    this._renderProposals();
    this._renderAttributes();
  }

  _renderOthers() {
    const box = $("#ws-others");
    const others = this.store.others;
    box.hidden = !others.length;
    if (!others.length) return;
    const list = $("#ws-others-list");
    list.textContent = "";
    const readers = [...new Set(others.map((f) => f.reader))].sort();
    const all = h("label", { class: "ws-reader" }, [
      h("input", { type: "checkbox", checked: this.showOthers, "data-testid": "toggle-others" }),
      document.createTextNode(gettext("Show other readers' marks (M)")),
    ]);
    all.querySelector("input").addEventListener("change", (e) => {
      this.showOthers = e.target.checked;
      this.redraw();
    });
    list.append(all);
    for (const reader of readers) {
      const n = others.filter((f) => f.reader === reader).length;
      const row = h("label", { class: "ws-reader" }, [
        h("input", { type: "checkbox", checked: !this.hiddenReaders.has(reader), "data-reader": reader }),
        h("span", { class: "ws-swatch", style: `background:${this._otherColour(reader)}` }),
        document.createTextNode(`${reader} · ${interpolate(gettext("%s marks"), [n])}`),
      ]);
      row.querySelector("input").addEventListener("change", (e) => {
        if (e.target.checked) this.hiddenReaders.delete(reader);
        else this.hiddenReaders.add(reader);
        this.redraw();
      });
      list.append(row);
    }
  }

  _renderProposals() {
    const box = $("#ws-proposals");
    const proposals = this.store.proposals;
    box.hidden = !proposals.length;
    if (!proposals.length) return;
    const list = $("#ws-proposals-list");
    list.textContent = "";
    for (const p of proposals) {
      const type = this._typeOf(p.finding_type);
      const accept = h("button", { type: "button", text: gettext("Accept") });
      const edit = h("button", { type: "button", text: gettext("Edit") });
      const reject = h("button", { type: "button", text: gettext("Reject") });
      accept.addEventListener("click", () => this.select(this.store.acceptProposal(p.id)));
      edit.addEventListener("click", () => {
        const uid = this.store.acceptProposal(p.id, { edited: true });
        this.select(uid);
        this._jumpTo(uid);
        this.setTool("select");
      });
      reject.addEventListener("click", () => this.store.rejectProposal(p.id));
      list.append(h("li", { class: "ws-proposal" }, [h("span", { text: label(type.label, this.lang) }), accept, edit, reject]));
    }
  }

  _renderAttributes() {
    const box = this.attrsEl;
    const f = this.store.get(this.selected);
    if (!f) {
      const other = String(this.selected || "").startsWith("other:")
        ? this.store.others.find((o) => `other:${o.id}` === this.selected)
        : null;
      box.textContent = "";
      if (other) this._renderOtherAttributes(box, other);
      else box.append(h("p", { class: "ws-hint", text: gettext("Select a finding to fill its attributes.") }));
      this.attrForm = null;
      return;
    }
    if (this.attrForm && this.attrForm.uid === f.uid && box.firstChild) {
      this.attrForm.form.setValues(f.attributes);
      return;
    }
    box.textContent = "";
    const type = this._typeOf(f.finding_type);
    const head = h("div", { class: "ws-attrs-head" }, [
      h("strong", { text: `#${this._number(f.uid)} ${label(type.label, this.lang)}` }),
    ]);
    if (this.writable && this.types.length > 1) {
      const select = h("select", { "aria-label": gettext("Finding type") });
      for (const t of this.types) {
        if (!t.geometry.includes(f.geometry.kind)) continue;
        select.append(h("option", { value: t.key, text: label(t.label, this.lang), selected: t.key === f.finding_type }));
      }
      select.addEventListener("change", () => {
        const keep = new Set((this._typeOf(select.value).attributes || []).map((a) => a.key));
        this.store.update(f.uid, (g) => {
          g.finding_type = select.value;
          g.attributes = Object.fromEntries(Object.entries(g.attributes).filter(([k]) => keep.has(k)));
          return g;
        });
        this.attrForm = null;
        this._renderAttributes();
      });
      head.append(select);
    }
    const formBox = h("div", { class: "ws-form" });
    box.append(head, formBox);
    const form = buildForm(formBox, type.attributes || [], f.attributes, {
      lang: this.lang,
      idPrefix: `f-${f.uid.slice(0, 8)}`,
      disabled: !this.writable,
      onChange: (values) => {
        this.store.update(f.uid, (g) => ({ ...g, attributes: values }), { why: "attributes", merge: `attrs-${f.uid}` });
        form.showErrors({});
      },
    });
    this.attrForm = { uid: f.uid, form };
  }

  _renderOtherAttributes(box, f) {
    const type = this._typeOf(f.finding_type);
    box.append(h("div", { class: "ws-attrs-head" }, [h("strong", { text: `${f.reader} · ${label(type.label, this.lang)}` })]));
    const dl = h("dl", { class: "ws-readonly-attrs" });
    for (const attr of type.attributes || []) {
      const v = f.attributes[attr.key];
      if (isEmpty(v)) continue;
      let text = String(v);
      if (attr.kind === "enum") {
        const values = Array.isArray(v) ? v : [v];
        text = values.map((x) => label((attr.options.find((o) => o.value === x) || {}).label, this.lang) || x).join(", ");
      } else if (attr.kind === "ordinal") {
        const l = label((attr.labels || {})[String(v)], this.lang);
        text = l ? `${v} · ${l}` : String(v);
      } else if (attr.kind === "boolean") text = v ? gettext("Yes") : gettext("No");
      else if (attr.unit) text = `${v} ${attr.unit}`;
      dl.append(h("dt", { text: label(attr.label, this.lang) }), h("dd", { text }));
    }
    box.append(dl);
  }

  // -- drawing -------------------------------------------------------------------

  pointerAt(p) {
    this.pointer = p;
    if (this.tool !== "select") return;
    const hit = this.hitFinding(p);
    this.canvas.classList.toggle("over-shape", Boolean(hit));
  }

  redraw() {
    if (this.needsPaint) return;
    this.needsPaint = true;
    requestAnimationFrame(() => this.paint());
  }

  paint() {
    this.needsPaint = false;
    const t0 = performance.now();
    const frame = this.frames[this.slice];
    let image = null;
    if (frame && frame.values && this.window) {
      const invert = this.headerInvert !== this.invert;
      image = this.renderer.render(frame, this.window.center, this.window.width, invert, this.slice, {
        step: this.previewStep(frame),
      });
      if (!this.firstImageAt) {
        this.firstImageAt = performance.now();
        performance.mark("ws:first-image");
        document.body.dataset.firstImage = "1";
      }
    } else if (!frame) {
      this._fetchSliceSoon();
    }
    const size = frame && frame.values ? [frame.header.columns, frame.header.rows] : null;
    this.viewport.draw(image, (ctx) => this._overlay(ctx, frame), size);
    this._overlayText(frame);
    this.paintTimes.push(performance.now() - t0);
    if (this.paintTimes.length > 2000) this.paintTimes.splice(0, 1000);
  }

  _fetchSliceSoon() {
    clearTimeout(this._sliceTimer);
    const index = this.slice;
    // The stream may be about to deliver it: ask for it alone only if it does not.
    this._sliceTimer = setTimeout(() => {
      if (!this.frames[index] && index === this.slice) this._fetchSlice(index);
    }, 150);
  }

  _overlay(ctx, frame) {
    const vp = this.viewport;
    if (!frame) {
      ctx.fillStyle = "#9aa6bb";
      ctx.font = "14px system-ui, sans-serif";
      ctx.textAlign = "center";
      ctx.fillText(gettext("Loading slice…"), vp.cssWidth / 2, vp.cssHeight / 2);
      ctx.textAlign = "start";
    } else if (frame.header.error) {
      ctx.fillStyle = "#ff8a80";
      ctx.font = "14px system-ui, sans-serif";
      ctx.fillText(frame.header.error.detail || "error", 20, vp.cssHeight / 2);
    }
    if (this.showOthers) {
      for (const f of this.store.others) {
        if (this.hiddenReaders.has(f.reader)) continue;
        const shape = this._shapeOn(f.geometry, this.slice);
        if (!shape) continue;
        const on = this.selected === `other:${f.id}`;
        vp.drawShape(ctx, f.geometry.kind, shape.points, {
          color: this._otherColour(f.reader),
          dash: [6, 4],
          width: on ? 2.5 : 1.5,
          label: f.reader,
        });
      }
    }
    for (const p of this.store.proposals) {
      const shape = this._shapeOn(p.geometry, this.slice);
      if (shape) vp.drawShape(ctx, p.geometry.kind, shape.points, { color: PROPOSAL_COLOUR, dash: [2, 3], label: gettext("AI") });
    }
    for (const f of this.store.list()) {
      const shape = this._shapeOn(f.geometry, this.slice);
      const on = f.uid === this.selected;
      if (!shape) continue;
      vp.drawShape(ctx, f.geometry.kind, shape.points, {
        color: this._colour(f.uid),
        width: on ? 2.5 : 1.5,
        fill: on,
        handles: on && this.writable,
        label: `#${this._number(f.uid)}`,
      });
      const axes = f.geometry.axes;
      if (axes && axes.slice_index === this.slice) {
        vp.drawMeasure(ctx, axes.long[0], axes.long[1], this._lengthText(axes.long[0], axes.long[1]), "#fff59d");
        if (axes.short) vp.drawMeasure(ctx, axes.short[0], axes.short[1], this._lengthText(axes.short[0], axes.short[1]), "#b2ff59");
      }
    }
    for (const m of this.measurements) {
      if (m.slice_index === this.slice) vp.drawMeasure(ctx, m.a, m.b, this._lengthText(m.a, m.b), "#80deea");
    }
    const draft = this.tools.draft;
    if (draft) {
      const colour = "#ffffff";
      if (draft.kind === "line" || draft.kind === "axes") {
        vp.drawMeasure(ctx, draft.points[0], draft.points[1], this._lengthText(draft.points[0], draft.points[1]), colour);
      } else {
        const kind = draft.kind === "freehand" ? "polyline" : draft.kind === "polygon" ? "polyline" : draft.kind;
        vp.drawShape(ctx, kind, draft.points, { color: colour, dash: [4, 3] });
      }
    }
    vp.drawScaleBar(ctx);
  }

  _overlayText(frame) {
    const slice = this.geometry.slices[this.slice];
    const header = frame ? frame.header : null;
    const along = slice && slice.along != null ? slice.along : header && header.position_along_normal;
    const lines = [
      interpolate(gettext("Slice %s / %s"), [this.slice + 1, this.count]),
      along != null ? interpolate(gettext("Position %s mm"), [Number(along).toFixed(1)]) : "",
      this.boot.series.slice_thickness_mm ? interpolate(gettext("Thickness %s mm"), [this.boot.series.slice_thickness_mm]) : "",
    ];
    this._setText("#ws-tl", lines.filter(Boolean).join("\n"));
    const w = this.window;
    const name = this.windowName && this.windowName !== "file" ? ` · ${presetLabel(this.windowName)}` : "";
    this._setText(
      "#ws-tr",
      [
        w && !this.rgb ? `W ${Math.round(w.width)}  L ${Math.round(w.center)}${name}${this.invert ? ` · ${gettext("inverted")}` : ""}` : "",
        `${gettext("Zoom")} ${Math.round(this.viewport.zoom * Math.min(this.viewport.sx, this.viewport.sy) * 100)}%`,
        header ? `${header.columns} × ${header.rows}${header.photometric ? ` · ${header.photometric}` : ""}` : "",
      ]
        .filter(Boolean)
        .join("\n"),
    );
    let value = "";
    if (this.pointer && frame && frame.values && !frame.header.rgb) {
      const [c, r] = this.viewport.toImage(this.pointer);
      const col = Math.floor(c);
      const row = Math.floor(r);
      if (col >= 0 && row >= 0 && col < header.columns && row < header.rows) {
        const v = frame.values[row * header.columns + col];
        value = `(${col}, ${row})  ${Number.isInteger(v) ? v : v.toFixed(1)}${this.boot.series.modality === "CT" ? " HU" : ""}`;
      }
    }
    this._setText("#ws-bl", value);
    this.canvas.dataset.slice = String(this.slice);
    if (this.window) {
      this.canvas.dataset.windowCenter = String(this.window.center);
      this.canvas.dataset.windowWidth = String(this.window.width);
    }
  }

  _setText(selector, text) {
    const node = $(selector);
    if (node.textContent !== text) node.textContent = text;
  }

  // -- time and submission ---------------------------------------------------------

  _startClock() {
    const clock = $("#ws-clock");
    setInterval(() => {
      if (!this.writable) return;
      if (document.visibilityState === "visible" && Date.now() - this.lastActivity < 60000) {
        this.pendingSeconds += 1;
      }
      clock.textContent = formatTime(this.activeSeconds + this.pendingSeconds);
      if (this.pendingSeconds >= 30) this._heartbeat(false);
    }, 1000);
    clock.textContent = formatTime(this.activeSeconds);
  }

  async _heartbeat(leaving) {
    const seconds = this.pendingSeconds;
    if (!seconds || !this.writable || this._beating) return;
    this._beating = true;
    try {
      const { data } = await api("POST", `${this.apiRoot}reading-tasks/${this.task.id}/heartbeat/`, { seconds }, { keepalive: leaving });
      this.pendingSeconds -= seconds;
      this.activeSeconds = data.active_seconds;
    } catch {
      /* kept: sent with the next report */
    } finally {
      this._beating = false;
    }
  }

  _clientErrors() {
    const problems = [];
    let firstBad = null;
    for (const f of this.store.list()) {
      const type = this._typeOf(f.finding_type);
      const errors = validate(type.attributes || [], f.attributes, { complete: true });
      const keys = Object.keys(errors);
      if (keys.length) {
        if (!firstBad) firstBad = { uid: f.uid, errors };
        const names = keys.map((k) => label((type.attributes.find((a) => a.key === k) || {}).label, this.lang) || k);
        problems.push(interpolate(gettext("Finding #%s: %s"), [this._number(f.uid), names.join(", ")]));
      }
    }
    const caseErrors = validate(this.schema.case_fields || [], this.queue.caseLabel.values, { complete: true });
    if (Object.keys(caseErrors).length) {
      const names = Object.keys(caseErrors).map((k) => label((this.schema.case_fields.find((a) => a.key === k) || {}).label, this.lang));
      problems.push(interpolate(gettext("Case: %s"), [names.join(", ")]));
    }
    this.caseForm.showErrors(caseErrors);
    return { problems, firstBad };
  }

  _showSubmitErrors(problems) {
    const box = $("#ws-submit-errors");
    box.textContent = "";
    box.hidden = !problems.length;
    if (!problems.length) return;
    box.append(h("strong", { text: gettext("Cannot submit yet. Required fields are missing:") }));
    const ul = h("ul");
    for (const p of problems) ul.append(h("li", { text: p }));
    box.append(ul);
  }

  askSubmit() {
    if (!this.writable) return;
    const { problems, firstBad } = this._clientErrors();
    this._showSubmitErrors(problems);
    if (problems.length) {
      if (firstBad) {
        this.selected = firstBad.uid;
        this._jumpTo(firstBad.uid);
        this.renderFindings();
        if (this.attrForm) this.attrForm.form.showErrors(firstBad.errors);
      }
      return;
    }
    $("#ws-confirm").hidden = false;
    $("#ws-confirm-yes").focus();
  }

  async submit() {
    $("#ws-confirm").hidden = true;
    const button = $("#ws-submit");
    button.disabled = true;
    try {
      await this.queue.flush();
      if (!this.queue.idle || this.queue.state === "conflict") {
        this.flash(gettext("Some changes are not saved yet; the read was not submitted."));
        return;
      }
      await this._heartbeat(false);
      const { data } = await api("POST", `${this.apiRoot}reading-tasks/${this.task.id}/submit/`, {
        version: this.queue.taskVersion,
        active_seconds: this.activeSeconds + this.pendingSeconds,
      });
      this.task = { ...this.task, ...data };
      this.pendingSeconds = 0;
      this.writable = false;
      this.queue.discardBuffer();
      this.queue._setState("locked", "");
      this._applyWritable();
      this.setTool("select");
      this.renderFindings();
      this._showSubmitErrors([]);
      $("#ws-state").textContent = gettext("submitted");
      $("#ws-state").className = "pill pill-submitted";
      this.flash(gettext("Submitted. This read is now read-only for this phase."));
      $("#ws-next").focus();
    } catch (error) {
      if (error instanceof HttpError && error.status === 409) {
        this._setSaveState(
          "conflict",
          gettext("This read was changed in another tab or window since you opened it. Reload to see the newest version, then submit."),
        );
      } else if (error instanceof HttpError && error.status === 400) {
        this._showSubmitErrors(error.body.errors || [error.message]);
      } else {
        this.flash(error.message);
      }
    } finally {
      button.disabled = false;
    }
  }
}

const boot = JSON.parse(document.getElementById("ws-bootstrap").textContent);
window.__ws = new Workstation(boot);
