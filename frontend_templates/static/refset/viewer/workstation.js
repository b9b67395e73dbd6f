// The reading workstation's page controller: wires the pixel stream, renderer,
// viewport, tools, findings store, save queue, schema forms and shortcuts to the
// page; loading, chrome, events, commands, slices and window. The rest of the
// Workstation lives in cohesive modules installed on its prototype:
//   editing.js     own findings on the image (select, draw, reshape, axes, rulers)
//   panel.js       the findings / other readers / proposals / attributes panel
//   painting.js    one paint per frame: slice, overlays, corner texts
//   submission.js  reading time, completeness check, submit and lock
//   sliceview.js   what the arbitration view shares: frames, progress, presets, paints

import "./i18n.js";
import { api, SaveQueue } from "./autosave.js";
import { editingMethods } from "./editing.js";
import { buildForm, label } from "./forms.js";
import { SeriesGeometry } from "./geometry.js";
import { SliceRenderer } from "./lut.js";
import { paintingMethods } from "./painting.js";
import { panelMethods } from "./panel.js";
import { buildHelp, comboOf, keymap } from "./shortcuts.js";
import { sliceViewMethods } from "./sliceview.js";
import { FindingStore } from "./store.js";
import { submissionMethods } from "./submission.js";
import { DRAW_TOOLS, ToolController } from "./tools.js";
import { $, h } from "./ui.js";
import { Viewport } from "./viewport.js";

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

  _initWindow(header) {
    this._adoptHeader(header);
    if (!this.window) {
      this.window = { ...this.defaultWindow };
      this.windowName = this.presets.length ? this.presets[0].name : "";
    }
    this._buildPresets(this.presets.some((p) => p.source === "file") ? gettext("File") : gettext("Auto"));
  }

  async _load() {
    const first = this.slice;
    // The slice the reader starts on comes alone first unless the stream starts there.
    if (first > 0) this._fetchSlice(first);
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
    this.sliderEl = $("#ws-slider");
    this.sliderEl.max = String(this.count - 1);
    this.sliderEl.value = String(this.slice);
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

  _applyWritable() {
    document.body.classList.toggle("ws-readonly", !this.writable);
    $("#ws-submit").hidden = !this.writable;
    $("#ws-locked").hidden = this.writable;
    this.store.readOnly = !this.writable;
    if (this.caseForm) this.caseForm.setDisabled(!this.writable);
    for (const b of document.querySelectorAll(".ws-tool[data-draw]")) b.disabled = !this.writable;
  }

  _setSaveState(state, message) {
    this._showSaveState(this.statusEl, $("#ws-conflict"), state, message, gettext("All changes saved"));
  }

  // -- events --------------------------------------------------------------------

  _bind() {
    this._bindView();
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
    this._useTool(tool);
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

Object.assign(Workstation.prototype, sliceViewMethods, editingMethods, panelMethods, paintingMethods, submissionMethods);

const boot = JSON.parse(document.getElementById("ws-bootstrap").textContent);
window.__ws = new Workstation(boot);
