// Adding a finding no reader marked: the arbitrator starts one, draws it with the
// contour, ellipse or point tool (editing.js commits the shapes), chooses its type
// and attributes from the schema and gives the required reason. Added findings
// are saved with the other decisions (decisions.added, each by its key, a UUID
// kept across drafts), listed before signing and signed with the rest; the
// server writes them to the reference standard with no supporting reads. A blind
// arbitrator's additions are proposals the tie-breaker decides on; the
// tie-breaker may take one over as it is. Installed on Arbitration.prototype.

import { buildForm, label } from "../viewer/forms.js";
import { DRAW_TOOLS } from "../viewer/tools.js";
import { $, h } from "../viewer/ui.js";
import { addedName, describeAdded, typeOf } from "./decisions.js";

/** A random (version 4) UUID, also where crypto.randomUUID is missing (plain HTTP). */
function uuid4() {
  if (window.crypto.randomUUID) return window.crypto.randomUUID();
  const b = window.crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** Methods of Arbitration for the findings the arbitrator adds. */
export const addingMethods = {
  addedFindings() {
    return this.saver.local.added || [];
  },

  selectedAddition() {
    return this.selectedAdded ? this.saver.get("added", this.selectedAdded) : null;
  },

  /** Start a finding no reader marked, of the schema's first type, and select it. */
  newFinding() {
    if (!this.writable) return;
    const type = (this.schema.finding_types || [])[0];
    if (!type) return;
    const key = uuid4();
    this.saver.set("added", key, { key, finding_type: type.key, attributes: {} });
    this.selectAdded(key);
    this.flash(gettext("Draw the new finding on the image with the contour, ellipse or point tool."));
  },

  selectAdded(key) {
    this.selectedAdded = key;
    this.selectedId = null;
    const added = this.selectedAddition();
    const slices = ((added && added.geometry && added.geometry.shapes) || []).map((s) => s.slice_index);
    if (slices.length && !slices.includes(this.slice)) this.goToSlice(slices[Math.floor(slices.length / 2)]);
    if (DRAW_TOOLS.has(this.tool) && !this.canDraw(this.tool)) this.setTool("select");
    this.renderClusters();
    this.renderDecision();
    this.redraw();
  },

  _setAdded(key, patch) {
    const before = this.saver.get("added", key);
    if (!before) return;
    const next = { ...before, ...patch };
    for (const [k, v] of Object.entries(next)) if (v === undefined) delete next[k];
    this.saver.set("added", key, next);
    this.renderAdded();
  },

  removeAdded(key) {
    this.saver.set("added", key, null);
    if (this.selectedAdded === key) this.selectedAdded = null;
    this.renderAdded();
    this.renderDecision();
    this.redraw();
  },

  _addedItem(added, index, { proposal = null } = {}) {
    const slices = ((added.geometry && added.geometry.shapes) || []).map((s) => s.slice_index + 1);
    const where = slices.length ? (slices.length > 1 ? interpolate(gettext("slices %s–%s"), [Math.min(...slices), Math.max(...slices)]) : interpolate(gettext("slice %s"), [slices[0]])) : gettext("not drawn yet");
    const on = !proposal && added.key === this.selectedAdded;
    const item = h("li", { class: `arb-cluster arb-added${on ? " on" : ""}`, "data-testid": proposal ? "added-proposal" : "added-finding", "data-key": added.key, tabIndex: 0 }, [
      h("div", { class: "arb-cluster-head" }, [h("strong", { text: proposal ? interpolate(gettext("Proposed by blind arbitrator %s"), [proposal]) : addedName(index) }), h("span", { class: "arb-where", text: where })]),
      h("div", { class: "arb-decided ok", text: describeAdded(added, this.schema, this.lang) }),
    ]);
    const reason = (this.reasonCodes.find((r) => r.code === added.reason_code) || {}).label;
    if (reason) item.append(h("div", { class: "arb-reasons", text: [reason, added.reason_text].filter(Boolean).join(" — ") }));
    if (proposal) {
      const mine = Boolean(this.saver.get("added", added.key));
      const take = h("button", { type: "button", class: "arb-action", "data-testid": "take-proposal", text: mine ? gettext("Taken over") : gettext("Take over as it is"), disabled: mine || !this.writable });
      take.addEventListener("click", (e) => {
        e.stopPropagation();
        this.saver.set("added", added.key, added);
        this.selectAdded(added.key);
      });
      item.append(take);
    } else item.addEventListener("click", () => this.selectAdded(added.key));
    return item;
  },

  /** The side panel's list of added findings (and, for the tie-breaker, the proposals). */
  renderAdded() {
    const box = $("#arb-added");
    if (!box) return;
    box.textContent = "";
    this.addedFindings().forEach((a, i) => box.append(this._addedItem(a, i)));
    const blind = this.task.blind_decisions;
    for (const who of blind ? ["A", "B"] : []) {
      for (const a of (blind[who] && blind[who].added) || []) box.append(this._addedItem(a, 0, { proposal: who }));
    }
    if (!box.children.length) box.append(h("li", { class: "ws-empty", text: this.writable ? gettext("None. Add a finding that no reader marked, if you see one.") : gettext("None.") }));
    $("#arb-add").hidden = !this.writable;
  },

  /** The decision panel of the selected added finding: type, shape, attributes, reason. */
  renderAddedDecision(box) {
    const added = this.selectedAddition();
    if (!added) return false;
    const index = this.addedFindings().findIndex((a) => a.key === added.key);
    const type = typeOf(this.schema, added.finding_type);
    box.append(h("h2", { text: `${addedName(index)} · ${label(type.label, this.lang)}` }));
    box.append(h("p", { class: "ws-hint", "data-testid": "added-hint", text: gettext("A finding no reader marked. Draw it with the contour, ellipse or point tool on each slice it covers (Select reshapes it), describe it and give your reason: it goes into the reference standard when you sign, with no supporting reads.") }));
    const typeSelect = h("select", { id: "added-type", "data-testid": "added-type", disabled: !this.writable });
    for (const t of this.schema.finding_types || []) typeSelect.append(h("option", { value: t.key, text: label(t.label, this.lang) || t.key, selected: t.key === added.finding_type }));
    typeSelect.addEventListener("change", () => {
      const next = typeOf(this.schema, typeSelect.value);
      // A shape the new type cannot take is dropped; attributes it does not have too.
      const keep = added.geometry && (next.geometry || []).includes(added.geometry.kind) ? added.geometry : undefined;
      const keys = new Set((next.attributes || []).map((a) => a.key));
      const attributes = Object.fromEntries(Object.entries(added.attributes || {}).filter(([k]) => keys.has(k)));
      this._setAdded(added.key, { finding_type: typeSelect.value, geometry: keep, attributes });
      this.renderDecision();
      this.redraw();
    });
    box.append(h("div", { class: "arb-reason-box" }, [h("label", { for: "added-type", class: "sf-label", text: gettext("Finding type") }), typeSelect]));
    const shapes = (added.geometry && added.geometry.shapes) || [];
    box.append(h("p", { class: "arb-where", "data-testid": "added-drawn", text: shapes.length ? interpolate(ngettext("Drawn on %s slice", "Drawn on %s slices", shapes.length), [shapes.length]) : gettext("Not drawn yet.") }));
    const formBox = h("div", { class: "ws-form arb-attrs", "data-testid": "added-attributes" });
    box.append(h("h3", { class: "arb-sub", text: gettext("Attributes of the reference finding") }), formBox);
    buildForm(formBox, type.attributes || [], added.attributes || {}, {
      lang: this.lang,
      idPrefix: `added-${added.key.slice(0, 8)}`,
      disabled: !this.writable,
      onChange: (next) => this._setAdded(added.key, { attributes: next }),
    });
    box.append(this._reasonControls(added, (patch) => this._setAdded(added.key, patch), `added-${added.key.slice(0, 8)}`));
    if (this.writable) {
      const remove = h("button", { type: "button", class: "arb-action", "data-testid": "added-remove", text: gettext("Remove this added finding") });
      remove.addEventListener("click", () => this.removeAdded(added.key));
      box.append(h("div", { class: "arb-actions" }, [remove]));
    }
    return true;
  },
};
