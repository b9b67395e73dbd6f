// Window/level on the client. int16 frames go through a 65536-entry lookup table
// (built once per window change, about 0.2 ms) indexed by the value's 16 bits read
// as unsigned (a Uint16Array view of the frame, made once per frame), so a 2000 x
// 2000 radiograph costs one table read per pixel: no offset, no float math. The windowed slice is drawn into an
// offscreen canvas once per (slice, window) change; the viewport then only draws
// that canvas with its view transform.
//
// While the reader drags the window over a large minified image (a 3000 x 2500
// radiograph shown at 1000 px), windowing every source pixel per frame costs more
// than the 16.7 ms a frame has (the table pass, putImageData and the upload of a
// 7.5 Mpixel canvas). render(..., {step}) then windows every step-th pixel of every
// step-th row into a preview canvas with at least as many pixels as the screen
// shows; the caller draws the full-resolution image again once the drag rests.

const OPAQUE = 0xff000000;

/** DICOM PS3.3 C.11.2.1.2 linear VOI function, to 0..255. */
export function windowValue(x, center, width) {
  const w = Math.max(width, 1);
  const lo = center - 0.5 - (w - 1) / 2;
  const hi = center - 0.5 + (w - 1) / 2;
  if (x <= lo) return 0;
  if (x > hi) return 255;
  return Math.round(((x - (center - 0.5)) / (w - 1) + 0.5) * 255);
}

export class SliceRenderer {
  constructor() {
    this.canvas = document.createElement("canvas");
    this.ctx = this.canvas.getContext("2d", { willReadFrequently: false });
    this.imageData = null;
    this.lut = new Uint32Array(65536);
    this.lutKey = "";
    this.bits = null; // {src, u16}: the frame being windowed, viewed as Uint16
    this.key = "";
    this.lastMs = 0;
    this.preview = null; // {canvas, ctx, imageData, key} for render(..., {step > 1})
  }

  _lutFor(center, width, invert) {
    const key = `${center}|${width}|${invert}`;
    if (key === this.lutKey) return this.lut;
    const lut = this.lut;
    const w = Math.max(width, 1);
    const lo = center - 0.5 - (w - 1) / 2;
    const hi = center - 0.5 + (w - 1) / 2;
    const scale = 255 / (w - 1 || 1);
    for (let i = 0; i < 65536; i += 1) {
      const x = i < 32768 ? i : i - 65536; // entry i: the int16 whose bits read i
      let g;
      if (x <= lo) g = 0;
      else if (x > hi) g = 255;
      else g = Math.round((x - (center - 0.5)) * scale + 127.5);
      if (g < 0) g = 0;
      else if (g > 255) g = 255;
      if (invert) g = 255 - g;
      lut[i] = OPAQUE | (g << 16) | (g << 8) | g;
    }
    this.lutKey = key;
    return lut;
  }

  /**
   * Window `frame` into the offscreen canvas (no-op when nothing changed). With
   * {step: k > 1}, window every k-th pixel into a smaller preview canvas instead
   * (its size in image pixels is still columns x rows; draw it scaled).
   */
  render(frame, center, width, invert, sliceKey, { step = 1 } = {}) {
    const h = frame.header;
    if (step > 1 && !h.rgb) return this._renderPreview(frame, center, width, invert, sliceKey, step);
    const key = `${sliceKey}|${center}|${width}|${invert}`;
    if (key === this.key) return this.canvas;
    const t0 = performance.now();
    const { rows, columns } = h;
    if (this.canvas.width !== columns || this.canvas.height !== rows || !this.imageData) {
      this.canvas.width = columns;
      this.canvas.height = rows;
      this.imageData = this.ctx.createImageData(columns, rows);
    }
    const out = new Uint32Array(this.imageData.data.buffer);
    const src = frame.values;
    const n = rows * columns;
    if (h.rgb) {
      const shift = h.dtype === "uint16" ? 8 : 0;
      for (let i = 0, j = 0; i < n; i += 1, j += 3) {
        const r = src[j] >> shift;
        const g = src[j + 1] >> shift;
        const b = src[j + 2] >> shift;
        out[i] = OPAQUE | (b << 16) | (g << 8) | r;
      }
    } else {
      this._window(src, out, columns, rows, 1, center, width, invert);
    }
    this.ctx.putImageData(this.imageData, 0, 0);
    this.key = key;
    this.lastMs = performance.now() - t0;
    return this.canvas;
  }

  _renderPreview(frame, center, width, invert, sliceKey, step) {
    const { rows, columns } = frame.header;
    const key = `${sliceKey}|${center}|${width}|${invert}|${step}`;
    if (!this.preview) {
      const canvas = document.createElement("canvas");
      this.preview = { canvas, ctx: canvas.getContext("2d"), imageData: null, key: "" };
    }
    const pv = this.preview;
    if (key === pv.key) return pv.canvas;
    const t0 = performance.now();
    const w = Math.ceil(columns / step);
    const hgt = Math.ceil(rows / step);
    if (pv.canvas.width !== w || pv.canvas.height !== hgt || !pv.imageData) {
      pv.canvas.width = w;
      pv.canvas.height = hgt;
      pv.imageData = pv.ctx.createImageData(w, hgt);
    }
    this._window(frame.values, new Uint32Array(pv.imageData.data.buffer), columns, rows, step, center, width, invert);
    pv.ctx.putImageData(pv.imageData, 0, 0);
    pv.key = key;
    this.lastMs = performance.now() - t0;
    return pv.canvas;
  }

  /** Window every `step`-th pixel of every `step`-th row of `src` into `out`. */
  _window(src, out, columns, rows, step, center, width, invert) {
    if (src instanceof Int16Array) {
      const lut = this._lutFor(center, width, invert);
      if (!this.bits || this.bits.src !== src) this.bits = { src, u16: new Uint16Array(src.buffer, src.byteOffset, src.length) };
      const u16 = this.bits.u16;
      if (step === 1) {
        const n = rows * columns;
        for (let i = 0; i < n; i += 1) out[i] = lut[u16[i]];
        return;
      }
      let o = 0;
      for (let r = 0; r < rows; r += step) {
        const end = r * columns + columns;
        for (let i = r * columns; i < end; i += step) out[o++] = lut[u16[i]];
      }
      return;
    }
    const w = Math.max(width, 1);
    const base = center - 0.5;
    const scale = 255 / (w - 1 || 1);
    const lo = center - 0.5 - (w - 1) / 2;
    const hi = center - 0.5 + (w - 1) / 2;
    let o = 0;
    for (let r = 0; r < rows; r += step) {
      const end = r * columns + columns;
      for (let i = r * columns; i < end; i += step) {
        const x = src[i];
        let g = x <= lo ? 0 : x > hi ? 255 : ((x - base) * scale + 127.5) | 0;
        if (g > 255) g = 255;
        if (g < 0) g = 0;
        if (invert) g = 255 - g;
        out[o++] = OPAQUE | (g << 16) | (g << 8) | g;
      }
    }
  }
}
