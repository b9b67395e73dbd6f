// Window/level on the client. int16 frames go through a 65536-entry lookup table
// (built once per window change, about 0.2 ms) indexed by the value's 16 bits read
// as unsigned (a Uint16Array view of the frame, made once per frame), so a 2000 x
// 2000 radiograph costs one table read per pixel: no offset, no float math. The
// windowed slice is drawn into an offscreen canvas once per (slice, window) change;
// the viewport then only draws that canvas with its view transform.
//
// While the reader drags the window over a large image (a 3000 x 2500 radiograph,
// 7.5 Mpixel), windowing every source pixel into the full-size canvas per frame, and
// letting the browser scale that canvas to the screen, blew the 16.7 ms frame budget
// (p95 28-67 ms on the 2-core test machines). The screen shows at most its own
// pixels, so render(..., {view}) windows only those (renderVisible):
//   - minified (fewer than one device pixel per image pixel): the frame reduced to
//     the view's zoom (reducedFor: each device pixel the area-weighted mean of the raw
//     16-bit values of the image pixels it covers, rounded to an integer), built once
//     per frame and zoom, ahead when the page is idle; a drag frame is then one table
//     read per device pixel in view, drawn one to one, without smoothing. The mean is
//     taken before the window, not after, so that the frame costs one table read per
//     pixel whatever the window (windowing first would mean going back to every
//     full-resolution pixel, or to per-block statistics, on each frame: the block
//     min/max pyramid that this replaced took about 4x longer per frame in
//     bench/lut_drag.mjs). It is what a GPU viewer that windows a filtered texture
//     shows; it differs from the mean of the windowed pixels only where a device
//     pixel straddles an edge of the window, and only for the length of the drag;
//   - magnified or 1:1: the visible part of the image, pixel for pixel, as the full
//     paint would window it.
// The caller paints the whole image again once the drag rests (the canvas it keeps
// for zoom and pan), so the settled image is every full-resolution pixel windowed.
// render(..., {step}) is the older reduced preview (every step-th pixel of every
// step-th row), kept for callers that pass no view.
//
// WebGL2 was measured as the other way (bench/viewer_webgl.py): headless Chromium
// here gives WebGL2 even with --disable-gpu (ANGLE over SwiftShader, rendering on
// the CPU; --enable-unsafe-swiftshader changes nothing), but a fragment shader
// windowing a 3000 x 2500 R16I texture into a 1150 x 960 canvas took a frame
// median of 24-57 ms at k = 1 and 71-130 ms at k = 3 (p95 2-11x the budget), and
// drawing the GL canvas into the 2D canvas that carries the overlays doubled it. A
// real GPU should do far better (not measured: these machines have none); this
// module stays on the canvas 2D path that every browser has, so there is no WebGL
// path, and no fallback whose pixels would have to match.

const OPAQUE = 0xff000000;
// Below this many pixels the full-resolution paint fits a frame: no visible-only render.
export const VISIBLE_MIN_PIXELS = 2_000_000;

/** DICOM PS3.3 C.11.2.1.2 linear VOI function, to 0..255. */
export function windowValue(x, center, width) {
  const w = Math.max(width, 1);
  const lo = center - 0.5 - (w - 1) / 2;
  const hi = center - 0.5 + (w - 1) / 2;
  if (x <= lo) return 0;
  if (x > hi) return 255;
  return Math.round(((x - (center - 0.5)) / (w - 1) + 0.5) * 255);
}

/**
 * A photograph's levels (photo.js): 256 entries, the 8-bit sample value to 0..255.
 * The window is brightness/contrast: t = (v - (center - width / 2)) / width clamped
 * to 0..1, then gamma (t ** (1 / gamma)), then inversion. The photo's default
 * window (center 127.5, width 255) with gamma 1 is the identity.
 */
