// The series panel: the other image series of the study of the case being read,
// as thumbnails (middle slice, default window) with their description, modality
// and image count, the case's own series marked. Hidden when the study holds
// only the case's series.
//
// It mounts itself on the page's #ws-series slot (reading/_series_panel.html),
// which names the case (data-case), the series on screen (data-shown), the
// workstation of the read (data-case-url) and the reference-series page of the
// read for series 0 (data-reference-url). A click on another series opens it on
// the reference page, for looking only; a click on the case's series comes back
// to the workstation. Leaving the workstation first flushes its save queue (the
// queue also keeps unsaved edits in the browser, so nothing is lost either way).
//
// On the reference page (reading/reference_series.html) it also marks the image
// area itself "reference series, not being read".
//
// Data: GET /api/v1/cases/{case}/series/ (imaging/api/study_series.py).

import "./i18n.js";
import { api } from "../common/http.js";
import { h, loadJSON, saveJSON } from "./ui.js";

const OPEN_KEY = "refset.seriespanel.open";
const FLUSH_WAIT_MS = 2000;

function seriesUrl(slot, series) {
  if (series.current) return slot.dataset.caseUrl;
  return slot.dataset.referenceUrl.replace(/\/0\/$/, `/${series.id}/`);
}

function mm(value) {
  return value == null ? null : `${Math.round(value * 100) / 100} mm`;
}

/** "CT · 64 images · 1.25 mm" (thickness, and spacing where it differs). */
export function seriesFacts(series) {
  const parts = [series.modality || "?"];
  parts.push(interpolate(ngettext("%(n)s image", "%(n)s images", series.images), { n: series.images }, true));
  const thick = mm(series.slice_thickness_mm);
  const spacing = mm(series.slice_spacing_mm);
  if (thick) parts.push(thick);
  if (spacing && spacing !== thick) parts.push(interpolate(gettext("every %(mm)s"), { mm: spacing }, true));
  return parts.join(" · ");
}

// Photographs name the eye (ImageLaterality R: right eye, OD; L: left eye, OS).
const PHOTO_MODALITIES = new Set(["OP", "XC"]);
const EYES = { R: "OD", L: "OS" };

/** The series' name: its description, else what its header says of it ("OD · OP",
 * "PA · L · CR": the eye or side, the view, the modality). */
export function seriesTitle(series) {
  if (series.description) return series.description;
  const side = series.laterality || "";
  const view = series.view_position || "";
  const photo = PHOTO_MODALITIES.has(series.modality);
  const parts = photo ? [EYES[side] || "", view] : [view, side];
  if (!parts.some(Boolean)) return gettext("(no description)");
  return [...parts, series.modality].filter(Boolean).join(" · ");
}

function thumbnail(series) {
  const box = h("span", { class: "sp-thumb" });
  if (!series.thumbnail) {
    box.append(h("span", { class: "sp-nothumb", text: gettext("No preview") }));
    return box;
  }
  const img = h("img", {
    src: series.thumbnail,
    alt: interpolate(gettext("Middle slice of %(series)s"), { series: seriesTitle(series) }, true),
    loading: "lazy",
    decoding: "async",
    width: 96,
    height: 96,
  });
  img.addEventListener("error", () => {
    img.replaceWith(h("span", { class: "sp-nothumb", text: gettext("No preview") }));
  });
  box.append(img);
  return box;
}

function badge(series, shown) {
  if (series.current) return h("span", { class: "sp-badge sp-badge-case", "data-testid": "series-case-badge", text: gettext("Being read") });
  if (series.id === shown) return h("span", { class: "sp-badge sp-badge-shown", text: gettext("Shown, for reference") });
  return null;
}

async function leave(url) {
  const ws = window.__ws;
  if (ws && ws.queue && typeof ws.queue.flush === "function") {
    const wait = new Promise((resolve) => setTimeout(resolve, FLUSH_WAIT_MS));
    try {
      await Promise.race([ws.queue.flush(), wait]);
    } catch {
      /* the queue keeps what it could not send */
    }
  }
  window.location.href = url;
}

function item(slot, series, shown) {
  const here = series.id === shown;
  const title = seriesTitle(series);
  const link = h(
    "a",
    {
      class: `sp-item${here ? " sp-here" : ""}${series.current ? " sp-current" : ""}`,
      href: seriesUrl(slot, series),
      "data-testid": "series-item",
      "data-series": String(series.id),
      title: series.current
        ? gettext("The series of this case, the one you read and mark")
        : gettext("Open for looking only: a reference series, not being read"),
    },
    [
      thumbnail(series),
      h("span", { class: "sp-text" }, [
        h("span", { class: "sp-name", text: title }),
        h("span", { class: "sp-facts", text: seriesFacts(series) }),
        badge(series, shown),
      ]),
    ],
  );
  if (here) link.setAttribute("aria-current", "page");
  link.addEventListener("click", (event) => {
    if (here) {
      event.preventDefault();
      return;
    }
    if (event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey) return;
    event.preventDefault();
    leave(link.href);
  });
  return h("li", {}, [link]);
}

/** Fill the slot from the API; resolves to the series listed (none: hidden). */
export async function mountSeriesPanel(slot) {
  const apiRoot = slot.dataset.api || "/api/v1/";
  let data;
  try {
    ({ data } = await api("GET", `${apiRoot}cases/${slot.dataset.case}/series/`));
  } catch {
    return []; // the panel is a convenience: the viewer works without it
  }
  const series = data.series || [];
  slot.dataset.count = String(series.length);
  if (series.length < 2) return series;
  const shown = Number(slot.dataset.shown);
  const list = slot.querySelector(".sp-list");
  list.replaceChildren(...series.map((s) => item(slot, s, shown)));
  slot.querySelector(".sp-count").textContent = String(series.length);
  const remembered = loadJSON(OPEN_KEY);
  if (remembered !== null) slot.open = Boolean(remembered);
  slot.addEventListener("toggle", () => saveJSON(OPEN_KEY, slot.open));
  slot.hidden = false;
  slot.dataset.ready = "1";
  return series;
}

/** Run `start` once the viewer has painted its first image (body data-first-image),
 * or after `ms` at the latest: the panel never competes with the first slice. */
function afterFirstImage(start, ms = 3000) {
  if (document.body.dataset.firstImage === "1") {
    start();
    return;
  }
  let done = false;
  const once = () => {
    if (done) return;
    done = true;
    observer.disconnect();
    start();
  };
  const observer = new MutationObserver(() => {
    if (document.body.dataset.firstImage === "1") once();
  });
  observer.observe(document.body, { attributes: true, attributeFilter: ["data-first-image"] });
  setTimeout(once, ms);
}

/** On the reference page, say on the image itself that it is not the series read. */
function markReferenceStage() {
  const stage = document.querySelector("[data-testid=reference-viewer] .ws-stage");
  if (!stage) return;
  stage.append(h("span", { class: "sp-stage-mark", "data-testid": "reference-mark", text: gettext("Reference series · not being read") }));
}

markReferenceStage();
const slot = document.getElementById("ws-series");
if (slot) afterFirstImage(() => mountSeriesPanel(slot));
