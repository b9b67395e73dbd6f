// The reading workstation's page controller: wires the pixel stream, renderer,
// viewport, tools, findings store, save queue, schema forms and shortcuts to the
// page; its own loading, chrome, events and commands. The rest of the
// Workstation lives in cohesive modules installed on its prototype:
//   editing.js     own findings on the image (select, draw, reshape, axes, rulers)
//   panel.js       the findings / other readers / attributes panel
//   proposals.js   model proposals: list, confidence filter, accept / edit / reject
//   painting.js    one paint per frame: slice, overlays, corner texts
//   submission.js  reading time, completeness check, submit and lock
//   sliceview.js   what the arbitration view shares: view state, frames, slices,
//                  window and presets, view commands, progress, paints

import "./i18n.js";
import { api } from "../common/http.js";
import { SaveQueue } from "./autosave.js";
import { editingMethods } from "./editing.js";
import { buildForm, label } from "./forms.js";
import { measureMethods } from "./measures.js";
import { MprController, mprMethods } from "./mpr.js";
import { paintingMethods } from "./painting.js";
import { panelMethods } from "./panel.js";
import { photoMethods } from "./photo.js";
import { proposalMethods } from "./proposals.js";
import { bindKeys, keymap } from "./shortcuts.js";
import { sliceViewMethods } from "./sliceview.js";
import { FindingStore } from "./store.js";
import { submissionMethods } from "./submission.js";
import { DRAW_TOOLS, ToolController } from "./tools.js";
import { $, h, loadJSON, saveJSON } from "./ui.js";

export class Workstation {
  constructor(boot) {
    this._initSliceView(boot, {
      viewKey: `refset.view.${boot.task.id}`,
      previewWhileDragging: true,
      resetPreset: "file",
    });
    this.selected = null;
    this.types = this.schema.finding_types || [];
    this.typeKey = this.types.length ? this.types[0].key : null;
    this.measureKey = `refset.measure.${this.task.id}`;
    this.measurements = loadJSON(this.measureKey) || [];
    this.showOthers = true;
    this.paintTimes = [];
    this.lastActivity = Date.now();
    this.pendingSeconds = 0;
    this.activeSeconds = this.task.active_seconds || 0;

    this.store = new FindingStore(boot.findings);
    this.store.readOnly = !this.writable;
    const server = {};
    for (const f of boot.findings) server[f.uid] = { id: f.id, version: f.version, measurements: f.measurements };
    this.queue = new SaveQueue({
      apiRoot: this.apiRoot,
      taskId: this.task.id,
      store: this.store,
      server,
      caseLabel: boot.case_label,
      taskVersion: this.task.version,
    });
    this.tools = new ToolController(this);
    this.mpr = MprController.attach(this); // multiplanar views of a CT volume (null otherwise)
    this._buildChrome();
    this._bind();
    this._initProposals();
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
      this.windowName = this._defaultWindowName();
    }
    this._buildPresets(this._defaultWindowText());
    this._initPhoto(header); // a photograph: its adjustments instead of the presets
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
    $("#ws-clear-rulers").addEventListener("click", () => {
      this.measurements = [];
      saveJSON(this.measureKey, this.measurements);
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
    this.queue.addEventListener("measured", (e) => this._measured(e.detail.uid));
    this.queue.addEventListener("state", (e) => {
      this._setSaveState(e.detail.state, e.detail.message);
      if (e.detail.state === "locked") {
        this.writable = false;
        this._applyWritable();
      }
    });
    this.pageKeys = keymap(); // every key of the table (the `?` overlay lists them)
    bindKeys(this, this.pageKeys, { whileTyping: ["escape", "ctrl+s", "ctrl+enter"] });
    for (const type of ["keydown", "pointerdown", "wheel", "pointermove"]) {
      document.addEventListener(type, () => (this.lastActivity = Date.now()), { passive: true });
    }
    window.addEventListener("pagehide", () => this._heartbeat(true));
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "hidden") this._heartbeat(true);
    });
  }

  command(action) {
    if (this.mpr && this.mpr.command(action)) return;
    if (action === "reset" && this.rgb) {
      this.renderer.photo = { gamma: 1, redFree: false }; // and the view's reset below
      this._showPhoto();
    }
    if (this.viewCommand(action)) return;
    const [verb, arg] = action.split(":");
    if (verb === "type") this.cycleType();
    else if (verb === "finding") this.stepFinding(arg === "next" ? 1 : -1);
    else if (verb === "copy") this.copyOutline(arg === "next" ? 1 : -1);
    else if (verb === "delete") this.deleteSelected(arg === "finding");
    else if (verb === "escape") {
      if (!this.tools.cancel()) {
        if (!$("#ws-confirm").hidden) $("#ws-confirm").hidden = true;
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
    }
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
}

Object.assign(
  Workstation.prototype,
  sliceViewMethods,
  editingMethods,
  panelMethods,
  proposalMethods,
  paintingMethods,
  submissionMethods,
  mprMethods,
  measureMethods,
  photoMethods,
);

// Start-up marks (bench/viewer_browser.py reads them): every module evaluated, then
// the workstation built.
performance.mark("ws:modules");
const boot = JSON.parse(document.getElementById("ws-bootstrap").textContent);
window.__ws = new Workstation(boot);
performance.mark("ws:constructed");
