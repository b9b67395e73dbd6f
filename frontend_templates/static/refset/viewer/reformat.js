// Multiplanar reformatting of the loaded volume, without the DOM: the volume's
// geometry in patient space, the planes of the three views, reformatting a plane
// (one voxel thick, or a thick slab: MIP, MinIP, average) from the frames the
// pixel stream holds, and the conversions between a plane's drawings and the
// finding geometry model (shapes per native slice in image coordinates).
//
// Coordinates. A volume point is [x, y, z] in voxels, continuous: voxel (i, j, k)
// covers [i, i+1) x [j, j+1) x [k, k+1), x along the columns, y along the rows, z
// along the slices (slice k at z = k + 0.5). That is the image point [col, row] of
// the native slice k, so the stored shapes need no conversion. Patient
// coordinates follow geometry.js toPatient(): ImagePositionPatient of slice k plus
// col * column spacing along the row direction plus row * row spacing along the
// column direction (ImageOrientationPatient).
//
// A plane shows the volume cut at a fixed voxel index along one volume axis
// (`fixed`): its image x runs along volume axis `h` and its image y along `w`,
// each possibly reversed (`flipH`, `flipW`), so that the screen follows the
// radiological convention whatever the acquisition: axial with the patient's
// left on the right and posterior down, coronal with the left on the right and
// the head up, sagittal with anterior on the left and the head up. Its pixels are
// square in millimetres only where the volume's are: `sx`, `sy` are the spacings
// along x and y, and viewport.js draws the image in millimetres.

const PATIENT_NAMES = [["L", "R"], ["P", "A"], ["H", "F"]];

/** The plane conventions: normal patient axis, horizontal axis (+ to the right),
 * vertical axis with the sign that goes down the screen. */
const CONVENTIONS = {
  axial: { normal: 2, across: 0, down: 1, downSign: 1 },
  coronal: { normal: 1, across: 0, down: 2, downSign: -1 },
  sagittal: { normal: 0, across: 1, down: 2, downSign: -1 },
};

export const PLANE_NAMES = ["axial", "coronal", "sagittal"];

export const SLAB_MODES = ["mip", "minip", "avg"];

/** The fill value for voxels not loaded yet: black in any window. */
const FILL = -32768;

const dot = (a, b) => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
const norm = (a) => Math.hypot(a[0], a[1], a[2]);
const cross = (a, b) => [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];

/** Orientation letters of a patient direction, strongest axis first ("L", "LP", ...). */
export function orientationLetters(v) {
  const order = [0, 1, 2].sort((a, b) => Math.abs(v[b]) - Math.abs(v[a]));
  let text = "";
  for (const axis of order) {
    if (Math.abs(v[axis]) < 0.3) continue;
    text += v[axis] > 0 ? PATIENT_NAMES[axis][0] : PATIENT_NAMES[axis][1];
    if (text.length === 2) break;
  }
  return text;
}

/**
 * The volume of a series geometry (geometry.js SeriesGeometry), or null where it
 * has no patient geometry (a radiograph, a single slice, no orientation).
 */
export function volumeOf(geometry) {
  const K = geometry.slices.length;
  const I = geometry.columns;
  const J = geometry.rows;
  if (K < 3 || !I || !J || !geometry.orientation) return null;
  const u = geometry.orientation.slice(0, 3);
  const v = geometry.orientation.slice(3, 6);
  const first = geometry.slices[0].position;
  const last = geometry.slices[K - 1].position;
  let step;
  if (first && last) {
    step = [0, 1, 2].map((a) => (last[a] - first[a]) / (K - 1));
  } else {
    const n = cross(u, v);
    const along = geometry.slices.map((s) => s.along);
    const gap = along.every((a) => a != null) ? (along[K - 1] - along[0]) / (K - 1) : 1;
    step = n.map((x) => x * gap);
  }
  const sn = norm(step);
  if (!(sn > 0)) return null;
  return {
    I,
    J,
    K,
    dims: [I, J, K],
    spacing: [geometry.colSpacing, geometry.rowSpacing, sn],
    dirs: [u, v, step.map((x) => x / sn)],
    origin: first || [0, 0, 0],
    step,
    hasSpacing: geometry.hasSpacing,
  };
}

/** Patient coordinates (mm) of volume point [x, y, z]. */
export function toPatient(vol, [x, y, z]) {
  const [u, v] = vol.dirs;
  const [su, sv] = vol.spacing;
  const t = z - 0.5;
  return [0, 1, 2].map((a) => vol.origin[a] + u[a] * su * x + v[a] * sv * y + vol.step[a] * t);
}

