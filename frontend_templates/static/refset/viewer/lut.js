// Window/level on the client. int16 frames go through a 65536-entry lookup table
// (built once per window change, about 0.2 ms) indexed by the value's 16 bits read
// as unsigned (a Uint16Array view of the frame, made once per frame), so a 2000 x
// 2000 radiograph costs one table read per pixel: no offset, no float math. The
// windowed slice is drawn into an offscreen canvas once per (slice, window) change;
// the viewport then only draws that canvas with its view transform.
//
// While the reader drags the window over a large image (a 3000 x 2500 radiograph,
// 7.5 Mpixel), windowing every source pixel into the full-size canvas per frame is
// cheap enough (about 10 ms), but then the browser scales the 7.5 Mpixel canvas down
// to the screen on every frame, and that blew the 16.7 ms frame budget (p95 28-67 ms
// on the 2-core test machines). render(..., {view}) therefore windows only what the
// view shows, at about the screen's resolution, still from every full-resolution
// pixel (renderVisible):
//   - minified by k or more (k = floor(image pixels per device pixel) >= 2): one
//     output pixel per k x k block of source pixels, the mean of the windowed values
//     of all of them (a box filter, what a mipmap level of the full-resolution
//     windowed image holds), only for the blocks in view; the viewport draws it with
//     at most a 2x bilinear minification. A pyramid of per-block min, max and mean of
//     the raw values (built once per frame and k, ahead when the page is idle) makes
//     it cheap: a block wholly below the window is black, wholly above white, wholly
//     inside its linear part is the window of its mean (exact but for rounding:
//     within 1 grey level of the mean of the rounded per-pixel values); only the
//     blocks that straddle a window edge (about 2% on a chest radiograph) are
//     windowed pixel by pixel, in a second pass;
//   - k = 1 (zoom about 1:1 or larger): the visible part of the image, pixel for
//     pixel, as the full paint would window it.
// The caller paints the whole image again once the drag rests (the canvas it keeps
// for zoom and pan). render(..., {step}) is the older reduced preview (every step-th
// pixel of every step-th row), kept for callers that pass no view.
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

