// Labels that never overprint. Each paint starts a LabelLayout (Viewport.draw());
// every label drawn on the image (a finding's "#2" or "R1", a measurement's
// "12.3 mm") asks it for a place: the first of a short list of candidate
// positions around what the label names (its anchor box on the screen) that
// overlaps no label placed before it in this paint and stays inside the view
// (greedy placement, in drawing order). A label that had to leave its usual
// place gets a thin leader line to its anchor. The boxes placed in the last paint
// are `layout.boxes` (CSS pixels): the tests assert that no two of them overlap.
//
// Marks of different readers on the same outline stay apart too: each reader
// draws with a dash pattern of its own besides its colour (readerDash()).

import { readerNumber } from "./ui.js";

const GAP = 4; // between a label and its anchor box
const PAD = 1; // around a label's text, kept clear of other labels
const RINGS = 6; // how far (in label heights) candidates move away from the anchor
const LEADER_AFTER = 6; // px between label and anchor beyond which a leader is drawn

/** Dash patterns per reader number (never solid: a reader's marks stay apart from
 * the page's own solid outlines): coincident outlines of two readers show both
 * colours along their length. */
const READER_DASHES = [[8, 3], [3, 3], [12, 3, 3, 3], [2, 6], [6, 2, 2, 2, 2, 2], [16, 6]];

/** The dash pattern of a reader's marks ("R3" → its own), one per reader number. */
export function readerDash(reader) {
  return READER_DASHES[(readerNumber(reader) - 1) % READER_DASHES.length];
}

/** A legend swatch of a reader's line: a CSS background of stripes in its colour
 * following its dash pattern (solid for a solid line). */
export function dashSwatchStyle(colour, dash) {
  if (!dash || !dash.length) return `background:${colour}`;
  const stops = [];
  let at = 0;
  dash.forEach((len, i) => {
    const c = i % 2 === 0 ? colour : "transparent";
    stops.push(`${c} ${at}px`, `${c} ${at + len}px`);
    at += len;
  });
  return `background:repeating-linear-gradient(90deg, ${stops.join(", ")})`;
}

function overlaps(a, b) {
  return a.x0 < b.x1 && b.x0 < a.x1 && a.y0 < b.y1 && b.y0 < a.y1;
}

function overlapArea(a, b) {
  const w = Math.min(a.x1, b.x1) - Math.max(a.x0, b.x0);
  const h = Math.min(a.y1, b.y1) - Math.max(a.y0, b.y0);
  return w > 0 && h > 0 ? w * h : 0;
}

/** Distance between two boxes (0 when they touch or overlap). */
function gapBetween(a, b) {
  const dx = Math.max(0, a.x0 - b.x1, b.x0 - a.x1);
  const dy = Math.max(0, a.y0 - b.y1, b.y0 - a.y1);
  return Math.hypot(dx, dy);
}

/** The point of box `b` nearest to point (x, y). */
function nearestOn(b, x, y) {
  return [Math.min(Math.max(x, b.x0), b.x1), Math.min(Math.max(y, b.y0), b.y1)];
}

export class LabelLayout {
  constructor(width = 0, height = 0) {
    this.reset(width, height);
  }

  /** A new paint: no label placed yet, in a view of width x height CSS pixels. */
  reset(width, height) {
    this.width = width;
    this.height = height;
    this.boxes = [];
  }

  /**
   * Candidate top-left corners for a w x h label around anchor box `a`
   * {x0, y0, x1, y1}, the usual place `first` [x, y] (top-left) before them.
   */
  _candidates(a, w, h, first) {
    const out = [first];
    const midY = (a.y0 + a.y1) / 2 - h / 2;
    const above = a.y0 - GAP - h;
    const below = a.y1 + GAP;
    const right = a.x1 + GAP;
    const left = a.x0 - GAP - w;
    out.push([a.x0, above], [a.x1 - w, above], [right, midY], [a.x0, below], [a.x1 - w, below], [left, midY]);
    out.push([right, above], [right, below], [left, above], [left, below]);
    const step = h + 2 * PAD + 1;
    for (let k = 1; k <= RINGS; k += 1) {
      out.push(
        [a.x0, above - k * step],
        [right, midY - k * step],
        [right, midY + k * step],
        [a.x0, below + k * step],
        [left, midY - k * step],
        [left, midY + k * step],
        [a.x1 - w, above - k * step],
        [a.x1 - w, below + k * step],
      );
    }
    return out;
  }

