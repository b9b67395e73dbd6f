// Painting the arbitration view: the slice (sliceview.js _paintSlice), every
// read's marks in its reader's colour and dash, the selected cluster highlighted,
// what the decision makes of it in gold, the signed reference and the shape being
// drawn. The same marks are drawn where they cross each multiplanar view of a CT
// volume (viewer/mpr.js asks paintPlane()), so every reader's finding shows in
// every view it crosses, with the reader toggles. Installed on
// Arbitration.prototype.

import { readerDash } from "../viewer/labels.js";
import { drawCuts } from "../viewer/planemarks.js";
import { $ } from "../viewer/ui.js";
import { addedName, mergedGeometry } from "./decisions.js";

export const DECISION_COLOUR = "#ffd54a";

/** Methods of Arbitration that paint the canvas and its corner texts. */
export const paintingMethods = {
  paint() {
    const frame = this._paintSlice();
    // The workstation's corner texts: slice, position, thickness; window, zoom, size.
    const info = this._viewInfo(frame);
    $("#ws-tl").textContent = [...info.left, this.mpr ? this.mpr.mainSlabText() : ""].filter(Boolean).join("\n");
    $("#ws-tr").textContent = info.right.join("\n");
    this.canvas.dataset.slice = String(this.slice);
    if (this.mpr) this.mpr.paint();
  },

  _overlay(ctx, frame) {
    const vp = this.viewport;
    if (!frame) this._paintLoading(ctx);
    this.drawn = [];
    this._paintMarks(ctx, vp, null, this.slice, this.drawn);
    const draft = this.tools.draft;
    if (draft) {
      const kind = draft.kind === "freehand" || draft.kind === "polygon" ? "polyline" : draft.kind;
      vp.drawShape(ctx, kind, draft.points, { color: "#ffffff", dash: [4, 3] });
    }
    if (this.mpr) this.mpr.paintMainOverlay(ctx);
    vp.drawScaleBar(ctx);
  },

  /** The marks where they cross a reformatted plane (viewer/mpr.js). */
  paintPlane(ctx, vp, plane, index, drawn) {
    this._paintMarks(ctx, vp, plane, index, drawn);
  },

  /** What the decision on the selected cluster makes of it: {geometry, text, handles}, or null. */
  _decisionResult(selected) {
    const d = selected && this.saver.get("clusters", selected.id);
    if (d && d.action === "accept_reader") {
      const m = selected.members.find((x) => x.uid === d.finding);
      return m ? { geometry: m.geometry, text: `✓ ${m.reader}` } : null;
    }
    if (d && d.action === "accept_merged" && mergedGeometry(selected, d.method, this.consensusMethod)) {
      // The shape that will be signed: the chosen method's (STAPLE or majority vote),
      // the protocol's consensus rule when none is chosen.
      return { geometry: mergedGeometry(selected, d.method, this.consensusMethod), text: `✓ ${gettext("merged")}` };
    }
    if (d && d.action === "edit" && d.geometry) return { geometry: d.geometry, text: `✎ ${gettext("edited")}`, handles: this.writable };
    return null;
  },

  /**
   * Every mark on a view: the main view (`plane` null) at slice `index`, or a
   * reformatted plane at its `index`. Handles are the main view's; a plane shows
   * the edited finding's frame instead (mpr.js). `drawn` notes what was drawn.
   */
  _paintMarks(ctx, vp, plane, index, drawn) {
    const drawMembers = (cluster, style) => {
      for (const m of cluster.members) {
        if (this.hiddenReaders.has(m.reader)) continue;
        // Each reader's own dash besides its colour: identical outlines stay apart.
        const look = { color: this.readerColour(m.reader), label: m.reader, dash: readerDash(m.reader), ...style };
        drawCuts(ctx, vp, m.geometry, plane, index, look, drawn, m.reader);
      }
    };
    if (this.showSettled) for (const c of this.settled) drawMembers(c, { width: 1 });
    for (const c of this.clusters) if (c.id !== this.selectedId) drawMembers(c, { width: 1.2 });
    const selected = this.selected();
    if (selected) drawMembers(selected, { width: 2.2, fill: true });
    // What the decision makes of the selected cluster, in gold.
    const result = this._decisionResult(selected);
    if (result) {
      const look = { color: DECISION_COLOUR, width: 2.5, dash: [3, 2], label: result.text, handles: !plane && result.handles };
      drawCuts(ctx, vp, result.geometry, plane, index, look, drawn, "decision");
    }
    // Findings the arbitrator adds, in gold; the selected one with its handles.
    if (this.writable) {
      this.addedFindings().forEach((added, i) => {
        const on = added.key === this.selectedAdded;
        const look = { color: DECISION_COLOUR, width: on ? 2.5 : 1.5, dash: on ? [3, 2] : [6, 4], label: `+ ${addedName(i)}`, handles: !plane && on };
        drawCuts(ctx, vp, added.geometry, plane, index, look, drawn, `added:${added.key}`);
      });
    }
    if (!this.writable) {
      for (const ref of this.boot.references || []) {
        if (ref.status !== "included" || !ref.geometry) continue;
        drawCuts(ctx, vp, ref.geometry, plane, index, { color: DECISION_COLOUR, width: 2, label: gettext("reference") }, drawn, "reference");
      }
    }
  },
};