/** Source pixels per output pixel along columns and rows for `view` (at least 1). */
function blockSize(view) {
  return [Math.max(1, Math.floor(1 / (view.zoom * view.sx * view.dpr))), Math.max(1, Math.floor(1 / (view.zoom * view.sy * view.dpr)))];
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
    this.pyramid = null; // {src, kx, ky, min, max, sum}: per-block raw statistics
    this.lastMode = ""; // "full", "step", "visible": what the last render() drew
    this.straddling = null; // renderVisible's blocks that straddle a window edge
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
   * The part of `frame` that `view` (a Viewport) shows, windowed at about the
   * screen's resolution from every full-resolution pixel (see the top of this
   * file). The canvas it returns carries `imageRect` [col, row, width, height]: where
   * in image pixels the viewport draws it.
   */
  _renderVisible(frame, center, width, invert, sliceKey, view) {
    const { rows, columns } = frame.header;
    const [kx, ky] = blockSize(view);
    const nbx = Math.ceil(columns / kx);
    const nby = Math.ceil(rows / ky);
    const [c0, r0] = view.toImage([0, 0]);
    const [c1, r1] = view.toImage([view.cssWidth, view.cssHeight]);
    const clamp = (v, n) => Math.min(Math.max(v, 0), n);
    // Whole blocks in view (at least one, so that the canvas is never empty).
    const bx0 = Math.min(clamp(Math.floor(c0 / kx), nbx), nbx - 1);
    const by0 = Math.min(clamp(Math.floor(r0 / ky), nby), nby - 1);
    const bx1 = Math.max(clamp(Math.ceil(c1 / kx), nbx), bx0 + 1);
    const by1 = Math.max(clamp(Math.ceil(r1 / ky), nby), by0 + 1);
    const key = `${sliceKey}|${center}|${width}|${invert}|${kx}|${ky}|${bx0}|${by0}|${bx1}|${by1}`;
    if (!this.visible) {
      const canvas = document.createElement("canvas");
      this.visible = { canvas, ctx: canvas.getContext("2d"), imageData: null, key: "" };
    }
    const vis = this.visible;
    if (key === vis.key) return vis.canvas;
    const t0 = performance.now();
    const w = bx1 - bx0;
    const hgt = by1 - by0;
    if (vis.canvas.width !== w || vis.canvas.height !== hgt || !vis.imageData) {
      vis.canvas.width = w;
      vis.canvas.height = hgt;
      vis.imageData = vis.ctx.createImageData(w, hgt);
    }
    const out = new Uint32Array(vis.imageData.data.buffer);
    const src = frame.values;
    const signed = src instanceof Int16Array;
    if (!this.bits || this.bits.src !== src) this.bits = { src, u16: signed ? new Uint16Array(src.buffer, src.byteOffset, src.length) : src };
    const u16 = this.bits.u16;
    if (kx === 1 && ky === 1) {
      const lut = signed ? this._lutFor(center, width, invert) : this._unsignedLut(center, width, invert);
      let o = 0;
      for (let r = by0; r < by1; r += 1) {
        const end = r * columns + bx1;
        for (let i = r * columns + bx0; i < end; i += 1) out[o++] = lut[u16[i]];
      }
    } else {
      this._boxWindow(frame, out, [kx, ky, bx0, by0, bx1, by1], center, width, invert);
    }
    vis.ctx.putImageData(vis.imageData, 0, 0);
    // (a last, partial block at the right or bottom edge is drawn a little narrower)
    vis.canvas.imageRect = [bx0 * kx, by0 * ky, Math.min(bx1 * kx, columns) - bx0 * kx, Math.min(by1 * ky, rows) - by0 * ky];
    vis.key = key;
    this.lastMs = performance.now() - t0;
    return vis.canvas;
  }

  /**
   * Build ahead (when the page is idle) what a window drag over `frame` in `view`
   * needs: the block pyramid at the view's zoom (about 100 ms for 7.5 Mpixel).
   */
  prepareVisible(frame, view) {
    if (!frame || !frame.values || !visibleApplies(frame)) return;
    const [kx, ky] = blockSize(view);
    if (kx * ky > 1) this.pyramidFor(frame, kx, ky);
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
   * Per kx x ky block of the frame: the minimum, maximum and mean of its raw values,
   * and the raw values again block by block (`tiles`: a block's pixels side by side,
   * so that windowing one pixel by pixel reads one cache line, not k rows of the
   * frame). One pass over the frame, once per frame and block size; about 25 MB for
   * a 3000 x 2500 frame.
   */
  pyramidFor(frame, kx, ky) {
    const src = frame.values;
    const p = this.pyramid;
    if (p && p.src === src && p.kx === kx && p.ky === ky) return p;
    this.pyramid = null; // the old one's memory may go first
    const { rows, columns } = frame.header;
    const nbx = Math.ceil(columns / kx);
    const nby = Math.ceil(rows / ky);
    // in the frame's own type (int16 or uint16): half the bytes a drag reads per block
    const min = new src.constructor(nbx * nby);
    const max = new src.constructor(nbx * nby);
    const mean = new Float32Array(nbx * nby);
    const kk = kx * ky;
    const tiles = new src.constructor(nbx * nby * kk);
    const lo = new Int32Array(nbx);
    const hi = new Int32Array(nbx);
    const sum = new Float64Array(nbx);
    for (let by = 0; by < nby; by += 1) {
      lo.fill(0x7fffffff);
      hi.fill(-0x80000000);
      sum.fill(0);
      const r0 = by * ky;
      const r1 = Math.min(r0 + ky, rows);
      for (let r = r0; r < r1; r += 1) {
        const base = r * columns;
        let t = by * nbx * kk + (r - r0) * kx;
        for (let b = 0, c = 0; b < nbx; b += 1, t += kk) {
          const end = Math.min(c + kx, columns);
          let mn = lo[b];
          let mx = hi[b];
          let s = 0;
          for (let j = t; c < end; c += 1, j += 1) {
            const x = src[base + c];
            tiles[j] = x;
            if (x < mn) mn = x;
            if (x > mx) mx = x;
            s += x;
          }
          lo[b] = mn;
          hi[b] = mx;
          sum[b] += s;
        }
      }
      const at = by * nbx;
      for (let b = 0; b < nbx; b += 1) {
        const n = (r1 - r0) * (Math.min((b + 1) * kx, columns) - b * kx);
        min[at + b] = lo[b];
        max[at + b] = hi[b];
        mean[at + b] = sum[b] / n;
      }
    }
    let low = 0x7fffffff;
    let high = -0x80000000;
    for (let b = 0; b < min.length; b += 1) {
      if (min[b] < low) low = min[b];
      if (max[b] > high) high = max[b];
    }
    this.pyramid = { src, kx, ky, nbx, nby, min, max, mean, low, high, tiles };
    return this.pyramid;
  }

  /** Blocks [bx0, bx1) x [by0, by1) of kx x ky pixels, each the mean of its windowed pixels. */
  _boxWindow(frame, out, [kx, ky, bx0, by0, bx1, by1], center, width, invert) {
    const { rows, columns } = frame.header;
    const { nbx, min, max, mean, low, high, tiles } = this.pyramidFor(frame, kx, ky);
    const kk = kx * ky;
    const w = Math.max(width, 1);
    const lo = center - 0.5 - (w - 1) / 2;
    const hi = center - 0.5 + (w - 1) / 2;
    const scale = 255 / (w - 1 || 1);
    const base = center - 0.5;
    const flip = invert ? 255 : 0;
    // Raw values are integers: x <= lo exactly when x - loI < 0, so a block straddles
    // lo when (min - loI) and (max - loI) differ in sign, ((a ^ b) < 0): no branch on
    // where the block lies. A one-value window (a step) or an absurd centre: every
    // block goes pixel by pixel.
    const bound = (v) => Math.min(Math.max(Math.floor(v) + 1, -0x40000000), 0x40000000);
    const loI = bound(lo);
    const hiI = bound(hi);
    const exact = w === 1 || Math.abs(base) > 1e6;
    // First pass: every block from its statistics, and the output index of each block
    // that straddles an edge of the window appended to `straddling` (a branch taken
    // for a few per cent of the blocks, which measured faster than a store per block:
    // bench/lut_drag.mjs).
    const wide = bx1 - bx0;
    if (!this.straddling || this.straddling.length < wide * (by1 - by0) + 1) this.straddling = new Int32Array(wide * (by1 - by0) + 1);
    const straddling = this.straddling;
    let count = 0;
    let o = 0;
    for (let by = by0; by < by1; by += 1) {
      for (let b = by * nbx + bx0, end = b + wide; b < end; b += 1) {
        const mn = min[b];
        const mx = max[b];
        // wholly below (0), above (255) or on the window's ramp, which is linear
        // there: the ramp at the block's mean is the mean of the ramp (rounded, then
        // clamped to 0..255 without branches)
        let g = ((mean[b] - base) * scale + 128) | 0;
        g &= ~(g >> 31);
        g = (g | ((255 - g) >> 31)) & 255;
        out[o] = OPAQUE | ((g ^ flip) * 0x10101);
        if ((((mn - loI) ^ (mx - loI)) | ((mn - hiI) ^ (mx - hiI))) < 0 || exact) straddling[count++] = o;
        o += 1;
      }
    }
    if (!count) return;
    // Second pass: the blocks that straddle, pixel by pixel from their tiles.
    const grey = this._greyRange(center, width, low, high);
    for (let j = 0; j < count; j += 1) {
      const at = straddling[j];
      const by = by0 + Math.floor(at / wide);
      const bx = bx0 + (at - (by - by0) * wide);
      const t0 = (by * nbx + bx) * kk;
      const n = Math.min(kx, columns - bx * kx);
      const m = Math.min(ky, rows - by * ky);
      let s = 0;
      if (n === kx && m === ky) {
        for (let t = t0; t < t0 + kk; t += 1) s += grey[tiles[t] - low];
      } else {
        for (let t = t0, end = t0 + m * kx; t < end; t += kx) {
          for (let i = t; i < t + n; i += 1) s += grey[tiles[i] - low];
        }
      }
      const g = Math.round(s / (n * m));
      out[at] = OPAQUE | ((g ^ flip) * 0x10101);
    }
  }

  /** The window (0..255, as _lutFor) of the raw values low..high, indexed by value - low. */
  _greyRange(center, width, low, high) {
    const key = `${center}|${width}|${low}|${high}`;
    if (this.greyRange && this.greyRange.key === key) return this.greyRange.grey;
    const w = Math.max(width, 1);
    const lo = center - 0.5 - (w - 1) / 2;
    const hi = center - 0.5 + (w - 1) / 2;
    const scale = 255 / (w - 1 || 1);
    const grey = this.greyRange && this.greyRange.grey.length === high - low + 1 ? this.greyRange.grey : new Uint8Array(high - low + 1);
    for (let x = low; x <= high; x += 1) {
      let g;
      if (x <= lo) g = 0;
      else if (x > hi) g = 255;
      else g = Math.round((x - (center - 0.5)) * scale + 127.5);
      grey[x - low] = g < 0 ? 0 : g > 255 ? 255 : g;
    }
    this.greyRange = { key, grey };
    return grey;
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
