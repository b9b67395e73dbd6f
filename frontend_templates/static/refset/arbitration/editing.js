// Editing the reference finding on the image when the decision on the selected
// cluster is "Edit", or a finding the arbitrator adds (adding.js): which tools can
// draw it, hit-testing every read's marks and the added findings, committing a
// drawn shape and reshaping the gold outline. The workstation's ToolController
// drives these. Installed on Arbitration.prototype.

import { findingCentreMm, hitShape, round2 } from "../viewer/geometry.js";
import { typeOf } from "./decisions.js";

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
    const toScreen = this.viewport.toScreen;
    const edit = this._editing();
    const editShape = edit && this._shapeOn(edit.d.geometry, this.slice);
    if (editShape && hitShape(edit.d.geometry.kind, editShape.points, p, toScreen)) return "edit";
    for (const added of this.addedFindings()) {
      const shape = this._shapeOn(added.geometry, this.slice);
      if (shape && hitShape(added.geometry.kind, shape.points, p, toScreen)) return `added:${added.key}`;
    }
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
