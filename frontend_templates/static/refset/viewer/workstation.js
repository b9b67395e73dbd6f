// The reading workstation's page controller: wires the pixel stream, renderer,
// viewport, tools, findings store, save queue, schema forms and shortcuts to the
// page; loading, chrome, events, commands, slices and window. The rest of the
// Workstation lives in cohesive modules installed on its prototype:
//   editing.js     own findings on the image (select, draw, reshape, axes, rulers)
//   panel.js       the findings / other readers / proposals / attributes panel
//   painting.js    one paint per frame: slice, overlays, corner texts
//   submission.js  reading time, completeness check, submit and lock

import "./i18n.js";
import { api, SaveQueue } from "./autosave.js";
import { editingMethods } from "./editing.js";
import { buildForm, label } from "./forms.js";
import { SeriesGeometry } from "./geometry.js";
import { SliceRenderer } from "./lut.js";
import { paintingMethods } from "./painting.js";
import { panelMethods } from "./panel.js";
import { fetchInstance, streamSeries } from "./pixels.js";
import { buildHelp, comboOf, keymap } from "./shortcuts.js";
import { FindingStore } from "./store.js";
import { submissionMethods } from "./submission.js";
import { DRAW_TOOLS, ToolController } from "./tools.js";
import { $, h, presetLabel } from "./ui.js";
import { Viewport } from "./viewport.js";

const PRESET_KEYS = { lung: "1", mediastinum: "2", bone: "3", brain: "4" };
// A window drag on an image this large and minified paints a reduced preview per
// frame (lut.js), and the full-resolution image once the drag rests this long.
const PREVIEW_MIN_PIXELS = 2_000_000;
const SHARP_AFTER_MS = 160;

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
}

Object.assign(Workstation.prototype, editingMethods, panelMethods, paintingMethods, submissionMethods);

const boot = JSON.parse(document.getElementById("ws-bootstrap").textContent);
window.__ws = new Workstation(boot);
