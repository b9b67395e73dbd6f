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
// Installed on Workstation.prototype; the renderer reads `renderer.photo`.

import { comboOf } from "./shortcuts.js";
import { $, h } from "./ui.js";

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
      interpolate(gettext("Brightness %s · contrast %s%%"), [brightness > 0 ? `+${brightness}` : brightness, contrast]),
      this.renderer.photo.gamma !== 1 ? `γ ${this.renderer.photo.gamma.toFixed(2)}` : "",
      this.renderer.photo.redFree ? gettext("red-free") : "",
      this.invert ? gettext("inverted") : "",
    ];
    return parts.filter(Boolean).join(" · ");
  },
};