/** The name of the patient plane a volume axis is most nearly normal to. */
function planeNameOfNormal(dir) {
  const axis = [0, 1, 2].sort((a, b) => Math.abs(dir[b]) - Math.abs(dir[a]))[0];
  return PLANE_NAMES.find((name) => CONVENTIONS[name].normal === axis);
}

function makePlane(vol, name, fixed, native = false) {
  const conv = CONVENTIONS[name];
  const rest = [0, 1, 2].filter((a) => a !== fixed);
  let h;
  let w;
  if (native) {
    [h, w] = [0, 1]; // the native slice as stored, like the main view
  } else {
    [h, w] = Math.abs(vol.dirs[rest[0]][conv.across]) >= Math.abs(vol.dirs[rest[1]][conv.across]) ? rest : [rest[1], rest[0]];
  }
  const flipH = !native && vol.dirs[h][conv.across] < 0;
  const flipW = !native && vol.dirs[w][conv.down] * conv.downSign < 0;
  const right = vol.dirs[h].map((x) => (flipH ? -x : x));
  const down = vol.dirs[w].map((x) => (flipW ? -x : x));
  return {
    name,
    fixed,
    h,
    w,
    flipH,
    flipW,
    width: vol.dims[h],
    height: vol.dims[w],
    depth: vol.dims[fixed],
    sx: vol.spacing[h],
    sy: vol.spacing[w],
    sf: vol.spacing[fixed],
    markers: {
      right: orientationLetters(right),
      left: orientationLetters(right.map((x) => -x)),
      bottom: orientationLetters(down),
      top: orientationLetters(down.map((x) => -x)),
    },
  };
}

/**
 * The planes of a volume: `native` (the stored slices, fixed axis z, as the main
 * view shows them) and the two others, each cut along the in-slice volume axis
 * nearest to its patient normal. Keys are plane names (axial, coronal, sagittal).
 */
export function planesOf(vol) {
  const nativeName = planeNameOfNormal(vol.dirs[2]);
  const planes = { [nativeName]: makePlane(vol, nativeName, 2, true) };
  const others = PLANE_NAMES.filter((n) => n !== nativeName);
  const score = (name, axis) => Math.abs(vol.dirs[axis][CONVENTIONS[name].normal]);
  // The plane that most clearly owns an in-slice axis picks first.
  const [a, b] = others;
  const aFixed = Math.max(score(a, 0), score(a, 1)) >= Math.max(score(b, 0), score(b, 1))
    ? (score(a, 0) >= score(a, 1) ? 0 : 1)
    : (score(b, 0) >= score(b, 1) ? 1 : 0);
  planes[a] = makePlane(vol, a, aFixed);
  planes[b] = makePlane(vol, b, 1 - aFixed);
  return { native: nativeName, planes };
}

/** Volume point of plane image point [px, py] on the plane's slab at `index`. */
export function planeToVolume(plane, index, [px, py]) {
  const p = [0, 0, 0];
  p[plane.h] = plane.flipH ? plane.width - px : px;
  p[plane.w] = plane.flipW ? plane.height - py : py;
  p[plane.fixed] = index + 0.5;
  return p;
}

/** Plane image point [px, py] of volume point `p`. */
export function volumeToPlane(plane, p) {
  return [plane.flipH ? plane.width - p[plane.h] : p[plane.h], plane.flipW ? plane.height - p[plane.w] : p[plane.w]];
}

/** The voxel range [t0, t1] a slab of `mm` around `index` covers on `plane` (1 voxel without a slab). */
export function slabRange(plane, index, mm) {
  const n = mm ? Math.max(1, Math.round(mm / plane.sf)) : 1;
  const t0 = Math.max(0, index - Math.floor((n - 1) / 2));
  const t1 = Math.min(plane.depth - 1, index + Math.ceil((n - 1) / 2));
  return [t0, t1];
}

function usable(frame, size) {
  return frame && frame.values && !frame.header.rgb && frame.values.length === size ? frame.values : null;
}

/** The number of native voxels a slab of `mm` spans on `plane` (1 without a slab). */
function slabCount(plane, mm) {
  return mm ? Math.max(1, Math.round(mm / plane.sf)) : 1;
}

