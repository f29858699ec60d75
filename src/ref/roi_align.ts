// Float64 references for RoIAlign and MultiScaleRoIAlign, written from torchvision's
// definition (ops/roi_align.py, the paper's "bilinear samples averaged per bin"):
//   out[k, c, i, j] = 1 / max(Gh*Gw, 1) * sum_{a < Gh, b < Gw} f_c(y_{i,a}, x_{j,b})
//   y_{i,a} = y1' + i * bh + (a + 1/2) * bh / Gh,  y1' = y1 * scale - (aligned ? 1/2 : 0),
//   bh = max(y2' - y1', aligned ? -inf : 1) / PH,  Gh = ratio > 0 ? ratio : ceil(bh),
// with f the bilinear interpolation of the plane, 0 for a sample outside [-1, H] x [-1, W],
// coordinates in [-1, 0] read as 0, and those at or past the last row/column reading it.
// Sample coordinates are rounded to float32 after each operation, as torch computes them
// for f32 inputs (they decide grid sizes and border cases); the interpolation weights and
// the sums are float64.

const fr = Math.fround;

export interface RoiAlignRefOptions {
  outputSize: [number, number];
  spatialScale: number;
  samplingRatio: number;
  aligned: boolean;
}

/** f(y, x) of one plane (row-major h x w) with torchvision's border rules. */
function bilinear(plane: ArrayLike<number>, off: number, h: number, w: number, y: number, x: number): number {
  if (!(y >= -1 && y <= h && x >= -1 && x <= w)) return 0;
  const yc = Math.min(Math.max(y, 0), h - 1);
  const xc = Math.min(Math.max(x, 0), w - 1);
  const y0 = Math.floor(yc);
  const x0 = Math.floor(xc);
  const y1 = Math.min(y0 + 1, h - 1);
  const x1 = Math.min(x0 + 1, w - 1);
  const ly = yc - y0;
  const lx = xc - x0;
  const v = (r: number, c: number) => plane[off + r * w + c];
  return (1 - ly) * ((1 - lx) * v(y0, x0) + lx * v(y0, x1)) + ly * ((1 - lx) * v(y1, x0) + lx * v(y1, x1));
}

/** Sample coordinates along one axis: [pooled][grid] (f32 rounding as torch). */
function samples(lo: number, hi: number, pooled: number, opts: RoiAlignRefOptions): number[][] {
  const s = fr(opts.spatialScale);
  const off = opts.aligned ? 0.5 : 0;
  const start = fr(fr(fr(lo) * s) - off);
  let size = fr(fr(fr(fr(hi) * s) - off) - start);
  if (!opts.aligned) size = Math.max(size, 1);
  const bin = fr(size / pooled);
  const grid = opts.samplingRatio > 0 ? opts.samplingRatio : Math.max(0, Math.ceil(bin) || 0);
  return Array.from({ length: pooled }, (_, p) =>
    Array.from({ length: grid }, (_, a) => fr(fr(start + fr(p * bin)) + fr(fr((a + 0.5) * bin) / grid))),
  );
}

/** x [N, C, H, W], rois [K, 5] (batch, x1, y1, x2, y2) -> [K, C, PH, PW]. */
export function roiAlignRef(x: ArrayLike<number>, [, c, h, w]: number[], rois: ArrayLike<number>, opts: RoiAlignRefOptions): Float64Array {
  const [ph, pw] = opts.outputSize;
  const k = rois.length / 5;
  const out = new Float64Array(k * c * ph * pw);
  for (let r = 0; r < k; r++) {
    const b = rois[5 * r];
    const ys = samples(rois[5 * r + 2], rois[5 * r + 4], ph, opts);
    const xs = samples(rois[5 * r + 1], rois[5 * r + 3], pw, opts);
    const count = Math.max(ys[0].length * xs[0].length, 1);
    for (let ch = 0; ch < c; ch++) {
      const off = (b * c + ch) * h * w;
      for (let i = 0; i < ph; i++) {
        for (let j = 0; j < pw; j++) {
          let sum = 0;
          for (const y of ys[i]) for (const xx of xs[j]) sum += bilinear(x, off, h, w, y, xx);
          out[((r * c + ch) * ph + i) * pw + j] = sum / count;
        }
      }
    }
  }
  return out;
}

export interface MultiScaleRefResult {
  out: Float64Array;
  levels: number[];
  scales: number[];
}

/**
 * MultiScaleRoIAlign (aligned False): level of a box = clamp(floor(lvl0 + log2(sqrt(area) /
 * s0) + eps), kMin, kMax) - kMin with scale_l = 2^round(log2(H_l / max image h)) and
 * kMin/kMax = -log2 of the first/last scale; each box pooled from its level.
 * features[l] = { data [N, C, H_l, W_l], shape }, boxes[i] = [n_i, 4] of image i.
 */
export function multiScaleRoiAlignRef(
  features: { data: ArrayLike<number>; shape: number[] }[], boxes: ArrayLike<number>[], imageSizes: [number, number][],
  outputSize: [number, number], samplingRatio: number, mapper = { canonicalScale: 224, canonicalLevel: 4, eps: 1e-6 },
): MultiScaleRefResult {
  const maxH = Math.max(...imageSizes.map((s) => s[0]));
  const scales = features.map((f) => 2 ** Math.round(Math.log2(f.shape[2] / maxH)));
  const kMin = -Math.log2(scales[0]);
  const kMax = -Math.log2(scales[scales.length - 1]);
  const rois: number[] = [];
  boxes.forEach((b, i) => {
    for (let j = 0; j < b.length; j += 4) rois.push(i, b[j], b[j + 1], b[j + 2], b[j + 3]);
  });
  const k = rois.length / 5;
  const [c] = [features[0].shape[1]];
  const levels: number[] = [];
  const per = c * outputSize[0] * outputSize[1];
  const out = new Float64Array(k * per);
  for (let r = 0; r < k; r++) {
    const [x1, y1, x2, y2] = rois.slice(5 * r + 1, 5 * r + 5);
    const area = (x2 - x1) * (y2 - y1);
    const raw = Math.floor(mapper.canonicalLevel + Math.log2(Math.sqrt(area) / mapper.canonicalScale) + mapper.eps);
    const lvl = features.length === 1 ? 0 : Math.min(Math.max(raw, kMin), kMax) - kMin;
    levels.push(lvl);
    const f = features[lvl];
    out.set(roiAlignRef(f.data, f.shape, rois.slice(5 * r, 5 * r + 5), { outputSize, spatialScale: scales[lvl], samplingRatio, aligned: false }), r * per);
  }
  return { out, levels, scales };
}
