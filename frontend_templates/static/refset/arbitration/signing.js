// Signing: the summary of every decision, the password re-entered, the signature
// call and its refusals; once signed, the resulting reference standard.
// Installed on Arbitration.prototype.

import { api, HttpError } from "../common/http.js";
import { label } from "../viewer/forms.js";
import { $, formatDateTime, h } from "../viewer/ui.js";
import { addedName, describe, describeAdded, fieldText, problems, typeOf } from "./decisions.js";

/** Methods of Arbitration for signing and the signed result. */
export const signingMethods = {
  openSign() {
    const decisions = this.saver.local;
    const list = problems(this.task, decisions, this.schema, this.lang);
    const summary = $("#arb-sign-summary");
    summary.textContent = "";
    const table = h("table", { class: "arb-summary" });
    table.append(h("tr", {}, [h("th", { text: gettext("Item") }), h("th", { text: gettext("Decision") }), h("th", { text: gettext("Reason") })]));
    const reasonLabel = (code) => (this.reasonCodes.find((r) => r.code === code) || {}).label || "—";
    for (const c of this.clusters) {
      const d = (decisions.clusters || {})[String(c.id)];
      table.append(
        h("tr", { "data-testid": "summary-row" }, [
          h("td", { text: `C${c.number} ${label(typeOf(this.schema, c.finding_type).label, this.lang)}` }),
          h("td", { text: describe(c, d, this.schema, this.lang, this.consensusMethod) }),
          h("td", { text: d ? [reasonLabel(d.reason_code), d.reason_text].filter(Boolean).join(" — ") : "—" }),
        ]),
      );
    }
    (decisions.added || []).forEach((a, i) => {
      table.append(
        h("tr", { "data-testid": "summary-row", "data-added": a.key }, [
          h("td", { text: addedName(i) }),
          h("td", { text: describeAdded(a, this.schema, this.lang) }),
          h("td", { text: [reasonLabel(a.reason_code), a.reason_text].filter(Boolean).join(" — ") }),
        ]),
      );
    });
    for (const field of this.task.label_fields || []) {
      const d = (decisions.labels || {})[field.key];
      table.append(
        h("tr", { "data-testid": "summary-row" }, [
          h("td", { text: label(field.label, this.lang) }),
          h("td", { text: d ? fieldText(field, d.value, this.lang) : gettext("not decided") }),
          h("td", { text: d ? [reasonLabel(d.reason_code), d.reason_text].filter(Boolean).join(" — ") : "—" }),
        ]),
      );
    }
    summary.append(table);
    const box = $("#arb-sign-problems");
    box.textContent = "";
    box.hidden = !list.length;
    if (list.length) {
      box.append(h("strong", { text: gettext("Not ready to sign:") }));
      box.append(h("ul", {}, list.map((p) => h("li", { text: `${p.item}: ${p.text}` }))));
    }
    $("#arb-sign-submit").disabled = Boolean(list.length);
    $("#arb-sign-error").textContent = "";
    $("#arb-password").value = "";
    $("#arb-sign").hidden = false;
    if (!list.length) $("#arb-password").focus();
  },

  async sign() {
    const error = $("#arb-sign-error");
    const password = $("#arb-password").value;
    error.textContent = "";
    if (!password) {
      error.textContent = gettext("Enter your password to sign.");
      return;
    }
    const button = $("#arb-sign-submit");
    button.disabled = true;
    try {
      await this.saver.flush();
      if (!this.saver.idle || this.saver.state !== "saved") {
        error.textContent = gettext("Some decisions are not saved yet; nothing was signed.");
        return;
      }
      await api("POST", `${this.apiRoot}arbitration-tasks/${this.task.id}/sign/`, { password, version: this.saver.version });
      this.saver.discardBuffer();
      window.location.reload();
    } catch (err) {
      if (err instanceof HttpError && err.status === 403) error.textContent = gettext("The password is not correct; nothing was signed.");
      else if (err instanceof HttpError && err.status === 409) error.textContent = gettext("The decisions changed elsewhere since you loaded them; nothing was signed. Reload to see them.");
      else if (err instanceof HttpError && err.status === 400) {
        const detail = err.body.detail;
        error.textContent = Array.isArray(detail) ? detail.join("; ") : err.message;
      } else error.textContent = err.message;
    } finally {
      button.disabled = false;
      $("#arb-password").value = "";
    }
  },

  // -- the signed result -----------------------------------------------------------------------

  renderResult() {
    const panel = $("#arb-result");
    if (this.task.state !== "signed") {
      panel.hidden = true;
      return;
    }
    panel.hidden = false;
    const box = $("#arb-result-body");
    box.textContent = "";
    box.append(h("p", { class: "arb-signed", "data-testid": "signed-note", text: interpolate(gettext("Signed %s · SHA-256 %s…"), [formatDateTime(this.task.signed_at, this.boot.time_zone), this.task.signature_hash.slice(0, 12)]) }));
    const refs = this.boot.references || [];
    if (!refs.length) {
      box.append(h("p", { class: "ws-hint", "data-testid": "waiting-note", text: gettext("The reference standard is written when every arbitrator of this case has signed (and, where the blind arbitrators disagree, a third one has decided).") }));
    }
    const byKey = new Map(this.clusters.map((c) => [c.ref_key, c]));
    const addedKeys = (this.task.decisions.added || []).map((a) => a.key);
    const statusText = { included: gettext("in the reference standard"), excluded: gettext("excluded from scoring"), rejected: gettext("rejected: not a finding") };
    const list = h("ul", { class: "arb-refs", "data-testid": "references" });
    for (const ref of refs) {
      const cluster = byKey.get(ref.ref_key);
      const addedAt = ref.geometry && ref.geometry.added_by_arbitrator ? addedKeys.indexOf(ref.ref_key) : -1;
      const name = cluster ? `C${cluster.number} ` : ref.geometry && ref.geometry.added_by_arbitrator ? `${addedName(Math.max(addedAt, 0))} · ` : "";
      const type = typeOf(this.schema, ref.finding_type);
      const attrs = (type.attributes || []).filter((a) => a.required && ref.attributes[a.key] != null).map((a) => fieldText(a, ref.attributes[a.key], this.lang));
      list.append(
        h("li", { class: `arb-ref arb-ref-${ref.status}`, "data-testid": "reference", "data-status": ref.status, "data-cluster": cluster ? String(cluster.number) : "", "data-added": ref.geometry && ref.geometry.added_by_arbitrator ? "1" : "" }, [
          h("strong", { text: `${name}${label(type.label, this.lang)} · ${statusText[ref.status] || ref.status}` }),
          h("div", { text: attrs.join(" · ") }),
          h("div", { class: "arb-ref-prov", text: interpolate(gettext("revision %(rev)s · supported by %(readers)s · %(reason)s"), { rev: ref.revision, readers: ref.supporting_findings.map((f) => f.reader).join(", ") || "—", reason: [(this.reasonCodes.find((r) => r.code === ref.reason_code) || {}).label || ref.reason_code || "—", ref.reason_text].filter(Boolean).join(" — ") }, true) }),
        ]),
      );
    }
    box.append(list);
    const labels = this.boot.reference_labels;
    if (labels) {
      const fields = this.schema.case_fields || [];
      const dl = h("dl", { class: "ws-readonly-attrs", "data-testid": "reference-labels" });
      for (const field of fields) {
        if (!(field.key in labels.values)) continue;
        dl.append(h("dt", { text: label(field.label, this.lang) }), h("dd", { text: fieldText(field, labels.values[field.key], this.lang) }));
      }
      box.append(dl);
    }
  },
};
