// The view: one canvas, a view transform (zoom, pan) over the windowed slice,
// aspect from pixel spacing, devicePixelRatio-aware backing store, and overlays
// (shapes, handles, scale bar). Image points map to screen as
//   x = panX + zoom * col * colSpacing,   y = panY + zoom * row * rowSpacing
// so the image is shown in millimetres, with square pixels only when they are.

import { boundsOf, CLOSED, handlesOf } from "./geometry.js";
import { LabelLayout } from "./labels.js";

const NICE_MM = [1, 2, 5, 10, 20, 50, 100, 200, 500];

export class Viewport {
  constructor(canvas, geometry) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d", { alpha: false });
    this.geometry = geometry;
    this.zoom = 1;
    this.panX = 0;
    this.panY = 0;
    this.cssWidth = 0;
    this.cssHeight = 0;
    this.dpr = 1;
    this.image = null;
    this.fitted = false;
    this.frameMs = 0;
    // Where this paint's labels went (labels.js): none overprints another.
    this.labels = new LabelLayout();
    this.resize();
  }

  get sx() {
    return this.geometry.colSpacing;
  }

  get sy() {
    return this.geometry.rowSpacing;
  }

  resize() {
    const rect = this.canvas.getBoundingClientRect();
    this.dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(rect.width));
    const h = Math.max(1, Math.round(rect.height));
    const centre = this.cssWidth ? this.toImage([this.cssWidth / 2, this.cssHeight / 2]) : null;
    this.cssWidth = w;
    this.cssHeight = h;
    this.canvas.width = Math.round(w * this.dpr);
    this.canvas.height = Math.round(h * this.dpr);
    // A view still as fit() left it fits again (the page's layout settling must not
    // leave the image shifted or clipped); one the reader moved keeps its centre.
    if (!this.fitted || this.atFit) this.fit();
    else if (centre) this.centreOn(centre);
  }

  /** Fit the whole image in the view. */
  fit() {
    const cols = this.geometry.columns || (this.image && this.image.width) || 1;
    const rows = this.geometry.rows || (this.image && this.image.height) || 1;
    const worldW = cols * this.sx;
    const worldH = rows * this.sy;
    this.zoom = Math.min(this.cssWidth / worldW, this.cssHeight / worldH) * 0.96;
    this.panX = (this.cssWidth - worldW * this.zoom) / 2;
    this.panY = (this.cssHeight - worldH * this.zoom) / 2;
    this.fitted = true;
    this.atFit = true;
  }

  centreOn([c, r]) {
    this.panX = this.cssWidth / 2 - this.zoom * c * this.sx;
    this.panY = this.cssHeight / 2 - this.zoom * r * this.sy;
    this.atFit = false;
  }

  /**
   * Make image box [c0, r0, c1, r1] visible with `margin` CSS px around it: no
   * change when it already is; centred when it is wholly out of view, else the
   * smallest pan that brings it in; zoomed out (about its centre) when it is
   * larger than the view.
   */
  ensureVisible([c0, r0, c1, r1], margin = 40) {
    const m = Math.min(margin, this.cssWidth / 4, this.cssHeight / 4);
    const worldW = (c1 - c0) * this.sx;
    const worldH = (r1 - r0) * this.sy;
    const room = Math.min((this.cssWidth - 2 * m) / Math.max(worldW, 1e-6), (this.cssHeight - 2 * m) / Math.max(worldH, 1e-6));
    if (room < this.zoom) {
      this.zoom = Math.max(room, 0.02);
      this.centreOn([(c0 + c1) / 2, (r0 + r1) / 2]);
      return;
    }
    const [x0, y0] = this.toScreen([c0, r0]);
    const [x1, y1] = this.toScreen([c1, r1]);
    if (x1 < 0 || y1 < 0 || x0 > this.cssWidth || y0 > this.cssHeight) {
      this.centreOn([(c0 + c1) / 2, (r0 + r1) / 2]); // wholly out of view: centred
      return;
    }
    let dx = 0;
    let dy = 0;
    if (x0 < m) dx = m - x0;
    else if (x1 > this.cssWidth - m) dx = this.cssWidth - m - x1;
    if (y0 < m) dy = m - y0;
    else if (y1 > this.cssHeight - m) dy = this.cssHeight - m - y1;
    if (dx || dy) this.pan(dx, dy);
  }

  toScreen = ([c, r]) => [this.panX + this.zoom * c * this.sx, this.panY + this.zoom * r * this.sy];

  toImage = ([x, y]) => [(x - this.panX) / (this.zoom * this.sx), (y - this.panY) / (this.zoom * this.sy)];

  zoomAt(factor, x, y) {
    this.atFit = false;
    const next = Math.min(Math.max(this.zoom * factor, 0.02), 200);
    const [c, r] = this.toImage([x, y]);
    this.zoom = next;
    this.panX = x - this.zoom * c * this.sx;
    this.panY = y - this.zoom * r * this.sy;
  }

  pan(dx, dy) {
    this.atFit = false;
    this.panX += dx;
    this.panY += dy;
  }

  /** Screen pixels per image pixel (device pixels): below 1 the image is minified. */
  get devicePixelsPerImagePixel() {
    return this.zoom * Math.min(this.sx, this.sy) * this.dpr;
  }

  /**
   * Draw the windowed slice and call `overlay(ctx)` in CSS pixel coordinates.
   * `size` [columns, rows] is the image's size in image pixels when `image` is a
   * reduced preview of it (default: the image's own size). An image with an
   * `imageRect` [col, row, width, height] (lut.js renderVisible) covers only that
   * part of the image.
   */
  draw(image, overlay, size = null) {
    const t0 = performance.now();
    const ctx = this.ctx;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
    if (image) {
      this.image = image;
      const d = this.dpr;
      ctx.setTransform(d * this.zoom * this.sx, 0, 0, d * this.zoom * this.sy, d * this.panX, d * this.panY);
      // Crisp pixels when magnified; smoothing when minified (2k radiographs).
      ctx.imageSmoothingEnabled = this.devicePixelsPerImagePixel < 1;
      ctx.imageSmoothingQuality = "high";
      if (image.imageRect) {
        // Only the part in view (lut.js renderVisible): when minified, already at the
        // screen's resolution, one canvas pixel per device pixel (no smoothing, which
        // would only blur it); else the image's own pixels, magnified crisp.
        const [c, r, w, h] = image.imageRect;
        ctx.imageSmoothingEnabled = !image.screenPixels && (this.devicePixelsPerImagePixel * w) / image.width < 1;
        ctx.imageSmoothingQuality = "low";
        ctx.drawImage(image, c, r, w, h);
      } else if (size && (size[0] !== image.width || size[1] !== image.height)) ctx.drawImage(image, 0, 0, size[0], size[1]);
      else ctx.drawImage(image, 0, 0);
    }
    ctx.setTransform(this.dpr, 0, 0, this.dpr, 0, 0);
    this.labels.reset(this.cssWidth, this.cssHeight);
    if (overlay) overlay(ctx);
    this.frameMs = performance.now() - t0;
  }

  /** A scale bar in the bottom-right corner, in mm (or px without spacing). */
  drawScaleBar(ctx) {
    const perMm = this.zoom; // CSS px per world unit (mm)
    const target = this.cssWidth / 6;
    let mm = NICE_MM[0];
    for (const v of NICE_MM) if (v * perMm <= target) mm = v;
    const len = mm * perMm;
    const x1 = this.cssWidth - 24;
    const x0 = x1 - len;
    const y = this.cssHeight - 22;
    const label = this.geometry.hasSpacing ? `${mm} mm` : `${mm} px`;
    ctx.save();
    ctx.font = "12px system-ui, sans-serif";
    ctx.textAlign = "center";
    ctx.lineJoin = "round";
    // a dark outline under the light bar and label keeps them legible on bright anatomy
    for (const [colour, width] of [["rgba(0,0,0,0.85)", 4], ["#e8e8e8", 2]]) {
      ctx.strokeStyle = colour;
      ctx.lineWidth = width;
      ctx.beginPath();
      ctx.moveTo(x0, y - 5);
      ctx.lineTo(x0, y);
      ctx.lineTo(x1, y);
      ctx.lineTo(x1, y - 5);
      ctx.stroke();
    }
    ctx.lineWidth = 3;
    ctx.strokeStyle = "rgba(0,0,0,0.85)";
    ctx.strokeText(label, (x0 + x1) / 2, y - 7);
    ctx.fillStyle = "#e8e8e8";
    ctx.fillText(label, (x0 + x1) / 2, y - 7);
    ctx.restore();
  }

  /** Draw one shape; style {color, width, dash, fill, selected, handles, label}. */
  drawShape(ctx, kind, points, style) {
    const s = points.map(this.toScreen);
    ctx.save();
    ctx.strokeStyle = style.color;
    ctx.fillStyle = style.color;
    ctx.lineWidth = style.width || 1.5;
    ctx.setLineDash(style.dash || []);
    ctx.beginPath();
    if (kind === "point") {
      const [x, y] = s[0];
      ctx.moveTo(x - 7, y);
      ctx.lineTo(x - 2, y);
      ctx.moveTo(x + 2, y);
      ctx.lineTo(x + 7, y);
      ctx.moveTo(x, y - 7);
      ctx.lineTo(x, y - 2);
      ctx.moveTo(x, y + 2);
      ctx.lineTo(x, y + 7);
    } else if (kind === "box") {
      const [x0, y0, x1, y1] = boundsOf(s);
      ctx.rect(x0, y0, x1 - x0, y1 - y0);
    } else if (kind === "ellipse") {
      const [x0, y0, x1, y1] = boundsOf(s);
      ctx.ellipse((x0 + x1) / 2, (y0 + y1) / 2, Math.max((x1 - x0) / 2, 0.5), Math.max((y1 - y0) / 2, 0.5), 0, 0, 2 * Math.PI);
    } else {
      s.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
      if (CLOSED.has(kind)) ctx.closePath();
    }
    if (style.fill && kind !== "point" && kind !== "line" && kind !== "polyline") {
      ctx.globalAlpha = 0.12;
      ctx.fill();
      ctx.globalAlpha = 1;
    }
    ctx.stroke();
    ctx.setLineDash([]);
    if (style.handles) {
      const many = kind === "contour" && points.length > 40;
      for (const [, p] of handlesOf(kind, points)) {
        if (many) continue;
        const [x, y] = this.toScreen(p);
        ctx.fillStyle = "#fff";
        ctx.fillRect(x - 3, y - 3, 6, 6);
        ctx.strokeStyle = style.color;
        ctx.lineWidth = 1;
        ctx.strokeRect(x - 3, y - 3, 6, 6);
      }
    }
    if (style.label) {
      const [x0, y0, x1, y1] = boundsOf(s);
      ctx.font = "bold 12px system-ui, sans-serif";
      const r = kind === "point" ? 7 : 0;
      const anchor = { x0: x0 - r, y0: y0 - r, x1: x1 + r, y1: y1 + r };
      this.labels.drawLabel(ctx, style.label, style.color, anchor, [anchor.x0, anchor.y0 - 5]);
    }
    ctx.restore();
  }

  /** A measurement line with its length label. */
  drawMeasure(ctx, a, b, text, color) {
    const [x0, y0] = this.toScreen(a);
    const [x1, y1] = this.toScreen(b);
    ctx.save();
    ctx.strokeStyle = color;
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    ctx.moveTo(x0, y0);
    ctx.lineTo(x1, y1);
    ctx.stroke();
    for (const [x, y] of [
      [x0, y0],
      [x1, y1],
    ]) {
      ctx.beginPath();
      ctx.arc(x, y, 2.5, 0, 2 * Math.PI);
      ctx.fill();
    }
    ctx.font = "12px system-ui, sans-serif";
    const anchor = { x0: Math.min(x0, x1), y0: Math.min(y0, y1), x1: Math.max(x0, x1), y1: Math.max(y0, y1) };
    this.labels.drawLabel(ctx, text, color, anchor, [anchor.x1 + 6, (y0 + y1) / 2]);
    ctx.restore();
  }
}
