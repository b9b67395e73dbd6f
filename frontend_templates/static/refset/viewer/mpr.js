// Multiplanar views of a CT volume in the reading workstation: the main view
// (the stored slices, usually axial) plus the two reformatted planes and, in the
// 2 x 2 layout, a thick slab of the main plane; a crosshair linking them (the
// crosshair tool: click or drag in one view moves the others), the planes'
// reference lines, thick slabs (MIP, MinIP, average) in every view toggled by
// one key, cine, and the layouts 1 x 1 / 1 x 3 / 2 x 2. Each reformatted view
// has its own window, zoom and pan, its own ToolController (tools.js) through a
// small host that looks like the workstation to it, and draws the findings where
// they cross its plane. A finding drawn on a reformatted plane is stored in the
// finding geometry model like any other (reformat.js planeDrawingToShapes: one
// outline per native slice it crosses), so matching, export and the other views
// need nothing new.
//
// The volume is the frames the pixel stream already holds (sliceview.js
// this.frames); reformat.js cuts it. Nothing here changes the workstation's main
// view except for its slab (slabFrame()) and the crosshair drawn over it.
//
// The page (the workstation, the arbitration view) is `ws`: the slice view of
// sliceview.js plus what the views ask of its marks, so that both pages share them:
//   paintPlane(ctx, vp, plane, index, drawn)  its marks where they cross a plane
//   hitPlane(p, plane, index, toScreen)       the mark under a screen point, or null
//   selectFromPlane(uid)                      select it (the main view shows it)
//   isOwn(uid)                                may it be moved on the image?
//   commitPlaneShapes(kind, shapes, where)    store a drawing made on a plane
//   editableGeometry()                        {uid, geometry, colour} of the selected
//                                             finding the page may reshape, or null
//   updateGeometry(uid, geometry, {merge})    store its reshaped geometry
// and, for the tools, canDraw(), whyCannotDraw(), kindFor(). A selected finding
// is reshaped from a coronal or sagittal view by its frame (planemarks.js).
//
// The layout, the plane of a single view, the slab and the reference lines are
// remembered per user across cases (localStorage, key from the page's
// data-user), restored when the next case's volume is ready.
//
// Installed by workstation.js and arbitration/arbitrate.js: MprController.attach(ws)
// (null for a series that is not a volume), mprMethods on the page's prototype.

import { SliceRenderer } from "./lut.js";
import { findingFrame, frameHandles, frameToPlane, moveFrameHandle, planeToFrame, reshapeByFrame } from "./planemarks.js";
import {
  findingOnPlane,
  planeDrawingToShapes,
  planesOf,
  planeToVolume,
  reformat,
  SLAB_MODES,
  toPatient,
  volumeOf,
  volumeToPlane,
} from "./reformat.js";
import { sliceViewMethods } from "./sliceview.js";
import { DRAW_TOOLS, ToolController } from "./tools.js";
import { $, h, loadJSON, saveJSON } from "./ui.js";
import { Viewport } from "./viewport.js";

export const PLANE_COLOURS = { axial: "#4fc3f7", coronal: "#81c784", sagittal: "#ffb74d" };
const LAYOUTS = ["1x1", "1x3", "2x2"];
const SLAB_MM = { min: 5, max: 20, initial: 10 };
const CROSS_GAP = 7; // css px left open around the crosshair's centre (its pixel stays visible)

export function planeLabel(name) {
  const names = { axial: gettext("Axial"), coronal: gettext("Coronal"), sagittal: gettext("Sagittal") };
  return names[name] || name;
}

export function slabModeLabel(mode) {
  const names = { mip: gettext("MIP"), minip: gettext("MinIP"), avg: gettext("Average") };
  return names[mode] || mode;
}

/** One reformatted view: a plane of the volume on its own canvas. `role` is the
 * plane's name, or "slab" for the main plane's thick slab of the 2 x 2 layout. */
class Pane {
  constructor(mpr, role) {
    this.mpr = mpr;
    this.ws = mpr.ws;
    this.role = role;
    this.plane = null;
    this.geom = { colSpacing: 1, rowSpacing: 1, columns: 1, rows: 1, hasSpacing: false };
    this.window = null;
    this.invert = false;
    this.frame = null;
    this.frameKey = "";
    this.pointer = null;
    this.measurements = [];
    this.lastMs = 0;
    this.canvas = h("canvas", { class: "ws-pane-canvas", tabIndex: 0, "data-testid": `viewer-${role}`, "aria-label": planeLabel(role) });
    this.tl = h("pre", { class: "ws-corner ws-tl" });
    this.tr = h("pre", { class: "ws-corner ws-tr" });
    this.bl = h("pre", { class: "ws-corner ws-bl" });
    this.marks = {};
    for (const side of ["left", "right", "top", "bottom"]) this.marks[side] = h("span", { class: `ws-mark ws-mark-${side}` });
    this.el = h("div", { class: "ws-pane", "data-plane": role, "data-testid": `mpr-${role}`, hidden: true }, [
      this.canvas,
      this.tl,
      this.tr,
      this.bl,
      ...Object.values(this.marks),
    ]);
  }

