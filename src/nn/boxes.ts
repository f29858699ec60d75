// Box utilities of torchvision's detection models (torchvision 0.14.1), on the host, in
// float32 exactly as torch evaluates them on the CPU: every tensor op rounds to float32
// (Math.fround after each one), and a Python scalar meets a float32 tensor as a float32
// (`0.5 * w`, `dw / 5.0`, `clamp(max=clip)`, `w >= 1e-3`).
//
// Why the host: these run on boxes the host holds anyway (the RPN's top-k candidates, the
// box head's per-class candidates, the detections), right before or after host-side NMS,
// and they are O(boxes): the `decode` rows of src/bench/kernels/nms.ts measure 4.6 ms
// for the box head's 1000 x 91 boxes and 24 ms for all 267k anchors of an 800x1333 image
// on a busy 2-core machine (decoding only the RPN's top-k anchors, which gives the same
// boxes, is 50x less). Boxes are flat Float32Arrays of (x1, y1, x2, y2) rows.
import { InputError, ShapeError } from '../gpu/errors.js';

const fr = Math.fround;

/** torchvision's default bbox_xform_clip, log(1000 / 16). */
export const BBOX_XFORM_CLIP = Math.log(1000 / 16);

export type BoxCoderWeights = readonly [number, number, number, number];

function rows(boxes: ArrayLike<number>, what: string): number {
  if (boxes.length % 4 !== 0) throw new ShapeError(`${what}: boxes must be [N, 4] (x1, y1, x2, y2), got ${boxes.length} values`);
  return boxes.length / 4;
}

/**
 * BoxCoder(weights, bbox_xform_clip).decode_single: `relCodes` [N, 4*C] (dx, dy, dw, dh per
 * class, class-major columns) against `reference` [N, 4] -> boxes [N, C, 4].
 *   w = x2 - x1, cx = x1 + 0.5 w; dx = code / wx; dw = min(code / ww, clip);
 *   pcx = dx * w + cx, pw = exp(dw) * w; box = (pcx - 0.5 pw, pcy - 0.5 ph, pcx + 0.5 pw, ...).
 * Each op rounds to float32 (the clip too: float32(4.1351666)); exp is rounded once from
 * float64, where torch's vectorised expf may differ by one ulp.
 */
export function decodeBoxes(relCodes: ArrayLike<number>, reference: ArrayLike<number>, weights: BoxCoderWeights, clip = BBOX_XFORM_CLIP): Float32Array {
  const n = rows(reference, 'decodeBoxes');
  if (n === 0) {
    if (relCodes.length !== 0) throw new ShapeError(`decodeBoxes: ${relCodes.length} codes for 0 reference boxes`);
    return new Float32Array(0);
  }
  if (relCodes.length % (4 * n) !== 0) throw new ShapeError(`decodeBoxes: relCodes has ${relCodes.length} values, not [${n}, 4*C] for ${n} reference boxes`);
  const c = relCodes.length / (4 * n);
  const [wx, wy, ww, wh] = weights.map(fr);
  if (!(wx > 0 && wy > 0 && ww > 0 && wh > 0)) throw new InputError(`decodeBoxes: box coder weights must be positive, got [${weights.join(', ')}]`);
  const clip32 = fr(clip);
  const out = new Float32Array(n * c * 4);
  for (let i = 0; i < n; i++) {
    const x1 = fr(reference[4 * i]);
    const y1 = fr(reference[4 * i + 1]);
    const w = fr(fr(reference[4 * i + 2]) - x1);
    const h = fr(fr(reference[4 * i + 3]) - y1);
    const cx = fr(x1 + fr(0.5 * w));
    const cy = fr(y1 + fr(0.5 * h));
    for (let k = 0; k < c; k++) {
      const o = (i * c + k) * 4;
      const dx = fr(relCodes[o] / wx);
      const dy = fr(relCodes[o + 1] / wy);
      // torch.clamp(max=): NaN stays NaN (Math.min would too).
      const dw = Math.min(fr(relCodes[o + 2] / ww), clip32);
      const dh = Math.min(fr(relCodes[o + 3] / wh), clip32);
      const pcx = fr(fr(dx * w) + cx);
      const pcy = fr(fr(dy * h) + cy);
      const halfW = fr(0.5 * fr(fr(Math.exp(dw)) * w));
      const halfH = fr(0.5 * fr(fr(Math.exp(dh)) * h));
      out[o] = pcx - halfW;
      out[o + 1] = pcy - halfH;
      out[o + 2] = pcx + halfW;
      out[o + 3] = pcy + halfH;
    }
  }
  return out;
}

/** clip_boxes_to_image: x into [0, width], y into [0, height] (a new array). */
export function clipBoxesToImage(boxes: ArrayLike<number>, [height, width]: readonly [number, number]): Float32Array {
  const n = rows(boxes, 'clipBoxesToImage');
  const out = new Float32Array(n * 4);
  for (let i = 0; i < 4 * n; i++) {
    const hi = i % 2 === 0 ? width : height;
    out[i] = Math.min(Math.max(boxes[i], 0), hi);
  }
  return out;
}

/** remove_small_boxes: indices (ascending) of boxes with x2 - x1 >= minSize and
 *  y2 - y1 >= minSize, widths in float32 and minSize rounded to float32 as torch compares. */
export function removeSmallBoxes(boxes: ArrayLike<number>, minSize: number): Int32Array {
  const n = rows(boxes, 'removeSmallBoxes');
  const m = fr(minSize);
  const keep: number[] = [];
  for (let i = 0; i < n; i++) {
    const w = fr(boxes[4 * i + 2] - boxes[4 * i]);
    const h = fr(boxes[4 * i + 3] - boxes[4 * i + 1]);
    if (w >= m && h >= m) keep.push(i);
  }
  return Int32Array.from(keep);
}

/** box_area: (x2 - x1) * (y2 - y1) in float32, per box. */
export function boxArea(boxes: ArrayLike<number>): Float32Array {
  const n = rows(boxes, 'boxArea');
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = fr(boxes[4 * i + 2] - boxes[4 * i]) * fr(boxes[4 * i + 3] - boxes[4 * i + 1]);
  return out;
}

/** transform.resize_boxes: boxes of an image of size `from` (h, w) rescaled to `to`:
 *  x * (float32(to_w) / float32(from_w)), y * (float32(to_h) / float32(from_h)). */
export function resizeBoxes(boxes: ArrayLike<number>, from: readonly [number, number], to: readonly [number, number]): Float32Array {
  const n = rows(boxes, 'resizeBoxes');
  if (!(from[0] > 0 && from[1] > 0)) throw new InputError(`resizeBoxes: source size ${from[0]}x${from[1]} must be positive`);
  const rh = fr(fr(to[0]) / fr(from[0]));
  const rw = fr(fr(to[1]) / fr(from[1]));
  const out = new Float32Array(n * 4);
  for (let i = 0; i < 4 * n; i++) out[i] = fr(boxes[i]) * (i % 2 === 0 ? rw : rh);
  return out;
}

/** Rows `keep` of a flat [N, k] array, in that order. */
export function gatherRows(data: ArrayLike<number>, keep: ArrayLike<number>, k: number): Float32Array {
  const out = new Float32Array(keep.length * k);
  for (let r = 0; r < keep.length; r++) {
    const src = keep[r] * k;
    if (!Number.isInteger(keep[r]) || keep[r] < 0 || src + k > data.length) throw new ShapeError(`gatherRows: row ${keep[r]} is outside the ${data.length / k} rows`);
    for (let j = 0; j < k; j++) out[r * k + j] = data[src + j];
  }
  return out;
}
