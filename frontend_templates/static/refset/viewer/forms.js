// Forms generated from the project's label schema (annotation_server/projects/
// schema.py): enum (single or multiple), ordinal scale (with its answers outside
// the scale, such as "ungradable"), number with unit, boolean, text. Required fields are marked and checked before submission; the server
// checks again.

import "./i18n.js";

export function label(obj, lang) {
  if (!obj) return "";
  if (typeof obj === "string") return obj;
  return obj[lang] || obj.en || obj["zh-hans"] || "";
}

export function isEmpty(value) {
  return value === undefined || value === null || value === "" || (Array.isArray(value) && !value.length);
}

/** Problems with `values` against attribute definitions: {key: message}. */
export function validate(attrs, values, { complete }) {
  const errors = {};
  for (const attr of attrs) {
    const value = values[attr.key];
    if (isEmpty(value)) {
      if (complete && attr.required) errors[attr.key] = gettext("Required");
      continue;
    }
    if (attr.kind === "number") {
      if (typeof value !== "number" || !Number.isFinite(value)) errors[attr.key] = gettext("Must be a number");
      else if (attr.min != null && value < attr.min) errors[attr.key] = interpolate(gettext("At least %s"), [attr.min]);
      else if (attr.max != null && value > attr.max) errors[attr.key] = interpolate(gettext("At most %s"), [attr.max]);
    }
    if (attr.kind === "text" && value.length > (attr.max_length || 2000)) {
      errors[attr.key] = interpolate(gettext("At most %s characters"), [attr.max_length || 2000]);
    }
  }
  return errors;
}

function el(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("data-") || k === "for" || k === "role" || k.startsWith("aria-")) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

/**
 * Build a form for `attrs` into `container`. onChange(values) after each edit.
 * Returns {setValues, showErrors, setDisabled}.
 */