/**
 * Reformat `plane` at voxel `index` from `frames` (the native slices, some maybe
 * not loaded yet): a frame-like {header: {rows, columns}, values} for lut.js.
 * `slab` {mode: mip | minip | avg, mm} makes a thick slab around `index`; `reuse`
 * is a previous result whose buffer may be filled again, and whose slab, when
 * `index` is one step from its own, is slid to the new one rather than computed
 * again (SlabWindow: the same values, a few passes instead of one per voxel of
 * thickness).
 */
export function reformat(vol, frames, plane, index, slab = null, reuse = null) {
  const { I, J } = vol;
  const size = I * J;
  const W = plane.width;
  const H = plane.height;
  let Kind = Int16Array;
  for (const f of frames) {
    const values = usable(f, size);
    if (values) {
      Kind = values.constructor;
      break;
    }
  }
  const out = reuse && reuse.values.length === W * H && reuse.values.constructor === Kind ? reuse.values : new Kind(W * H);
  const [t0, t1] = slabRange(plane, index, slab ? slab.mm : 0);
  const mode = slab && t1 > t0 ? slab.mode : "one";
  let sliding = null;
  if (mode === "one") {
    if (plane.fixed === 2) {
      const values = usable(frames[t0], size);
      if (values) out.set(values);
      else out.fill(FILL);
    } else {
      layerAcross(frames, vol, plane, t0, out);
    }
  } else {
    const n = slabCount(plane, slab.mm);
    const previous = reuse && reuse.sliding;
    sliding = previous && previous.fits(vol, frames, plane, mode, n, Kind) ? previous : new SlabWindow(vol, frames, plane, mode, n, Kind);
    if (!sliding.slide(t0, t1, out)) {
      const sums = sliding.freshSums();
      if (plane.fixed === 2) slabNative(frames, size, out, t0, t1, mode, sums);
      else slabAcross(frames, vol, plane, out, t0, t1, mode, sums);
    }
  }
  return {
    header: { rows: H, columns: W, dtype: Kind === Int16Array ? "int16" : "float32", reformat: plane.name },
    values: out,
    range: [t0, t1],
    sliding,
  };
}

// -- thick slabs: kernels ------------------------------------------------------------
//
// Plain loops over typed arrays, no call per voxel. The extremum of several
// sources is taken four sources per pass (one read and one write of `out` per
// four slices instead of per slice); sums are kept in Float64Array, exact for the
// integer pixel types (a slab of 32 int16 slices sums to at most 2^20).

/** out[p] = the maximum (mip) or minimum of out[p] and every source's [p]. */
function foldExtreme(out, sources, mip) {
  const size = out.length;
  let s = 0;
  for (; s + 3 < sources.length; s += 4) {
    const a = sources[s];
    const b = sources[s + 1];
    const c = sources[s + 2];
    const d = sources[s + 3];
    if (mip) {
      for (let p = 0; p < size; p += 1) {
        let m = out[p];
        let x = a[p];
        if (x > m) m = x;
        x = b[p];
        if (x > m) m = x;
        x = c[p];
        if (x > m) m = x;
        x = d[p];
        if (x > m) m = x;
        out[p] = m;
      }
    } else {
      for (let p = 0; p < size; p += 1) {
        let m = out[p];
        let x = a[p];
        if (x < m) m = x;
        x = b[p];
        if (x < m) m = x;
        x = c[p];
        if (x < m) m = x;
        x = d[p];
        if (x < m) m = x;
        out[p] = m;
      }
    }
  }
  for (; s < sources.length; s += 1) extreme2(out, out, sources[s], mip);
}

/** out[p] = max (mip) or min of a[p] and b[p]; `out` may be `a` or `b`. */
function extreme2(out, a, b, mip) {
  const size = out.length;
  if (mip) {
    for (let p = 0; p < size; p += 1) {
      const x = a[p];
      const y = b[p];
      out[p] = x > y ? x : y;
    }
  } else {
    for (let p = 0; p < size; p += 1) {
      const x = a[p];
      const y = b[p];
      out[p] = x < y ? x : y;
    }
  }
}

/** sums[p] += every source's [p]. */
function foldSum(sums, sources) {
  const size = sums.length;
  let s = 0;
  for (; s + 3 < sources.length; s += 4) {
    const a = sources[s];
    const b = sources[s + 1];
    const c = sources[s + 2];
    const d = sources[s + 3];
    for (let p = 0; p < size; p += 1) sums[p] += a[p] + b[p] + c[p] + d[p];
  }
  for (; s < sources.length; s += 1) {
    const a = sources[s];
    for (let p = 0; p < size; p += 1) sums[p] += a[p];
  }
}