  /** Once in the page: the viewport, the tools through a host, the resize observer. */
  mount() {
    this.viewport = new Viewport(this.canvas, this.geom);
    this.renderer = new SliceRenderer();
    this.tools = new ToolController(this._host());
    new ResizeObserver(() => {
      this.viewport.resize();
      this.ws.redraw();
    }).observe(this.canvas);
  }

  setPlane(plane) {
    this.plane = plane;
    Object.assign(this.geom, {
      colSpacing: plane.sx,
      rowSpacing: plane.sy,
      columns: plane.width,
      rows: plane.height,
      hasSpacing: this.mpr.volume.hasSpacing,
    });
    for (const side of Object.keys(this.marks)) this.marks[side].textContent = plane.markers[side];
    this.viewport.fitted = false;
    this.viewport.resize();
  }

  /** The voxel index along the plane's fixed axis this view shows. */
  get index() {
    if (!this.plane) return 0;
    if (this.plane.fixed === 2) return this.ws.slice;
    const i = Math.floor(this.mpr.cursor[this.plane.fixed]);
    return Math.min(Math.max(i, 0), this.plane.depth - 1);
  }

  goTo(index) {
    if (!this.plane) return;
    const next = Math.min(Math.max(Math.round(index), 0), this.plane.depth - 1);
    if (this.plane.fixed === 2) this.ws.goToSlice(next);
    else this.mpr.cursor[this.plane.fixed] = next + 0.5;
    this.ws.redraw();
  }

  setWindow(center, width, { name = "" } = {}) {
    this.window = { center: Math.round(center * 10) / 10, width: Math.max(1, Math.round(width * 10) / 10) };
    this.windowName = name;
    this.ws.redraw();
  }

  applyPreset(name) {
    const ws = this.ws;
    if (!ws.defaultWindow) return;
    if (name === "file") {
      this.setWindow(ws.defaultWindow.center, ws.defaultWindow.width, { name });
      return;
    }
    const preset = ws.presets.find((p) => p.name === name);
    if (!preset) ws.flash(gettext("This series has no such window preset."));
    else this.setWindow(preset.center, preset.width, { name });
  }

  reset() {
    this.viewport.fit();
    this.invert = false;
    if (this.ws.defaultWindow) this.applyPreset("file");
  }

  get slab() {
    const s = this.mpr.slab;
    if (this.role === "slab") return { mode: s.mode, mm: s.mm };
    return s.on ? { mode: s.mode, mm: s.mm } : null;
  }

  /** The reformatted image of the current index (recomputed only when it changes). */
  currentFrame() {
    const ws = this.ws;
    const slab = this.slab;
    const key = `${this.index}|${slab ? `${slab.mode}${slab.mm}` : ""}|${ws.seriesDone ? "all" : ws.loadedCount}`;
    if (key !== this.frameKey) {
      this.frame = reformat(this.mpr.volume, ws.frames, this.plane, this.index, slab, this.frame);
      this.frameKey = key;
    }
    return this.frame;
  }

  paint() {
    if (this.el.hidden || !this.viewport) return;
    const t0 = performance.now();
    const ws = this.ws;
    if (this.canvas.dataset.tool !== ws.tool) this.canvas.dataset.tool = ws.tool;
    if (!this.plane || !ws.window) {
      this.viewport.draw(null, (ctx) => ws._paintLoading.call({ viewport: this.viewport }, ctx));
      return;
    }
    if (!this.window) this.window = { ...ws.window };
    const frame = this.currentFrame();
    const invert = ws.headerInvert !== this.invert;
    const image = this.renderer.render(frame, this.window.center, this.window.width, invert, `${this.role}|${this.frameKey}`);
    this.viewport.draw(image, (ctx) => this.overlay(ctx));
    this._cornerTexts();
    this.canvas.dataset.index = String(this.index);
    this.lastMs = performance.now() - t0;
  }

  overlay(ctx) {
    const ws = this.ws;
    const vp = this.viewport;
    const index = this.index;
    // The page's marks where they cross this plane (and what was drawn: the tests read it).
    this.drawn = [];
    ws.paintPlane(ctx, vp, this.plane, index, this.drawn);
    const frame = this.editFrame();
    if (frame) drawFrame(ctx, vp, frame.points, frame.colour);
    for (const m of this.measurements) {
      if (m.index === index) vp.drawMeasure(ctx, m.a, m.b, this._lengthText(m.a, m.b), "#80deea");
    }
    const draft = this.tools.draft;
    if (draft) {
      if (draft.kind === "line" || draft.kind === "axes") {
        vp.drawMeasure(ctx, draft.points[0], draft.points[1], this._lengthText(draft.points[0], draft.points[1]), "#fff");
      } else {
        const kind = draft.kind === "freehand" || draft.kind === "polygon" ? "polyline" : draft.kind;
        vp.drawShape(ctx, kind, draft.points, { color: "#fff", dash: [4, 3] });
      }
    }
    if (this.mpr.showLines()) this.mpr.drawLines(ctx, vp, this.plane, index);
    vp.drawScaleBar(ctx);
  }

