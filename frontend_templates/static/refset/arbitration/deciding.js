// Deciding: the panel of the selected cluster (accept a reader's finding, the
// merged one, edit, reject or exclude; the resulting attributes; the reason) and
// the disputed case-level labels. Every change goes to the draft saver.
// Installed on Arbitration.prototype.

import { buildForm, label } from "../viewer/forms.js";
import { findingCentreMm } from "../viewer/geometry.js";
import { $, h } from "../viewer/ui.js";
import { ACTION_NAMES, describe, fieldText, mergedGeometry, methodName, resultingAttributes, typeOf } from "./decisions.js";

/** Methods of Arbitration for the decision panel and the case-level labels. */
export const decidingMethods = {
  _reasonControls(current, onChange, idPrefix) {
    const select = h("select", { id: `${idPrefix}-reason`, "data-testid": "reason-code" });
    select.append(h("option", { value: "", text: gettext("— reason —") }));
    for (const r of this.reasonCodes) select.append(h("option", { value: r.code, text: r.label, selected: r.code === current.reason_code }));
    const text = h("textarea", { id: `${idPrefix}-text`, rows: 2, placeholder: gettext("Free text (optional; needed for “other”)"), "data-testid": "reason-text", value: current.reason_text || "" });
    select.disabled = text.disabled = !this.writable;
    select.addEventListener("change", () => onChange({ reason_code: select.value || undefined }));
    text.addEventListener("input", () => onChange({ reason_text: text.value || undefined }));
    return h("div", { class: "arb-reason-box" }, [h("label", { for: select.id, class: "sf-label", text: gettext("Reason") }), select, text]);
  },

  _setDecision(cluster, patch, { replace = false } = {}) {
    const before = this.saver.get("clusters", cluster.id) || {};
    const next = replace ? { ...patch } : { ...before, ...patch };
    for (const [k, v] of Object.entries(next)) if (v === undefined) delete next[k];
    if (replace) {
      if (before.reason_code && next.reason_code === undefined) next.reason_code = before.reason_code;
      if (before.reason_text && next.reason_text === undefined) next.reason_text = before.reason_text;
    }
    this.saver.set("clusters", cluster.id, next);
    this.renderClusters();
  },

  _chooseAction(cluster, action, extra = {}) {
    const d = { action, ...extra };
    if (action === "edit") {
      // Start from what is on screen: the chosen reader's shape or the merged one.
      const before = this.saver.get("clusters", cluster.id) || {};
      const member = cluster.members.find((m) => m.uid === before.finding) || cluster.members[0];
      const merged = before.action === "accept_merged" ? mergedGeometry(cluster, before.method, this.consensusMethod) : null;
      const source = merged && merged.shapes.length ? merged : member && member.geometry;
      const allowed = typeOf(this.schema, cluster.finding_type).geometry || [];
      if (source && allowed.includes(source.kind)) {
        d.geometry = { kind: source.kind, shapes: source.shapes.map((s) => ({ slice_index: s.slice_index, points: s.points.map((p) => [...p]) })) };
        d.geometry.centre_mm = findingCentreMm(d.geometry, this.geometry);
      }
      d.attributes = resultingAttributes(cluster, before.action ? before : { action: "accept_merged" });
    }
    this._setDecision(cluster, d, { replace: true });
    this.renderDecision();
    this.redraw();
  },

  _memberSummary(member) {
    const type = typeOf(this.schema, member.finding_type);
    const parts = [];
    for (const attr of type.attributes || []) {
      const v = member.attributes[attr.key];
      if (v === undefined || v === null || !attr.required) continue;
      parts.push(fieldText(attr, v, this.lang) + (attr.unit ? ` ${attr.unit}` : ""));
    }
    return parts.join(" · ");
  },

  renderDecision() {
    const box = $("#arb-decision");
    box.textContent = "";
    if (this.renderAddedDecision(box)) return;
    const cluster = this.selected();
    if (!cluster) {
      box.append(h("p", { class: "ws-hint", text: gettext("Select a cluster to decide it.") }));
      return;
    }
    const type = typeOf(this.schema, cluster.finding_type);
    const d = this.saver.get("clusters", cluster.id) || {};
    box.append(h("h2", { text: interpolate(gettext("Decide C%s · %s"), [cluster.number, label(type.label, this.lang)]) }));
    const blind = this.task.blind_decisions;
    if (blind) {
      const lines = ["A", "B"].map((who) => {
        const bd = blind[who].clusters[String(cluster.id)];
        return h("li", { text: `${interpolate(gettext("Blind arbitrator %s"), [who])}: ${describe(cluster, bd, this.schema, this.lang, this.consensusMethod)}` });
      });
      box.append(h("ul", { class: "arb-blind-list", "data-testid": "blind-decisions" }, lines));
    }
    const members = h("ul", { class: "arb-members" });
    for (const m of cluster.members) {
      const chosen = d.action === "accept_reader" && d.finding === m.uid;
      const button = h("button", {
        type: "button",
        class: `arb-action${chosen ? " on" : ""}`,
        text: interpolate(gettext("Accept %s"), [m.reader]),
        "data-testid": `accept-${m.reader}`,
        disabled: !this.writable,
      });
      button.addEventListener("click", () => this._chooseAction(cluster, "accept_reader", { finding: m.uid }));
      members.append(
        h("li", { class: `arb-member${chosen ? " on" : ""}`, "data-reader": m.reader }, [
          h("span", { class: "ws-swatch", style: `background:${this.readerColour(m.reader)}` }),
          h("strong", { text: m.reader }),
          h("span", { class: "arb-member-attrs", text: this._memberSummary(m) }),
          button,
        ]),
      );
    }
    box.append(members);
    const actions = h("div", { class: "arb-actions" });
    const addAction = (action, text, extra = {}, on = d.action === action) => {
      const b = h("button", { type: "button", class: `arb-action${on ? " on" : ""}`, text, "data-testid": `action-${action}${extra.method ? `-${extra.method}` : ""}`, disabled: !this.writable });
      b.addEventListener("click", () => this._chooseAction(cluster, action, extra));
      actions.append(b);
    };
    const rule = this.consensusMethod;
    if (cluster.members.length > 1 && (type.geometry || []).includes("contour")) {
      // The protocol's consensus rule first, and said to be the rule.
      for (const method of [rule, ...["majority", "staple"].filter((m) => m !== rule)]) {
        const text = method === rule ? interpolate(gettext("Merged: %s (the protocol's rule)"), [methodName(method)]) : interpolate(gettext("Merged: %s"), [methodName(method)]);
        addAction("accept_merged", text, { method }, d.action === "accept_merged" && (d.method || rule) === method);
      }
    } else if (cluster.members.length > 1) {
      addAction("accept_merged", ACTION_NAMES.accept_merged(), { method: rule });
    }
    addAction("edit", ACTION_NAMES.edit());
    addAction("reject", ACTION_NAMES.reject());
    addAction("exclude", ACTION_NAMES.exclude());
    box.append(actions);
    if (d.action === "accept_merged") {
      box.append(h("p", { class: "ws-hint", "data-testid": "merged-hint", text: (d.method || rule) === "staple" ? gettext("The gold outline is the STAPLE estimate of the readers' contours: the shape you sign.") : gettext("The gold outline is the majority-vote contour of the readers' marks: the shape you sign.") }));
    }
    if (d.action === "edit") {
      box.append(h("p", { class: "ws-hint", "data-testid": "edit-hint", text: gettext("Reshape the gold outline with Select (drag its handles), or draw it anew with the contour, ellipse or point tool on each slice.") }));
    }
    if (["accept_reader", "accept_merged", "edit"].includes(d.action)) {
      const base = d.action === "edit" ? {} : resultingAttributes(cluster, { ...d, attributes: {} });
      const values = d.action === "edit" ? d.attributes || {} : { ...base, ...(d.attributes || {}) };
      const formBox = h("div", { class: "ws-form arb-attrs", "data-testid": "decision-attributes" });
      box.append(h("h3", { class: "arb-sub", text: gettext("Attributes of the reference finding") }), formBox);
      buildForm(formBox, type.attributes || [], values, {
        lang: this.lang,
        idPrefix: `c${cluster.id}`,
        disabled: !this.writable,
        onChange: (next) => {
          let attributes = next;
          if (d.action !== "edit") {
            attributes = {};
            for (const [k, v] of Object.entries(next)) if (JSON.stringify(v) !== JSON.stringify(base[k])) attributes[k] = v;
          }
          this._setDecision(cluster, { attributes: Object.keys(attributes).length || d.action === "edit" ? attributes : undefined });
        },
      });
    }
    if (d.action) {
      box.append(
        this._reasonControls(d, (patch) => this._setDecision(cluster, patch), `c${cluster.id}`),
      );
    }
  },

  // -- case-level labels ---------------------------------------------------------------------

  renderLabels() {
    const fields = this.task.label_fields || [];
    $("#arb-labels-panel").hidden = !fields.length;
    const box = $("#arb-labels");
    box.textContent = "";
    for (const field of fields) {
      const dispute = (this.task.label_disputes || []).find((x) => x.key === field.key) || { values: {} };
      const d = this.saver.get("labels", field.key) || {};
      const row = h("div", { class: "arb-label", "data-testid": "label-item", "data-key": field.key });
      row.append(h("strong", { text: label(field.label, this.lang) }));
      const values = Object.entries(dispute.values).map(([reader, v]) => h("span", { class: "arb-chip-reader", style: `border-color:${this.readerColour(reader)}`, text: `${reader}: ${fieldText(field, v, this.lang)}` }));
      row.append(h("div", { class: "arb-label-values" }, values));
      const formBox = h("div", { class: "ws-form" });
      row.append(formBox);
      buildForm(formBox, [{ ...field, required: true }], d.value === undefined ? {} : { [field.key]: d.value }, {
        lang: this.lang,
        idPrefix: `label-${field.key}`,
        disabled: !this.writable,
        onChange: (next) => {
          const current = this.saver.get("labels", field.key) || {};
          const value = next[field.key];
          this.saver.set("labels", field.key, value === undefined && !current.reason_code ? null : { ...current, value: value === undefined ? null : value });
        },
      });
      row.append(
        this._reasonControls(
          d,
          (patch) => {
            const current = this.saver.get("labels", field.key) || { value: null };
            const next = { ...current, ...patch };
            for (const [k, v] of Object.entries(next)) if (v === undefined) delete next[k];
            this.saver.set("labels", field.key, next);
          },
          `label-${field.key}`,
        ),
      );
      box.append(row);
    }
  },
};
