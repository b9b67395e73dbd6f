// Photographs (RGB frames: an ophthalmic fundus photo) on the workstation. Instead of
// window/level presets, the bar above the image holds the photo adjustments:
//   - brightness/contrast: the window, dragged like window/level (tools.js), applied
//     to each channel (lut.js photoLevels); its default (imaging/pixels.py
//     PHOTO_WINDOW) shows the photo as stored;
//   - gamma (a slider);
//   - red-free: the green channel alone as grey (the button, or Shift + G), where
//     vessels and haemorrhages stand out;
//   - reset: the adjustments back to the photo as stored (R resets them with the view).
// The eye (OD / OS, from ImageLaterality) replaces the radiograph's view marker.
//
// The other eye of the same visit: when the case's study (the series panel's
// GET /api/v1/cases/{id}/series/) holds another OP series whose photo is of the
// other eye, it is shown beside the case's, fitted, with the same adjustments,
// labelled "other eye, view only" (1 x 2: OD on the left, OS on the right, as
// facing the patient). Only the case's eye is drawn on and zoomed.
// Installed on Workstation.prototype; the renderer reads `renderer.photo`.

import { api } from "../common/http.js";
import { SliceRenderer } from "./lut.js";
import { streamSeries } from "./pixels.js";
import { comboOf } from "./shortcuts.js";
import { $, h } from "./ui.js";

// OP series of the study looked at for the other eye (a visit has one per eye).
const FELLOW_CANDIDATES = 3;

export const RED_FREE_KEY = "shift+g";
const EYES = { R: "OD", L: "OS" };

/** "OD" / "OS" for a header's view laterality (R / L), "" otherwise. */
export function eyeOf(view) {
  return (view && EYES[view.laterality]) || "";
}

