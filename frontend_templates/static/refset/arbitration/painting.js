// Painting the arbitration view: the slice (sliceview.js _paintSlice), every
// read's marks in its reader's colour, the selected cluster highlighted, what the
// decision makes of it in gold, the signed reference and the shape being drawn.
// Installed on Arbitration.prototype.

import { readerDash } from "../viewer/labels.js";
import { $ } from "../viewer/ui.js";
import { addedName, mergedGeometry } from "./decisions.js";

const DECISION_COLOUR = "#ffd54a";

/** Methods of Arbitration that paint the canvas and its corner texts. */
export const paintingMethods = {
  paint() {
    const frame = this._paintSlice();
    // The workstation's corner texts: slice, position, thickness; window, zoom, size.
    const info = this._viewInfo(frame);
    $("#ws-tl").textContent = info.left.join("\n");
    $("#ws-tr").textContent = info.right.join("\n");
    this.canvas.dataset.slice = String(this.slice);
  },

  _overlay(ctx, frame) {
    const vp = this.viewport;
    if (!frame) this._paintLoading(ctx);
    const drawMembers = (cluster, style) => {
      for (const m of cluster.members) {
        if (this.hiddenReaders.has(m.reader)) continue;
        const shape = this._shapeOn(m.geometry, this.slice);
        // Each reader's own dash besides its colour: identical outlines stay apart.
        const look = { color: this.readerColour(m.reader), label: m.reader, dash: readerDash(m.reader), ...style };
        if (shape) vp.drawShape(ctx, m.geometry.kind, shape.points, look);
      }
    };
    if (this.showSettled) for (const c of this.settled) drawMembers(c, { width: 1 });
    for (const c of this.clusters) if (c.id !== this.selectedId) drawMembers(c, { width: 1.2 });
    const selected = this.selected();
    if (selected) drawMembers(selected, { width: 2.2, fill: true });
    // What the decision makes of the selected cluster, in gold.
    const d = selected && this.saver.get("clusters", selected.id);
    let result = null;
    if (d && d.action === "accept_reader") {
      const m = selected.members.find((x) => x.uid === d.finding);
      if (m) result = { geometry: m.geometry, text: `✓ ${m.reader}` };
    } else if (d && d.action === "accept_merged" && mergedGeometry(selected, d.method, this.consensusMethod)) {
      // The shape that will be signed: the chosen method's (STAPLE or majority vote),
      // the protocol's consensus rule when none is chosen.
      result = { geometry: mergedGeometry(selected, d.method, this.consensusMethod), text: `✓ ${gettext("merged")}` };
    } else if (d && d.action === "edit" && d.geometry) {
      result = { geometry: d.geometry, text: `✎ ${gettext("edited")}`, handles: this.writable };
    }
    if (result) {
      const shape = this._shapeOn(result.geometry, this.slice);
      if (shape) vp.drawShape(ctx, result.geometry.kind, shape.points, { color: DECISION_COLOUR, width: 2.5, dash: [3, 2], label: result.text, handles: result.handles });
    }
    // Findings the arbitrator adds, in gold; the selected one with its handles.
    if (this.writable) {
      this.addedFindings().forEach((added, i) => {
        const shape = this._shapeOn(added.geometry, this.slice);
        const on = added.key === this.selectedAdded;
        if (shape) vp.drawShape(ctx, added.geometry.kind, shape.points, { color: DECISION_COLOUR, width: on ? 2.5 : 1.5, dash: on ? [3, 2] : [6, 4], label: `+ ${addedName(i)}`, handles: on });
      });
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
  },
};