/** out[p] = sums[p] / count, rounded as Math.round does. */
function average(out, sums, count) {
  const size = out.length;
  for (let p = 0; p < size; p += 1) out[p] = Math.round(sums[p] / count);
}

// -- thick slabs: computed afresh ----------------------------------------------------

/** The slab t0..t1 of the stored slices (the native plane); `sums` (avg) keeps the
 * per-pixel sums where a SlabWindow will slide them. */
function slabNative(frames, size, out, t0, t1, mode, sums) {
  const present = [];
  for (let t = t0; t <= t1; t += 1) {
    const values = usable(frames[t], size);
    if (values) present.push(values);
  }
  if (!present.length) {
    out.fill(FILL);
    return;
  }
  if (mode === "avg") {
    const acc = sums || new Float64Array(size);
    acc.fill(0);
    foldSum(acc, present);
    average(out, acc, present.length);
    return;
  }
  out.set(present[0]);
  foldExtreme(out, present.slice(1), mode === "mip");
}

/** Where line k of a plane cut across the slices starts in its image, and its step. */
function lineOf(plane, K, Na, k) {
  const W = plane.width;
  if (plane.h !== 2) {
    const y = plane.flipW ? K - 1 - k : k;
    return [y * W + (plane.flipH ? Na - 1 : 0), plane.flipH ? -1 : 1];
  }
  const x = plane.flipH ? K - 1 - k : k;
  return [x + (plane.flipW ? (Na - 1) * W : 0), plane.flipW ? -W : W];
}

/** One voxel of a plane cut across the slices (fixed axis x or y) at `t`: one
 * output line per slice. */
function layerAcross(frames, vol, plane, t, out) {
  const { I, J, K } = vol;
  const size = I * J;
  const Na = plane.fixed === 1 ? I : J; // length of the in-slice axis shown
  for (let k = 0; k < K; k += 1) {
    const [base, stride] = lineOf(plane, K, Na, k);
    const src = usable(frames[k], size);
    if (!src) {
      for (let a = 0, o = base; a < Na; a += 1, o += stride) out[o] = FILL;
    } else if (plane.fixed === 1) {
      const row = t * I; // fixed row: a = column
      for (let a = 0, o = base; a < Na; a += 1, o += stride) out[o] = src[row + a];
    } else {
      for (let a = 0, o = base; a < Na; a += 1, o += stride) out[o] = src[a * I + t]; // fixed column: a = row
    }
  }
}

/** The slab t0..t1 of a plane cut across the slices: one output line per slice,
 * each the extremum or mean over t0..t1 of that slice's rows (or columns). */
function slabAcross(frames, vol, plane, out, t0, t1, mode, sums) {
  const { I, J, K } = vol;
  const size = I * J;
  const Na = plane.fixed === 1 ? I : J;
  const mip = mode === "mip";
  const avg = mode === "avg";
  const line = avg ? new Float64Array(Na) : new out.constructor(Na);
  const n = t1 - t0 + 1;
  for (let k = 0; k < K; k += 1) {
    const [base, stride] = lineOf(plane, K, Na, k);
    const src = usable(frames[k], size);
    if (!src) {
      for (let a = 0, o = base; a < Na; a += 1, o += stride) out[o] = FILL;
      continue;
    }
    if (plane.fixed === 1) {
      // fixed row: a = column; the slab runs over rows t0..t1 (contiguous rows)
      line.set(src.subarray(t0 * I, t0 * I + Na));
      for (let t = t0 + 1; t <= t1; t += 1) {
        const row = t * I;
        if (avg) for (let a = 0; a < Na; a += 1) line[a] += src[row + a];
        else if (mip) for (let a = 0; a < Na; a += 1) { const x = src[row + a]; if (x > line[a]) line[a] = x; }
        else for (let a = 0; a < Na; a += 1) { const x = src[row + a]; if (x < line[a]) line[a] = x; }
      }
    } else {
      // fixed column: a = row; the slab runs over columns t0..t1 of each row
      for (let a = 0; a < Na; a += 1) {
        const row = a * I;
        let m = src[row + t0];
        if (avg) for (let t = t0 + 1; t <= t1; t += 1) m += src[row + t];
        else if (mip) for (let t = t0 + 1; t <= t1; t += 1) { const x = src[row + t]; if (x > m) m = x; }
        else for (let t = t0 + 1; t <= t1; t += 1) { const x = src[row + t]; if (x < m) m = x; }
        line[a] = m;
      }
    }
    if (avg) {
      for (let a = 0, o = base; a < Na; a += 1, o += stride) out[o] = Math.round(line[a] / n);
      if (sums) for (let a = 0, o = base; a < Na; a += 1, o += stride) sums[o] = line[a];
    } else {
      for (let a = 0, o = base; a < Na; a += 1, o += stride) out[o] = line[a];
    }
  }
}