export function photoLevels(center, width, gamma = 1, invert = false) {
  const levels = new Uint8Array(256);
  const w = Math.max(width, 1e-3);
  const lo = center - w / 2;
  const g = gamma > 0 ? gamma : 1;
  for (let v = 0; v < 256; v += 1) {
    let t = (v - lo) / w;
    t = t <= 0 ? 0 : t >= 1 ? 1 : t;
    if (g !== 1) t = t ** (1 / g);
    const out = Math.round(t * 255);
    levels[v] = invert ? 255 - out : out;
  }
  return levels;
}

/** Whether render(..., {view}) windows only the visible part of `frame`. */
function visibleApplies(frame) {
  const h = frame.header;
  const v = frame.values;
  return !h.rgb && h.rows * h.columns >= VISIBLE_MIN_PIXELS && (v instanceof Int16Array || v instanceof Uint16Array);
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
    this.visible = null; // {canvas, ctx, imageData, key} for render(..., {view})
    this.visibleOnly = true; // false: ignore {view} (the benchmark's baseline)
    this.grey = new Uint8Array(65536); // window without inversion, indexed like lut
    this.greyKey = "";
    this.reduced = null; // [{src, fx, fy, w, h, values, u16}]: the frame at a zoom (reducedFor)
    this.lastMode = ""; // "full", "step", "visible": what the last render() drew
    this.photo = { gamma: 1, redFree: false }; // an RGB frame's adjustments (photo.js)
  }

  _greyFor(center, width, signed) {
    const key = `${center}|${width}|${signed}`;
    if (key === this.greyKey) return this.grey;
    const grey = this.grey;
    const w = Math.max(width, 1);
    const lo = center - 0.5 - (w - 1) / 2;
    const hi = center - 0.5 + (w - 1) / 2;
    const scale = 255 / (w - 1 || 1);
    for (let i = 0; i < 65536; i += 1) {
      const x = signed && i >= 32768 ? i - 65536 : i;
      let g;
      if (x <= lo) g = 0;
      else if (x > hi) g = 255;
      else g = Math.round((x - (center - 0.5)) * scale + 127.5); // as _lutFor
      grey[i] = g < 0 ? 0 : g > 255 ? 255 : g;
    }
    this.greyKey = key;
    return grey;
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
  render(frame, center, width, invert, sliceKey, { step = 1, view = null } = {}) {
    const h = frame.header;
    if (view && this.visibleOnly && visibleApplies(frame)) {
      // The full-resolution canvas already holds this window (a zoom or a pan while
      // the drag has not rested): nothing to window, and no reduced frame to build
      // for every zoom step on the way.
      if (this.key === `${sliceKey}|${center}|${width}|${invert}`) {
        this.lastMode = "full";
        return this.canvas;
      }
      this.lastMode = "visible";
      return this._renderVisible(frame, center, width, invert, sliceKey, view);
    }
    if (step > 1 && !h.rgb) {
      this.lastMode = "step";
      return this._renderPreview(frame, center, width, invert, sliceKey, step);
    }
    this.lastMode = "full";
    const photo = this.photo;
    const key = `${sliceKey}|${center}|${width}|${invert}${h.rgb ? `|${photo.gamma}|${photo.redFree}` : ""}`;
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
      // brightness/contrast (the window), gamma and inversion through one table;
      // red-free: the green channel alone, as grey
      const shift = h.dtype === "uint16" ? 8 : 0;
      const lv = photoLevels(center, width, photo.gamma, invert);
      if (photo.redFree) {
        for (let i = 0, j = 1; i < n; i += 1, j += 3) {
          const g = lv[src[j] >> shift];
          out[i] = OPAQUE | (g << 16) | (g << 8) | g;
        }
      } else {
        for (let i = 0, j = 0; i < n; i += 1, j += 3) {
          out[i] = OPAQUE | (lv[src[j + 2] >> shift] << 16) | (lv[src[j + 1] >> shift] << 8) | lv[src[j] >> shift];
        }
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

  /**
   * The part of `frame` that `view` (a Viewport) shows, windowed at the screen's
   * resolution (see the top of this file). The canvas it returns carries `imageRect`
   * [col, row, width, height]: where in image pixels the viewport draws it, and
   * `screenPixels` (true when minified: one canvas pixel per device pixel, drawn
   * without smoothing).
   */
  _renderVisible(frame, center, width, invert, sliceKey, view) {
    const { rows, columns } = frame.header;
    const fx = view.zoom * view.sx * view.dpr; // device pixels per image pixel
    const fy = view.zoom * view.sy * view.dpr;
    const reduced = fx < 1 && fy < 1 ? this.reducedFor(frame, fx, fy) : null;
    const [c0, r0] = view.toImage([0, 0]);
    const [c1, r1] = view.toImage([view.cssWidth, view.cssHeight]);
    // the grid windowed: the reduced image's pixels, or the frame's own
    const gw = reduced ? reduced.w : columns;
    const gh = reduced ? reduced.h : rows;
    const ux = reduced ? reduced.fx : 1; // grid pixels per image pixel
    const uy = reduced ? reduced.fy : 1;
    const clamp = (v, n) => Math.min(Math.max(v, 0), n);
    // Whole grid pixels in view (at least one, so that the canvas is never empty).
    const x0 = Math.min(clamp(Math.floor(c0 * ux), gw), gw - 1);
    const y0 = Math.min(clamp(Math.floor(r0 * uy), gh), gh - 1);
    const x1 = Math.max(clamp(Math.ceil(c1 * ux), gw), x0 + 1);
    const y1 = Math.max(clamp(Math.ceil(r1 * uy), gh), y0 + 1);
    const key = `${sliceKey}|${center}|${width}|${invert}|${ux}|${uy}|${x0}|${y0}|${x1}|${y1}`;
    if (!this.visible) {
      const canvas = document.createElement("canvas");
      this.visible = { canvas, ctx: canvas.getContext("2d"), imageData: null, key: "" };
    }
    const vis = this.visible;
    if (key === vis.key) return vis.canvas;
    const t0 = performance.now();
    const w = x1 - x0;
    const hgt = y1 - y0;
    if (vis.canvas.width !== w || vis.canvas.height !== hgt || !vis.imageData) {
      vis.canvas.width = w;
      vis.canvas.height = hgt;
      vis.imageData = vis.ctx.createImageData(w, hgt);
    }
    const out = new Uint32Array(vis.imageData.data.buffer);
    const src = reduced ? reduced.values : frame.values;
    const signed = src instanceof Int16Array;
    let u16 = src;
    if (reduced) u16 = reduced.u16;
    else if (signed) {
      if (!this.bits || this.bits.src !== src) this.bits = { src, u16: new Uint16Array(src.buffer, src.byteOffset, src.length) };
      u16 = this.bits.u16;
    }
    // one table read per grid pixel in view
    const lut = signed ? this._lutFor(center, width, invert) : this._unsignedLut(center, width, invert);
    let o = 0;
    for (let r = y0; r < y1; r += 1) {
      const end = r * gw + x1;
      for (let i = r * gw + x0; i < end; i += 1) out[o++] = lut[u16[i]];
    }
    vis.ctx.putImageData(vis.imageData, 0, 0);
    // (a reduced pixel at the right or bottom edge may cover less than a device
    // pixel of the image: it is drawn a whole device pixel, its value the mean of
    // the part it covers)
    vis.canvas.imageRect = [x0 / ux, y0 / uy, w / ux, hgt / uy];
    vis.canvas.screenPixels = Boolean(reduced);
    vis.key = key;
    this.lastMs = performance.now() - t0;
    return vis.canvas;
  }

  /**
   * Build ahead (when the page is idle) what a window drag over `frame` in `view`
   * needs: the frame reduced to the view's zoom (about 60 ms for 7.5 Mpixel).
   */
  prepareVisible(frame, view) {
    if (!frame || !frame.values || !visibleApplies(frame)) return;
    const fx = view.zoom * view.sx * view.dpr;
    const fy = view.zoom * view.sy * view.dpr;
    if (fx < 1 && fy < 1) this.reducedFor(frame, fx, fy);
  }

  /** The packed lookup table of an unsigned 16-bit frame (entry i: the value i). */
  _unsignedLut(center, width, invert) {
    const key = `u|${center}|${width}|${invert}`;
    if (!this.ulut) this.ulut = { lut: new Uint32Array(65536), key: "" };
    if (this.ulut.key !== key) {
      const grey = this._greyFor(center, width, false);
      for (let i = 0; i < 65536; i += 1) {
        const g = invert ? 255 - grey[i] : grey[i];
        this.ulut.lut[i] = OPAQUE | (g << 16) | (g << 8) | g;
      }
      this.ulut.key = key;
    }
    return this.ulut.lut;
  }

  /**
   * `frame` reduced to fx x fy device pixels per image pixel (both below 1): each
   * output pixel the area-weighted mean of the raw values of the image pixels it
   * covers (a box filter over the exact footprint, fractional at its borders),
   * rounded to the frame's own integer type, so that a drag frame is one table read
   * per output pixel. The last two zoom levels are kept (a zoom back and forth does
   * not rebuild); one pass over the frame, about 2 bytes per output pixel.
   */
  reducedFor(frame, fx, fy) {
    const src = frame.values;
    this.reduced = (this.reduced || []).filter((r) => r.src === src);
    const hit = this.reduced.find((r) => r.fx === fx && r.fy === fy);
    if (hit) return hit;
    const { rows, columns } = frame.header;
    const w = Math.ceil(columns * fx - 1e-9);
    const h = Math.ceil(rows * fy - 1e-9);
    // Source column c covers [c * fx, (c + 1) * fx) of the output axis, less than one
    // output pixel: its weight `part[c]` in output `at[c]`, the rest in at[c] + 1.
    const split = (n, f, m) => {
      const at = new Int32Array(n);
      const part = new Float64Array(n);
      for (let c = 0; c < n; c += 1) {
        const a = c * f;
        const o = Math.min(Math.floor(a), m - 1);
        at[c] = o;
        part[c] = Math.min(1, (o + 1 - a) / f); // share of the source pixel in o
      }
      return { at, part };
    };
    const sx = split(columns, fx, w);
    const sy = split(rows, fy, h);
    const values = new src.constructor(w * h);
    const row = new Float64Array(w + 1); // one source row, summed across
    const acc = [new Float64Array(w + 1), new Float64Array(w + 1)]; // output rows o, o + 1
    let area0 = 0; // the rows' weight in output rows o, o + 1
    let area1 = 0;
    const colArea = new Float64Array(w + 1);
    for (let c = 0; c < columns; c += 1) {
      colArea[sx.at[c]] += sx.part[c];
      colArea[sx.at[c] + 1] += 1 - sx.part[c];
    }
    const { at: cat, part: cpart } = sx;
    const lowest = src instanceof Int16Array ? -32768 : 0;
    const highest = src instanceof Int16Array ? 32767 : 65535;
    let current = 0; // the output row acc[0] collects
    const flush = (o) => {
      const a = acc[0];
      const base = o * w;
      for (let i = 0; i < w; i += 1) {
        const v = Math.round(a[i] / (area0 * colArea[i]));
        values[base + i] = v < lowest ? lowest : v > highest ? highest : v;
      }
      acc.reverse();
      acc[1].fill(0);
      area0 = area1;
      area1 = 0;
    };
    for (let r = 0; r < rows; r += 1) {
      const o = sy.at[r];
      while (current < o) flush(current++);
      row.fill(0);
      const base = r * columns;
      for (let c = 0; c < columns; c += 1) {
        const v = src[base + c];
        const p = cpart[c];
        const i = cat[c];
        row[i] += v * p;
        row[i + 1] += v - v * p;
      }
      const p = sy.part[r];
      const q = 1 - p;
      const a0 = acc[0];
      const a1 = acc[1];
      for (let i = 0; i < w; i += 1) {
        a0[i] += row[i] * p;
        a1[i] += row[i] * q;
      }
      area0 += p;
      area1 += q;
    }
    while (current < h) flush(current++);
    const u16 = src instanceof Int16Array ? new Uint16Array(values.buffer) : values;
    const made = { src, fx, fy, w, h, values, u16 };
    this.reduced = [...this.reduced.slice(-1), made];
    return made;
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
