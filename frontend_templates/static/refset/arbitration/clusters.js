// The disputed clusters and the reads: the list with each cluster's reasons and
// decision, selecting a cluster (its slice, its centre, its members highlighted),
// and the readers' colours and toggles. Installed on Arbitration.prototype.

import { label } from "../viewer/forms.js";
import { dashSwatchStyle, readerDash } from "../viewer/labels.js";
import { DRAW_TOOLS } from "../viewer/tools.js";
import { $, h, readerNumber } from "../viewer/ui.js";
import { describe, typeOf } from "./decisions.js";

const READER_COLOURS = ["#ff5252", "#40c4ff", "#69f0ae", "#ffab40", "#e040fb", "#eeff41", "#f48fb1", "#80cbc4"];

/** Methods of Arbitration for the cluster list and the readers. */
export const clusterMethods = {
  selected() {
    return this.clusters.find((c) => c.id === this.selectedId) || null;
  },

  _clusterSlices(cluster) {
    const slices = new Set();
    for (const m of cluster.members) for (const s of (m.geometry && m.geometry.shapes) || []) slices.add(s.slice_index);
    return [...slices].sort((a, b) => a - b);
  },

  /** The screen box [x0, y0, x1, y1] in image coordinates of a cluster's marks on
   * the current slice (else on all its slices), or null. */
  _clusterBox(cluster) {
    if (!cluster) return null;
    const boxOf = (onSlice) => {
      let box = null;
      for (const m of cluster.members) {
        for (const s of (m.geometry && m.geometry.shapes) || []) {
          if (onSlice && s.slice_index !== this.slice) continue;
          for (const [c, r] of s.points) {
            box = box ? [Math.min(box[0], c), Math.min(box[1], r), Math.max(box[2], c), Math.max(box[3], r)] : [c, r, c, r];
          }
        }
      }
      return box;
    };
    return boxOf(true) || boxOf(false);
  },

  /** Bring a cluster's marks into view without clipping them: the view moves (and
   * zooms out if it must) only when they are not all inside it already. */
  _frameCluster(cluster) {
    const box = this._clusterBox(cluster);
    if (box && this.defaultWindow) this.viewport.ensureVisible(box);
    // The multiplanar views cut through the cluster's centre (viewer/mpr.js crosshair).
    if (box && this.mpr) this.mpr.centreOn([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2]);
  },

  /** Select a cluster: jump to its middle slice, bring it into view, highlight its members. */
  selectCluster(id, { jump = true } = {}) {
    this.selectedId = id;
    this.selectedAdded = null;
    const cluster = this.selected();
    if (cluster && jump) {
      const slices = this._clusterSlices(cluster);
      if (slices.length && !slices.includes(this.slice)) this.goToSlice(slices[Math.floor(slices.length / 2)]);
      this._frameCluster(cluster);
    }
    if (DRAW_TOOLS.has(this.tool) && !this.canDraw(this.tool)) this.setTool("select");
    this.renderClusters();
    this.renderDecision();
    this.redraw();
  },

  stepCluster(step) {
    if (!this.clusters.length) return;
    const i = this.clusters.findIndex((c) => c.id === this.selectedId);
    const next = this.clusters[(i + step + this.clusters.length) % this.clusters.length];
    this.selectCluster(next.id);
  },

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
  },

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
        settled ? null : h("div", { class: `arb-decided ${d ? "ok" : "todo"}`, "data-testid": "cluster-decision", text: d ? `✓ ${describe(cluster, d, this.schema, this.lang, this.consensusMethod)}` : gettext("to decide") }),
      ],
    );
    if (!settled) item.addEventListener("click", () => this.selectCluster(cluster.id));
    else
      item.addEventListener("click", () => {
        const s = this._clusterSlices(cluster);
        if (s.length) this.goToSlice(s[Math.floor(s.length / 2)]);
      });
    return item;
  },

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
    this.renderAdded();
  },

  readerColour(reader) {
    return READER_COLOURS[(readerNumber(reader) - 1) % READER_COLOURS.length];
  },

  renderReaders() {
    const box = $("#arb-readers");
    box.textContent = "";
    const all = [...this.clusters, ...this.settled];
    for (const { label: reader } of this.boot.readers) {
      const marks = all.filter((c) => c.members.some((m) => m.reader === reader)).length;
      const row = h("label", { class: "ws-reader arb-reader", "data-reader": reader }, [
        h("input", { type: "checkbox", checked: !this.hiddenReaders.has(reader), "data-testid": `toggle-${reader}` }),
        h("span", { class: "ws-swatch ws-swatch-line", style: dashSwatchStyle(this.readerColour(reader), readerDash(reader)) }),
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
  },
};