/** Methods of Workstation for a photograph (this.rgb). */
export const photoMethods = {
  /** The first frame is a photograph: the adjustments bar and the eye marker. */
  _initPhoto(header) {
    if (!header.rgb || this.photoBar) return;
    const box = $("#ws-presets");
    box.textContent = "";
    box.setAttribute("aria-label", gettext("Photo adjustments"));
    const redFree = h("button", {
      type: "button",
      class: "ws-preset",
      id: "ws-redfree",
      "data-testid": "red-free",
      text: gettext("Red-free"),
      title: interpolate(gettext("Red-free: the green channel as grey (%s)"), ["Shift + G"]),
    });
    redFree.addEventListener("click", () => this.toggleRedFree());
    const gamma = h("input", { type: "range", id: "ws-gamma", min: "0.4", max: "2.5", step: "0.05", value: "1", "data-testid": "gamma" });
    gamma.addEventListener("input", () => this.setGamma(Number(gamma.value)));
    const gammaOut = h("output", { id: "ws-gamma-value", for: "ws-gamma", text: "1.00" });
    const gammaLabel = h("label", {
      class: "ws-photo-gamma",
      style: "display: flex; align-items: center; gap: 4px; color: #c7d0de; font-size: 12px;",
      text: `${gettext("Gamma")} `,
    }, [gamma, gammaOut]);
    const reset = h("button", {
      type: "button",
      class: "ws-preset",
      "data-testid": "photo-reset",
      text: gettext("Reset adjustments"),
      title: gettext("Brightness, contrast and gamma as stored, colour on"),
    });
    reset.addEventListener("click", () => this.resetPhoto());
    const hint = h("span", { class: "ws-hint", text: gettext("Drag with the window tool (or the right button): brightness and contrast") });
    box.append(redFree, gammaLabel, reset, hint);
    this.photoBar = { redFree, gamma, gammaOut };
    const eye = eyeOf(header.view);
    const marker = document.getElementById("ws-mark-view");
    if (marker) {
      marker.textContent = eye;
      marker.hidden = !eye;
      marker.title = eye ? gettext("Eye, from the image header (ImageLaterality)") : "";
    }
    document.addEventListener("keydown", (e) => {
      const field = e.target && ["INPUT", "TEXTAREA", "SELECT"].includes(e.target.tagName) && e.target.type !== "range";
      if (field || comboOf(e) !== RED_FREE_KEY) return;
      e.preventDefault();
      this.toggleRedFree();
    });
    this._showPhoto();
    this.photoEye = eye;
    if (eye && this.boot.case && this.boot.series.modality === "OP") this._findFellow(eye);
  },

  /** Look through the study's other OP series for the other eye's photo. */
  async _findFellow(eye) {
    let listing;
    try {
      ({ data: listing } = await api("GET", `${this.apiRoot}cases/${this.boot.case.id}/series/`));
    } catch {
      return; // no panel data: the case's eye alone
    }
    const candidates = (listing.series || []).filter((s) => !s.current && s.modality === "OP" && s.images > 0);
    for (const series of candidates.slice(0, FELLOW_CANDIDATES)) {
      const frame = await this._fellowFrame(series.id);
      const other = frame && eyeOf(frame.header.view);
      if (other && other !== eye) {
        this._showFellow(frame, other);
        return;
      }
    }
  },

  /** The first full frame of a series (null when it has none or fails). */
  async _fellowFrame(seriesId) {
    const controller = new AbortController();
    let found = null;
    try {
      await streamSeries(this.apiRoot, seriesId, {
        signal: controller.signal,
        onFrame: (frame) => {
          if (found || frame.header.preview || !frame.values || !frame.header.rgb) return;
          found = frame;
          controller.abort();
        },
      });
    } catch {
      // aborted once the frame arrived, or failed: found says which
    }
    return found;
  },

  /** The other eye beside the case's: a second pane in the stage's row. */
  _showFellow(frame, eye) {
    const stage = document.querySelector(".ws-stage");
    if (!stage || this.fellow) return;
    const row = h("div", { class: "ws-photo-pair", "data-testid": "photo-pair" });
    row.style.cssText = "display: flex; flex: 1; min-height: 0; gap: 2px; background: #1a2230;";
    stage.parentNode.insertBefore(row, stage);
    stage.style.flex = "1 1 0";
    stage.style.minWidth = "0";
    const canvas = h("canvas", { "aria-label": gettext("The other eye (view only)") });
    canvas.style.cssText = "position: absolute; inset: 0; width: 100%; height: 100%; display: block;";
    const label = h("span", {
      class: "ws-photo-fellow-label",
      "data-testid": "fellow-label",
      text: interpolate(gettext("%s · other eye, view only"), [eye]),
    });
    label.style.cssText = "position: absolute; left: 10px; top: 8px; color: #ffd54f; font-size: 14px; pointer-events: none;";
    const pane = h("div", { class: "ws-photo-fellow", "data-testid": "fellow" }, [canvas, label]);
    pane.style.cssText = "position: relative; flex: 1 1 0; min-width: 0; overflow: hidden; background: #000;";
    // OD on the left, OS on the right (as facing the patient)
    if (eye === "OD") row.append(pane, stage);
    else row.append(stage, pane);
    this.fellow = { frame, eye, canvas, renderer: new SliceRenderer(), key: "", rect: null };
    new ResizeObserver(() => {
      this.fellow.key = "";
      this.redraw();
    }).observe(pane);
    this.redraw();
  },

  /** Paint the other eye (fitted) with the case's adjustments, when they changed. */
  _paintFellow() {
    const f = this.fellow;
    if (!f || !this.window) return;
    const { canvas, frame } = f;
    const dpr = window.devicePixelRatio || 1;
    const width = Math.max(1, Math.round(canvas.clientWidth * dpr));
    const height = Math.max(1, Math.round(canvas.clientHeight * dpr));
    f.renderer.photo = this.renderer.photo;
    const image = f.renderer.render(frame, this.window.center, this.window.width, this.headerInvert !== this.invert, "fellow");
    const key = `${width}|${height}|${f.renderer.key}`;
    if (key === f.key) return;
    if (canvas.width !== width || canvas.height !== height) {
      canvas.width = width;
      canvas.height = height;
    }
    const ctx = canvas.getContext("2d");
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, width, height);
    const { columns, rows } = frame.header;
    const scale = Math.min(width / columns, height / rows);
    const w = columns * scale;
    const hgt = rows * scale;
    f.rect = [(width - w) / 2, (height - hgt) / 2, w, hgt]; // device pixels
    ctx.imageSmoothingEnabled = true;
    ctx.drawImage(image, ...f.rect);
    f.key = key;
  },

  toggleRedFree() {
    if (!this.rgb) return;
    this.renderer.photo = { ...this.renderer.photo, redFree: !this.renderer.photo.redFree };
    this._showPhoto();
    this.redraw();
  },

  setGamma(value) {
    if (!this.rgb || !(value > 0)) return;
    this.renderer.photo = { ...this.renderer.photo, gamma: Math.round(value * 100) / 100 };
    this._showPhoto();
    this.redraw();
  },

  /** Brightness, contrast and gamma as stored, colour on. */
  resetPhoto() {
    if (!this.rgb) return;
    this.renderer.photo = { gamma: 1, redFree: false };
    if (this.defaultWindow) this.applyPreset("file");
    this.invert = false;
    this._showPhoto();
    this.redraw();
  },

  _showPhoto() {
    if (!this.photoBar) return;
    const { redFree, gamma } = this.renderer.photo;
    this.photoBar.redFree.classList.toggle("on", redFree);
    this.photoBar.redFree.setAttribute("aria-pressed", String(redFree));
    this.photoBar.gamma.value = String(gamma);
    this.photoBar.gammaOut.textContent = gamma.toFixed(2);
    this.canvas.dataset.redFree = redFree ? "1" : "0";
  },

  /** The corner line of a photograph's adjustments ("" for other images). */
  _photoText() {
    if (!this.rgb || !this.window) return "";
    const { center, width } = this.window;
    const brightness = Math.round(127.5 - center);
    const contrast = Math.round((255 / width) * 100);
    const parts = [
      // the percent sign goes in with the number: Django's interpolate() leaves a "%%" as it is
      interpolate(gettext("Brightness %s · contrast %s"), [brightness > 0 ? `+${brightness}` : brightness, `${contrast}%`]),
      this.renderer.photo.gamma !== 1 ? `γ ${this.renderer.photo.gamma.toFixed(2)}` : "",
      this.renderer.photo.redFree ? gettext("red-free") : "",
      this.invert ? gettext("inverted") : "",
    ];
    return parts.filter(Boolean).join(" · ");
  },
};
