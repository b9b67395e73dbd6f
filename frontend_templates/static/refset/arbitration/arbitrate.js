// The arbitration view: all reads of a case overlaid (R1..RN, one colour each),
// the disputed clusters with their reasons, a decision per cluster and per
// disputed case-level field, drafts saved with optimistic locking, and the
// signature with the password re-entered. Pixels, rendering, the viewport, shape
// math, schema forms, the pointer tools and the slice view (sliceview.js: frames,
// progress, presets, save indicator) are the reading workstation's modules.

import "../viewer/i18n.js";
import { api, HttpError } from "../viewer/autosave.js";
import { buildForm, label } from "../viewer/forms.js";
import { findingCentreMm, hitShape, round2, SeriesGeometry, shapeCentre } from "../viewer/geometry.js";
import { SliceRenderer } from "../viewer/lut.js";
import { comboOf } from "../viewer/shortcuts.js";
import { sliceViewMethods } from "../viewer/sliceview.js";
import { DRAW_TOOLS, ToolController } from "../viewer/tools.js";
import { $, h, readerNumber } from "../viewer/ui.js";
import { Viewport } from "../viewer/viewport.js";
import { ACTION_NAMES, describe, fieldText, methodName, problems, resultingAttributes, typeOf } from "./decisions.js";
import { DraftSaver } from "./draft.js";

const READER_COLOURS = ["#ff5252", "#40c4ff", "#69f0ae", "#ffab40", "#e040fb", "#eeff41", "#f48fb1", "#80cbc4"];
const DECISION_COLOUR = "#ffd54a";
const KEYS = {
  "]": "cluster:1",
  "[": "cluster:-1",
  arrowup: "slice:-1",
  arrowdown: "slice:1",
  pageup: "slice:-10",
  pagedown: "slice:10",
  home: "slice:first",
  end: "slice:last",
  1: "preset:lung",
  2: "preset:mediastinum",
  3: "preset:bone",
  4: "preset:brain",
  0: "preset:file",
  i: "invert",
  r: "reset",
  v: "tool:select",
  w: "tool:wl",
  h: "tool:pan",
  z: "tool:zoom",
  p: "tool:point",
  e: "tool:ellipse",
  f: "tool:freehand",
  escape: "escape",
  "ctrl+s": "save",
};

export class Arbitration {
  constructor(boot) {
    this.boot = boot;
    this.lang = boot.lang;
    this.schema = boot.schema;
    this.task = boot.task;
    this.apiRoot = boot.urls.api;
    this.writable = boot.writable;
    this.geometry = new SeriesGeometry(boot.series);
    this.count = Math.max(this.geometry.slices.length, 1);
    this.frames = new Array(this.count).fill(null);
    this.requested = new Set();
    this.loadedCount = 0;
    this.slice = 0;
    this.window = null;
    this.windowName = "";
    this.invert = false;
    this.presets = [];
    this.defaultWindow = null;
    this.tool = "select";
    this.needsPaint = false;
    this.pointer = null;
    this.hiddenReaders = new Set();
    this.showSettled = true;
    this.clusters = this.task.clusters;
    this.settled = boot.settled_clusters || [];
    this.selectedId = null;
    this.reasonCodes = this.task.reason_codes;

    this.canvas = $("#ws-canvas");
    this.viewport = new Viewport(this.canvas, this.geometry);
    this.renderer = new SliceRenderer();
    this.saver = new DraftSaver({
      apiRoot: this.apiRoot,
      taskId: this.task.id,
      version: this.task.version,
      decisions: this.task.decisions,
    });
    this.tools = new ToolController(this);
    this._bind();
    if (this.writable) {
      if (this.saver.restore() && this.saver.state !== "conflict") {
        this.flash(gettext("Unsaved decisions from your last visit were restored and are being saved."));
      }
    } else {
      this.saver.discardBuffer();
      this.saver._setState("locked");
    }
    this._setSaveState(this.saver.state, this.saver.message);
    this._applyWritable();
    this.renderReaders();
    this.renderClusters();
    this.renderLabels();
    this.renderResult();
    this.setTool("select");
    if (this.clusters.length) this.selectCluster(this.clusters[0].id);
    else this.renderDecision();
    this._load();
  }

  // -- pixels ------------------------------------------------------------------------

  _initWindow(header) {
    this._adoptHeader(header);
    const centre = this._clusterCentre(this.selected());
    if (centre) this.viewport.centreOn(centre);
    const lung = this.presets.find((p) => p.name === "lung");
    if (lung) this.setWindow(lung.center, lung.width, { name: "lung" });
    else this.setWindow(this.defaultWindow.center, this.defaultWindow.width, { name: "file" });
    this._buildPresets(gettext("File"));
  }

  async _load() {
    if (this.slice > 0) this._fetchSlice(this.slice);
    try {
      await this._streamFrames();
      this._progress(100, this.loadedCount, this.count, true);
    } catch (error) {
      this._progress(null, this.loadedCount, this.count, false, error.message);
    }
  }

