// Semantic label maps from the grounding module's per-class mask logits.
//
// The official rule per class is mask = sigmoid(logit) > 0.5 (test.py), i.e. logit > 0;
// for a threshold t, logit > ln(t / (1 - t)), the comparison generateGrounded makes. A
// semantic map needs one label per pixel, so where several classes' masks overlap the
// class with the higher logit takes the pixel (an exact tie goes to the smaller label,
// so the map does not depend on the prompt's word order), and a pixel no mask claims
// is background (0).
//
// PASCAL VOC marks a band about 5 pixels wide along object outlines as 'void' (255),
// ignored by training losses. The grounding module's masks are hard decisions with no
// such band, so by default none is written; `ignoreBand` draws one on request (every
// pixel within `radius` pixels, Chebyshev distance, of a pixel with another label), for
// trainers that want the boundary uncertainty left out as VOC's annotators left it out.
import { InputError, ShapeError } from '../../gpu/errors.js';

export const BACKGROUND = 0;
export const IGNORE = 255;

/** The label map [h * w] of one image: `logits[k]` are class k's mask logits (row-major,
 *  h * w), `labels[k]` its label (1..254). */
export function labelMap(logits: readonly Float32Array[], labels: readonly number[], pixels: number, threshold = 0.5): Uint8Array {
  if (logits.length !== labels.length) throw new ShapeError(`labelMap: ${logits.length} logit maps for ${labels.length} labels`);
  if (!(threshold > 0 && threshold < 1)) throw new InputError(`labelMap: threshold ${threshold} must be in (0, 1)`);
  labels.forEach((l, k) => {
    if (!Number.isInteger(l) || l < 1 || l >= IGNORE) throw new InputError(`labelMap: label ${l} of class ${k} must be in 1..${IGNORE - 1}`);
    if (logits[k].length !== pixels) throw new ShapeError(`labelMap: class ${k} has ${logits[k].length} logits, the image ${pixels} pixels`);
  });
  const cut = Math.log(threshold / (1 - threshold));
  const out = new Uint8Array(pixels);
  for (let p = 0; p < pixels; p++) {
    let best = -Infinity;
    let label = BACKGROUND;
    for (let k = 0; k < logits.length; k++) {
      const v = logits[k][p];
      if (!Number.isFinite(v)) {
        throw new InputError(`the grounding module gave a non-finite mask logit (${v}) for label ${labels[k]} at pixel ${p}; its weights or the model's outputs are broken (check the checkpoints)`);
      }
      if (v > cut && (v > best || (v === best && labels[k] < label))) {
        best = v;
        label = labels[k];
      }
    }
    out[p] = label;
  }
  return out;
}

/** Sliding min of `srcLo` and max of `srcHi` over windows of 2r+1 along one axis (clipped
 *  at the ends): `lines` lines of `n` values, line l starting at l * stride, values `step` apart. */
function minMax1d(srcLo: Uint8Array, srcHi: Uint8Array, lo: Uint8Array, hi: Uint8Array, n: number, lines: number, stride: number, step: number, r: number): void {
  for (let l = 0; l < lines; l++) {
    const base = l * stride;
    for (let i = 0; i < n; i++) {
      let mn = 255;
      let mx = 0;
      for (let d = Math.max(0, i - r); d <= Math.min(n - 1, i + r); d++) {
        const at = base + d * step;
        if (srcLo[at] < mn) mn = srcLo[at];
        if (srcHi[at] > mx) mx = srcHi[at];
      }
      lo[base + i * step] = mn;
      hi[base + i * step] = mx;
    }
  }
}

/** A copy of `map` [h * w] with IGNORE on every pixel that has a pixel of another label
 *  within `radius` (Chebyshev distance). radius 0 returns an unchanged copy. */
export function ignoreBand(map: Uint8Array, h: number, w: number, radius: number): Uint8Array {
  if (map.length !== h * w) throw new ShapeError(`ignoreBand: ${map.length} pixels for ${h}x${w}`);
  if (!Number.isInteger(radius) || radius < 0) throw new InputError(`ignore band radius ${radius} must be a non-negative integer`);
  const out = Uint8Array.from(map);
  if (radius === 0) return out;
  // Square-window min and max, separably: along rows, then along columns.
  const [rowLo, rowHi, lo, hi] = [new Uint8Array(h * w), new Uint8Array(h * w), new Uint8Array(h * w), new Uint8Array(h * w)];
  minMax1d(map, map, rowLo, rowHi, w, h, w, 1, radius);
  minMax1d(rowLo, rowHi, lo, hi, h, w, 1, w, radius);
  for (let p = 0; p < h * w; p++) if (lo[p] !== map[p] || hi[p] !== map[p]) out[p] = IGNORE;
  return out;
}

/** Pixels per label value present in `map`, keyed by the label as a string. */
export function labelCounts(map: Uint8Array): Record<string, number> {
  const counts = new Array<number>(256).fill(0);
  for (let p = 0; p < map.length; p++) counts[map[p]]++;
  const out: Record<string, number> = {};
  counts.forEach((c, l) => {
    if (c > 0) out[String(l)] = c;
  });
  return out;
}