// -- thick slabs: slid from one index to the next --------------------------------------

/**
 * A thick slab followed along its plane, one index at a time (a scroll, a cine),
 * giving exactly the values computed afresh, in a few passes per step whatever
 * the thickness. The slab at t is made of layers: the native slice t (the native
 * plane), or the one-voxel plane at t (a plane across the slices).
 *
 * Average: the per-pixel sums of the slab; a step subtracts the layer that left
 * and adds the one that came in (exact: integer pixels, Float64 sums; float
 * pixels are always computed afresh).
 *
 * MIP and MinIP, after van Herk and Gil and Werman: in the direction of travel
 * (u = t forward, u = -t backward) the slab [u0, u1] is split at an anchor a into
 * a front [u0, a] and a back [a + 1, u1]. The front keeps its suffix extrema
 * (front(u) = the extremum of the layers u..a, computed once from a down to u0),
 * the back its running extremum, extended by the layer coming in. The slab is
 * the extremum of front(u0) and back: one pass. Meanwhile the suffix extrema of
 * the next front, [a + 1, a + n], are computed one layer per step, so that when
 * the slab leaves the front the next one is ready (no step does more than about
 * three passes). The first step in a direction builds the front (n passes);
 * a step of a few indexes is walked one index at a time (_maxSteps); anything
 * else (a jump, a new thickness, frames still arriving) is computed afresh.
 *
 * A plane that cuts the slices along a column (fixed axis x) is always computed
 * afresh: its layer is one voxel of every row of every slice, as many cache lines
 * as the whole slab reads afresh (the slab's voxels of a row lie side by side).
 */
const MAX_WALK = 8;

class SlabWindow {
  constructor(vol, frames, plane, mode, n, Kind) {
    this.vol = vol;
    this.frames = frames;
    this.plane = plane;
    this.mode = mode;
    this.n = n;
    this.Kind = Kind;
    this.size = plane.width * plane.height;
    this.integer = Kind !== Float32Array && Kind !== Float64Array;
    this.native = plane.fixed === 2;
    this.slides = plane.fixed !== 0; // see above
    this.pool = [];
    this.scratch = null;
    this.sums = null;
    this.window = null; // [t0, t1] of the last slab given out
    this.sumsAt = null; // the window this.sums hold, or null
    this.slid = false; // whether the last slab was slid (else computed afresh)
    this._clear();
  }

  fits(vol, frames, plane, mode, n, Kind) {
    return this.vol === vol && this.frames === frames && this.plane === plane && this.mode === mode && this.n === n && this.Kind === Kind;
  }

  /** Fill `out` with the slab t0..t1 slid from the last one; false where it must be
   * computed afresh. `slid` tells which it was. */
  slide(t0, t1, out) {
    this.slid = this._slide(t0, t1, out);
    return this.slid;
  }

  _slide(t0, t1, out) {
    const last = this.window;
    this.window = [t0, t1];
    if (!this.slides || !this._complete()) {
      this._clear();
      this.sumsAt = null;
      return false;
    }
    if (this.mode === "avg") return this._slideSums(t0, t1, out);
    if (!last) return false;
    const d0 = t0 - last[0];
    const d1 = t1 - last[1];
    if (d0 === 0 && d1 === 0) {
      if (!this.dir) return false;
      this._emit(...this._u(this.dir, t0, t1), out);
      return true;
    }
    const dir = d0 > 0 || d1 > 0 ? 1 : -1;
    const [u0, u1] = this._u(dir, t0, t1);
    const [p0, p1] = this._u(dir, last[0], last[1]);
    const k = Math.max(u0 - p0, u1 - p1);
    if (u0 < p0 || u1 < p1 || k > this._maxSteps()) {
      this._clear();
      return false;
    }
    if (dir !== this.dir) this._prime(dir, u0, u1);
    else {
      // A step of k: walked one index at a time (a wheel or a key repeat often
      // moves the view more than one slice between two paints).
      let a = p0;
      let b = p1;
      while (a < u0 || b < u1) {
        a = Math.min(a + 1, u0);
        b = Math.min(b + 1, u1);
        if (!this._advance(a, b)) {
          this._prime(dir, u0, u1);
          break;
        }
      }
    }
    this._emit(u0, u1, out);
    return true;
  }

