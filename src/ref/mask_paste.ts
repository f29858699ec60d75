// Float64 reference for paste_masks_in_image, from torchvision's definition: pad each
// M x M mask with zeros to (M + 2 pad)^2, expand its box by (M + 2 pad) / M about the
// centre, truncate to integers (x0, y0, x1, y1), resize the padded mask bilinearly
// (align_corners False) to (max(y1 - y0 + 1, 1), max(x1 - x0 + 1, 1)) and write it at
// (y0, x0) into a zero H x W canvas, clipped to the canvas.
// The box expansion and the resize's source coordinates are rounded to float32 as torch
// computes them for f32 tensors (they decide integer sizes and taps); the interpolation
// itself is float64.
import { bilinearTaps } from './resize.js';

const fr = Math.fround;

/** The expanded integer box (float32 arithmetic, truncation toward zero). */
export function pasteBoxRef(box: ArrayLike<number>, m: number, pad: number): [number, number, number, number] {
  const scale = fr((m + 2 * pad) / m);
  const [x1, y1, x2, y2] = [box[0], box[1], box[2], box[3]].map(fr);
  const wh = fr(fr(fr(x2 - x1) * 0.5) * scale);
  const hh = fr(fr(fr(y2 - y1) * 0.5) * scale);
  const xc = fr(fr(x2 + x1) * 0.5);
  const yc = fr(fr(y2 + y1) * 0.5);
  // + 0 turns a truncated -0 into 0 (an int64 has no sign of zero).
  return [fr(xc - wh), fr(yc - hh), fr(xc + wh), fr(yc + hh)].map((v) => Math.trunc(v) + 0) as [number, number, number, number];
}

/** masks [N, M, M], boxes [N, 4] -> canvases [N, H, W]. */
export function pasteMasksRef(masks: ArrayLike<number>, n: number, m: number, boxes: ArrayLike<number>, h: number, w: number, pad = 1): Float64Array {
  const out = new Float64Array(n * h * w);
  const size = m + 2 * pad;
  const padded = (k: number, i: number, j: number) =>
    i < pad || j < pad || i >= pad + m || j >= pad + m ? 0 : masks[(k * m + i - pad) * m + j - pad];
  for (let k = 0; k < n; k++) {
    const [x0, y0, x1, y1] = pasteBoxRef([boxes[4 * k], boxes[4 * k + 1], boxes[4 * k + 2], boxes[4 * k + 3]], m, pad);
    const bw = Math.max(x1 - x0 + 1, 1);
    const bh = Math.max(y1 - y0 + 1, 1);
    for (let y = Math.max(y0, 0); y < Math.min(y1 + 1, h); y++) {
      const ty = bilinearTaps(y - y0, size, bh);
      for (let x = Math.max(x0, 0); x < Math.min(x1 + 1, w); x++) {
        const tx = bilinearTaps(x - x0, size, bw);
        const row = (i: number) => (1 - tx.lam) * padded(k, i, tx.i0) + tx.lam * padded(k, i, tx.i1);
        out[(k * h + y) * w + x] = (1 - ty.lam) * row(ty.i0) + ty.lam * row(ty.i1);
      }
    }
  }
  return out;
}
