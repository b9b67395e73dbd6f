// Marks on any view of a volume, without the page: where a finding's outlines
// cross a view (the main view's slice or a reformatted plane of mpr.js), drawing
// those cuts, and editing a finding from a reformatted plane.
//
// Editing from a coronal or sagittal plane. A finding is stored as outlines on the
// native (axial) slices; a reformatted plane shows, per slice, only where its
// outline crosses one line of that slice. Reshaping that cut point by point would
// say where one chord of each outline ends and nothing about the rest of the
// outline, so it is not offered. What the plane can tell is the finding's extent
// along the two axes it shows: the in-slice axis across the screen and the slice
// axis (cranio-caudal for an axial series). The selected finding gets a frame of
// that extent, over all its slices, with eight handles:
//   move (drag inside)  every outline moves along the in-slice axis, and the whole
//                       stack by whole slices along the slice axis;
//   top / bottom edge   the cranio-caudal extent: slices added beyond an end copy
//                       that end's outline, slices left outside are removed, the
//                       slices in between are kept as they are;
//   left / right edge   every outline is stretched along the in-slice axis between
//                       the frame's edges (the other in-slice axis is untouched);
//   corners             both at once.
// The result is again one outline per native slice, so matching, export and the
// other views need nothing new. Drawn long/short axes follow a move and are
// dropped by a stretch (the server measures the new outline again).

import { findingOnPlane, planeToVolume, volumeToPlane } from "./reformat.js";

const r2 = (x) => Math.round(x * 100) / 100;

/** The outlines of `geometry` on a view: `plane` null is the main view at slice
 * `index` (the stored shape as it is), else the cuts through the reformatted plane. */
export function cutsOf(geometry, plane, index) {
  if (!geometry || !geometry.shapes) return [];
  if (!plane) {
    const shape = geometry.shapes.find((s) => s.slice_index === index);
    return shape ? [{ kind: geometry.kind, points: shape.points }] : [];
  }
  return findingOnPlane(geometry, plane, index);
}

/**
 * Draw `geometry` where it crosses a view (see cutsOf) in `look` (viewport.js
 * drawShape style; the label on the first cut only). Each cut drawn is noted in
 * `drawn` as {name, kind, points} (the view's layout model the tests read).
 */
export function drawCuts(ctx, vp, geometry, plane, index, look, drawn = null, name = "") {
  const cuts = cutsOf(geometry, plane, index);
  cuts.forEach((cut, i) => {
    vp.drawShape(ctx, cut.kind, cut.points, i === 0 ? look : { ...look, label: "" });
    if (drawn) drawn.push({ name: name || look.label || "", kind: cut.kind, points: cut.points, color: look.color });
  });
  return cuts.length;
}

/** Is screen point `p` on `geometry` where it crosses the view? */
export function hitCuts(geometry, plane, index, p, toScreen, hitShape) {
  return cutsOf(geometry, plane, index).some((cut) => hitShape(cut.kind, cut.points, p, toScreen));
}

// -- the edit frame ----------------------------------------------------------------

/** The in-slice volume axis a reformatted plane shows (0: columns, 1: rows). */
function inSliceAxis(plane) {
  return plane.fixed === 1 ? 0 : 1;
}

/**
 * The extent of a finding in the axes of a reformatted `plane`, in volume
 * coordinates: {a0, a1} along the plane's in-slice axis over every outline, {z0,
 * z1} the slices it covers (slice k is [k, k + 1)). Null for points, for the
 * native plane, or without outlines.
 */
export function findingFrame(geometry, plane) {
  if (!geometry || !plane || plane.fixed === 2 || geometry.kind === "point") return null;
  const shapes = (geometry.shapes || []).filter((s) => s.points && s.points.length);
  if (!shapes.length) return null;
  const a = inSliceAxis(plane);
  let a0 = Infinity;
  let a1 = -Infinity;
  let z0 = Infinity;
  let z1 = -Infinity;
  for (const s of shapes) {
    for (const p of s.points) {
      a0 = Math.min(a0, p[a]);
      a1 = Math.max(a1, p[a]);
    }
    z0 = Math.min(z0, s.slice_index);
    z1 = Math.max(z1, s.slice_index + 1);
  }
  return { a0, a1, z0, z1 };
}

/** A frame as a box [[x0, y0], [x1, y1]] in the plane's image coordinates. */
export function frameToPlane(plane, frame) {
  const a = inSliceAxis(plane);
  const corner = (av, z) => {
    const p = [0, 0, 0];
    p[a] = av;
    p[plane.fixed] = 0.5;
    p[2] = z;
    return volumeToPlane(plane, p);
  };
  const p = corner(frame.a0, frame.z0);
  const q = corner(frame.a1, frame.z1);
  return [
    [Math.min(p[0], q[0]), Math.min(p[1], q[1])],
    [Math.max(p[0], q[0]), Math.max(p[1], q[1])],
  ];
}