  /** The longest step walked rather than computed afresh: each index walked costs
   * about two passes, a fresh slab about one per layer. */
  _maxSteps() {
    return Math.max(1, Math.min(MAX_WALK, Math.floor((this.n - 1) / 2)));
  }

  /** Where a fresh average may leave its sums for the next step (null: nowhere). */
  freshSums() {
    if (this.mode !== "avg" || !this.integer || !this.slides || !this._complete()) return null;
    if (!this.sums) this.sums = new Float64Array(this.size);
    this.sumsAt = this.window;
    return this.sums;
  }

  // every frame there (a step reads layers ahead of the slab; frames only ever
  // arrive, so what was built from them stays true)
  _complete() {
    const size = this.vol.I * this.vol.J;
    for (const f of this.frames) if (!usable(f, size)) return false;
    return true;
  }

  _slideSums(t0, t1, out) {
    const at = this.sumsAt;
    this.sumsAt = null;
    if (!this.integer || !at || !this.sums) return false;
    const [p0, p1] = at;
    const changes = Math.abs(t0 - p0) + Math.abs(t1 - p1);
    if (changes >= t1 - t0 + 1) return false; // as cheap afresh
    const sums = this.sums;
    const add = (t, sign) => {
      const layer = this._layer(t);
      const size = sums.length;
      if (sign > 0) for (let p = 0; p < size; p += 1) sums[p] += layer[p];
      else for (let p = 0; p < size; p += 1) sums[p] -= layer[p];
    };
    for (let t = p0; t <= p1; t += 1) if (t < t0 || t > t1) add(t, -1);
    for (let t = t0; t <= t1; t += 1) if (t < p0 || t > p1) add(t, 1);
    average(out, sums, t1 - t0 + 1);
    this.sumsAt = [t0, t1];
    return true;
  }

  /** [u0, u1]: the window in the coordinate that grows in direction `dir`. */
  _u(dir, t0, t1) {
    return dir > 0 ? [t0, t1] : [-t1, -t0];
  }

  /** The layer at u (direction this.dir), read only: a stored slice or a scratch buffer. */
  _layerU(u) {
    return this._layer(this.dir > 0 ? u : -u);
  }

  _layer(t) {
    if (this.native) return this.frames[t].values;
    if (!this.scratch) this.scratch = new this.Kind(this.size);
    layerAcross(this.frames, this.vol, this.plane, t, this.scratch);
    return this.scratch;
  }

  _alloc() {
    return this.pool.pop() || new this.Kind(this.size);
  }

  _release(map) {
    for (const buffer of map.values()) this.pool.push(buffer);
    map.clear();
  }

  _clear() {
    if (this.front) this._release(this.front);
    if (this.next) this._release(this.next);
    if (this.back) this.pool.push(this.back);
    this.dir = 0;
    this.front = new Map(); // u -> extremum of the layers u..anchor
    this.next = new Map(); // u -> extremum of the layers u..nextAnchor
    this.back = null; // extremum of the layers anchor + 1 .. backEnd
    this.anchor = 0;
    this.backEnd = 0;
    this.nextAnchor = 0;
    this.nextLow = 0;
  }

  /** The front [u0, u1] built afresh, anchored at u1. */
  _prime(dir, u0, u1) {
    this._clear();
    this.dir = dir;
    const mip = this.mode === "mip";
    this.anchor = u1;
    this.backEnd = u1;
    const top = this._alloc();
    top.set(this._layerU(u1));
    this.front.set(u1, top);
    for (let u = u1 - 1; u >= u0; u -= 1) {
      const buffer = this._alloc();
      extreme2(buffer, this._layerU(u), this.front.get(u + 1), mip);
      this.front.set(u, buffer);
    }
    this._planNext();
  }

  _planNext() {
    const end = this.dir > 0 ? this.plane.depth - 1 : 0; // the last u there is
    this.nextAnchor = Math.min(this.anchor + this.n, end);
    this.nextLow = this.nextAnchor + 1; // nothing of the next front computed yet
  }