  // -- chrome and events ---------------------------------------------------------------

  _bind() {
    this.sliderEl = $("#ws-slider");
    this.sliderEl.max = String(this.count - 1);
    this._bindView();
    $("#arb-invert").addEventListener("click", () => this.command("invert"));
    $("#arb-reset").addEventListener("click", () => this.command("reset"));
    $("#arb-sign-open").addEventListener("click", () => this.openSign());
    $("#arb-sign-cancel").addEventListener("click", () => ($("#arb-sign").hidden = true));
    $("#arb-sign-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this.sign();
    });
    $("#arb-merge").addEventListener("click", () => this.mergeConflict());
    $("#arb-discard").addEventListener("click", () => {
      this.saver.discardBuffer();
      window.location.reload();
    });
    this.saver.addEventListener("state", (e) => this._setSaveState(e.detail.state, e.detail.message));
    this.saver.addEventListener("saved", (e) => {
      const state = e.detail.state;
      if (state && $("#arb-state").dataset.state !== state) {
        $("#arb-state").dataset.state = state;
        $("#arb-state").className = `pill pill-${state}`;
        $("#arb-state").textContent = state === "in_progress" ? gettext("in progress") : state;
      }
    });
    document.addEventListener("keydown", (e) => {
      const combo = comboOf(e);
      const target = e.target;
      const typing = target && ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName) && target.type !== "range";
      if (!$("#arb-sign").hidden) {
        if (combo === "escape") $("#arb-sign").hidden = true;
        return;
      }
      if (typing && !["escape", "ctrl+s"].includes(combo)) return;
      if (this.tools.key(combo)) {
        e.preventDefault();
        return;
      }
      const action = KEYS[combo];
      if (!action) return;
      e.preventDefault();
      if (typing) target.blur();
      this.command(action);
    });
    window.addEventListener("beforeunload", (e) => {
      if (this.writable && !this.saver.idle) {
        this.saver.flush();
        e.preventDefault();
      }
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
    else if (verb === "cluster") this.stepCluster(Number(arg));
    else if (verb === "invert") {
      this.invert = !this.invert;
      this.redraw();
    } else if (verb === "reset") {
      this.viewport.fit();
      this.invert = false;
      this.redraw();
    } else if (verb === "escape") this.tools.cancel();
    else if (verb === "save") this.saver.flush();
  }

  _applyWritable() {
    document.body.classList.toggle("ws-readonly", !this.writable);
    $("#arb-sign-open").hidden = !this.writable;
  }

  _setSaveState(state, message) {
    this._showSaveState($("#arb-save"), $("#arb-conflict"), state, message, gettext("All decisions saved"));
    if (state === "conflict" || state === "error") $("#arb-merge").hidden = state !== "conflict";
  }

  async mergeConflict() {
    try {
      const data = await this.saver.merge();
      this.task = { ...this.task, version: data.version };
      this.renderClusters();
      this.renderDecision();
      this.renderLabels();
      this.flash(gettext("Merged: the newer version with your changes on top."));
    } catch (error) {
      this.flash(error.message);
    }
  }

  // -- tools (the workstation's ToolController drives these) ------------------------------

  setTool(tool) {
    if (DRAW_TOOLS.has(tool) && !this.canDraw(tool)) {
      this.flash(this.whyCannotDraw(tool));
      return;
    }
    this._useTool(tool);
  }

  _editing() {
    const cluster = this.selected();
    const d = cluster && this.saver.get("clusters", cluster.id);
    return this.writable && d && d.action === "edit" ? { cluster, d } : null;
  }

  kindFor(tool) {
    const edit = this._editing();
    if (!edit) return null;
    const allowed = typeOf(this.schema, edit.d.finding_type || edit.cluster.finding_type).geometry || [];
    const wants = { point: ["point"], ellipse: ["ellipse"], freehand: ["contour", "polygon"] }[tool] || [];
    return wants.find((k) => allowed.includes(k)) || null;
  }

  canDraw(tool) {
    return Boolean(this.kindFor(tool));
  }

  whyCannotDraw(tool) {
    if (!this.writable) return gettext("This arbitration is signed and read-only.");
    if (!this._editing()) return gettext("Choose “Edit” for the selected cluster to draw its finding.");
    return interpolate(gettext("This finding type cannot be drawn with the %s tool."), [tool]);
  }

  _shapeOn(geometry, index) {
    return ((geometry && geometry.shapes) || []).find((s) => s.slice_index === index) || null;
  }

  selectedShape() {
    const edit = this._editing();
    const shape = edit && this._shapeOn(edit.d.geometry, this.slice);
    return shape ? { uid: "edit", kind: edit.d.geometry.kind, points: shape.points } : null;
  }

  isOwn(uid) {
    return uid === "edit";
  }

  _saveEdit(mutate) {
    const edit = this._editing();
    if (!edit) return;
    const d = JSON.parse(JSON.stringify(edit.d));
    mutate(d);
    if (d.geometry) d.geometry.centre_mm = findingCentreMm(d.geometry, this.geometry);
    this.saver.set("clusters", edit.cluster.id, d);
    this.renderClusters();
    this.redraw();
  }

  commitShape(tool, points) {
    const drawn = this._drawnShape(tool, points);
    if (!drawn) return;
    const { kind, shape } = drawn;
    this._saveEdit((d) => {
      if (!d.geometry || d.geometry.kind !== kind) d.geometry = { kind, shapes: [] };
      d.geometry.shapes = d.geometry.shapes.filter((s) => s.slice_index !== this.slice);
      d.geometry.shapes.push(shape);
      d.geometry.shapes.sort((a, b) => a.slice_index - b.slice_index);
    });
    this.renderDecision();
  }

  updateShape(uid, points) {
    if (uid !== "edit") return;
    this._saveEdit((d) => {
      const shape = this._shapeOn(d.geometry, this.slice);
      if (shape) shape.points = round2(points);
    });
  }

  hitFinding(p) {
    const toScreen = this.viewport.toScreen;
    const edit = this._editing();
    const editShape = edit && this._shapeOn(edit.d.geometry, this.slice);
    if (editShape && hitShape(edit.d.geometry.kind, editShape.points, p, toScreen)) return "edit";
    const groups = this.showSettled ? [this.clusters, this.settled] : [this.clusters];
    for (const list of groups) {
      for (const cluster of list) {
        for (const m of cluster.members) {
          if (this.hiddenReaders.has(m.reader)) continue;
          const shape = this._shapeOn(m.geometry, this.slice);
          if (shape && hitShape(m.geometry.kind, shape.points, p, toScreen)) return `cluster:${cluster.id}`;
        }
      }
    }
    return null;
  }

  select(uid) {
    if (!uid || uid === "edit") return;
    const id = Number(String(uid).split(":")[1]);
    if (this.clusters.some((c) => c.id === id)) this.selectCluster(id, { jump: false });
  }

  // -- slices and window -------------------------------------------------------------------

  goToSlice(index) {
    const next = Math.min(Math.max(Math.round(index), 0), this.count - 1);
    if (next === this.slice) return;
    this.slice = next;
    this.sliderEl.value = String(next);
    this.redraw();
  }

  setWindow(center, width, { custom = false, name = "" } = {}) {
    this.window = { center: Math.round(center * 10) / 10, width: Math.max(1, Math.round(width * 10) / 10) };
    this.windowName = custom ? "" : name;
    this._markPreset();
    this.redraw();
  }

  applyPreset(name) {
    if (!this.defaultWindow) return;
    if (name === "file") {
      this.setWindow(this.defaultWindow.center, this.defaultWindow.width, { name: "file" });
      return;
    }
    const preset = this.presets.find((p) => p.name === name);
    if (preset) this.setWindow(preset.center, preset.width, { name });
  }

  // -- clusters ------------------------------------------------------------------------------

  selected() {
    return this.clusters.find((c) => c.id === this.selectedId) || null;
  }

  _clusterSlices(cluster) {
    const slices = new Set();
    for (const m of cluster.members) for (const s of (m.geometry && m.geometry.shapes) || []) slices.add(s.slice_index);
    return [...slices].sort((a, b) => a - b);
  }

  _clusterCentre(cluster) {
    if (!cluster) return null;
    const slices = this._clusterSlices(cluster);
    if (!slices.length) return null;
    const mid = slices[Math.floor(slices.length / 2)];
    const pts = [];
    for (const m of cluster.members) {
      const shape = this._shapeOn(m.geometry, mid);
      if (shape) pts.push(shapeCentre(m.geometry.kind, shape.points));
    }
    if (!pts.length) return null;
    return [pts.reduce((s, p) => s + p[0], 0) / pts.length, pts.reduce((s, p) => s + p[1], 0) / pts.length];
  }

  /** Select a cluster: jump to its middle slice, centre it, highlight its members. */
  selectCluster(id, { jump = true } = {}) {
    this.selectedId = id;
    const cluster = this.selected();
    if (cluster && jump) {
      const slices = this._clusterSlices(cluster);
      if (slices.length && !slices.includes(this.slice)) this.goToSlice(slices[Math.floor(slices.length / 2)]);
      const centre = this._clusterCentre(cluster);
      if (centre && this.defaultWindow) this.viewport.centreOn(centre);
    }
    if (DRAW_TOOLS.has(this.tool) && !this.canDraw(this.tool)) this.setTool("select");
    this.renderClusters();
    this.renderDecision();
    this.redraw();
  }

  stepCluster(step) {
    if (!this.clusters.length) return;
    const i = this.clusters.findIndex((c) => c.id === this.selectedId);
    const next = this.clusters[(i + step + this.clusters.length) % this.clusters.length];
    this.selectCluster(next.id);
  }

  reasonText(reason, cluster) {
    if (reason.code === "existence") return interpolate(gettext("existence: %(n)s of %(of)s readers"), { n: reason.readers, of: reason.of }, true);
    if (reason.code === "type") return interpolate(gettext("type: also marked as %s"), [reason.other_types.map((t) => label(typeOf(this.schema, t).label, this.lang)).join(", ")]);
    if (reason.code === "attribute") {
      const attr = (typeOf(this.schema, cluster.finding_type).attributes || []).find((a) => a.key === reason.key);
      return interpolate(gettext("attribute: %s"), [attr ? label(attr.label, this.lang) : reason.key]);
    }
    if (reason.code === "size") return interpolate(gettext("size differs by %(spread)s mm (over %(tol)s mm)"), { spread: reason.spread_mm, tol: reason.tolerance_mm }, true);
    if (reason.code === "too_few_readers") return gettext("too few readers");
    return reason.code;
  }

  _clusterItem(cluster, { settled = false } = {}) {
    const type = typeOf(this.schema, cluster.finding_type);
    const d = settled ? null : this.saver.get("clusters", cluster.id);
    const slices = this._clusterSlices(cluster).map((s) => s + 1);
    const where = slices.length ? (slices.length > 1 ? interpolate(gettext("slices %s–%s"), [slices[0], slices[slices.length - 1]]) : interpolate(gettext("slice %s"), [slices[0]])) : "";
    const readers = cluster.members.map((m) => m.reader);
    const item = h(
      "li",
      {
        class: `arb-cluster${cluster.id === this.selectedId ? " on" : ""}${settled ? " settled" : ""}`,
        "data-testid": settled ? "settled-cluster" : "cluster",
        "data-cluster": String(cluster.id),
        "data-number": String(cluster.number),
        tabIndex: 0,
      },
      [
        h("div", { class: "arb-cluster-head" }, [
          h("strong", { text: `C${cluster.number} ${label(type.label, this.lang)}` }),
          h("span", { class: "arb-cluster-readers" }, readers.map((r) => h("span", { class: "arb-chip-reader", text: r, style: `border-color:${this.readerColour(r)};color:${this.readerColour(r)}` }))),
          h("span", { class: "arb-where", text: where }),
        ]),
        h(
          "div",
          { class: "arb-reasons" },
          settled
            ? [h("span", { class: `arb-verdict arb-verdict-${cluster.verdict}`, text: cluster.verdict === "accept" ? gettext("auto-accepted") : gettext("dropped") })]
            : cluster.reasons.map((r) => h("span", { class: `arb-reason arb-reason-${r.code}`, "data-reason": r.code, text: this.reasonText(r, cluster) })),
        ),
        settled ? null : h("div", { class: `arb-decided ${d ? "ok" : "todo"}`, "data-testid": "cluster-decision", text: d ? `✓ ${describe(cluster, d, this.schema, this.lang)}` : gettext("to decide") }),
      ],
    );
    if (!settled) item.addEventListener("click", () => this.selectCluster(cluster.id));
    else
      item.addEventListener("click", () => {
        const s = this._clusterSlices(cluster);
        if (s.length) this.goToSlice(s[Math.floor(s.length / 2)]);
      });
    return item;
  }

  renderClusters() {
    const box = $("#arb-clusters");
    box.textContent = "";
    if (!this.clusters.length) box.append(h("li", { class: "ws-empty", text: gettext("No disputed clusters in this task.") }));
    for (const c of this.clusters) box.append(this._clusterItem(c));
    const settledBox = $("#arb-settled");
    settledBox.textContent = "";
    for (const c of this.settled) settledBox.append(this._clusterItem(c, { settled: true }));
    $("#arb-settled-count").textContent = `(${this.settled.length})`;
    $("#arb-settled-box").hidden = !this.settled.length;
  }

  // -- readers -------------------------------------------------------------------------------

  readerColour(reader) {
    return READER_COLOURS[(readerNumber(reader) - 1) % READER_COLOURS.length];
  }

  renderReaders() {
    const box = $("#arb-readers");
    box.textContent = "";
    const all = [...this.clusters, ...this.settled];
    for (const { label: reader } of this.boot.readers) {
      const marks = all.filter((c) => c.members.some((m) => m.reader === reader)).length;
      const row = h("label", { class: "ws-reader arb-reader", "data-reader": reader }, [
        h("input", { type: "checkbox", checked: !this.hiddenReaders.has(reader), "data-testid": `toggle-${reader}` }),
        h("span", { class: "ws-swatch", style: `background:${this.readerColour(reader)}` }),
        document.createTextNode(`${reader} · ${interpolate(gettext("%s marks"), [marks])}`),
      ]);
      row.querySelector("input").addEventListener("change", (e) => this._toggleReader(reader, e.target.checked));
      box.append(row);
    }
    const settled = h("label", { class: "ws-reader" }, [
      h("input", { type: "checkbox", checked: this.showSettled, "data-testid": "toggle-settled" }),
      document.createTextNode(gettext("Show the automatically settled marks")),
    ]);
    settled.querySelector("input").addEventListener("change", (e) => {
      this.showSettled = e.target.checked;
      this.redraw();
    });
    box.append(settled);
  }

  // -- the decision on the selected cluster ----------------------------------------------------

  _reasonControls(current, onChange, idPrefix) {
    const select = h("select", { id: `${idPrefix}-reason`, "data-testid": "reason-code" });
    select.append(h("option", { value: "", text: gettext("— reason —") }));
    for (const r of this.reasonCodes) select.append(h("option", { value: r.code, text: r.label, selected: r.code === current.reason_code }));
    const text = h("textarea", { id: `${idPrefix}-text`, rows: 2, placeholder: gettext("Free text (optional; needed for “other”)"), "data-testid": "reason-text", value: current.reason_text || "" });
    select.disabled = text.disabled = !this.writable;
    select.addEventListener("change", () => onChange({ reason_code: select.value || undefined }));
    text.addEventListener("input", () => onChange({ reason_text: text.value || undefined }));
    return h("div", { class: "arb-reason-box" }, [h("label", { for: select.id, class: "sf-label", text: gettext("Reason") }), select, text]);
  }

  _setDecision(cluster, patch, { replace = false } = {}) {
    const before = this.saver.get("clusters", cluster.id) || {};
    const next = replace ? { ...patch } : { ...before, ...patch };
    for (const [k, v] of Object.entries(next)) if (v === undefined) delete next[k];
    if (replace) {
      if (before.reason_code && next.reason_code === undefined) next.reason_code = before.reason_code;
      if (before.reason_text && next.reason_text === undefined) next.reason_text = before.reason_text;
    }
    this.saver.set("clusters", cluster.id, next);
    this.renderClusters();
  }

  _chooseAction(cluster, action, extra = {}) {
    const d = { action, ...extra };
    if (action === "edit") {
      // Start from what is on screen: the chosen reader's shape or the merged one.
      const before = this.saver.get("clusters", cluster.id) || {};
      const member = cluster.members.find((m) => m.uid === before.finding) || cluster.members[0];
      const source = before.action === "accept_merged" && cluster.consensus_geometry && cluster.consensus_geometry.shapes.length ? cluster.consensus_geometry : member && member.geometry;
      const allowed = typeOf(this.schema, cluster.finding_type).geometry || [];
      if (source && allowed.includes(source.kind)) {
        d.geometry = { kind: source.kind, shapes: source.shapes.map((s) => ({ slice_index: s.slice_index, points: s.points.map((p) => [...p]) })) };
        d.geometry.centre_mm = findingCentreMm(d.geometry, this.geometry);
      }
      d.attributes = resultingAttributes(cluster, before.action ? before : { action: "accept_merged" });
    }
    this._setDecision(cluster, d, { replace: true });
    this.renderDecision();
    this.redraw();
  }

  _memberSummary(member) {
    const type = typeOf(this.schema, member.finding_type);
    const parts = [];
    for (const attr of type.attributes || []) {
      const v = member.attributes[attr.key];
      if (v === undefined || v === null || !attr.required) continue;
      parts.push(fieldText(attr, v, this.lang) + (attr.unit ? ` ${attr.unit}` : ""));
    }
    return parts.join(" · ");
  }

  renderDecision() {
    const box = $("#arb-decision");
    box.textContent = "";
    const cluster = this.selected();
    if (!cluster) {
      box.append(h("p", { class: "ws-hint", text: gettext("Select a cluster to decide it.") }));
      return;
    }
    const type = typeOf(this.schema, cluster.finding_type);
    const d = this.saver.get("clusters", cluster.id) || {};
    box.append(h("h2", { text: interpolate(gettext("Decide C%s · %s"), [cluster.number, label(type.label, this.lang)]) }));
    const blind = this.task.blind_decisions;
    if (blind) {
      const lines = ["A", "B"].map((who) => {
        const bd = blind[who].clusters[String(cluster.id)];
        return h("li", { text: `${interpolate(gettext("Blind arbitrator %s"), [who])}: ${describe(cluster, bd, this.schema, this.lang)}` });
      });
      box.append(h("ul", { class: "arb-blind-list", "data-testid": "blind-decisions" }, lines));
    }
    const members = h("ul", { class: "arb-members" });
    for (const m of cluster.members) {
      const chosen = d.action === "accept_reader" && d.finding === m.uid;
      const button = h("button", {
        type: "button",
        class: `arb-action${chosen ? " on" : ""}`,
        text: interpolate(gettext("Accept %s"), [m.reader]),
        "data-testid": `accept-${m.reader}`,
        disabled: !this.writable,
      });
      button.addEventListener("click", () => this._chooseAction(cluster, "accept_reader", { finding: m.uid }));
      members.append(
        h("li", { class: `arb-member${chosen ? " on" : ""}`, "data-reader": m.reader }, [
          h("span", { class: "ws-swatch", style: `background:${this.readerColour(m.reader)}` }),
          h("strong", { text: m.reader }),
          h("span", { class: "arb-member-attrs", text: this._memberSummary(m) }),
          button,
        ]),
      );
    }
    box.append(members);
    const actions = h("div", { class: "arb-actions" });
    const addAction = (action, text, extra = {}, on = d.action === action) => {
      const b = h("button", { type: "button", class: `arb-action${on ? " on" : ""}`, text, "data-testid": `action-${action}${extra.method ? `-${extra.method}` : ""}`, disabled: !this.writable });
      b.addEventListener("click", () => this._chooseAction(cluster, action, extra));
      actions.append(b);
    };
    if (cluster.members.length > 1 && (type.geometry || []).includes("contour")) {
      addAction("accept_merged", interpolate(gettext("Merged: %s"), [methodName("majority")]), { method: "majority" }, d.action === "accept_merged" && (d.method || "majority") === "majority");
      addAction("accept_merged", interpolate(gettext("Merged: %s"), [methodName("staple")]), { method: "staple" }, d.action === "accept_merged" && d.method === "staple");
    } else if (cluster.members.length > 1) {
      addAction("accept_merged", ACTION_NAMES.accept_merged(), { method: "majority" });
    }
    addAction("edit", ACTION_NAMES.edit());
    addAction("reject", ACTION_NAMES.reject());
    addAction("exclude", ACTION_NAMES.exclude());
    box.append(actions);
    if (d.action === "accept_merged") {
      box.append(h("p", { class: "ws-hint", text: d.method === "staple" ? gettext("The STAPLE contour is computed from the readers' contours when you sign; the gold outline shows the majority-vote preview.") : gettext("The gold outline is the majority-vote contour of the readers' marks.") }));
    }
    if (d.action === "edit") {
      box.append(h("p", { class: "ws-hint", "data-testid": "edit-hint", text: gettext("Reshape the gold outline with Select (drag its handles), or draw it anew with the contour, ellipse or point tool on each slice.") }));
    }
    if (["accept_reader", "accept_merged", "edit"].includes(d.action)) {
      const base = d.action === "edit" ? {} : resultingAttributes(cluster, { ...d, attributes: {} });
      const values = d.action === "edit" ? d.attributes || {} : { ...base, ...(d.attributes || {}) };
      const formBox = h("div", { class: "ws-form arb-attrs", "data-testid": "decision-attributes" });
      box.append(h("h3", { class: "arb-sub", text: gettext("Attributes of the reference finding") }), formBox);
      buildForm(formBox, type.attributes || [], values, {
        lang: this.lang,
        idPrefix: `c${cluster.id}`,
        disabled: !this.writable,
        onChange: (next) => {
          let attributes = next;
          if (d.action !== "edit") {
            attributes = {};
            for (const [k, v] of Object.entries(next)) if (JSON.stringify(v) !== JSON.stringify(base[k])) attributes[k] = v;
          }
          this._setDecision(cluster, { attributes: Object.keys(attributes).length || d.action === "edit" ? attributes : undefined });
        },
      });
    }
    if (d.action) {
      box.append(
        this._reasonControls(d, (patch) => this._setDecision(cluster, patch), `c${cluster.id}`),
      );
    }
  }

  // -- case-level labels ---------------------------------------------------------------------

  renderLabels() {
    const fields = this.task.label_fields || [];
    $("#arb-labels-panel").hidden = !fields.length;
    const box = $("#arb-labels");
    box.textContent = "";
    for (const field of fields) {
      const dispute = (this.task.label_disputes || []).find((x) => x.key === field.key) || { values: {} };
      const d = this.saver.get("labels", field.key) || {};
      const row = h("div", { class: "arb-label", "data-testid": "label-item", "data-key": field.key });
      row.append(h("strong", { text: label(field.label, this.lang) }));
      const values = Object.entries(dispute.values).map(([reader, v]) => h("span", { class: "arb-chip-reader", style: `border-color:${this.readerColour(reader)}`, text: `${reader}: ${fieldText(field, v, this.lang)}` }));
      row.append(h("div", { class: "arb-label-values" }, values));
      const formBox = h("div", { class: "ws-form" });
      row.append(formBox);
      buildForm(formBox, [{ ...field, required: true }], d.value === undefined ? {} : { [field.key]: d.value }, {
        lang: this.lang,
        idPrefix: `label-${field.key}`,
        disabled: !this.writable,
        onChange: (next) => {
          const current = this.saver.get("labels", field.key) || {};
          const value = next[field.key];
          this.saver.set("labels", field.key, value === undefined && !current.reason_code ? null : { ...current, value: value === undefined ? null : value });
        },
      });
      row.append(
        this._reasonControls(
          d,
          (patch) => {
            const current = this.saver.get("labels", field.key) || { value: null };
            const next = { ...current, ...patch };
            for (const [k, v] of Object.entries(next)) if (v === undefined) delete next[k];
            this.saver.set("labels", field.key, next);
          },
          `label-${field.key}`,
        ),
      );
      box.append(row);
    }
  }

  // -- signing -------------------------------------------------------------------------------

  openSign() {
    const decisions = this.saver.local;
    const list = problems(this.task, decisions, this.schema, this.lang);
    const summary = $("#arb-sign-summary");
    summary.textContent = "";
    const table = h("table", { class: "arb-summary" });
    table.append(h("tr", {}, [h("th", { text: gettext("Item") }), h("th", { text: gettext("Decision") }), h("th", { text: gettext("Reason") })]));
    const reasonLabel = (code) => (this.reasonCodes.find((r) => r.code === code) || {}).label || "—";
    for (const c of this.clusters) {
      const d = decisions.clusters[String(c.id)];
      table.append(
        h("tr", { "data-testid": "summary-row" }, [
          h("td", { text: `C${c.number} ${label(typeOf(this.schema, c.finding_type).label, this.lang)}` }),
          h("td", { text: describe(c, d, this.schema, this.lang) }),
          h("td", { text: d ? [reasonLabel(d.reason_code), d.reason_text].filter(Boolean).join(" — ") : "—" }),
        ]),
      );
    }
    for (const field of this.task.label_fields || []) {
      const d = decisions.labels[field.key];
      table.append(
        h("tr", { "data-testid": "summary-row" }, [
          h("td", { text: label(field.label, this.lang) }),
          h("td", { text: d ? fieldText(field, d.value, this.lang) : gettext("not decided") }),
          h("td", { text: d ? [reasonLabel(d.reason_code), d.reason_text].filter(Boolean).join(" — ") : "—" }),
        ]),
      );
    }
    summary.append(table);
    const box = $("#arb-sign-problems");
    box.textContent = "";
    box.hidden = !list.length;
    if (list.length) {
      box.append(h("strong", { text: gettext("Not ready to sign:") }));
      box.append(h("ul", {}, list.map((p) => h("li", { text: `${p.item}: ${p.text}` }))));
    }
    $("#arb-sign-submit").disabled = Boolean(list.length);
    $("#arb-sign-error").textContent = "";
    $("#arb-password").value = "";
    $("#arb-sign").hidden = false;
    if (!list.length) $("#arb-password").focus();
  }

  async sign() {
    const error = $("#arb-sign-error");
    const password = $("#arb-password").value;
    error.textContent = "";
    if (!password) {
      error.textContent = gettext("Enter your password to sign.");
      return;
    }
    const button = $("#arb-sign-submit");
    button.disabled = true;
    try {
      await this.saver.flush();
      if (!this.saver.idle || this.saver.state !== "saved") {
        error.textContent = gettext("Some decisions are not saved yet; nothing was signed.");
        return;
      }
      await api("POST", `${this.apiRoot}arbitration-tasks/${this.task.id}/sign/`, { password, version: this.saver.version });
      this.saver.discardBuffer();
      window.location.reload();
    } catch (err) {
      if (err instanceof HttpError && err.status === 403) error.textContent = gettext("The password is not correct; nothing was signed.");
      else if (err instanceof HttpError && err.status === 409) error.textContent = gettext("The decisions changed elsewhere since you loaded them; nothing was signed. Reload to see them.");
      else if (err instanceof HttpError && err.status === 400) {
        const detail = err.body.detail;
        error.textContent = Array.isArray(detail) ? detail.join("; ") : err.message;
      } else error.textContent = err.message;
    } finally {
      button.disabled = false;
      $("#arb-password").value = "";
    }
  }

  // -- the signed result -----------------------------------------------------------------------

  renderResult() {
    const panel = $("#arb-result");
    if (this.task.state !== "signed") {
      panel.hidden = true;
      return;
    }
    panel.hidden = false;
    const box = $("#arb-result-body");
    box.textContent = "";
    box.append(h("p", { class: "arb-signed", "data-testid": "signed-note", text: interpolate(gettext("Signed %s · SHA-256 %s…"), [new Date(this.task.signed_at).toLocaleString(), this.task.signature_hash.slice(0, 12)]) }));
    const refs = this.boot.references || [];
    if (!refs.length) {
      box.append(h("p", { class: "ws-hint", "data-testid": "waiting-note", text: gettext("The reference standard is written when every arbitrator of this case has signed (and, where the blind arbitrators disagree, a third one has decided).") }));
    }
    const byKey = new Map(this.clusters.map((c) => [c.ref_key, c]));
    const statusText = { included: gettext("in the reference standard"), excluded: gettext("excluded from scoring"), rejected: gettext("rejected: not a finding") };
    const list = h("ul", { class: "arb-refs", "data-testid": "references" });
    for (const ref of refs) {
      const cluster = byKey.get(ref.ref_key);
      const type = typeOf(this.schema, ref.finding_type);
      const attrs = (type.attributes || []).filter((a) => a.required && ref.attributes[a.key] != null).map((a) => fieldText(a, ref.attributes[a.key], this.lang));
      list.append(
        h("li", { class: `arb-ref arb-ref-${ref.status}`, "data-testid": "reference", "data-status": ref.status, "data-cluster": cluster ? String(cluster.number) : "" }, [
          h("strong", { text: `${cluster ? `C${cluster.number} ` : ""}${label(type.label, this.lang)} · ${statusText[ref.status] || ref.status}` }),
          h("div", { text: attrs.join(" · ") }),
          h("div", { class: "arb-ref-prov", text: interpolate(gettext("revision %(rev)s · supported by %(readers)s · %(reason)s"), { rev: ref.revision, readers: ref.supporting_findings.map((f) => f.reader).join(", ") || "—", reason: (this.reasonCodes.find((r) => r.code === ref.reason_code) || {}).label || ref.reason_code || "—" }, true) }),
        ]),
      );
    }
    box.append(list);
    const labels = this.boot.reference_labels;
    if (labels) {
      const fields = this.schema.case_fields || [];
      const dl = h("dl", { class: "ws-readonly-attrs", "data-testid": "reference-labels" });
      for (const field of fields) {
        if (!(field.key in labels.values)) continue;
        dl.append(h("dt", { text: label(field.label, this.lang) }), h("dd", { text: fieldText(field, labels.values[field.key], this.lang) }));
      }
      box.append(dl);
    }
  }

  // -- drawing ---------------------------------------------------------------------------------

  paint() {
    this.needsPaint = false;
    const frame = this.frames[this.slice];
    let image = null;
    if (frame && frame.values && this.window) {
      image = this.renderer.render(frame, this.window.center, this.window.width, this.headerInvert !== this.invert, this.slice);
      document.body.dataset.firstImage = "1";
    } else if (!frame) {
      this._fetchSliceSoon();
    }
    this.viewport.draw(image, (ctx) => this._overlay(ctx, frame));
    const lines = [interpolate(gettext("Slice %s / %s"), [this.slice + 1, this.count])];
    const slice = this.geometry.slices[this.slice];
    if (slice && slice.along != null) lines.push(interpolate(gettext("Position %s mm"), [Number(slice.along).toFixed(1)]));
    $("#ws-tl").textContent = lines.join("\n");
    $("#ws-tr").textContent = this.window ? `W ${Math.round(this.window.width)}  L ${Math.round(this.window.center)}` : "";
    this.canvas.dataset.slice = String(this.slice);
  }

  _overlay(ctx, frame) {
    const vp = this.viewport;
    if (!frame) this._paintLoading(ctx);
    const drawMembers = (cluster, style) => {
      for (const m of cluster.members) {
        if (this.hiddenReaders.has(m.reader)) continue;
        const shape = this._shapeOn(m.geometry, this.slice);
        if (shape) vp.drawShape(ctx, m.geometry.kind, shape.points, { color: this.readerColour(m.reader), label: m.reader, ...style });
      }
    };
    if (this.showSettled) for (const c of this.settled) drawMembers(c, { dash: [2, 3], width: 1 });
    for (const c of this.clusters) if (c.id !== this.selectedId) drawMembers(c, { dash: [6, 4], width: 1.2 });
    const selected = this.selected();
    if (selected) drawMembers(selected, { width: 2.2, fill: true });
    // What the decision makes of the selected cluster, in gold.
    const d = selected && this.saver.get("clusters", selected.id);
    let result = null;
    if (d && d.action === "accept_reader") {
      const m = selected.members.find((x) => x.uid === d.finding);
      if (m) result = { geometry: m.geometry, text: `✓ ${m.reader}` };
    } else if (d && d.action === "accept_merged" && selected.consensus_geometry) {
      result = { geometry: selected.consensus_geometry, text: `✓ ${gettext("merged")}` };
    } else if (d && d.action === "edit" && d.geometry) {
      result = { geometry: d.geometry, text: `✎ ${gettext("edited")}`, handles: this.writable };
    }
    if (result) {
      const shape = this._shapeOn(result.geometry, this.slice);
      if (shape) vp.drawShape(ctx, result.geometry.kind, shape.points, { color: DECISION_COLOUR, width: 2.5, dash: [3, 2], label: result.text, handles: result.handles });
    }
    if (!this.writable) {
      for (const ref of this.boot.references || []) {
        if (ref.status !== "included" || !ref.geometry) continue;
        const shape = this._shapeOn(ref.geometry, this.slice);
        if (shape) vp.drawShape(ctx, ref.geometry.kind, shape.points, { color: DECISION_COLOUR, width: 2, label: gettext("reference") });
      }
    }
    const draft = this.tools.draft;
    if (draft) {
      const kind = draft.kind === "freehand" || draft.kind === "polygon" ? "polyline" : draft.kind;
      vp.drawShape(ctx, kind, draft.points, { color: "#ffffff", dash: [4, 3] });
    }
    vp.drawScaleBar(ctx);
  }
}

Object.assign(Arbitration.prototype, sliceViewMethods);

const boot = JSON.parse(document.getElementById("arb-bootstrap").textContent);
window.__arb = new Arbitration(boot);