  _lengthText(a, b) {
    const v = Math.hypot((b[0] - a[0]) * this.plane.sx, (b[1] - a[1]) * this.plane.sy);
    return this.geom.hasSpacing ? `${v.toFixed(1)} mm` : `${v.toFixed(1)} px`;
  }

  _cornerTexts() {
    const ws = this.ws;
    const slab = this.slab;
    const lines = [
      `${planeLabel(this.plane.name)}  ${this.index + 1} / ${this.plane.depth}`,
      slab ? `${slabModeLabel(slab.mode)} ${slab.mm} mm` : "",
    ];
    setText(this.tl, lines.filter(Boolean).join("\n"));
    const w = this.window;
    setText(
      this.tr,
      [
        `W ${Math.round(w.width)}  L ${Math.round(w.center)}${ws.boot.series.modality === "CT" ? " HU" : ""}${this.invert ? ` · ${gettext("inverted")}` : ""}`,
        `${gettext("Zoom")} ${Math.round(this.viewport.zoom * Math.min(this.plane.sx, this.plane.sy) * 100)}%`,
      ].join("\n"),
    );
    let value = "";
    if (this.pointer && this.frame) {
      const [x, y] = this.viewport.toImage(this.pointer);
      const v = this.valueAt(x, y);
      if (v != null) value = `${Number.isInteger(v) ? v : v.toFixed(1)}${ws.boot.series.modality === "CT" ? " HU" : ""}`;
    }
    setText(this.bl, value);
  }

  /** The reformatted value at plane image point (x, y), or null outside. */
  valueAt(x, y) {
    const c = Math.floor(x);
    const r = Math.floor(y);
    if (!this.frame || c < 0 || r < 0 || c >= this.plane.width || r >= this.plane.height) return null;
    return this.frame.values[r * this.plane.width + c];
  }

  hitFinding(p) {
    return this.ws.hitPlane(p, this.plane, this.index, this.viewport.toScreen);
  }

  /**
   * The selected finding's frame on this reformatted plane (planemarks.js), where
   * the page lets it be reshaped and it crosses the plane here: a shape for the
   * ToolController with its own handles, or null.
   */
  editFrame() {
    const ws = this.ws;
    if (!this.plane || this.plane.fixed === 2 || this.role === "slab" || !ws.writable) return null;
    const edit = ws.editableGeometry();
    if (!edit || !findingOnPlane(edit.geometry, this.plane, this.index).length) return null;
    const frame = findingFrame(edit.geometry, this.plane);
    if (!frame) return null;
    const points = frameToPlane(this.plane, frame);
    return {
      uid: edit.uid,
      kind: "box",
      points,
      colour: edit.colour,
      frame,
      handles: frameHandles(points),
      moveHandle: (handle, to, from) => moveFrameHandle(from, handle, to),
    };
  }

  canDraw(tool) {
    if (tool === "line") return true;
    if (tool === "axes" || this.role === "slab") return false;
    return this.ws.canDraw(tool);
  }

  whyCannotDraw(tool) {
    if (tool === "axes") return gettext("Long and short axes are drawn on the main view.");
    if (this.role === "slab" && DRAW_TOOLS.has(tool)) return gettext("Findings are drawn on a single plane, not on the slab.");
    return this.ws.whyCannotDraw(tool);
  }

  /** What ToolController asks of the page, answered for this view. */
  _host() {
    const pane = this;
    const ws = this.ws;
    const mpr = this.mpr;
    return {
      get viewport() {
        return pane.viewport;
      },
      get tool() {
        return ws.tool;
      },
      get window() {
        return pane.window || ws.window;
      },
      get writable() {
        return ws.writable;
      },
      get slice() {
        return pane.index;
      },
      setWindow: (center, width) => pane.setWindow(center, width),
      goToSlice: (index) => pane.goTo(index),
      canDraw: (tool) => pane.canDraw(tool),
      whyCannotDraw: (tool) => pane.whyCannotDraw(tool),
      flash: (text) => ws.flash(text),
      commitShape: (tool, points) => mpr.commitFromPane(pane, tool, points),
      redraw: () => ws.redraw(),
      selectedShape: () => pane.editFrame(),
      hitFinding: (p) => pane.hitFinding(p),
      select: (uid) => ws.selectFromPlane(uid), // the main view shows the finding's outline
      isOwn: (uid) => ws.isOwn(uid),
      updateShape: (uid, points, options) => mpr.editFromPane(pane, uid, points, options),
      pointerAt: (p) => {
        pane.pointer = p;
        if (pane.plane && pane.window) pane._cornerTexts();
      },
      addMeasurement: (a, b) => {
        pane.measurements.push({ index: pane.index, a, b });
        ws.flash(pane._lengthText(a, b));
      },
      addAxis: () => ws.flash(pane.whyCannotDraw("axes")),
      crosshairAt: (img) => mpr.crosshairFromPane(pane, img),
    };
  }
}