  _inside(b) {
    if (!this.width || !this.height) return true;
    return b.x0 >= 0 && b.y0 >= 0 && b.x1 <= this.width && b.y1 <= this.height;
  }

  /**
   * Find a place for a label of `w` x `h` CSS px (its text box) near anchor box
   * `anchor` {x0, y0, x1, y1}, preferring top-left corner `first` [x, y]. Records the
   * box and returns it: {x0, y0, x1, y1, text, moved, leader: [x, y] | null}, where
   * `leader` is the anchor point a leader line should reach (null: none needed).
   */
  place(text, w, h, anchor, first) {
    let best = null;
    let bestCost = Infinity;
    const candidates = this._candidates(anchor, w, h, first);
    for (let i = 0; i < candidates.length; i += 1) {
      const [x, y] = candidates[i];
      const box = { x0: x - PAD, y0: y - PAD, x1: x + w + PAD, y1: y + h + PAD };
      let cost = 0;
      for (const other of this.boxes) if (overlaps(box, other)) cost += 1000 + overlapArea(box, other);
      if (!this._inside(box)) cost += 500;
      cost += i * 0.01; // the earlier candidate wins a tie
      if (cost < bestCost) {
        best = { ...box, index: i };
        bestCost = cost;
        if (cost < 1) break;
      }
    }
    const moved = best.index > 0;
    const away = gapBetween(best, anchor) > LEADER_AFTER;
    const cx = (best.x0 + best.x1) / 2;
    const cy = (best.y0 + best.y1) / 2;
    const placed = {
      x0: best.x0,
      y0: best.y0,
      x1: best.x1,
      y1: best.y1,
      text,
      moved,
      leader: moved && away ? nearestOn(anchor, cx, cy) : null,
    };
    this.boxes.push(placed);
    return placed;
  }

  /**
   * Draw `text` (ctx's current font) with a dark outline in `colour`, placed near
   * `anchor` (screen box) at the usual baseline position [x, y] when free; a
   * leader line to the anchor when it had to move.
   */
  drawLabel(ctx, text, colour, anchor, [x, y]) {
    const metrics = ctx.measureText(text);
    const ascent = metrics.actualBoundingBoxAscent || 10;
    const descent = metrics.actualBoundingBoxDescent || 3;
    const w = metrics.width;
    const h = ascent + descent;
    const placed = this.place(text, w, h, anchor, [x, y - ascent]);
    const tx = placed.x0 + PAD;
    const ty = placed.y0 + PAD + ascent;
    ctx.save();
    ctx.setLineDash([]);
    if (placed.leader) {
      const [lx, ly] = placed.leader;
      const [sx, sy] = nearestOn(placed, lx, ly);
      ctx.lineWidth = 3;
      ctx.strokeStyle = "rgba(0,0,0,.7)";
      ctx.beginPath();
      ctx.moveTo(sx, sy);
      ctx.lineTo(lx, ly);
      ctx.stroke();
      ctx.lineWidth = 1;
      ctx.strokeStyle = colour;
      ctx.stroke();
    }
    ctx.textAlign = "start";
    ctx.textBaseline = "alphabetic";
    ctx.lineWidth = 3;
    ctx.strokeStyle = "rgba(0,0,0,.85)";
    ctx.strokeText(text, tx, ty);
    ctx.fillStyle = colour;
    ctx.fillText(text, tx, ty);
    ctx.restore();
    return placed;
  }
}
