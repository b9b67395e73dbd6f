// Image-space shape math. Points are [column, row] in the slice's pixel
// coordinates (continuous: pixel (i, j) covers [i, i+1) x [j, j+1)); that is what
// is stored. Patient coordinates come from the series geometry.

export const CLOSED = new Set(["polygon", "contour"]);

/** Series geometry: pixel spacing, direction cosines, per-slice positions. */
export class SeriesGeometry {
  constructor(series) {
    const spacing = series.pixel_spacing_mm;
    this.hasSpacing = Array.isArray(spacing) && spacing.length === 2 && spacing[0] > 0 && spacing[1] > 0;
    this.rowSpacing = this.hasSpacing ? spacing[0] : 1;
    this.colSpacing = this.hasSpacing ? spacing[1] : 1;
    const o = series.orientation;
    this.orientation = Array.isArray(o) && o.length === 6 ? o.map(Number) : null;
    this.slices = (series.instances || []).map((s) => ({
      index: s.slice_index,
      id: s.id,
      position: Array.isArray(s.position) && s.position.length === 3 ? s.position.map(Number) : null,
      along: s.position_along_normal,
    }));
    this.rows = series.rows;
    this.columns = series.columns;
  }

  setSpacingFromFrame(spacing) {
    if (!this.hasSpacing && Array.isArray(spacing) && spacing[0] > 0 && spacing[1] > 0) {
      this.hasSpacing = true;
      this.rowSpacing = spacing[0];
      this.colSpacing = spacing[1];
    }
  }

  /** Patient coordinates (mm) of image point (col, row) on slice `index`. */
  toPatient(index, col, row) {
    const slice = this.slices[index];
    if (!slice || !slice.position || !this.orientation || !this.hasSpacing) {
      // No patient geometry (typical radiograph): in-plane mm (or pixels), z = 0.
      return [col * this.colSpacing, row * this.rowSpacing, 0];
    }
    const [rx, ry, rz, cx, cy, cz] = this.orientation;
    const [px, py, pz] = slice.position;
    const dc = col * this.colSpacing;
    const dr = row * this.rowSpacing;
    return [px + rx * dc + cx * dr, py + ry * dc + cy * dr, pz + rz * dc + cz * dr];
  }

  /** Length in mm (or pixels without spacing) between two image points. */
  length(a, b) {
    return Math.hypot((b[0] - a[0]) * this.colSpacing, (b[1] - a[1]) * this.rowSpacing);
  }

  /** Orientation letters for the screen's right and bottom edges (and their opposites). */
  markers() {
    if (!this.orientation) return null;
    const letter = (v) => {
      const names = [["L", "R"], ["P", "A"], ["H", "F"]];
      const order = [0, 1, 2].sort((a, b) => Math.abs(v[b]) - Math.abs(v[a]));
      let text = "";
      for (const axis of order) {
        if (Math.abs(v[axis]) < 0.3) continue;
        text += v[axis] > 0 ? names[axis][0] : names[axis][1];
        if (text.length === 2) break;
      }
      return text;
    };
    const row = this.orientation.slice(0, 3);
    const col = this.orientation.slice(3, 6);
    const neg = (v) => v.map((x) => -x);
    return { right: letter(row), left: letter(neg(row)), bottom: letter(col), top: letter(neg(col)) };
  }
}

export function boundsOf(points) {
  let x0 = Infinity;
  let y0 = Infinity;
  let x1 = -Infinity;
  let y1 = -Infinity;
  for (const [x, y] of points) {
    x0 = Math.min(x0, x);
    y0 = Math.min(y0, y);
    x1 = Math.max(x1, x);
    y1 = Math.max(y1, y);
  }
  return [x0, y0, x1, y1];
}

/** Centre of a shape in image coordinates (area centroid for closed outlines). */
export function shapeCentre(kind, points) {
  if (kind === "point" || points.length === 1) return points[0];
  if (kind === "box" || kind === "ellipse" || kind === "line") {
    return [(points[0][0] + points[1][0]) / 2, (points[0][1] + points[1][1]) / 2];
  }
  let a = 0;
  let cx = 0;
  let cy = 0;
  for (let i = 0; i < points.length; i += 1) {
    const [x0, y0] = points[i];
    const [x1, y1] = points[(i + 1) % points.length];
    const cross = x0 * y1 - x1 * y0;
    a += cross;
    cx += (x0 + x1) * cross;
    cy += (y0 + y1) * cross;
  }
  if (Math.abs(a) < 1e-9) {
    const n = points.length;
    return [points.reduce((s, p) => s + p[0], 0) / n, points.reduce((s, p) => s + p[1], 0) / n];
  }
  return [cx / (3 * a), cy / (3 * a)];
}

/** Patient-space centre of a finding: mean of its per-slice shape centres. */
export function findingCentreMm(geometry, series) {
  const shapes = geometry.shapes || [];
  if (!shapes.length) return null;
  const sum = [0, 0, 0];
  for (const shape of shapes) {
    const [c, r] = shapeCentre(geometry.kind, shape.points);
    const p = series.toPatient(shape.slice_index, c, r);
    sum[0] += p[0];
    sum[1] += p[1];
    sum[2] += p[2];
  }
  return sum.map((v) => Math.round((v / shapes.length) * 100) / 100);
}