/** A box in the plane's image coordinates as a frame in volume coordinates. */
export function planeToFrame(plane, index, box) {
  const a = inSliceAxis(plane);
  const p = planeToVolume(plane, index, box[0]);
  const q = planeToVolume(plane, index, box[1]);
  return { a0: Math.min(p[a], q[a]), a1: Math.max(p[a], q[a]), z0: Math.min(p[2], q[2]), z1: Math.max(p[2], q[2]) };
}

/** The frame's handles: corners and edge midpoints, [name, point]. */
export function frameHandles(box) {
  const [[x0, y0], [x1, y1]] = box;
  const xm = (x0 + x1) / 2;
  const ym = (y0 + y1) / 2;
  return [
    ["tl", [x0, y0]],
    ["t", [xm, y0]],
    ["tr", [x1, y0]],
    ["r", [x1, ym]],
    ["br", [x1, y1]],
    ["b", [xm, y1]],
    ["bl", [x0, y1]],
    ["l", [x0, ym]],
  ];
}

/** The box with handle `handle` moved to plane point `to` (an edge moves one way only). */
export function moveFrameHandle(box, handle, to) {
  let [[x0, y0], [x1, y1]] = box;
  if (handle.includes("l")) x0 = to[0];
  if (handle.includes("r")) x1 = to[0];
  if (handle.includes("t")) y0 = to[1];
  if (handle.includes("b")) y1 = to[1];
  return [
    [Math.min(x0, x1), Math.min(y0, y1)],
    [Math.max(x0, x1), Math.max(y0, y1)],
  ];
}

const copyShape = (s, k) => ({ slice_index: k, points: s.points.map((p) => [p[0], p[1]]) });

/**
 * `geometry` changed so that its frame on `plane` goes from `frame` to `next`
 * (see the module's comment): `move` translates, otherwise the edges that moved
 * resize. `depth` is the number of native slices. Returns a new geometry, or null
 * where nothing changes.
 */
export function reshapeByFrame(geometry, plane, frame, next, { move = false, depth }) {
  const a = inSliceAxis(plane);
  const out = JSON.parse(JSON.stringify(geometry));
  const shapes = out.shapes.filter((s) => s.points && s.points.length);
  const kMin = frame.z0;
  const kMax = frame.z1 - 1;
  if (move) {
    let dk = Math.round(next.z0 - frame.z0);
    dk = Math.min(Math.max(dk, -kMin), depth - 1 - kMax);
    const da = r2(next.a0 - frame.a0);
    if (!dk && !da) return null;
    for (const s of shapes) {
      s.slice_index += dk;
      s.points = s.points.map((p) => {
        const q = [p[0], p[1]];
        q[a] = r2(q[a] + da);
        return q;
      });
    }
    if (out.axes) {
      out.axes.slice_index += dk;
      for (const key of ["long", "short"]) {
        if (out.axes[key]) out.axes[key] = out.axes[key].map((p) => {
          const q = [p[0], p[1]];
          q[a] = r2(q[a] + da);
          return q;
        });
      }
    }
    out.shapes = shapes;
    return out;
  }
  // Resize: whole slices along the slice axis, at least one; at least half a voxel across.
  const Z0 = Math.min(Math.max(Math.round(next.z0), 0), depth - 1);
  const Z1 = Math.min(Math.max(Math.round(next.z1), Z0 + 1), depth);
  let A0 = next.a0;
  let A1 = next.a1;
  if (A1 - A0 < 0.5) {
    if (Math.abs(A0 - frame.a0) > Math.abs(A1 - frame.a1)) A0 = A1 - 0.5;
    else A1 = A0 + 0.5;
  }
  const width = frame.a1 - frame.a0;
  const scale = width > 0 ? (A1 - A0) / width : 1;
  const stretched = Math.abs(A0 - frame.a0) >= 0.005 || Math.abs(A1 - frame.a1) >= 0.005;
  if (!stretched && Z0 === frame.z0 && Z1 === frame.z1) return null;
  const bySlice = new Map(shapes.map((s) => [s.slice_index, s]));
  const first = bySlice.get(kMin);
  const last = bySlice.get(kMax);
  const result = [];
  for (let k = Z0; k < Z1; k += 1) {
    if (bySlice.has(k)) result.push(bySlice.get(k));
    else if (k < kMin) result.push(copyShape(first, k));
    else if (k > kMax) result.push(copyShape(last, k));
    // a slice the finding skipped stays skipped
  }
  if (stretched) {
    for (const s of result) {
      s.points = s.points.map((p) => {
        const q = [p[0], p[1]];
        q[a] = r2(width > 0 ? A0 + (q[a] - frame.a0) * scale : q[a] + (A0 - frame.a0));
        return q;
      });
    }
  }
  out.shapes = result;
  if (out.axes && (stretched || out.axes.slice_index < Z0 || out.axes.slice_index >= Z1)) delete out.axes;
  return out;
}
