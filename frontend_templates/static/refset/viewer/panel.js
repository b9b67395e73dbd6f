// The side panel: the reader's findings list, other readers' marks (review phase,
// anonymised, toggleable per reader) and the attribute form of the selected
// finding (read-only for another reader's); the model proposals' part is
// proposals.js. Installed on Workstation.prototype.

import { buildForm, isEmpty, label, validate } from "./forms.js";
import { dashSwatchStyle, readerDash } from "./labels.js";
import { $, h } from "./ui.js";

/** Methods of Workstation that render the findings panel. */
export const panelMethods = {
  _typeOf(key) {
    return this.types.find((t) => t.key === key) || { key, label: key, attributes: [], geometry: [] };
  },

  renderFindings() {
    const list = this.store.list();
    const box = this.findingsEl;
    box.textContent = "";
    if (!list.length) {
      box.append(h("li", { class: "ws-empty", text: gettext("No findings yet. Pick a tool and draw on the image.") }));
    }
    for (const f of list) {
      const n = this._number(f.uid);
      const type = this._typeOf(f.finding_type);
      const slices = f.geometry.shapes.map((s) => s.slice_index + 1);
      const missing = Object.keys(validate(type.attributes || [], f.attributes, { complete: true })).length;
      const where =
        this.count > 1
          ? slices.length > 1
            ? interpolate(gettext("slices %s–%s (%s)"), [slices[0], slices[slices.length - 1], slices.length])
            : interpolate(gettext("slice %s"), [slices[0]])
          : "";
      const item = h(
        "li",
        {
          class: `ws-finding${f.uid === this.selected ? " on" : ""}`,
          "data-uid": f.uid,
          "data-testid": "finding",
          tabIndex: 0,
        },
        [
          h("span", { class: "ws-swatch", style: `background:${this._colour(f.uid)}` }),
          h("span", { class: "ws-finding-name", text: `#${n} ${label(type.label, this.lang)}` }),
          h("span", { class: "ws-finding-where", text: where }),
          f.source !== "manual" ? h("span", { class: "ws-badge", text: gettext("model"), title: f.source }) : null,
          h("span", {
            class: `ws-finding-state ${missing ? "todo" : "ok"}`,
            text: missing ? interpolate(gettext("%s to fill"), [missing]) : "✓",
          }),
        ],
      );
      item.addEventListener("click", () => {
        this.selected = f.uid;
        this._jumpTo(f.uid);
        this.renderFindings();
      });
      box.append(item);
    }
    this._renderOthers();
    this._renderProposals();
    this._renderAttributes();
  },

  _renderOthers() {
    const box = $("#ws-others");
    const others = this.store.others;
    box.hidden = !others.length;
    if (!others.length) return;
    const list = $("#ws-others-list");
    list.textContent = "";
    const readers = [...new Set(others.map((f) => f.reader))].sort();
    const all = h("label", { class: "ws-reader" }, [
      h("input", { type: "checkbox", checked: this.showOthers, "data-testid": "toggle-others" }),
      document.createTextNode(gettext("Show other readers' marks (M)")),
    ]);
    all.querySelector("input").addEventListener("change", (e) => {
      this.showOthers = e.target.checked;
      this.redraw();
    });
    list.append(all);
    for (const reader of readers) {
      const n = others.filter((f) => f.reader === reader).length;
      const row = h("label", { class: "ws-reader" }, [
        h("input", { type: "checkbox", checked: !this.hiddenReaders.has(reader), "data-reader": reader }),
        h("span", { class: "ws-swatch ws-swatch-line", style: dashSwatchStyle(this._otherColour(reader), readerDash(reader)) }),
        document.createTextNode(`${reader} · ${interpolate(ngettext("%s mark", "%s marks", n), [n])}`),
      ]);
      row.querySelector("input").addEventListener("change", (e) => this._toggleReader(reader, e.target.checked));
      list.append(row);
    }
  },

  _renderAttributes() {
    const box = this.attrsEl;
    const f = this.store.get(this.selected);
    if (!f) {
      const other = String(this.selected || "").startsWith("other:")
        ? this.store.others.find((o) => `other:${o.id}` === this.selected)
        : null;
      box.textContent = "";
      if (other) this._renderOtherAttributes(box, other);
      else box.append(h("p", { class: "ws-hint", text: gettext("Select a finding to fill its attributes.") }));
      this.attrForm = null;
      return;
    }
    if (this.attrForm && this.attrForm.uid === f.uid && box.firstChild) {
      this.attrForm.form.setValues(f.attributes);
      this._renderMeasurements(f);
      return;
    }
    box.textContent = "";
    const type = this._typeOf(f.finding_type);
    const head = h("div", { class: "ws-attrs-head" }, [
      h("strong", { text: `#${this._number(f.uid)} ${label(type.label, this.lang)}` }),
    ]);
    if (this.writable && this.types.length > 1) {
      const select = h("select", { "aria-label": gettext("Finding type") });
      for (const t of this.types) {
        if (!t.geometry.includes(f.geometry.kind)) continue;
        select.append(h("option", { value: t.key, text: label(t.label, this.lang), selected: t.key === f.finding_type }));
      }
      select.addEventListener("change", () => {
        const keep = new Set((this._typeOf(select.value).attributes || []).map((a) => a.key));
        this.store.update(f.uid, (g) => {
          g.finding_type = select.value;
          g.attributes = Object.fromEntries(Object.entries(g.attributes).filter(([k]) => keep.has(k)));
          return g;
        });
        this.attrForm = null;
        this._renderAttributes();
      });
      head.append(select);
    }
    const formBox = h("div", { class: "ws-form" });
    box.append(head, formBox);
    this._renderMeasurements(f); // measures.js: long/short axis, volume, HU with units
    const form = buildForm(formBox, type.attributes || [], f.attributes, {
      lang: this.lang,
      idPrefix: `f-${f.uid.slice(0, 8)}`,
      disabled: !this.writable,
      onChange: (values) => {
        this.store.update(f.uid, (g) => ({ ...g, attributes: values }), { why: "attributes", merge: `attrs-${f.uid}` });
        form.showErrors({});
      },
    });
    this.attrForm = { uid: f.uid, form };
  },

  _renderOtherAttributes(box, f) {
    const type = this._typeOf(f.finding_type);
    box.append(h("div", { class: "ws-attrs-head" }, [h("strong", { text: `${f.reader} · ${label(type.label, this.lang)}` })]));
    const dl = h("dl", { class: "ws-readonly-attrs" });
    for (const attr of type.attributes || []) {
      const v = f.attributes[attr.key];
      if (isEmpty(v)) continue;
      let text = String(v);
      if (attr.kind === "enum") {
        const values = Array.isArray(v) ? v : [v];
        text = values.map((x) => label((attr.options.find((o) => o.value === x) || {}).label, this.lang) || x).join(", ");
      } else if (attr.kind === "ordinal") {
        const l = label((attr.labels || {})[String(v)], this.lang);
        text = l ? `${v} · ${l}` : String(v);
      } else if (attr.kind === "boolean") text = v ? gettext("Yes") : gettext("No");
      else if (attr.unit) text = `${v} ${attr.unit}`;
      dl.append(h("dt", { text: label(attr.label, this.lang) }), h("dd", { text }));
    }
    box.append(dl);
  },
};
