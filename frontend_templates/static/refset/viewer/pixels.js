// Pixel transport: the record format of annotation_server/imaging/pixels.py.
//
// A record is: uint32 LE header length N | N bytes JSON header (space padded so
// that 4 + N is a multiple of 8) | header.nbytes bytes of pixels | zero padding to
// a multiple of 8. A series body is records in slice order. Each frame's pixels
// are copied once into their own ArrayBuffer so typed arrays start aligned.

import { request } from "../common/http.js";

/** The record format's media type (annotation_server/imaging/pixels.py). */
export const MEDIA_TYPE = "application/vnd.refset.pixels";
const decoder = new TextDecoder();

const ARRAYS = {
  int16: Int16Array,
  uint8: Uint8Array,
  uint16: Uint16Array,
  float32: Float32Array,
  float64: Float64Array,
};

function pad8(n) {
  return (n + 7) & ~7;
}

/** A frame: its header and a typed array of its values (null for error records). */
export function makeFrame(header, buffer) {
  if (header.error || !header.nbytes) return { header, values: null };
  const Kind = ARRAYS[header.dtype];
  if (!Kind) return { header: { ...header, error: { detail: `dtype ${header.dtype}` } }, values: null };
  return { header, values: new Kind(buffer, 0, header.nbytes / Kind.BYTES_PER_ELEMENT) };
}

/**
 * Parse the complete records in bytes[start, end). Returns the frames found and the
 * offset of the first incomplete record.
 */
export function parseRecords(bytes, start, end) {
  const frames = [];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = start;
  while (end - at >= 4) {
    const headerLength = view.getUint32(at, true);
    if (end - at < 4 + headerLength) break;
    const header = JSON.parse(decoder.decode(bytes.subarray(at + 4, at + 4 + headerLength)));
    const dataStart = at + 4 + headerLength;
    const nbytes = header.nbytes || 0;
    const recordEnd = dataStart + pad8(nbytes);
    if (end < recordEnd) break;
    const from = bytes.byteOffset + dataStart;
    frames.push(makeFrame(header, bytes.buffer.slice(from, from + nbytes)));
    at = recordEnd;
  }
  return { frames, next: at };
}

/** One slice: GET /api/v1/instances/{id}/pixels/. */
export async function fetchInstance(apiRoot, instanceId, { signal } = {}) {
  const response = await request("GET", `${apiRoot}instances/${instanceId}/pixels/`, { accept: MEDIA_TYPE, signal });
  const bytes = new Uint8Array(await response.arrayBuffer());
  const { frames } = parseRecords(bytes, 0, bytes.length);
  if (!frames.length) throw new Error("empty pixel record");
  return frames[0];
}

/** The response prefetch.js started for `url` while the page loaded, if it succeeded. */
async function earlyResponse(url) {
  const early = window.refsetEarly ? window.refsetEarly.take(url) : null;
  if (!early) return null;
  try {
    const response = await early;
    return response.ok ? response : null;
  } catch {
    return null;
  }
}

/**
 * Stream a whole series: GET /api/v1/series/{id}/pixels/, calling onFrame(frame)
 * for each record as it arrives and onProgress({bytes, total, frames}) per chunk.
 * A large first frame may come after a reduced rendition of itself, a frame whose
 * header has `preview` ({factor, rows, columns}: the full frame's size); `frames`
 * counts full frames only. The page may have started the request already
 * (prefetch.js); where that failed it is asked again, and errors reported as usual.
 */
export async function streamSeries(apiRoot, seriesId, { onFrame, onProgress, signal } = {}) {
  const url = `${apiRoot}series/${seriesId}/pixels/`;
  const response = (!signal && (await earlyResponse(url))) || (await request("GET", url, { accept: MEDIA_TYPE, signal }));
  const total = Number(response.headers.get("Content-Length")) || 0;
  const expected = Number(response.headers.get("X-Refset-Frames")) || 0;
  const reader = response.body.getReader();
  let work = new Uint8Array(Math.max(total ? Math.min(total, 64 << 20) : 0, 4 << 20));
  let filled = 0;
  let received = 0;
  let count = 0;
  let marked = false;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    received += value.length;
    if (filled + value.length > work.length) {
      const bigger = new Uint8Array(Math.max(work.length * 2, filled + value.length));
      bigger.set(work.subarray(0, filled));
      work = bigger;
    }
    work.set(value, filled);
    filled += value.length;
    const { frames, next } = parseRecords(work, 0, filled);
    if (next > 0) {
      work.copyWithin(0, next, filled);
      filled -= next;
    }
    for (const frame of frames) {
      if (!frame.header.preview) count += 1; // a large first frame's reduced rendition
      if (!marked) {
        marked = true;
        performance.mark("pixels:first-frame"); // the first record parsed (a start-up mark)
      }
      if (onFrame) onFrame(frame);
    }
    if (onProgress) onProgress({ bytes: received, total, frames: count, expected });
  }
  if (filled > 0) {
    const { frames } = parseRecords(work, 0, filled);
    for (const frame of frames) {
      count += 1;
      if (onFrame) onFrame(frame);
    }
  }
  if (onProgress) onProgress({ bytes: received, total: received, frames: count, expected, done: true });
  return count;
}
