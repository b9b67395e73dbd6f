// Pointer interaction: the active tool on the left button, window/level on the
// right button, pan on the middle button, slices on the wheel (zoom with Ctrl).
// Everything drawn is converted to image coordinates at once; screen coordinates
// never leave this module.

import { handlesOf, moveHandle, simplify, translate } from "./geometry.js";

export const DRAW_TOOLS = new Set(["point", "box", "ellipse", "polygon", "freehand"]);

export class ToolController {
  constructor(ws) {
    this.ws = ws;
    this.drag = null;
    this.draft = null; // {kind, points} being drawn (image coordinates)
    this.wheelAccumulator = 0;
    const canvas = ws.viewport.canvas;
    canvas.addEventListener("pointerdown", (e) => this.down(e));
    canvas.addEventListener("pointermove", (e) => this.move(e));
    canvas.addEventListener("pointerup", (e) => this.up(e));
    canvas.addEventListener("pointercancel", (e) => this.up(e));
    canvas.addEventListener("dblclick", (e) => this.doubleClick(e));
    canvas.addEventListener("wheel", (e) => this.wheel(e), { passive: false });
    canvas.addEventListener("contextmenu", (e) => e.preventDefault());
  }

  _point(e) {
    const rect = this.ws.viewport.canvas.getBoundingClientRect();
    return [e.clientX - rect.left, e.clientY - rect.top];
  }

  cancel() {
    const had = Boolean(this.draft);
    this.draft = null;
    this.drag = null;
    this.ws.redraw();
    return had;
  }

  down(e) {
    const ws = this.ws;
    const p = this._point(e);
    ws.viewport.canvas.setPointerCapture(e.pointerId);
    ws.viewport.canvas.focus({ preventScroll: true });
    if (e.button === 2) {
      this.drag = { mode: "wl", start: p, window: { ...ws.window } };
      return;
    }
    if (e.button === 1) {
      e.preventDefault();
      this.drag = { mode: "pan", last: p };
      return;
    }
    if (e.button !== 0) return;
    const tool = ws.tool;
    const img = ws.viewport.toImage(p);
    if (tool === "wl") this.drag = { mode: "wl", start: p, window: { ...ws.window } };
    else if (tool === "pan") this.drag = { mode: "pan", last: p };
    else if (tool === "zoom") this.drag = { mode: "zoom", last: p, anchor: p };
    else if (tool === "crosshair" && ws.crosshairAt) {
      // Multiplanar views (mpr.js): the crosshair follows the pointer while it is down.
      this.drag = { mode: "crosshair" };
      ws.crosshairAt(img);
    } else if (tool === "select") this._selectDown(p, img, e);
    else if (!ws.canDraw(tool)) {
      ws.flash(ws.whyCannotDraw(tool));
    } else if (tool === "point") {
      ws.commitShape("point", [img]);
    } else if (tool === "box" || tool === "ellipse") {
      this.draft = { kind: tool, points: [img, img] };
      this.drag = { mode: "draw" };
    } else if (tool === "freehand") {
      this.draft = { kind: "freehand", points: [img] };
      this.drag = { mode: "draw" };
    } else if (tool === "polygon") {
      if (!this.draft) this.draft = { kind: "polygon", points: [img, img] };
      else {
        const first = ws.viewport.toScreen(this.draft.points[0]);
        if (this.draft.points.length > 3 && Math.hypot(first[0] - p[0], first[1] - p[1]) < 8) {
          this.draft.points.pop();
          this.finishPolygon();
          return;
        }
        this.draft.points.push(img);
      }
    } else if (tool === "line" || tool === "axes") {
      this.draft = { kind: tool, points: [img, img] };
      this.drag = { mode: "draw" };
    }
    ws.redraw();
  }

  _selectDown(p, img, e) {
    const ws = this.ws;
    const selected = ws.selectedShape();
    if (selected && ws.writable) {
      // A shape may bring handles of its own (mpr.js: a finding's frame on a plane).
      const handles = selected.handles || handlesOf(selected.kind, selected.points);
      let best = null;
      for (const [handle, hp] of handles) {
        const s = ws.viewport.toScreen(hp);
        const d = Math.hypot(s[0] - p[0], s[1] - p[1]);
        if (d <= 7 && (!best || d < best.d)) best = { handle, d };
      }
      if (best) {
        this.drag = {
          mode: "reshape",
          handle: best.handle,
          uid: selected.uid,
          points: selected.points,
          kind: selected.kind,
          moveHandle: selected.moveHandle || null,
          moved: false,
        };
        return;
      }
    }
    const uid = ws.hitFinding(p);
    if (uid) {
      ws.select(uid);
      const shape = ws.selectedShape();
      if (shape && ws.writable && ws.isOwn(uid)) {
        this.drag = { mode: "move", uid, start: img, points: shape.points, moved: false };
      }
    } else if (!e.shiftKey) {
      ws.select(null);
      this.drag = { mode: "pan", last: p };
    }
  }