export function buildForm(container, attrs, values, { lang, onChange, idPrefix, disabled = false }) {
  container.textContent = "";
  let current = { ...values };
  const rows = {};
  const emit = (key, value) => {
    current = { ...current };
    if (isEmpty(value)) delete current[key];
    else current[key] = value;
    onChange(current);
  };
  for (const attr of attrs) {
    const id = `${idPrefix}-${attr.key}`;
    const row = el("div", { class: "sf-row", "data-key": attr.key, "data-kind": attr.kind });
    const title = el("label", { class: "sf-label", for: id, text: label(attr.label, lang) });
    if (attr.required) title.append(el("span", { class: "sf-req", text: " *", title: gettext("Required") }));
    if (attr.unit) title.append(el("span", { class: "sf-unit", text: ` (${attr.unit})` }));
    row.append(title);
    let input;
    if (attr.kind === "enum" && attr.multiple) {
      input = el("div", { class: "sf-checks", id, role: "group" });
      for (const option of attr.options) {
        const box = el("input", { type: "checkbox", value: option.value, name: id });
        box.addEventListener("change", () => {
          const picked = [...input.querySelectorAll("input:checked")].map((b) => b.value);
          emit(attr.key, picked);
        });
        input.append(el("label", { class: "sf-check" }, [box, document.createTextNode(label(option.label, lang))]));
      }
    } else if (attr.kind === "enum") {
      input = el("select", { id, name: attr.key });
      input.append(el("option", { value: "", text: "—" }));
      for (const option of attr.options) input.append(el("option", { value: option.value, text: label(option.label, lang) }));
      // Answers outside the scale (the schema's outside_scale, e.g. macular oedema
      // "ungradable"): listed after the options, apart from them.
      const outside = attr.outside_scale || [];
      if (outside.length) {
        const group = el("optgroup", { label: gettext("Outside the scale") });
        for (const option of outside) group.append(el("option", { value: option.value, text: label(option.label, lang) || option.value }));
        input.append(group);
      }
      input.addEventListener("change", () => emit(attr.key, input.value || null));
    } else if (attr.kind === "ordinal") {
      input = el("div", { class: "sf-scale", id, role: "radiogroup" });
      const caption = el("div", { class: "sf-scale-caption" });
      for (let v = attr.min; v <= attr.max; v += 1) {
        const text = label((attr.labels || {})[String(v)], lang);
        const button = el("button", {
          type: "button",
          class: "sf-step",
          text: String(v),
          title: text ? `${v} · ${text}` : String(v),
          "data-value": String(v),
          role: "radio",
        });
        button.addEventListener("click", () => {
          const was = current[attr.key] === v;
          emit(attr.key, was ? null : v);
          paint(attr.key);
        });
        input.append(button);
      }
      // Answers outside the scale (e.g. "ungradable", the schema's outside_scale):
      // string values the server accepts beside the scale's numbers.
      for (const option of attr.outside_scale || []) {
        const text = label(option.label, lang) || option.value;
        const button = el("button", {
          type: "button",
          class: "sf-step sf-outside",
          text,
          title: text,
          "data-value": option.value,
          role: "radio",
        });
        button.addEventListener("click", () => {
          emit(attr.key, current[attr.key] === option.value ? null : option.value);
          paint(attr.key);
        });
        input.append(button);
      }
      row.append(input, caption);
      rows[attr.key] = { row, input, caption };
      container.append(row);
      continue;
    } else if (attr.kind === "number") {
      input = el("input", { id, type: "number", step: "any", name: attr.key, inputMode: "decimal" });
      if (attr.min != null) input.min = attr.min;
      if (attr.max != null) input.max = attr.max;
      input.addEventListener("input", () => {
        const text = input.value.trim();
        emit(attr.key, text === "" ? null : Number(text));
      });
    } else if (attr.kind === "boolean") {
      input = el("div", { class: "sf-scale", id, role: "radiogroup" });
      for (const [value, text] of [
        [true, gettext("Yes")],
        [false, gettext("No")],
      ]) {
        const button = el("button", { type: "button", class: "sf-step sf-bool", text, "data-value": String(value), role: "radio" });
        button.addEventListener("click", () => {
          emit(attr.key, current[attr.key] === value ? null : value);
          paint(attr.key);
        });
        input.append(button);
      }
    } else {
      input = el("textarea", { id, name: attr.key, rows: 2, maxLength: attr.max_length || 2000 });
      input.addEventListener("input", () => emit(attr.key, input.value || null));
    }
    row.append(input);
    rows[attr.key] = { row, input };
    container.append(row);
  }

  function paint(key) {
    const attr = attrs.find((a) => a.key === key);
    const { input, caption } = rows[key];
    const value = current[key];
    if (attr.kind === "ordinal" || attr.kind === "boolean") {
      for (const b of input.querySelectorAll("button")) {
        const on = b.dataset.value === String(value);
        b.classList.toggle("on", on);
        b.setAttribute("aria-checked", on ? "true" : "false");
      }
      if (caption) {
        const outside = (attr.outside_scale || []).find((o) => o.value === value);
        caption.textContent = isEmpty(value) ? "" : outside ? "" : label((attr.labels || {})[String(value)], lang);
      }
    } else if (attr.kind === "enum" && attr.multiple) {
      for (const b of input.querySelectorAll("input")) b.checked = (value || []).includes(b.value);
    } else if (document.activeElement !== input) {
      input.value = isEmpty(value) ? "" : String(value);
    }
  }

  function setValues(next) {
    current = { ...next };
    for (const key of Object.keys(rows)) paint(key);
  }

  function showErrors(errors) {
    for (const [key, { row }] of Object.entries(rows)) {
      row.classList.toggle("sf-invalid", Boolean(errors[key]));
      let note = row.querySelector(".sf-error");
      if (errors[key]) {
        if (!note) {
          note = el("div", { class: "sf-error" });
          row.append(note);
        }
        note.textContent = errors[key];
      } else if (note) note.remove();
    }
  }

  function setDisabled(off) {
    for (const node of container.querySelectorAll("input, select, textarea, button")) node.disabled = off;
  }

  setValues(current);
  setDisabled(disabled);
  return { setValues, showErrors, setDisabled };
}