function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

/** The edit frame: dashed, with its eight handles (planemarks.js frameHandles). */
function drawFrame(ctx, vp, box, colour) {
  const [x0, y0] = vp.toScreen(box[0]);
  const [x1, y1] = vp.toScreen(box[1]);
  ctx.save();
  ctx.strokeStyle = colour;
  ctx.lineWidth = 1;
  ctx.setLineDash([5, 3]);
  ctx.strokeRect(x0, y0, x1 - x0, y1 - y0);
  ctx.setLineDash([]);
  for (const [, p] of frameHandles(box)) {
    const [x, y] = vp.toScreen(p);
    ctx.fillStyle = "#fff";
    ctx.fillRect(x - 3, y - 3, 6, 6);
    ctx.strokeRect(x - 3, y - 3, 6, 6);
  }
  ctx.restore();
}

export class MprController {
  /** The controller for `ws`'s series, or null where it is not a volume. */
  static attach(ws) {
    const g = ws.geometry;
    if (g.slices.length < 3 || !g.orientation || !g.slices.every((s) => s.position)) return null;
    const bar = $("#ws-mpr-bar");
    if (!bar) return null;
    return new MprController(ws, bar);
  }

  constructor(ws, bar) {
    this.ws = ws;
    this.bar = bar;
    this.volume = null;
    this.native = null; // the main view's plane name
    this.planes = null;
    this.cursor = [0, 0]; // volume x, y of the crosshair (z is the main view's slice)
    this.layout = "1x1";
    this.single = null; // the plane a 1 x 1 layout shows (null: the main view)
    this.lastMulti = "1x3";
    this.refLines = true;
    this.slab = { on: false, mode: "mip", mm: SLAB_MM.initial };
    this.activeRole = null; // the view the keys act on (null: the main view)
    this.cine = null;
    this.nativeSlabCache = null;
    // How the main view's slabs were made: slid from the last one (reformat.js
    // SlabWindow) or computed afresh (the bench and the tests read it).
    this.slabCounts = { slid: 0, fresh: 0 };
    // Remembered per user (the page header names who is logged in), across cases.
    const who = document.querySelector("[data-user]");
    this.settingsKey = `refset.mpr.${who ? who.dataset.user : "anyone"}`;
    this._loadSettings();
    this.stage = ws.canvas.closest(".ws-stage");
    this._wrapMain();
    this.panes = {};
    this._bindBar();
    bar.hidden = false;
    for (const b of document.querySelectorAll(".ws-tool[data-tool=crosshair]")) b.hidden = false;
    this.stage.dataset.layout = "1x1";
  }

  /** The main view's canvas, corner texts and marks move into a pane of their own. */
  _wrapMain() {
    this.mainEl = h("div", { class: "ws-pane ws-pane-main", "data-testid": "mpr-main" });
    for (const id of ["ws-canvas", "ws-tl", "ws-tr", "ws-bl", "ws-mark-left", "ws-mark-right", "ws-mark-top", "ws-mark-bottom", "ws-mark-view"]) {
      const node = document.getElementById(id);
      if (node) this.mainEl.append(node);
    }
    this.stage.prepend(this.mainEl);
    this.ws.canvas.addEventListener("pointerdown", () => this._activate(null), true);
    this.ws.canvas.addEventListener("dblclick", () => this._maximise(null));
  }

  /** The volume and its planes, once the first frame told the spacing; false while unknown. */
  _ensureVolume() {
    if (this.volume) return true;
    if (this.disabled || !this.ws.defaultWindow) return false;
    const vol = this.ws.rgb ? null : volumeOf(this.ws.geometry);
    if (!vol) {
      this.disabled = true;
      this.bar.hidden = true;
      for (const b of document.querySelectorAll(".ws-tool[data-tool=crosshair]")) b.hidden = true;
      return false;
    }
    this.volume = vol;
    const { native, planes } = planesOf(vol);
    this.native = native;
    this.planes = planes;
    this.mainEl.dataset.plane = native;
    if (this.single === native || !planes[this.single]) this.single = null;
    this.cursor = [vol.I / 2, vol.J / 2];
    if (this.centre) this._setCursor(...this.centre);
    const roles = [...Object.keys(planes).filter((n) => n !== native), "slab"];
    for (const role of roles) {
      const pane = new Pane(this, role);
      this.panes[role] = pane;
      this.stage.insertBefore(pane.el, this._afterPanes());
      pane.mount();
      pane.setPlane(role === "slab" ? planes[native] : planes[role]);
      pane.canvas.addEventListener("pointerdown", () => this._activate(role), true);
      pane.canvas.addEventListener("dblclick", () => this._maximise(role));
    }
    for (const b of this.bar.querySelectorAll("[data-single]")) b.hidden = !planes[b.dataset.single];
    this._applyLayout();
    return true;
  }

