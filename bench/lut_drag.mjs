// Window drag on a large radiograph, the windowing alone (lut.js SliceRenderer
// _renderVisible, what a fitted drag runs per frame), in Node's V8:
// this tree's lut.js against lut.js at a git revision, in the same process,
// alternating, on the same synthetic frame and the same windows.
//
//   node bench/lut_drag.mjs [REV=HEAD] [--size 3000x2500] [--scale 0.33] [--frames 90] [--rounds 6]
//
// --scale: device pixels per image pixel of the fitted view (0.33: a 3000 x 2500
// radiograph fitted in bench/viewer_browser.py's 1600 x 1000 page). What each
// version builds ahead of the drag (prepareVisible: lut.js's reduced frame, or an
// older revision's block pyramid) is timed apart, once.
//
// The frame: a smooth chest-like field of 12-bit values with noise (int16), so that
// about as many blocks straddle a window edge as on a real radiograph. Each round
// drags 90 windows (centre and width moving as bench/viewer_browser.py INTERACT
// does) through both versions, the order alternating; it prints per-frame time
// median and p95 for each and their ratio. Only the ratio means anything on a
// shared machine.

import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const args = process.argv.slice(2);
const flag = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : fallback;
};
const rev = args.find((a, i) => !a.startsWith("--") && !(i > 0 && args[i - 1].startsWith("--"))) || "HEAD";
const [cols, rows] = flag("size", "3000x2500").split("x").map(Number);
const scale = Number(flag("scale", "0.33"));
const frames = Number(flag("frames", "90"));
const rounds = Number(flag("rounds", "6"));

// lut.js needs a canvas only in its constructor and for putImageData.
globalThis.document = {
  createElement: () => ({ getContext: () => ({ createImageData: (w, h) => ({ data: new Uint8ClampedArray(w * h * 4) }), putImageData() {} }) }),
};
globalThis.performance = globalThis.performance || { now: () => Date.now() };

const path = "frontend_templates/static/refset/viewer/lut.js";
const dir = mkdtempSync(join(tmpdir(), "lut-drag-"));
writeFileSync(join(dir, "new.mjs"), readFileSync(path, "utf8"));
writeFileSync(join(dir, "old.mjs"), execFileSync("git", ["show", `${rev}:${path}`], { encoding: "utf8" }));
const versions = { new: await import(join(dir, "new.mjs")), [rev]: await import(join(dir, "old.mjs")) };

// The frame.
const values = new Int16Array(cols * rows);
let seed = 7;
const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
for (let r = 0; r < rows; r += 1) {
  for (let c = 0; c < cols; c += 1) {
    const x = c / cols - 0.5;
    const y = r / rows - 0.5;
    const lung = Math.exp(-((Math.abs(x) - 0.2) ** 2) / 0.01 - (y * y) / 0.08);
    values[r * cols + c] = Math.round(3000 - 2200 * lung + 300 * Math.sin(c / 40) * Math.cos(r / 55) + 60 * (rand() - 0.5));
  }
}
const frame = { header: { rows, columns: cols, dtype: "int16" }, values };
// A fitted view at `scale` device pixels per image pixel, the whole image in view.
const view = {
  zoom: scale, sx: 1, sy: 1, dpr: 1, cssWidth: Math.ceil(cols * scale), cssHeight: Math.ceil(rows * scale),
  toImage: ([x, y]) => [x / scale, y / scale],
};

const times = Object.fromEntries(Object.keys(versions).map((name) => [name, []]));
const renderers = Object.fromEntries(Object.entries(versions).map(([name, m]) => [name, new m.SliceRenderer()]));
const prepared = {};
for (const [name, r] of Object.entries(renderers)) {
  const t = performance.now();
  r.prepareVisible(frame, view); // built ahead, as the page does when idle
  prepared[name] = performance.now() - t;
}
for (let round = 0; round < rounds; round += 1) {
  const order = round % 2 ? Object.keys(versions).reverse() : Object.keys(versions);
  for (const name of order) {
    const r = renderers[name];
    for (let i = 1; i <= frames; i += 1) {
      const t = performance.now();
      r.render(frame, 2400 - i * 3 + round, Math.max(1, 1800 - i * 5), false, "s", { view });
      times[name].push(performance.now() - t);
    }
  }
}
const pct = (v, q) => [...v].sort((a, b) => a - b)[Math.min(v.length - 1, Math.floor(q * v.length))];
const median = (v) => pct(v, 0.5);
console.log(`lut.js windowing of a ${cols} x ${rows} int16 frame in view at ${scale} device pixels per image pixel, ${rounds} x ${frames} windows each, Node ${process.version}:`);
for (const [name, v] of Object.entries(times)) {
  const shown = renderers[name].visible.canvas;
  console.log(`  ${name.padEnd(8)} median ${median(v).toFixed(2)} ms, p95 ${pct(v, 0.95).toFixed(2)} ms (${shown.width} x ${shown.height} px; built ahead once: ${prepared[name].toFixed(0)} ms)`);
}
const [a, b] = Object.values(times);
console.log(`  this tree / ${rev}: median ${(median(a) / median(b)).toFixed(2)}x, p95 ${(pct(a, 0.95) / pct(b, 0.95)).toFixed(2)}x`);
