// Painting the workstation's view: the windowed slice is sliceview.js's
// _paintSlice() (one paint per animation frame; while a window drag runs on a large
// image, only the part in view at about screen resolution, lut.js renderVisible);
// here the overlays (others' marks,
// proposals, own findings, rulers, the shape being drawn), the corner texts and
// the paint timings. Installed on Workstation.prototype.

import { readerDash } from "./labels.js";
import { $ } from "./ui.js";

/** Methods of Workstation that paint the overlays and corner texts. */
export const paintingMethods = {
  paint() {
    const t0 = performance.now();
    const frame = this._paintSlice();
    if (frame && this.previewWhileDragging && !this.windowMovingAt) this._prepareWindowDrag();
    this._overlayText(frame);
    if (this.mpr) this.mpr.paint();
    if (this.fellow) this._paintFellow(); // a photograph's other eye (photo.js)
    this.paintTimes.push(performance.now() - t0);
    if (this.paintTimes.length > 2000) this.paintTimes.splice(0, 1000);
  },

  /** Once the view has rested a while, build (when idle) what a window drag on a
   * large image needs at this zoom (lut.js prepareVisible), so that the drag's first
   * frame does not. */
  _prepareWindowDrag() {
    clearTimeout(this._dragPrepTimer);
    this._dragPrepTimer = setTimeout(() => {
      const idle = window.requestIdleCallback || ((f) => setTimeout(f, 0));
      idle(() => this.renderer.prepareVisible(this.frames[this.slice], this.viewport), { timeout: 2000 });
    }, 300);
  },

  _overlay(ctx, frame) {
    const vp = this.viewport;
    if (!frame) {
      this._paintLoading(ctx);
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
          dash: readerDash(f.reader),
          width: on ? 2.5 : 1.5,
          label: f.reader,
        });
      }
    }
    this._paintProposals(ctx, vp);
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
    if (this.mpr) this.mpr.paintMainOverlay(ctx);
    vp.drawScaleBar(ctx);
  },

  _overlayText(frame) {
    const header = frame ? frame.header : null;
    const info = this._viewInfo(frame);
    this._setText("#ws-tl", [...info.left, this.mpr ? this.mpr.mainSlabText() : ""].filter(Boolean).join("\n"));
    this._setText("#ws-tr", [this._photoText(), ...info.right].filter(Boolean).join("\n"));
    let value = "";
    if (this.pointer && frame && frame.values && !frame.header.rgb) {
      const [c, r] = this.viewport.toImage(this.pointer);
      const col = Math.floor(c);
      const row = Math.floor(r);
      if (col >= 0 && row >= 0 && col < header.columns && row < header.rows) {
        const v = frame.values[row * header.columns + col];
        value = `(${col}, ${row})  ${Number.isInteger(v) ? v : v.toFixed(1)}${this.boot.series.modality === "CT" ? " HU" : ""}`;
      }
    } else if (this.pointer && frame && frame.values && frame.header.rgb) {
      // a photograph: the stored R, G, B under the pointer
      const [c, r] = this.viewport.toImage(this.pointer);
      const col = Math.floor(c);
      const row = Math.floor(r);
      if (col >= 0 && row >= 0 && col < header.columns && row < header.rows) {
        const i = 3 * (row * header.columns + col);
        value = `(${col}, ${row})  R ${frame.values[i]} G ${frame.values[i + 1]} B ${frame.values[i + 2]}`;
      }
    }
    this._setText("#ws-bl", value);
    this.canvas.dataset.slice = String(this.slice);
    if (this.window) {
      this.canvas.dataset.windowCenter = String(this.window.center);
      this.canvas.dataset.windowWidth = String(this.window.width);
    }
  },

  _setText(selector, text) {
    const node = $(selector);
    if (node.textContent !== text) node.textContent = text;
  },
};