  _afterPanes() {
    const panes = [...this.stage.querySelectorAll(".ws-pane")];
    return panes[panes.length - 1].nextSibling;
  }

  // -- controls ----------------------------------------------------------------------

  _bindBar() {
    const bar = this.bar;
    for (const b of bar.querySelectorAll("[data-layout]")) b.addEventListener("click", () => this.setLayout(b.dataset.layout));
    for (const b of bar.querySelectorAll("[data-single]")) b.addEventListener("click", () => this.setLayout("1x1", b.dataset.single));
    bar.querySelector("[data-mpr=slab]").addEventListener("click", () => this.toggleSlab());
    this.modeSelect = bar.querySelector("#ws-slab-mode");
    this.modeSelect.addEventListener("change", () => this.setSlab({ mode: this.modeSelect.value }));
    this.mmInput = bar.querySelector("#ws-slab-mm");
    this.mmInput.min = String(SLAB_MM.min);
    this.mmInput.max = String(SLAB_MM.max);
    this.mmInput.value = String(this.slab.mm);
    this.mmInput.addEventListener("input", () => this.setSlab({ mm: Number(this.mmInput.value) }));
    bar.querySelector("[data-mpr=cine]").addEventListener("click", () => this.toggleCine());
    this.fpsInput = bar.querySelector("#ws-cine-fps");
    this.fpsInput.addEventListener("change", () => {
      if (this.cine) this.startCine();
    });
    this.linesInput = bar.querySelector("#ws-reflines");
    this.linesInput.checked = this.refLines;
    this.linesInput.addEventListener("change", () => {
      this.refLines = this.linesInput.checked;
      this._saveSettings();
      this.ws.redraw();
    });
    this._markBar();
  }

  _markBar() {
    const bar = this.bar;
    for (const b of bar.querySelectorAll("[data-layout]")) b.classList.toggle("on", this.layout !== "1x1" && b.dataset.layout === this.layout);
    for (const b of bar.querySelectorAll("[data-single]")) {
      b.classList.toggle("on", this.layout === "1x1" && (this.single || this.native) === b.dataset.single);
    }
    bar.querySelector("[data-mpr=slab]").classList.toggle("on", this.slab.on);
    bar.querySelector("[data-mpr=cine]").classList.toggle("on", Boolean(this.cine));
    bar.dataset.layout = this.layout;
    bar.dataset.slab = this.slab.on ? this.slab.mode : "off";
    bar.dataset.cine = this.cine ? "playing" : "stopped";
    this.modeSelect.value = this.slab.mode;
    this.mmInput.value = String(this.slab.mm);
    setText(bar.querySelector("#ws-slab-mm-value"), `${this.slab.mm} mm`);
    this.linesInput.checked = this.refLines;
  }

  /** Layout 1x1 (with `single`, the plane it shows), 1x3 or 2x2. */
  setLayout(layout, single = undefined) {
    if (!LAYOUTS.includes(layout)) return;
    if (!this._ensureVolume()) {
      this.ws.flash(gettext("The volume is still loading."));
      return;
    }
    this.layout = layout;
    if (layout !== "1x1") this.lastMulti = layout;
    if (single !== undefined) this.single = single === this.native ? null : single;
    this._applyLayout();
  }

  _applyLayout() {
    const shown = new Set();
    if (this.layout === "1x1") shown.add(this.single || "main");
    else {
      shown.add("main");
      for (const role of Object.keys(this.panes)) if (role !== "slab") shown.add(role);
      if (this.layout === "2x2") shown.add("slab");
    }
    this.stage.dataset.layout = this.layout;
    this._saveSettings();
    this.mainEl.hidden = !shown.has("main");
    for (const [role, pane] of Object.entries(this.panes)) pane.el.hidden = !shown.has(role);
    if (this.activeRole && !shown.has(this.activeRole)) this.activeRole = null;
    if (this.layout === "1x1" && this.single) this.activeRole = this.single;
    this._markActive();
    this._markBar();
    // Refit every shown view once the new layout has its sizes.
    requestAnimationFrame(() => {
      const views = [this.mainEl.hidden ? null : this.ws.viewport, ...Object.values(this.panes).filter((p) => !p.el.hidden).map((p) => p.viewport)];
      for (const vp of views) {
        if (!vp) continue;
        vp.fitted = false;
        vp.resize();
      }
      this.ws.redraw();
    });
  }

