// A finding's measurements in the panel: long and short axis, area, volume and HU,
// as the server computed them from the outline when the finding was saved
// (qc/measurements.py states every rule), each number with its unit. The save
// queue hands them over ("measured"); the panel shows them for the selected finding.
//
// The schema's axis attributes (long_axis_mm, short_axis_mm) are the reader's
// answers and are not filled behind their back: a "Use these axes" button copies
// the measured axes into them (one undo step), shown while they differ. The axes
// tool (editing.js) fills them too, and axes drawn with it replace the contour's
// in the measurements. No copy without pixel spacing (pixels are not millimetres).
// Installed on Workstation.prototype.

import { canonical } from "./autosave.js";
import { h } from "./ui.js";

/** The number attributes the axes fill: {long, short} (either may be undefined). */
export function axisAttributes(type) {
  const attrs = (type && type.attributes) || [];
  return {
    long: attrs.find((x) => x.kind === "number" && /long_axis|diameter/.test(x.key)),
    short: attrs.find((x) => x.kind === "number" && /short_axis/.test(x.key)),
  };
}

const fixed = (v, digits) => (v == null ? null : Number(v).toFixed(digits));

/** [{key, label, text}] of the measurements worth showing, each text with its unit. */
export function measurementRows(m) {
  if (!m) return [];
  const units = m.units || {};
  const length = units.length || "mm";
  const reader = m.axes_from === "reader";
  const rows = [
    [
      "long_axis",
      reader ? gettext("Long axis (drawn)") : gettext("Long axis (contour)"),
      fixed(m.long_axis, 1),
      length,
    ],
    [
      "short_axis",
      reader ? gettext("Short axis (drawn)") : gettext("Short axis (contour)"),
      fixed(m.short_axis, 1),
      length,
    ],
    ["mean_diameter", gettext("Mean diameter"), fixed(m.mean_diameter, 1), length],
    [
      "area",
      interpolate(gettext("Area (slice %s)"), [m.slice_index + 1]),
      fixed(m.area, 1),
      units.area || `${length}²`,
    ],
    ["volume", gettext("Volume"), m.volume == null ? null : fixed(m.volume, m.volume >= 100 ? 0 : 1), units.volume],
    ["hu_mean", gettext("Mean density"), fixed(m.hu_mean, 0), units.hu],
    ["hu_max", gettext("Max density"), fixed(m.hu_max, 0), units.hu],
  ];
  if (reader && m.contour_long_axis != null) {
    rows.splice(2, 0, [
      "contour_axes",
      gettext("Contour axes"),
      `${fixed(m.contour_long_axis, 1)} × ${fixed(m.contour_short_axis, 1)}`,
      length,
    ]);
  }
  return rows
    .filter(([, , value, unit]) => value != null && unit)
    .map(([key, text, value, unit]) => ({ key, label: text, text: `${value} ${unit}` }));
}

/** Methods of Workstation for the measurements block and the axis prefill. */
export const measureMethods = {
  _measurementsOf(uid) {
    const saved = this.queue && this.queue.server[uid];
    return (saved && saved.measurements) || null;
  },

  /** The measurements block of the selected finding's attribute panel (under its head). */
  _renderMeasurements(f) {
    const box = this.attrsEl;
    let dl = box.querySelector(".ws-measures");
    const m = f ? this._measurementsOf(f.uid) : null;
    const rows = measurementRows(m);
    if (!rows.length) {
      if (dl) dl.remove();
      return;
    }
    if (!dl) {
      dl = h("dl", { class: "ws-measures", "data-testid": "measurements" });
      const head = box.querySelector(".ws-attrs-head");
      if (head) head.after(dl);
      else box.prepend(dl);
    }
    dl.textContent = "";
    // Drawn since the last save: these numbers are the saved outline's until it is sent.
    const saved = this.queue.server[f.uid] || {};
    const stale = saved.geometry ? canonical(saved.geometry) !== canonical(f.geometry) : this.queue.dirty.has(f.uid);
    dl.classList.toggle("stale", stale);
    dl.title = stale ? gettext("Updating after the next save") : gettext("Measured from the saved outline");
    for (const row of rows) {
      dl.append(h("dt", { text: row.label }), h("dd", { text: row.text, "data-measure": row.key }));
    }
    const fill = this.writable && !stale ? this._axisFill(f, m) : null;
    if (fill) {
      const button = h("button", {
        type: "button",
        class: "ws-measures-use",
        "data-testid": "use-axes",
        text: gettext("Use these axes"),
        title: gettext("Copy the measured long and short axis into the finding's fields"),
      });
      button.addEventListener("click", () => {
        this.store.update(f.uid, (g) => ({ ...g, attributes: { ...g.attributes, ...fill } }), { why: "attributes" });
      });
      dl.append(h("dd", { class: "ws-measures-actions" }, [button]));
    }
  },

  /** {attribute key: value in mm} the measured axes would change, or null. */
  _axisFill(f, m) {
    if (!m || (m.units || {}).length !== "mm") return null;
    const attrs = axisAttributes(this._typeOf(f.finding_type));
    const fill = {};
    for (const [which, key] of [
      ["long", "long_axis"],
      ["short", "short_axis"],
    ]) {
      const attr = attrs[which];
      if (!attr || m[key] == null) continue;
      const value = Math.round(m[key] * 10) / 10;
      if (f.attributes[attr.key] !== value) fill[attr.key] = value;
    }
    return Object.keys(fill).length ? fill : null;
  },

  /** The queue saved `uid` and the server measured it anew. */
  _measured(uid) {
    if (uid === this.selected) this._renderMeasurements(this.store.get(uid));
  },
};