  move(e) {
    const ws = this.ws;
    const p = this._point(e);
    ws.pointerAt(p);
    if (this.draft && this.draft.kind === "polygon" && !this.drag) {
      this.draft.points[this.draft.points.length - 1] = ws.viewport.toImage(p);
      ws.redraw();
      return;
    }
    const drag = this.drag;
    if (!drag) return;
    if (drag.mode === "wl") {
      const dx = p[0] - drag.start[0];
      const dy = p[1] - drag.start[1];
      const k = Math.max(drag.window.width, 10) / 300;
      ws.setWindow(drag.window.center + dy * k, Math.max(1, drag.window.width + dx * k), { custom: true });
    } else if (drag.mode === "pan") {
      ws.viewport.pan(p[0] - drag.last[0], p[1] - drag.last[1]);
      drag.last = p;
      ws.redraw();
    } else if (drag.mode === "zoom") {
      ws.viewport.zoomAt(Math.exp((drag.last[1] - p[1]) / 150), drag.anchor[0], drag.anchor[1]);
      drag.last = p;
      ws.redraw();
    } else if (drag.mode === "crosshair") {
      ws.crosshairAt(ws.viewport.toImage(p));
    } else if (drag.mode === "draw") {
      const img = ws.viewport.toImage(p);
      if (this.draft.kind === "freehand") this.draft.points.push(img);
      else this.draft.points[1] = img;
      ws.redraw();
    } else if (drag.mode === "move") {
      const img = ws.viewport.toImage(p);
      const points = translate(drag.points, img[0] - drag.start[0], img[1] - drag.start[1]);
      ws.updateShape(drag.uid, points, { merge: `move-${drag.start.join()}`, mode: "move" });
      drag.moved = true;
    } else if (drag.mode === "reshape") {
      const img = ws.viewport.toImage(p);
      const falloff = drag.kind === "contour" ? Math.max(2, Math.round(drag.points.length / 12)) : 0;
      const points = drag.moveHandle
        ? drag.moveHandle(drag.handle, img, drag.points)
        : moveHandle(drag.kind, drag.points, drag.handle, img, { falloff });
      ws.updateShape(drag.uid, points, { merge: `reshape-${drag.handle}-${drag.points.length}`, mode: "reshape" });
      drag.moved = true;
    }
  }

  up(e) {
    const ws = this.ws;
    const drag = this.drag;
    this.drag = null;
    if (!drag || drag.mode !== "draw" || !this.draft) return;
    const draft = this.draft;
    this.draft = null;
    const [a, b] = draft.points;
    const screenSize = (pa, pb) => {
      const sa = ws.viewport.toScreen(pa);
      const sb = ws.viewport.toScreen(pb);
      return Math.hypot(sa[0] - sb[0], sa[1] - sb[1]);
    };
    if (draft.kind === "box" || draft.kind === "ellipse") {
      if (screenSize(a, b) >= 4) {
        ws.commitShape(draft.kind, [
          [Math.min(a[0], b[0]), Math.min(a[1], b[1])],
          [Math.max(a[0], b[0]), Math.max(a[1], b[1])],
        ]);
      }
    } else if (draft.kind === "freehand") {
      const step = 1.5 / (ws.viewport.zoom * Math.min(ws.viewport.sx, ws.viewport.sy));
      const points = simplify(draft.points, Math.max(step, 0.05));
      if (points.length >= 3) ws.commitShape("freehand", points);
    } else if (draft.kind === "line") {
      if (screenSize(a, b) >= 3) ws.addMeasurement(a, b);
    } else if (draft.kind === "axes") {
      if (screenSize(a, b) >= 3) ws.addAxis(a, b);
    }
    ws.redraw();
  }

  doubleClick() {
    if (this.draft && this.draft.kind === "polygon") {
      // The double click added two points at the same place: drop them.
      this.draft.points.pop();
      this.finishPolygon();
    }
  }

  finishPolygon() {
    const draft = this.draft;
    this.draft = null;
    if (draft && draft.points.length >= 3) this.ws.commitShape("polygon", draft.points);
    this.ws.redraw();
  }

  /** Keys that belong to a drawing in progress; true when handled. */
  key(combo) {
    if (!this.draft || this.draft.kind !== "polygon") return false;
    if (combo === "enter") {
      this.draft.points.pop();
      this.finishPolygon();
      return true;
    }
    if (combo === "delete" && this.draft.points.length > 2) {
      this.draft.points.splice(this.draft.points.length - 2, 1);
      this.ws.redraw();
      return true;
    }
    return false;
  }

  wheel(e) {
    e.preventDefault();
    const ws = this.ws;
    if (e.ctrlKey || e.metaKey) {
      const p = this._point(e);
      ws.viewport.zoomAt(Math.exp(-e.deltaY / 400), p[0], p[1]);
      ws.redraw();
      return;
    }
    const unit = e.deltaMode === 1 ? 1 / 3 : e.deltaMode === 2 ? 10 : 1 / 100;
    this.wheelAccumulator += e.deltaY * unit;
    const steps = Math.trunc(this.wheelAccumulator);
    if (steps) {
      this.wheelAccumulator -= steps;
      ws.goToSlice(ws.slice + steps);
    }
  }
}