  /** One more suffix extremum of the next front (from its anchor down). */
  _stepNext() {
    if (this.nextLow <= this.anchor + 1) return;
    const u = this.nextLow - 1;
    const buffer = this._alloc();
    if (u === this.nextAnchor) buffer.set(this._layerU(u));
    else extreme2(buffer, this._layerU(u), this.next.get(u + 1), this.mode === "mip");
    this.next.set(u, buffer);
    this.nextLow = u;
  }

  /** Move to [u0, u1] (each end one step at most); false where the front cannot follow. */
  _advance(u0, u1) {
    const mip = this.mode === "mip";
    if (u1 > this.backEnd) {
      const layer = this._layerU(u1);
      if (this.backEnd === this.anchor) {
        if (!this.back) this.back = this._alloc();
        this.back.set(layer);
      } else {
        extreme2(this.back, this.back, layer, mip);
      }
      this.backEnd = u1;
    }
    if (u0 > this.anchor) {
      // the slab left the front: the next front (the layers anchor + 1 .. u1) takes over
      if (this.nextAnchor !== u1) return false;
      while (this.nextLow > this.anchor + 1) this._stepNext();
      this._release(this.front);
      [this.front, this.next] = [this.next, this.front];
      this.anchor = u1;
      this.backEnd = u1;
      this._planNext();
    } else {
      this._stepNext();
    }
    const passed = this.front.get(u0 - 1);
    if (passed) {
      this.front.delete(u0 - 1);
      this.pool.push(passed);
    }
    return this.front.has(u0);
  }

  _emit(u0, u1, out) {
    const front = this.front.get(u0);
    if (u1 > this.anchor) extreme2(out, front, this.back, this.mode === "mip");
    else out.set(front);
  }
}

// -- findings across planes -------------------------------------------------------

const ELLIPSE_STEPS = 72;

/** A shape as a closed outline (box and ellipse included), in its image coordinates. */
export function outlineOf(kind, points) {
  if (kind === "box") {
    const [[x0, y0], [x1, y1]] = points;
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]];
  }
  if (kind === "ellipse") {
    const [[x0, y0], [x1, y1]] = points;
    const cx = (x0 + x1) / 2;
    const cy = (y0 + y1) / 2;
    const rx = Math.abs(x1 - x0) / 2;
    const ry = Math.abs(y1 - y0) / 2;
    const out = [];
    for (let s = 0; s < ELLIPSE_STEPS; s += 1) {
      const t = (2 * Math.PI * s) / ELLIPSE_STEPS;
      out.push([cx + rx * Math.cos(t), cy + ry * Math.sin(t)]);
    }
    return out;
  }
  return points;
}

/**
 * Where a shape meets the line `axis` = `value` (axis 0: the vertical line x =
 * value; axis 1: the horizontal line y = value): [lo, hi] along the other image
 * axis, or null. A point meets the voxel line it lies on.
 */
export function shapeInterval(kind, points, axis, value) {
  const other = 1 - axis;
  if (kind === "point") {
    const p = points[0];
    return Math.floor(p[axis]) === Math.floor(value) ? [p[other], p[other]] : null;
  }
  if (kind === "ellipse") {
    const [a, b] = points;
    const c = (a[axis] + b[axis]) / 2;
    const r = Math.abs(b[axis] - a[axis]) / 2;
    const co = (a[other] + b[other]) / 2;
    const ro = Math.abs(b[other] - a[other]) / 2;
    if (!(r > 0) || Math.abs(value - c) > r) return null;
    const half = ro * Math.sqrt(1 - ((value - c) / r) ** 2);
    return [co - half, co + half];
  }
  if (kind === "box") {
    const [a, b] = points;
    if (value < Math.min(a[axis], b[axis]) || value > Math.max(a[axis], b[axis])) return null;
    return [Math.min(a[other], b[other]), Math.max(a[other], b[other])];
  }
  const ring = outlineOf(kind, points);
  let lo = Infinity;
  let hi = -Infinity;
  const closed = kind === "polygon" || kind === "contour";
  const edges = closed ? ring.length : ring.length - 1;
  for (let i = 0; i < edges; i += 1) {
    const p = ring[i];
    const q = ring[(i + 1) % ring.length];
    if ((p[axis] <= value && q[axis] > value) || (q[axis] <= value && p[axis] > value)) {
      const t = (value - p[axis]) / (q[axis] - p[axis]);
      const x = p[other] + t * (q[other] - p[other]);
      lo = Math.min(lo, x);
      hi = Math.max(hi, x);
    }
  }
  return lo <= hi ? [lo, hi] : null;
}