  cycleLayout() {
    const next = LAYOUTS[(LAYOUTS.indexOf(this.layout) + 1) % LAYOUTS.length];
    this.setLayout(next, next === "1x1" ? null : undefined);
  }

  _maximise(role) {
    const ws = this.ws;
    if (ws.tools.draft || (this.panes[role] && this.panes[role].tools.draft)) return;
    if (!["select", "wl", "pan", "zoom", "crosshair"].includes(ws.tool)) return;
    if (this.layout !== "1x1") this.setLayout("1x1", role === null || role === "slab" ? this.native : role);
    else if (this.single || role !== null) this.setLayout(this.lastMulti);
  }

  _activate(role) {
    this.activeRole = role;
    this._markActive();
  }

  _markActive() {
    this.mainEl.classList.toggle("active", this.layout !== "1x1" && this.activeRole === null);
    for (const [role, pane] of Object.entries(this.panes)) pane.el.classList.toggle("active", this.layout !== "1x1" && this.activeRole === role);
  }

  /** The reformatted view the keys act on, or null for the main view. */
  activePane() {
    const pane = this.activeRole ? this.panes[this.activeRole] : null;
    return pane && !pane.el.hidden ? pane : null;
  }

  // -- slab, cine, lines -----------------------------------------------------------------

  toggleSlab() {
    this.setSlab({ on: !this.slab.on });
    this.ws.flash(
      this.slab.on
        ? interpolate(gettext("Slab %(mode)s %(mm)s mm"), { mode: slabModeLabel(this.slab.mode), mm: this.slab.mm }, true)
        : gettext("Slab off: single slices"),
    );
  }

  setSlab({ on = this.slab.on, mode = this.slab.mode, mm = this.slab.mm }) {
    this.slab = {
      on,
      mode: SLAB_MODES.includes(mode) ? mode : "mip",
      mm: Math.min(Math.max(Math.round(mm), SLAB_MM.min), SLAB_MM.max),
    };
    this._saveSettings();
    this._markBar();
    this.ws.redraw();
  }

  toggleCine() {
    if (this.cine) this.stopCine();
    else this.startCine();
  }

  startCine() {
    this.stopCine(false);
    const fps = Math.min(Math.max(Number(this.fpsInput.value) || 10, 1), 30);
    this.fpsInput.value = String(fps);
    this.cine = setInterval(() => this._cineStep(), 1000 / fps);
    this._markBar();
  }

  stopCine(mark = true) {
    clearInterval(this.cine);
    this.cine = null;
    if (mark) this._markBar();
  }

  _cineStep() {
    const pane = this.activePane();
    if (pane) pane.goTo((pane.index + 1) % pane.plane.depth);
    else this.ws.goToSlice((this.ws.slice + 1) % this.ws.count);
  }

  /** Lines are drawn where there are other views to refer to, or while the crosshair tool is on. */
  showLines() {
    return this.ws.tool === "crosshair" || (this.refLines && this.layout !== "1x1");
  }

  /** Each other plane's position as a line in `plane` (its reference line), colour of
   * that plane, open around the crosshair's centre. */
  drawLines(ctx, vp, plane, index) {
    if (!this.volume) return;
    const point = volumeToPlane(plane, this.crosshairVolume(plane, index));
    const [cx, cy] = vp.toScreen(point);
    const [x0, y0] = vp.toScreen([0, 0]);
    const [x1, y1] = vp.toScreen([plane.width, plane.height]);
    ctx.save();
    ctx.lineWidth = 1;
    for (const other of Object.values(this.planes)) {
      if (other.fixed === plane.fixed) continue;
      ctx.strokeStyle = PLANE_COLOURS[other.name];
      ctx.beginPath();
      if (other.fixed === plane.h) {
        ctx.moveTo(cx, y0);
        ctx.lineTo(cx, cy - CROSS_GAP);
        ctx.moveTo(cx, cy + CROSS_GAP);
        ctx.lineTo(cx, y1);
      } else {
        ctx.moveTo(x0, cy);
        ctx.lineTo(cx - CROSS_GAP, cy);
        ctx.moveTo(cx + CROSS_GAP, cy);
        ctx.lineTo(x1, cy);
      }
      ctx.stroke();
    }
    ctx.restore();
  }

  /** The crosshair's volume point, at voxel centres; on `plane` at `index` its own axis. */
  crosshairVolume(plane = null, index = null) {
    const p = [Math.floor(this.cursor[0]) + 0.5, Math.floor(this.cursor[1]) + 0.5, this.ws.slice + 0.5];
    if (plane && index != null) p[plane.fixed] = index + 0.5;
    return p;
  }

  // -- the main view ------------------------------------------------------------------------

