// The manager's read-only series viewer (imaging/viewer_views.py): one case's
// series with the workstation's own slice view (sliceview.js: frames from the
// series stream, slices, window and presets, view commands, progress), its
// pointer tools limited to window, pan and zoom, and its key table. Nothing can
// be drawn, selected or saved: there is no task behind this page.

import "./i18n.js";
import { bindKeys } from "./shortcuts.js";
import { sliceViewMethods } from "./sliceview.js";
import { ToolController } from "./tools.js";
import { $ } from "./ui.js";

const VIEW_TOOLS = new Set(["wl", "pan", "zoom"]);

export class SeriesViewer {
  constructor(boot) {
    this._initSliceView(boot, { viewKey: `refset.series.${boot.series.id}`, previewWhileDragging: true, resetPreset: "file" });
    this.tools = new ToolController(this);
    this.sliderEl = $("#ws-slider");
    this.sliderEl.max = String(this.count - 1);
    this.sliderEl.value = String(this.slice);
    this._bindView();
    $("#sv-invert").addEventListener("click", () => this.viewCommand("invert"));
    $("#sv-reset").addEventListener("click", () => this.viewCommand("reset"));
    bindKeys(this, this._pageKeys([]));
    this.setTool("wl");
    this._load();
  }

  _initWindow(header) {
    this._adoptHeader(header);
    if (this.window) this.setWindow(this.window.center, this.window.width, { name: this.windowName });
    else this.setWindow(this.defaultWindow.center, this.defaultWindow.width, { name: "file" });
    this._buildPresets(this._defaultWindowText());
  }

  command(action) {
    this.viewCommand(action);
  }

  setTool(tool) {
    if (!VIEW_TOOLS.has(tool)) {
      this.flash(this.whyCannotDraw(tool));
      return;
    }
    this._useTool(tool);
  }

  paint() {
    const info = this._viewInfo(this._paintSlice());
    $("#ws-tl").textContent = info.left.join("\n");
    $("#ws-tr").textContent = info.right.join("\n");
    this.canvas.dataset.slice = String(this.slice);
  }

  _overlay(ctx, frame) {
    if (!frame) this._paintLoading(ctx);
    this.viewport.drawScaleBar(ctx);
  }

  // A read-only page: the pointer tools ask these and get "nothing here".
  canDraw() {
    return false;
  }

  kindFor() {
    return null;
  }

  whyCannotDraw() {
    return gettext("This viewer is read-only.");
  }

  hitFinding() {
    return null;
  }

  selectedShape() {
    return null;
  }

  select() {}

  isOwn() {
    return false;
  }

  commitShape() {}

  updateShape() {}
}

Object.assign(SeriesViewer.prototype, sliceViewMethods);

const boot = JSON.parse(document.getElementById("sv-bootstrap").textContent);
window.__viewer = new SeriesViewer(boot);
