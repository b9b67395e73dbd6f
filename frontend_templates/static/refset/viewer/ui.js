// Small page helpers and the colours the workstation's modules share.

export const OWN_COLOURS = ["#ffd54a", "#4fc3f7", "#81c784", "#ff8a65", "#ba68c8", "#f06292", "#aed581", "#4db6ac"];
export const OTHER_COLOURS = ["#ff5252", "#40c4ff", "#69f0ae", "#ffab40", "#e040fb", "#eeff41"];
export const PROPOSAL_COLOUR = "#00e5ff";

export const $ = (selector) => document.querySelector(selector);

/** A DOM element with properties (class, text, data-*, aria-*, role, for) and children. */
export function h(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("data-") || k.startsWith("aria-") || k === "role" || k === "for") node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const child of children) if (child != null) node.append(child);
  return node;
}

export function presetLabel(name) {
  const names = {
    lung: gettext("Lung"),
    mediastinum: gettext("Mediastinum"),
    bone: gettext("Bone"),
    brain: gettext("Brain"),
  };
  return names[name] || name;
}

/** A reader label's number ("R2" → 2; 1 where it has none): picks the reader's colour. */
export function readerNumber(reader) {
  return Number(String(reader).replace(/\D/g, "")) || 1;
}

/**
 * A date and time as every page shows them ("2026-12-05 20:30", the templates'
 * date:"Y-m-d H:i"), in `timeZone` (the server's TIME_ZONE, not the browser's).
 */
export function formatDateTime(iso, timeZone) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  let parts;
  try {
    parts = new Intl.DateTimeFormat("en-GB", {
      timeZone: timeZone || undefined,
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
      hourCycle: "h23",
    }).formatToParts(date);
  } catch {
    return formatDateTime(iso, null); // an unknown zone name: the browser's
  }
  const get = (type) => (parts.find((p) => p.type === type) || {}).value || "";
  return `${get("year")}-${get("month")}-${get("day")} ${get("hour")}:${get("minute")}`;
}

export function formatTime(seconds) {
  const m = Math.floor(seconds / 60);
  const s = seconds % 60;
  return `${m}:${String(s).padStart(2, "0")}`;
}

/** A JSON value kept in localStorage, or null (missing, unreadable, storage off). */
export function loadJSON(key) {
  try {
    return JSON.parse(localStorage.getItem(key) || "null");
  } catch {
    return null;
  }
}

/** Keep a JSON value in localStorage where it can (a convenience, never required). */
export function saveJSON(key, value) {
  try {
    localStorage.setItem(key, JSON.stringify(value));
  } catch {
    /* storage unavailable */
  }
}