  /** The main view's thick slab at its slice (a frame for lut.js with a `key`), or null. */
  nativeSlab() {
    if (!this.slab.on || !this._ensureVolume()) return null;
    const ws = this.ws;
    const slab = this.slab;
    const key = `slab|${ws.slice}|${slab.mode}${slab.mm}|${ws.seriesDone ? "all" : ws.loadedCount}`;
    const cached = this.nativeSlabCache;
    if (cached && cached.key === key) return cached;
    const frame = reformat(this.volume, ws.frames, this.planes[this.native], ws.slice, slab, cached);
    this.slabCounts[frame.sliding && frame.sliding.slid ? "slid" : "fresh"] += 1;
    frame.key = key;
    this.nativeSlabCache = frame;
    return frame;
  }

  paintMainOverlay(ctx) {
    if (!this.volume || !this.showLines()) return;
    this.drawLines(ctx, this.ws.viewport, this.planes[this.native], this.ws.slice);
  }

  mainSlabText() {
    return this.slab.on && this.volume ? `${slabModeLabel(this.slab.mode)} ${this.slab.mm} mm` : "";
  }

  paint() {
    if (!this._ensureVolume()) return;
    for (const pane of Object.values(this.panes)) pane.paint();
  }

  // -- the crosshair --------------------------------------------------------------------------

  crosshairFromMain(img) {
    if (!this._ensureVolume()) return;
    this._setCursor(img[0], img[1]);
    this.ws.redraw();
  }

  crosshairFromPane(pane, img) {
    if (!pane.plane) return;
    const p = planeToVolume(pane.plane, pane.index, img);
    this._setCursor(p[0], p[1]);
    if (pane.plane.fixed !== 2) this.ws.goToSlice(Math.floor(p[2]));
    this.ws.redraw();
  }

  /** Put the crosshair on main-view image point [x, y] (the page's own choice, such
   * as the arbitration's selected cluster), now or once the volume is ready. */
  centreOn([x, y]) {
    this.centre = [x, y];
    if (!this.volume) return;
    this._setCursor(x, y);
    this.ws.redraw();
  }

  _setCursor(x, y) {
    const { I, J } = this.volume;
    this.cursor = [Math.min(Math.max(x, 0), I - 0.01), Math.min(Math.max(y, 0), J - 0.01)];
  }

  /**
   * Where the crosshair is in every shown view: its screen point on the view's
   * canvas (css px), the plane point, the volume point, patient mm and the value
   * the view shows there (tests and the bench read it).
   */
  probe() {
    if (!this._ensureVolume()) return [];
    const ws = this.ws;
    const out = [];
    const vol = this.volume;
    const p = this.crosshairVolume();
    if (!this.mainEl.hidden) {
      const frame = this.nativeSlab() || ws.frames[ws.slice];
      const [x, y] = [p[0], p[1]];
      const values = frame && frame.values;
      out.push({
        role: "main",
        plane: this.native,
        index: ws.slice,
        screen: ws.viewport.toScreen([x, y]),
        point: [x, y],
        volume: p,
        mm: toPatient(vol, p),
        value: values ? values[Math.floor(y) * vol.I + Math.floor(x)] : null,
      });
    }
    for (const pane of Object.values(this.panes)) {
      if (pane.el.hidden || !pane.plane) continue;
      const q = this.crosshairVolume(pane.plane, pane.index);
      const point = volumeToPlane(pane.plane, q);
      pane.currentFrame();
      out.push({
        role: pane.role,
        plane: pane.plane.name,
        index: pane.index,
        screen: pane.viewport.toScreen(point),
        point,
        volume: q,
        mm: toPatient(vol, q),
        value: pane.valueAt(point[0], point[1]),
        markers: pane.plane.markers,
      });
    }
    return out;
  }

  // -- drawing on a plane ---------------------------------------------------------------------

  /** A shape drawn on a reformatted view becomes outlines on the native slices it
   * crosses; the page stores them (a new finding, or added to the selected one). */
  commitFromPane(pane, tool, points) {
    const ws = this.ws;
    if (!pane.canDraw(tool)) {
      ws.flash(pane.whyCannotDraw(tool));
      return;
    }
    const kind = ws.kindFor(tool);
    if (!kind) {
      ws.flash(ws.whyCannotDraw(tool));
      return;
    }
    const shapes = planeDrawingToShapes(pane.plane, pane.index, kind, points);
    if (!shapes.length) {
      ws.flash(gettext("The drawing crosses no slice's centre: draw it across at least one slice."));
      return;
    }
    const first = shapes[0].slice_index + 1;
    const last = shapes[shapes.length - 1].slice_index + 1;
    const where = interpolate(
      ngettext(
        "%(plane)s drawing stored as an outline on slice %(first)s.",
        "%(plane)s drawing stored as outlines on %(count)s slices (%(first)s–%(last)s).",
        shapes.length,
      ),
      { plane: planeLabel(pane.plane.name), count: shapes.length, first, last },
      true,
    );
    ws.commitPlaneShapes(kind, shapes, where);
  }

