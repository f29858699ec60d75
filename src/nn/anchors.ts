// torchvision's AnchorGenerator (0.14.1, detection/anchor_utils.py), on the host in float32.
// Anchors depend only on the padded batch size and the feature-map sizes, so they are
// computed once per shape and uploaded if needed; host code is exact and O(anchors).
//   Cell (base) anchors of a level, for ratio r and size S (ratio-major, then size):
//     hr = sqrt(r), wr = 1 / hr, ws = wr * S, hs = hr * S (float32 each),
//     base = round([-ws, -hs, ws, hs] / 2), rounding half to even.
//   Stride of a level: (Hpad // h, Wpad // w), integer division (a 160x224 batch gives
//   its 3x4 'pool' level stride (53, 56), not 64).
//   Anchor = base + (x*sw, y*sh, x*sw, y*sh), rows in (y, x, anchor) order, levels
//   concatenated. The same for every image of the batch.
import { InputError } from '../gpu/errors.js';

const fr = Math.fround;

/** Python's round() / torch.round on a float: half to even. */
export function roundHalfEven(v: number): number {
  const f = Math.floor(v);
  const d = v - f;
  if (d < 0.5) return f;
  if (d > 0.5) return f + 1;
  return f % 2 === 0 ? f : f + 1;
}

/** generate_anchors(sizes, ratios): [ratios.length * sizes.length, 4] zero-centred boxes. */
export function cellAnchors(sizes: readonly number[], ratios: readonly number[]): Float32Array {
  if (sizes.length === 0 || ratios.length === 0) throw new InputError('cellAnchors: needs at least one size and one aspect ratio');
  for (const v of [...sizes, ...ratios]) if (!(v > 0) || !Number.isFinite(v)) throw new InputError(`cellAnchors: sizes and aspect ratios must be positive, got ${v}`);
  const out = new Float32Array(ratios.length * sizes.length * 4);
  let o = 0;
  for (const r of ratios) {
    const hr = fr(Math.sqrt(fr(r)));
    const wr = fr(1 / hr);
    for (const s of sizes) {
      const ws = fr(wr * fr(s));
      const hs = fr(hr * fr(s));
      // [-ws, -hs, ws, hs] / 2 is exact in float32; then round half to even.
      out[o++] = roundHalfEven(-ws / 2);
      out[o++] = roundHalfEven(-hs / 2);
      out[o++] = roundHalfEven(ws / 2);
      out[o++] = roundHalfEven(hs / 2);
    }
  }
  return out;
}

export interface AnchorGrid {
  /** [sum over levels of h*w*A, 4] (x1, y1, x2, y2). */
  anchors: Float32Array;
  /** h * w * A per level. */
  numPerLevel: number[];
  /** (stride_h, stride_w) per level. */
  strides: [number, number][];
  /** Cell anchors per level ([A, 4] each). */
  cells: Float32Array[];
}

/**
 * AnchorGenerator(sizes, aspect_ratios) for a padded batch of `paddedHW` and feature maps
 * of `featureHW` (one per level; sizes[l] and ratios[l] for level l).
 */
export function gridAnchors(
  paddedHW: readonly [number, number], featureHW: readonly (readonly [number, number])[],
  sizes: readonly (readonly number[])[], ratios: readonly (readonly number[])[],
): AnchorGrid {
  if (featureHW.length !== sizes.length || featureHW.length !== ratios.length) {
    throw new InputError(`gridAnchors: ${featureHW.length} feature maps but ${sizes.length} anchor sizes and ${ratios.length} aspect-ratio lists (one per level)`);
  }
  const cells = featureHW.map((_, l) => cellAnchors(sizes[l], ratios[l]));
  const strides = featureHW.map(([h, w]): [number, number] => {
    if (!(Number.isInteger(h) && Number.isInteger(w) && h > 0 && w > 0)) throw new InputError(`gridAnchors: feature map size ${h}x${w} must be positive integers`);
    return [Math.floor(paddedHW[0] / h), Math.floor(paddedHW[1] / w)];
  });
  const numPerLevel = featureHW.map(([h, w], l) => h * w * (cells[l].length / 4));
  const anchors = new Float32Array(4 * numPerLevel.reduce((a, b) => a + b, 0));
  let o = 0;
  featureHW.forEach(([h, w], l) => {
    const [sh, sw] = strides[l];
    const base = cells[l];
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        for (let a = 0; a < base.length; a += 4) {
          anchors[o++] = x * sw + base[a];
          anchors[o++] = y * sh + base[a + 1];
          anchors[o++] = x * sw + base[a + 2];
          anchors[o++] = y * sh + base[a + 3];
        }
      }
    }
  });
  return { anchors, numPerLevel, strides, cells };
}
