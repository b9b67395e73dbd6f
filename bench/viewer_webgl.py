"""Does WebGL2 window a large radiograph within the frame budget here? (issue 17)

    .venv/bin/python bench/viewer_webgl.py [--repeat 3]

Debian's headless Chromium (/usr/bin/chromium, launched with tests/chromium.py's
flags, --disable-gpu included) reports which WebGL it gives: WebGL2 on ANGLE over
SwiftShader (Vulkan on the CPU), with and without --enable-unsafe-swiftshader. Then,
in one page, a 3000 x 2500 int16 texture (R16I, uploaded once) is windowed by a
fragment shader into a 1150 x 960 canvas shown on the page, each screen pixel the
mean of the windowed k x k texels under it (k = 1, 2, 3), one window change per
animation frame for 90 frames; and once more at k = 3 with the GL canvas drawn into
a 2D canvas every frame (what the workstation's single 2D canvas with its overlays
would need). It prints the frame interval median and p95 against the 16.7 ms
budget. The canvas 2D path it is weighed against is bench/viewer_browser.py --xr
(window: lut.js renderVisible); compare on the same machine, close in time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.chromium import CHROMIUM, FLAGS  # noqa: E402

INFO = """() => {
  const out = {};
  for (const kind of ['webgl2', 'webgl']) {
    const gl = document.createElement('canvas').getContext(kind);
    if (!gl) { out[kind] = null; continue; }
    const ext = gl.getExtension('WEBGL_debug_renderer_info');
    out[kind] = `${gl.getParameter(gl.VERSION)} | ${
      ext ? gl.getParameter(ext.UNMASKED_RENDERER_WEBGL) : gl.getParameter(gl.RENDERER)}`;
  }
  return out;
}"""

DRAG = r"""async ([k, readback]) => {
  const W = 3000, H = 2500, SW = 1150, SH = 960;
  const src = new Int16Array(W * H);
  for (let i = 0; i < src.length; i += 1) src[i] = ((i * 2654435761) >>> 20) & 4095;
  document.body.replaceChildren();
  const gc = document.createElement('canvas');
  gc.width = SW; gc.height = SH;
  const gl = gc.getContext('webgl2', { antialias: false });
  const out2d = document.createElement('canvas');
  out2d.width = SW; out2d.height = SH;
  const ctx = out2d.getContext('2d', { alpha: false });
  document.body.appendChild(readback ? out2d : gc);
  const vs = `#version 300 es
  in vec2 p; out vec2 uv;
  void main() { uv = p * 0.5 + 0.5; uv.y = 1.0 - uv.y; gl_Position = vec4(p, 0, 1); }`;
  const fs = `#version 300 es
  precision highp float; precision highp isampler2D;
  uniform isampler2D t; uniform vec2 win; uniform int k; in vec2 uv; out vec4 o;
  void main() {
    ivec2 size = textureSize(t, 0); ivec2 at = ivec2(uv * vec2(size));
    float acc = 0.0; int n = 0;
    for (int y = 0; y < 4; y++) { if (y >= k) break;
      for (int x = 0; x < 4; x++) { if (x >= k) break;
        float v = float(texelFetch(t, min(at + ivec2(x, y), size - 1), 0).r);
        acc += clamp((v - (win.x - 0.5)) / (win.y - 1.0) + 0.5, 0.0, 1.0); n++; } }
    float g = acc / float(n); o = vec4(g, g, g, 1.0);
  }`;
  const shader = (type, text) => {
    const s = gl.createShader(type); gl.shaderSource(s, text); gl.compileShader(s);
    if (!gl.getShaderParameter(s, gl.COMPILE_STATUS)) throw new Error(gl.getShaderInfoLog(s));
    return s;
  };
  const prog = gl.createProgram();
  gl.attachShader(prog, shader(gl.VERTEX_SHADER, vs));
  gl.attachShader(prog, shader(gl.FRAGMENT_SHADER, fs));
  gl.linkProgram(prog); gl.useProgram(prog);
  gl.bindBuffer(gl.ARRAY_BUFFER, gl.createBuffer());
  gl.bufferData(gl.ARRAY_BUFFER, new Float32Array([-1, -1, 1, -1, -1, 1, 1, 1]), gl.STATIC_DRAW);
  const loc = gl.getAttribLocation(prog, 'p');
  gl.enableVertexAttribArray(loc); gl.vertexAttribPointer(loc, 2, gl.FLOAT, false, 0, 0);
  let t = performance.now();
  gl.bindTexture(gl.TEXTURE_2D, gl.createTexture());
  gl.pixelStorei(gl.UNPACK_ALIGNMENT, 2);
  gl.texImage2D(gl.TEXTURE_2D, 0, gl.R16I, W, H, 0, gl.RED_INTEGER, gl.SHORT, src);
  gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.NEAREST);
  gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MAG_FILTER, gl.NEAREST);
  gl.finish();
  const upload = performance.now() - t;
  gl.viewport(0, 0, SW, SH);
  gl.uniform1i(gl.getUniformLocation(prog, 'k'), k);
  const win = gl.getUniformLocation(prog, 'win');
  const next = () => new Promise((resolve) => requestAnimationFrame(resolve));
  await next();
  const frames = [];
  let last = performance.now();
  for (let i = 0; i < 90; i += 1) {
    gl.uniform2f(win, 2000 + i * 3, 3000 - i * 5);
    gl.drawArrays(gl.TRIANGLE_STRIP, 0, 4);
    if (readback) ctx.drawImage(gc, 0, 0);
    await next();
    frames.push(performance.now() - last);
    last = performance.now();
  }
  return { upload, frames: frames.slice(1) };
}"""


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        for extra in ([], ["--enable-unsafe-swiftshader"]):
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS + extra)
            page = browser.new_page()
            print(f"flags +{extra or 'nothing'}: {page.evaluate(INFO)}")
            browser.close()
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        for k, readback in ((1, False), (2, False), (3, False), (3, True)):
            runs = [page.evaluate(DRAG, [k, readback]) for _ in range(args.repeat)]
            frames = [v for r in runs for v in r["frames"]]
            print(
                f"  WebGL2 window drag, 3000 x 2500 -> 1150 x 960, k = {k}"
                f"{' + drawImage into 2D' if readback else ''}:"
                f" upload {statistics.median(r['upload'] for r in runs):.1f} ms;"
                f" frame median {statistics.median(frames):.1f} ms,"
                f" p95 {pct(frames, 0.95):.1f} ms = {pct(frames, 0.95) / 16.7:.2f}x the budget"
            )
        browser.close()


if __name__ == "__main__":
    main()