/**
 * The outlines (plane image coordinates) where a finding's native-slice shapes
 * cross `plane` at `index`: one closed outline per run of consecutive slices, or
 * a point. Empty where it does not cross.
 */
export function findingOnPlane(geometry, plane, index) {
  if (plane.fixed === 2) {
    const shape = (geometry.shapes || []).find((s) => s.slice_index === index);
    return shape ? [{ kind: geometry.kind, points: shape.points }] : [];
  }
  const axis = plane.fixed; // 0: the plane is the line x = index + .5 on each slice; 1: y = ...
  const value = index + 0.5;
  const cuts = [];
  for (const shape of geometry.shapes || []) {
    if (!shape.points || !shape.points.length) continue;
    const cut = shapeInterval(geometry.kind, shape.points, axis, value);
    if (cut) cuts.push({ k: shape.slice_index, lo: cut[0], hi: cut[1] });
  }
  cuts.sort((a, b) => a.k - b.k);
  const inSlice = 1 - axis; // the in-slice volume axis the plane shows
  const at = (a, z) => {
    const p = [0, 0, 0];
    p[inSlice] = a;
    p[plane.fixed] = value;
    p[2] = z;
    return volumeToPlane(plane, p);
  };
  if (geometry.kind === "point") return cuts.map((c) => ({ kind: "point", points: [at(c.lo, c.k + 0.5)] }));
  const out = [];
  let run = [];
  const flush = () => {
    if (!run.length) return;
    const left = [at(run[0].lo, run[0].k)];
    const right = [at(run[0].hi, run[0].k)];
    for (const c of run) {
      left.push(at(c.lo, c.k + 0.5));
      right.push(at(c.hi, c.k + 0.5));
    }
    const end = run[run.length - 1];
    left.push(at(end.lo, end.k + 1));
    right.push(at(end.hi, end.k + 1));
    out.push({ kind: "polygon", points: [...left, ...right.reverse()] });
    run = [];
  };
  for (const c of cuts) {
    if (run.length && c.k !== run[run.length - 1].k + 1) flush();
    run.push(c);
  }
  flush();
  return out;
}

const r2 = (x) => Math.round(x * 100) / 100;

/**
 * A drawing on `plane` at `index` (a shape of finding kind `kind`, in plane image
 * coordinates) as the finding geometry model stores it: one shape per native
 * slice the drawing crosses at the slice's centre, one voxel thick across the
 * plane. Returns [{slice_index, points}] (empty when it crosses no slice centre).
 */
export function planeDrawingToShapes(plane, index, kind, points) {
  if (plane.fixed === 2) return [{ slice_index: index, points: points.map(([x, y]) => [r2(x), r2(y)]) }];
  const inSlice = plane.fixed === 1 ? 0 : 1;
  const toVol = (p) => planeToVolume(plane, index, p);
  const cell = (a0, a1) => {
    // the in-slice extent a0..a1 and one voxel across the plane, as [col, row] corners
    const lo = [0, 0];
    const hi = [0, 0];
    lo[inSlice] = r2(Math.min(a0, a1));
    hi[inSlice] = r2(Math.max(a0, a1));
    lo[plane.fixed] = index;
    hi[plane.fixed] = index + 1;
    return [lo, hi];
  };
  if (kind === "point") {
    const p = toVol(points[0]);
    const at = [r2(p[0]), r2(p[1])];
    const K = plane.h === 2 ? plane.width : plane.height;
    const k = Math.floor(p[2]);
    return k >= 0 && k < K ? [{ slice_index: k, points: [at] }] : [];
  }
  const ring = outlineOf(kind === "box" || kind === "ellipse" ? kind : "polygon", points).map((p) => {
    const v = toVol(p);
    return [v[inSlice], v[2]];
  });
  const zs = ring.map((p) => p[1]);
  const k0 = Math.max(0, Math.floor(Math.min(...zs) - 0.5));
  const K = plane.h === 2 ? plane.width : plane.height;
  const k1 = Math.min(K - 1, Math.ceil(Math.max(...zs)));
  const shapes = [];
  for (let k = k0; k <= k1; k += 1) {
    const cut = shapeInterval("polygon", ring, 1, k + 0.5);
    if (!cut) continue;
    const [lo, hi] = cell(cut[0], cut[1]);
    if (kind === "box" || kind === "ellipse") shapes.push({ slice_index: k, points: [lo, hi] });
    else shapes.push({ slice_index: k, points: [lo, [hi[0], lo[1]], hi, [lo[0], hi[1]]] });
  }
  return shapes;
}
