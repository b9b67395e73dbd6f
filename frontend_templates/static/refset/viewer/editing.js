// Editing the reader's own findings on the image: hit-testing, selection,
// committing drawn shapes, reshaping, deleting outlines, copying an outline to the
// next slice, rulers and long/short axes; and what the multiplanar views (mpr.js)
// ask of the page: the marks where they cross a plane, hit-testing there, storing
// a drawing made on a plane and a finding reshaped from one. Installed on
// Workstation.prototype.

import { findingCentreMm, hitShape, round2 } from "./geometry.js";
import { readerDash } from "./labels.js";
import { axisAttributes } from "./measures.js";
import { drawCuts, hitCuts } from "./planemarks.js";
import { OTHER_COLOURS, OWN_COLOURS, readerNumber, saveJSON } from "./ui.js";

/** Methods of Workstation that edit findings on the image. */
export const editingMethods = {
  _number(uid) {
    return this.store.list().findIndex((f) => f.uid === uid) + 1;
  },

  _colour(uid) {
    const n = this._number(uid);
    return OWN_COLOURS[(n - 1 + OWN_COLOURS.length) % OWN_COLOURS.length];
  },

  _otherColour(reader) {
    return OTHER_COLOURS[(readerNumber(reader) - 1) % OTHER_COLOURS.length];
  },

  isOwn(uid) {
    return Boolean(this.store.get(uid));
  },

  selectedShape() {
    const f = this.store.get(this.selected);
    if (!f) return null;
    const shape = this._shapeOn(f.geometry, this.slice);
    return shape ? { uid: f.uid, kind: f.geometry.kind, points: shape.points } : null;
  },

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
  },

  select(uid) {
    this.selected = uid;
    this.renderFindings();
    this.redraw();
  },

  _withCentre(geometry) {
    geometry.centre_mm = findingCentreMm(geometry, this.geometry);
    return geometry;
  },

  commitShape(tool, points) {
    const drawn = this._drawnShape(tool, points);
    if (!drawn) return;
    const { kind, shape } = drawn;
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
  },

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
  },

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
  },

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
  },

  stepFinding(step) {
    const list = this.store.list();
    if (!list.length) return;
    const i = list.findIndex((f) => f.uid === this.selected);
    const next = list[(i + step + list.length) % list.length];
    this.selected = next.uid;
    this._jumpTo(next.uid);
    this.renderFindings();
  },

  _jumpTo(uid) {
    const f = this.store.get(uid);
    if (!f || !f.geometry.shapes.length) return;
    if (!this._shapeOn(f.geometry, this.slice)) {
      const slices = f.geometry.shapes.map((s) => s.slice_index);
      const mid = slices[Math.floor(slices.length / 2)];
      this.goToSlice(mid);
    }
    this.redraw();
  },

  // -- the multiplanar views (mpr.js) -------------------------------------------------

  /** Others' marks, proposals and own findings where they cross `plane` at `index`. */
  paintPlane(ctx, vp, plane, index, drawn) {
    if (this.showOthers) {
      for (const f of this.store.others) {
        if (this.hiddenReaders.has(f.reader)) continue;
        const on = this.selected === `other:${f.id}`;
        const look = { color: this._otherColour(f.reader), dash: readerDash(f.reader), width: on ? 2.5 : 1.5, label: f.reader };
        drawCuts(ctx, vp, f.geometry, plane, index, look, drawn, f.reader);
      }
    }
    this._paintProposals(ctx, vp, plane, index, drawn);
    for (const f of this.store.list()) {
      const on = f.uid === this.selected;
      const name = `#${this._number(f.uid)}`;
      drawCuts(ctx, vp, f.geometry, plane, index, { color: this._colour(f.uid), width: on ? 2.5 : 1.5, fill: on, label: name }, drawn, name);
    }
  },

  hitPlane(p, plane, index, toScreen) {
    for (const f of this.store.list().reverse()) {
      if (hitCuts(f.geometry, plane, index, p, toScreen, hitShape)) return f.uid;
    }
    if (this.showOthers) {
      for (const f of this.store.others) {
        if (this.hiddenReaders.has(f.reader)) continue;
        if (hitCuts(f.geometry, plane, index, p, toScreen, hitShape)) return `other:${f.id}`;
      }
    }
    return null;
  },

  selectFromPlane(uid) {
    this.select(uid);
    if (uid) this._jumpTo(uid); // the main view shows the finding's outline
  },

  /** Outlines drawn on a plane: added to the selected finding where it has none on
   * those slices, else a new finding. `where` says where they were stored. */
  commitPlaneShapes(kind, shapes, where) {
    const current = this.store.get(this.selected);
    if (current && current.geometry.kind === kind && shapes.every((s) => !this._shapeOn(current.geometry, s.slice_index))) {
      this.store.update(current.uid, (f) => {
        f.geometry.shapes.push(...shapes);
        f.geometry.shapes.sort((a, b) => a.slice_index - b.slice_index);
        this._withCentre(f.geometry);
        if (f.source === "model_accepted") f.source = "model_edited";
        return f;
      });
      this.flash(`${interpolate(gettext("Added to finding #%s."), [this._number(current.uid)])} ${where}`);
      return;
    }
    const uid = this.store.create({
      finding_type: this.typeKey,
      geometry: this._withCentre({ kind, shapes, centre_mm: null }),
      attributes: {},
      source: "manual",
    });
    this.select(uid);
    this.flash(where);
  },

  /** The selected own finding, which the reader may reshape from a plane. */
  editableGeometry() {
    const f = this.writable ? this.store.get(this.selected) : null;
    return f ? { uid: f.uid, geometry: f.geometry, colour: this._colour(f.uid) } : null;
  },

  /** A finding reshaped from a plane (one undo step per drag: `merge`). */
  updateGeometry(uid, geometry, { merge } = {}) {
    this.store.update(
      uid,
      (f) => {
        f.geometry = this._withCentre(geometry);
        if (f.source === "model_accepted") f.source = "model_edited";
        return f;
      },
      { merge },
    );
  },

  addMeasurement(a, b) {
    this.measurements.push({ slice_index: this.slice, a: round2([a])[0], b: round2([b])[0] });
    saveJSON(this.measureKey, this.measurements);
    this.flash(this._lengthText(a, b));
  },

  _lengthText(a, b) {
    const v = this.geometry.length(a, b);
    return this.geometry.hasSpacing ? `${v.toFixed(1)} mm` : `${v.toFixed(1)} px`;
  },

  /** Long axis first, then the short axis; they fill the finding's axis attributes. */
  addAxis(a, b) {
    const f = this.store.get(this.selected);
    if (!f || !this._shapeOn(f.geometry, this.slice)) {
      this.flash(gettext("Select the finding on this slice first, then draw its long axis and then its short axis."));
      return;
    }
    const { long: longAttr, short: shortAttr } = axisAttributes(this.types.find((t) => t.key === f.finding_type));
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
  },
};