  /**
   * The selected finding's frame dragged on a reformatted view to the plane box
   * `points` (from the frame the drag started on): moved (`mode` "move") or
   * resized, stored through the page in the per-slice geometry (planemarks.js).
   */
  editFromPane(pane, uid, points, { merge, mode } = {}) {
    const ws = this.ws;
    const edit = ws.editableGeometry();
    if (!edit || edit.uid !== uid || !pane.plane) return;
    const frame = findingFrame(edit.geometry, pane.plane);
    if (!frame) return;
    const next = planeToFrame(pane.plane, pane.index, points);
    const geometry = reshapeByFrame(edit.geometry, pane.plane, frame, next, { move: mode === "move", depth: ws.count });
    if (geometry) ws.updateGeometry(uid, geometry, { merge });
  }

  // -- remembered settings --------------------------------------------------------------------

  /** The user's remembered layout, plane, slab and reference lines (validated), or {}. */
  _loadSettings() {
    const saved = loadJSON(this.settingsKey);
    if (!saved || typeof saved !== "object") return;
    if (LAYOUTS.includes(saved.layout)) this.layout = saved.layout;
    if (LAYOUTS.includes(saved.lastMulti) && saved.lastMulti !== "1x1") this.lastMulti = saved.lastMulti;
    if (["axial", "coronal", "sagittal"].includes(saved.single)) this.single = saved.single;
    if (typeof saved.refLines === "boolean") this.refLines = saved.refLines;
    const slab = saved.slab || {};
    this.slab = {
      on: Boolean(slab.on),
      mode: SLAB_MODES.includes(slab.mode) ? slab.mode : this.slab.mode,
      mm: Number.isFinite(slab.mm) ? Math.min(Math.max(Math.round(slab.mm), SLAB_MM.min), SLAB_MM.max) : this.slab.mm,
    };
  }

  _saveSettings() {
    saveJSON(this.settingsKey, {
      layout: this.layout,
      single: this.single,
      lastMulti: this.lastMulti,
      slab: this.slab,
      refLines: this.refLines,
    });
  }

  // -- keys -----------------------------------------------------------------------------------

  /** The MPR commands of the shortcut table, and the view commands while a
   * reformatted view is active; false for everything else. */
  command(action) {
    const [verb, arg] = action.split(":");
    if (verb === "layout") this.cycleLayout();
    else if (verb === "slab") {
      if (!this._ensureVolume()) return true;
      if (arg === "mode") {
        const mode = SLAB_MODES[(SLAB_MODES.indexOf(this.slab.mode) + 1) % SLAB_MODES.length];
        this.setSlab({ mode, on: true });
        this.ws.flash(interpolate(gettext("Slab %(mode)s %(mm)s mm"), { mode: slabModeLabel(mode), mm: this.slab.mm }, true));
      } else if (arg === "thicker" || arg === "thinner") this.setSlab({ mm: this.slab.mm + (arg === "thicker" ? 1 : -1), on: true });
      else this.toggleSlab();
    } else if (verb === "cine") this.toggleCine();
    else if (verb === "reflines") {
      this.refLines = !this.refLines;
      this._saveSettings();
      this._markBar();
      this.ws.redraw();
    } else {
      const pane = this.activePane();
      if (!pane || !pane.plane) return false;
      if (verb === "slice") {
        if (arg === "first") pane.goTo(0);
        else if (arg === "last") pane.goTo(pane.plane.depth - 1);
        else pane.goTo(pane.index + Number(arg));
      } else if (verb === "preset") pane.applyPreset(arg);
      else if (verb === "invert") pane.invert = !pane.invert;
      else if (verb === "reset") pane.reset();
      else if (verb === "zoom") pane.viewport.zoomAt(arg === "in" ? 1.25 : 0.8, pane.viewport.cssWidth / 2, pane.viewport.cssHeight / 2);
      else return false;
      this.ws.redraw();
    }
    return true;
  }
}

/** Methods of Workstation for the multiplanar views (installed after sliceViewMethods). */
export const mprMethods = {
  /** The crosshair tool on the main view. */
  crosshairAt(img) {
    if (this.mpr) this.mpr.crosshairFromMain(img);
  },

  /** The main view's thick slab (sliceview.js _paintSlice shows it instead of the slice). */
  slabFrame() {
    return this.mpr ? this.mpr.nativeSlab() : null;
  },

  /** A preset button or key sets the window of the active view. */
  applyPreset(name) {
    const pane = this.mpr && this.mpr.activePane();
    if (pane) {
      pane.applyPreset(name);
      return;
    }
    sliceViewMethods.applyPreset.call(this, name);
  },
};
