// What a decision means and what is still missing before signing. The server
// checks the same things again (adjudication.services.validate_decisions).

import "../viewer/i18n.js";
import { label, validate } from "../viewer/forms.js";

export const ACTION_NAMES = {
  accept_reader: () => gettext("Accept one reader's finding"),
  accept_merged: () => gettext("Accept a merged finding"),
  edit: () => gettext("Edit (draw the finding)"),
  reject: () => gettext("Reject: not a finding"),
  exclude: () => gettext("Exclude from scoring"),
};

export function methodName(method) {
  return method === "staple" ? gettext("STAPLE consensus") : gettext("majority vote");
}

// The contour "accept merged" signs with `method` (as the server computes it when
// signing: the method chosen, else the protocol's consensus rule, `fallback`);
// the settled consensus otherwise.
export function mergedGeometry(cluster, method, fallback = "majority") {
  const merged = (cluster.merged_geometries || {})[method || fallback];
  if (merged && merged.shapes && merged.shapes.length) return merged;
  return cluster.consensus_geometry && cluster.consensus_geometry.shapes && cluster.consensus_geometry.shapes.length ? cluster.consensus_geometry : null;
}

export function typeOf(schema, key) {
  return (schema.finding_types || []).find((t) => t.key === key) || { key, label: key, attributes: [], geometry: [] };
}

/** The attributes a decision ends with (what becomes the reference finding's). */
export function resultingAttributes(cluster, decision) {
  if (!decision) return {};
  if (decision.action === "accept_reader") {
    const member = cluster.members.find((m) => m.uid === decision.finding);
    return { ...(member ? member.attributes : {}), ...(decision.attributes || {}) };
  }
  if (decision.action === "accept_merged") return { ...cluster.consensus_attributes, ...(decision.attributes || {}) };
  if (decision.action === "edit") return { ...(decision.attributes || {}) };
  return {};
}

/** One line saying what was decided, e.g. "Accept R3's finding · part-solid";
 * a merge that names no method is the protocol's (`method`). */
export function describe(cluster, decision, schema, lang, method = "majority") {
  if (!decision) return gettext("not decided");
  let text;
  if (decision.action === "accept_reader") {
    const member = cluster.members.find((m) => m.uid === decision.finding);
    text = interpolate(gettext("Accept %s's finding"), [member ? member.reader : "?"]);
  } else if (decision.action === "accept_merged") {
    text = interpolate(gettext("Accept merged (%s)"), [methodName(decision.method || method)]);
  } else if (decision.action === "edit") {
    text = gettext("Edited finding");
  } else {
    text = ACTION_NAMES[decision.action] ? ACTION_NAMES[decision.action]() : decision.action;
  }
  if (["accept_reader", "accept_merged", "edit"].includes(decision.action)) {
    const type = typeOf(schema, decision.finding_type || cluster.finding_type);
    const attrs = resultingAttributes(cluster, decision);
    const shown = (type.attributes || [])
      .filter((a) => a.kind === "enum" && attrs[a.key] != null)
      .map((a) => label((a.options.find((o) => o.value === attrs[a.key]) || {}).label, lang) || attrs[a.key]);
    if (shown.length) text += ` · ${shown.join(", ")}`;
  }
  return text;
}

/** One line saying what an added finding is, e.g. "Added: Nodule · Ground-glass". */
export function describeAdded(added, schema, lang) {
  const type = typeOf(schema, added.finding_type);
  const attrs = added.attributes || {};
  const shown = (type.attributes || [])
    .filter((a) => a.kind === "enum" && attrs[a.key] != null)
    .map((a) => label((a.options.find((o) => o.value === attrs[a.key]) || {}).label, lang) || attrs[a.key]);
  const text = interpolate(gettext("Added: %s"), [label(type.label, lang) || added.finding_type]);
  return shown.length ? `${text} · ${shown.join(", ")}` : text;
}

/** The name of the n-th added finding in lists, e.g. "Added finding 2". */
export function addedName(index) {
  return interpolate(gettext("Added finding %s"), [index + 1]);
}

/** Problems that stop signing: [{item, text}]. */
export function problems(task, decisions, schema, lang) {
  const out = [];
  const reasonProblem = (d) => {
    if (!d.reason_code) return gettext("pick a reason");
    if (d.reason_code === "other" && !String(d.reason_text || "").trim()) return gettext("explain the reason 'other'");
    return null;
  };
  for (const cluster of task.clusters) {
    const item = interpolate(gettext("Cluster C%s"), [cluster.number]);
    const d = (decisions.clusters || {})[String(cluster.id)];
    if (!d) {
      out.push({ item, id: cluster.id, text: gettext("not decided") });
      continue;
    }
    const reason = reasonProblem(d);
    if (reason) out.push({ item, id: cluster.id, text: reason });
    if (d.action === "accept_reader" && !cluster.members.some((m) => m.uid === d.finding)) {
      out.push({ item, id: cluster.id, text: gettext("choose the reader's finding") });
    }
    if (d.action === "edit") {
      if (!d.geometry || !(d.geometry.shapes || []).length) out.push({ item, id: cluster.id, text: gettext("draw the finding") });
      const type = typeOf(schema, d.finding_type || cluster.finding_type);
      const missing = Object.keys(validate(type.attributes || [], d.attributes || {}, { complete: true }));
      if (missing.length) {
        const names = missing.map((k) => label((type.attributes.find((a) => a.key === k) || {}).label, lang) || k);
        out.push({ item, id: cluster.id, text: interpolate(gettext("fill in: %s"), [names.join(", ")]) });
      }
    }
  }
  (decisions.added || []).forEach((a, i) => {
    const item = addedName(i);
    if (!a.geometry || !(a.geometry.shapes || []).length) out.push({ item, added: a.key, text: gettext("draw the finding") });
    const type = typeOf(schema, a.finding_type);
    const missing = Object.keys(validate(type.attributes || [], a.attributes || {}, { complete: true }));
    if (missing.length) {
      const names = missing.map((k) => label((type.attributes.find((x) => x.key === k) || {}).label, lang) || k);
      out.push({ item, added: a.key, text: interpolate(gettext("fill in: %s"), [names.join(", ")]) });
    }
    const reason = reasonProblem(a);
    if (reason) out.push({ item, added: a.key, text: reason });
  });
  for (const field of task.label_fields) {
    const item = label(field.label, lang) || field.key;
    const d = (decisions.labels || {})[field.key];
    if (!d || d.value === undefined || d.value === null || d.value === "") {
      out.push({ item, key: field.key, text: gettext("give the answer") });
      continue;
    }
    const reason = reasonProblem(d);
    if (reason) out.push({ item, key: field.key, text: reason });
  }
  return out;
}

/** The value of a case-level field as text. */
export function fieldText(field, value, lang) {
  if (value === undefined || value === null || value === "") return "—";
  if (field.kind === "boolean") return value ? gettext("Yes") : gettext("No");
  if (field.kind === "enum") {
    const values = Array.isArray(value) ? value : [value];
    const choices = [...field.options, ...(field.outside_scale || [])];
    return values.map((v) => label((choices.find((o) => o.value === v) || {}).label, lang) || v).join(", ");
  }
  if (field.kind === "ordinal") {
    const outside = (field.outside_scale || []).find((o) => o.value === value);
    if (outside) return label(outside.label, lang) || String(value);
    const l = label((field.labels || {})[String(value)], lang);
    return l ? `${value} · ${l}` : String(value);
  }
  return String(value);
}