export function pointInPolygon(pt, points) {
  let inside = false;
  for (let i = 0, j = points.length - 1; i < points.length; j = i, i += 1) {
    const [xi, yi] = points[i];
    const [xj, yj] = points[j];
    if (yi > pt[1] !== yj > pt[1] && pt[0] < ((xj - xi) * (pt[1] - yi)) / (yj - yi) + xi) {
      inside = !inside;
    }
  }
  return inside;
}

export function distanceToSegment(p, a, b) {
  const dx = b[0] - a[0];
  const dy = b[1] - a[1];
  const len2 = dx * dx + dy * dy;
  let t = len2 ? ((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / len2 : 0;
  t = Math.max(0, Math.min(1, t));
  return Math.hypot(p[0] - (a[0] + t * dx), p[1] - (a[1] + t * dy));
}

/** Is screen point `p` on the shape? `toScreen` maps image to screen; tolerance in px. */
export function hitShape(kind, points, p, toScreen, tolerance = 6) {
  const s = points.map(toScreen);
  if (kind === "point") return Math.hypot(s[0][0] - p[0], s[0][1] - p[1]) <= tolerance + 4;
  if (kind === "line" || kind === "polyline") {
    for (let i = 0; i + 1 < s.length; i += 1) if (distanceToSegment(p, s[i], s[i + 1]) <= tolerance) return true;
    return false;
  }
  if (kind === "box") {
    const [x0, y0, x1, y1] = boundsOf(s);
    return p[0] >= x0 - tolerance && p[0] <= x1 + tolerance && p[1] >= y0 - tolerance && p[1] <= y1 + tolerance;
  }
  if (kind === "ellipse") {
    const [x0, y0, x1, y1] = boundsOf(s);
    const rx = (x1 - x0) / 2 + tolerance;
    const ry = (y1 - y0) / 2 + tolerance;
    const dx = (p[0] - (x0 + x1) / 2) / rx;
    const dy = (p[1] - (y0 + y1) / 2) / ry;
    return dx * dx + dy * dy <= 1;
  }
  if (pointInPolygon(p, s)) return true;
  for (let i = 0; i < s.length; i += 1) {
    if (distanceToSegment(p, s[i], s[(i + 1) % s.length]) <= tolerance) return true;
  }
  return false;
}

/** Handles (editable points) of a shape, in image coordinates: [index, point]. */
export function handlesOf(kind, points) {
  if (kind === "box" || kind === "ellipse") {
    const [x0, y0, x1, y1] = boundsOf(points);
    return [
      ["tl", [x0, y0]],
      ["tr", [x1, y0]],
      ["br", [x1, y1]],
      ["bl", [x0, y1]],
    ];
  }
  return points.map((p, i) => [i, p]);
}

/** Move handle `handle` of a shape to image point `to`; returns new points. */
export function moveHandle(kind, points, handle, to, { falloff = 0 } = {}) {
  if (kind === "box" || kind === "ellipse") {
    let [x0, y0, x1, y1] = boundsOf(points);
    if (handle === "tl") [x0, y0] = to;
    if (handle === "tr") [x1, y0] = to;
    if (handle === "br") [x1, y1] = to;
    if (handle === "bl") [x0, y1] = to;
    return [
      [Math.min(x0, x1), Math.min(y0, y1)],
      [Math.max(x0, x1), Math.max(y0, y1)],
    ];
  }
  const out = points.map((p) => [p[0], p[1]]);
  const dx = to[0] - points[handle][0];
  const dy = to[1] - points[handle][1];
  if (falloff > 0 && kind === "contour") {
    // Freehand outlines: drag a neighbourhood of vertices with a smooth falloff.
    const n = points.length;
    const reach = Math.min(Math.floor(n / 3), falloff);
    for (let k = -reach; k <= reach; k += 1) {
      const i = (handle + k + n) % n;
      const w = reach ? 0.5 * (1 + Math.cos((Math.PI * k) / (reach + 1))) : 1;
      out[i] = [points[i][0] + dx * w, points[i][1] + dy * w];
    }
    return out;
  }
  out[handle] = [to[0], to[1]];
  return out;
}

export function translate(points, dx, dy) {
  return points.map(([x, y]) => [x + dx, y + dy]);
}

/** Drop freehand points closer than `minStep` (image px) to the previous kept one. */
export function simplify(points, minStep) {
  if (points.length < 3) return points;
  const out = [points[0]];
  for (let i = 1; i < points.length; i += 1) {
    const last = out[out.length - 1];
    if (Math.hypot(points[i][0] - last[0], points[i][1] - last[1]) >= minStep) out.push(points[i]);
  }
  return out.slice(0, 10000);
}

export function round2(points) {
  return points.map(([x, y]) => [Math.round(x * 100) / 100, Math.round(y * 100) / 100]);
}
