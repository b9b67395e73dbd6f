// Every command has a key. The same table drives the key handler of both editing
// pages (the workstation, and the arbitration view for the commands it has: see
// sliceview.js _pageKeys) and each page's `?` overlay, which lists the keys the
// page has (its keymap) in the page's own words where they differ (a row's fourth
// element: {page: text}, page from the overlay's data-page), so the overlay cannot
// drift from what the keys do.

import "./i18n.js";

export function shortcutTable() {
  return [
    [gettext("Tools"), [
      ["v", "tool:select", gettext("Select, move, reshape"), { arbitration: gettext("Select, reshape the edited outline") }],
      ["w", "tool:wl", gettext("Window / level (drag)")],
      ["h", "tool:pan", gettext("Pan (drag)")],
      ["z", "tool:zoom", gettext("Zoom (drag)")],
      ["x", "tool:crosshair", gettext("Crosshair: click or drag in one view to move the others (CT)")],
      ["p", "tool:point", gettext("Point"), { arbitration: gettext("Point, when editing a finding") }],
      ["b", "tool:box", gettext("Box")],
      ["e", "tool:ellipse", gettext("Ellipse"), { arbitration: gettext("Ellipse, when editing a finding") }],
      ["g", "tool:polygon", gettext("Polygon (click points, Enter or double-click closes)")],
      ["f", "tool:freehand", gettext("Freehand contour"), { arbitration: gettext("Freehand contour, when editing a finding") }],
      ["l", "tool:line", gettext("Measure a length")],
      ["a", "tool:axes", gettext("Long and short axis of the selected finding")],
      ["t", "type:next", gettext("Next finding type")],
    ]],
    [gettext("Image"), [
      ["arrowup", "slice:-1", gettext("Previous slice (also mouse wheel)")],
      ["arrowdown", "slice:1", gettext("Next slice")],
      ["pageup", "slice:-10", gettext("10 slices back")],
      ["pagedown", "slice:10", gettext("10 slices on")],
      ["home", "slice:first", gettext("First slice")],
      ["end", "slice:last", gettext("Last slice")],
      ["1", "preset:lung", gettext("Lung window")],
      ["2", "preset:mediastinum", gettext("Mediastinum window")],
      ["3", "preset:bone", gettext("Bone window")],
      ["4", "preset:brain", gettext("Brain window")],
      ["0", "preset:file", gettext("The file's own window")],
      ["i", "invert", gettext("Invert grey scale")],
      ["r", "reset", gettext("Reset view (fit, default window)")],
      ["+", "zoom:in", gettext("Zoom in (also Ctrl + wheel)")],
      ["-", "zoom:out", gettext("Zoom out")],
    ]],
    [gettext("Views (CT)"), [
      ["o", "layout:next", gettext("Layout: one view, axial + coronal + sagittal, 2 × 2 with a slab")],
      ["s", "slab:toggle", gettext("Thick slab on or off (MIP, MinIP or average)")],
      ["shift+s", "slab:mode", gettext("Next slab mode: MIP, MinIP, average")],
      [".", "slab:thicker", gettext("Thicker slab (+1 mm)")],
      [",", "slab:thinner", gettext("Thinner slab (−1 mm)")],
      ["k", "cine", gettext("Cine: play or pause the active view")],
      ["shift+x", "reflines", gettext("Reference lines on or off")],
    ]],
    [gettext("Findings"), [
      ["]", "finding:next", gettext("Next finding (jumps to its slice)"), { arbitration: gettext("Next disputed cluster (jumps to its slice)") }],
      ["[", "finding:prev", gettext("Previous finding"), { arbitration: gettext("Previous disputed cluster") }],
      ["c", "copy:next", gettext("Copy the selected outline to the next slice")],
      ["shift+c", "copy:prev", gettext("Copy the selected outline to the previous slice")],
      ["delete", "delete:slice", gettext("Delete the selected outline on this slice")],
      ["shift+delete", "delete:finding", gettext("Delete the whole selected finding")],
      ["escape", "escape", gettext("Cancel drawing / deselect"), { arbitration: gettext("Cancel drawing") }],
      ["ctrl+z", "undo", gettext("Undo")],
      ["ctrl+shift+z", "redo", gettext("Redo (also Ctrl + Y)")],
      ["ctrl+y", "redo", null],
      ["m", "others", gettext("Show or hide other readers' marks (review phase)")],
    ]],
    [gettext("Case"), [
      ["ctrl+s", "save", gettext("Save now"), { arbitration: gettext("Save the decisions now") }],
      ["ctrl+enter", "submit", gettext("Submit the read")],
      ["n", "next", gettext("Next case (after submitting)")],
      ["?", "help", gettext("Show or hide this list")],
    ]],
  ];
}

