// Editing the reference finding on the image when the decision on the selected
// cluster is "Edit", or a finding the arbitrator adds (adding.js): which tools can
// draw it, hit-testing every read's marks and the added findings, committing a
// drawn shape and reshaping the gold outline. The workstation's ToolController
// drives these, on the main view and on each multiplanar view (viewer/mpr.js:
// hitPlane, commitPlaneShapes, editableGeometry, updateGeometry), where the
// edited outline is moved or resized by its frame. Installed on
// Arbitration.prototype.

import { findingCentreMm, hitShape, round2 } from "../viewer/geometry.js";
import { hitCuts } from "../viewer/planemarks.js";
import { typeOf } from "./decisions.js";
import { DECISION_COLOUR } from "./painting.js";

/** Methods of Arbitration for the edited finding's outline. */
export const editingMethods = {
  /** What is being drawn: {kind, id, d, findingType} of the saver's item (the
   * selected cluster's "Edit" decision or the selected added finding), or null. */
  _editing() {
    if (!this.writable) return null;
    const added = this.selectedAddition();
    if (added) return { kind: "added", id: added.key, d: added, findingType: added.finding_type };
    const cluster = this.selected();
    const d = cluster && this.saver.get("clusters", cluster.id);
    return d && d.action === "edit" ? { kind: "clusters", id: cluster.id, d, findingType: d.finding_type || cluster.finding_type } : null;
  },

  kindFor(tool) {
    const edit = this._editing();
    if (!edit) return null;
    const allowed = typeOf(this.schema, edit.findingType).geometry || [];
    const wants = { point: ["point"], ellipse: ["ellipse"], freehand: ["contour", "polygon"] }[tool] || [];
    return wants.find((k) => allowed.includes(k)) || null;
  },

  canDraw(tool) {
    return Boolean(this.kindFor(tool));
  },

  whyCannotDraw(tool) {
    if (!this.writable) return gettext("This arbitration is signed and read-only.");
    if (!this._editing()) return gettext("Choose “Edit” for the selected cluster, or add a finding, to draw it.");
    return interpolate(gettext("This finding type cannot be drawn with the %s tool."), [tool]);
  },

  selectedShape() {
    const edit = this._editing();
    const shape = edit && this._shapeOn(edit.d.geometry, this.slice);
    return shape ? { uid: "edit", kind: edit.d.geometry.kind, points: shape.points } : null;
  },

  isOwn(uid) {
    return uid === "edit";
  },

  _saveEdit(mutate) {
    const edit = this._editing();
    if (!edit) return;
    const d = JSON.parse(JSON.stringify(edit.d));
    mutate(d);
    if (d.geometry) d.geometry.centre_mm = findingCentreMm(d.geometry, this.geometry);
    this.saver.set(edit.kind, edit.id, d);
    this.renderClusters();
    this.redraw();
  },

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
  },

  updateShape(uid, points) {
    if (uid !== "edit") return;
    this._saveEdit((d) => {
      const shape = this._shapeOn(d.geometry, this.slice);
      if (shape) shape.points = round2(points);
    });
  },

  hitFinding(p) {
    return this._hitMarks(p, null, this.slice, this.viewport.toScreen);
  },

  hitPlane(p, plane, index, toScreen) {
    return this._hitMarks(p, plane, index, toScreen);
  },

  /** The mark under screen point `p` on a view (`plane` null: the main view at slice `index`). */
  _hitMarks(p, plane, index, toScreen) {
    const edit = this._editing();
    if (edit && hitCuts(edit.d.geometry, plane, index, p, toScreen, hitShape)) return "edit";
    for (const added of this.addedFindings()) {
      if (hitCuts(added.geometry, plane, index, p, toScreen, hitShape)) return `added:${added.key}`;
    }
    const groups = this.showSettled ? [this.clusters, this.settled] : [this.clusters];
    for (const list of groups) {
      for (const cluster of list) {
        for (const m of cluster.members) {
          if (this.hiddenReaders.has(m.reader)) continue;
          if (hitCuts(m.geometry, plane, index, p, toScreen, hitShape)) return `cluster:${cluster.id}`;
        }
      }
    }
    return null;
  },

  /** A cluster picked on a plane: selected, the main view on its slices. */
  selectFromPlane(uid) {
    this.select(uid);
    const cluster = this.selected();
    if (uid && String(uid).startsWith("cluster:") && cluster) {
      const slices = this._clusterSlices(cluster);
      if (slices.length && !slices.includes(this.slice)) this.goToSlice(slices[Math.floor(slices.length / 2)]);
    }
  },

  /** Outlines drawn on a plane: the edited finding's on those slices. */
  commitPlaneShapes(kind, shapes, where) {
    if (!this._editing()) {
      this.flash(this.whyCannotDraw("freehand"));
      return;
    }
    const slices = new Set(shapes.map((s) => s.slice_index));
    this._saveEdit((d) => {
      if (!d.geometry || d.geometry.kind !== kind) d.geometry = { kind, shapes: [] };
      d.geometry.shapes = d.geometry.shapes.filter((s) => !slices.has(s.slice_index));
      d.geometry.shapes.push(...shapes);
      d.geometry.shapes.sort((a, b) => a.slice_index - b.slice_index);
    });
    this.renderDecision();
    this.flash(where);
  },

  /** The edited outline (the "Edit" decision or the selected added finding). */
  editableGeometry() {
    const edit = this._editing();
    return edit && edit.d.geometry ? { uid: "edit", geometry: edit.d.geometry, colour: DECISION_COLOUR } : null;
  },

  updateGeometry(uid, geometry) {
    if (uid !== "edit") return;
    this._saveEdit((d) => {
      d.geometry = geometry;
    });
  },

  select(uid) {
    if (!uid || uid === "edit") return;
    if (String(uid).startsWith("added:")) {
      const key = String(uid).slice("added:".length);
      if (key !== this.selectedAdded) this.selectAdded(key);
      return;
    }
    const id = Number(String(uid).split(":")[1]);
    if (this.clusters.some((c) => c.id === id)) this.selectCluster(id, { jump: false });
  },
};