const KEY_NAMES = {
  arrowup: "↑",
  arrowdown: "↓",
  pageup: "PgUp",
  pagedown: "PgDn",
  home: "Home",
  end: "End",
  delete: "Del",
  escape: "Esc",
  enter: "Enter",
};

function pretty(combo) {
  return combo
    .split("+")
    .map((part) => {
      if (part === "ctrl") return "Ctrl";
      if (part === "shift") return "Shift";
      if (part === "") return "+";
      return KEY_NAMES[part] || part.toUpperCase();
    })
    .join(" + ");
}

/** The combo name of a key event, e.g. "ctrl+shift+z", "?" or "arrowup". */
export function comboOf(event) {
  let key = event.key.toLowerCase();
  if (key === "backspace") key = "delete";
  const parts = [];
  if (event.ctrlKey || event.metaKey) parts.push("ctrl");
  // Shift is part of a printable symbol ("?", "+") but a modifier for letters and named keys.
  if (event.shiftKey && (key.length > 1 || /[a-z]/.test(key))) parts.push("shift");
  parts.push(key === "=" ? "+" : key);
  return parts.join("+");
}

/** combo → action for every row of the table, or for the actions `accepts` keeps. */
export function keymap(accepts = () => true) {
  const map = new Map();
  for (const [, rows] of shortcutTable()) {
    for (const [combo, action] of rows) if (accepts(action)) map.set(combo, action);
  }
  return map;
}

/**
 * Send the page's key presses to host.command(action) through `keys` (a keymap):
 * a drawing in progress takes its keys first (host.tools.key). In a text field
 * only the `whileTyping` combos act (Esc also leaves the field). `intercept(combo)`
 * returning true takes a key before all that (an open dialog).
 */
export function bindKeys(host, keys, { whileTyping = ["escape", "ctrl+s"], intercept = null } = {}) {
  document.addEventListener("keydown", (e) => {
    const combo = comboOf(e);
    if (intercept && intercept(combo)) return;
    const target = e.target;
    const field = target && ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName);
    const typing = field && target.type !== "range";
    if (typing && !whileTyping.includes(combo)) return;
    if (host.tools.key(combo)) {
      e.preventDefault();
      return;
    }
    const action = keys.get(combo);
    if (!action) return;
    e.preventDefault();
    if (field && combo === "escape") target.blur();
    host.command(action);
  });
}

/**
 * Fill the help overlay from the table: every row, or those whose key does what
 * `keys` (the page's keymap) says; `page` picks a row's page-specific words.
 */
export function buildHelp(container, keys = null, page = "") {
  container.textContent = "";
  const title = document.createElement("h2");
  title.textContent = gettext("Keyboard shortcuts");
  container.append(title);
  const grid = document.createElement("div");
  grid.className = "ws-help-grid";
  for (const [section, rows] of shortcutTable()) {
    const block = document.createElement("section");
    const h = document.createElement("h3");
    h.textContent = section;
    const dl = document.createElement("dl");
    for (const [combo, action, text, own] of rows) {
      if (!text || (keys && keys.get(combo) !== action)) continue;
      const dt = document.createElement("dt");
      const kbd = document.createElement("kbd");
      kbd.textContent = pretty(combo);
      dt.append(kbd);
      const dd = document.createElement("dd");
      dd.textContent = (own && own[page]) || text;
      dt.dataset.combo = combo;
      dl.append(dt, dd);
    }
    if (!dl.children.length) continue;
    block.append(h, dl);
    grid.append(block);
  }
  const mouse = document.createElement("p");
  mouse.className = "ws-help-mouse";
  mouse.textContent =
    page === "arbitration"
      ? gettext("Mouse: wheel scrolls slices; right-drag sets window/level; middle-drag pans; Ctrl + wheel zooms.")
      : gettext(
          "Mouse: wheel scrolls slices; right-drag sets window/level; middle-drag pans; Ctrl + wheel zooms. Drawing on another slice while a finding is selected adds that slice's outline to the same finding; Esc deselects to start a new one.",
        );
  container.append(grid, mouse);
}
