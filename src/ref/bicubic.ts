// Float64 reference for bicubic resizing, written from PyTorch's definition of
// F.interpolate(mode='bicubic') (upsample_bicubic2d, no antialias):
//   y[p, oy, ox] = sum_{a, b in -1..2} W(sy - (fy + a)) W(sx - (fx + b)) x[p, cl(fy + a), cl(fx + b)]
// with s = the source coordinate of the output index, f = floor(s), cl() clamping an index
// to the plane (border replicate), and W Keys' cubic convolution kernel with A = -0.75.
// Source coordinates are computed with f32 rounding, as torch computes them for f32
// tensors; the weights and the sum are float64.

const fr = Math.fround;
const A = -0.75;

/** Keys' cubic convolution kernel (A = -0.75), zero outside (-2, 2). */
export function cubicKernel(d: number): number {
  const a = Math.abs(d);
  if (a <= 1) return (A + 2) * a ** 3 - (A + 3) * a ** 2 + 1;
  if (a < 2) return A * a ** 3 - 5 * A * a ** 2 + 8 * A * a - 4 * A;
  return 0;
}

/** Source coordinate of output index `dst` along an axis of `inSize` -> `outSize`. */
export function bicubicSource(dst: number, inSize: number, outSize: number, alignCorners: boolean): number {
  if (alignCorners) {
    const scale = outSize > 1 ? fr((inSize - 1) / (outSize - 1)) : 0;
    return fr(scale * dst);
  }
  const scale = fr(inSize / outSize);
  return fr(fr(scale * fr(dst + 0.5)) - 0.5);
}

/** The four (clamped index, weight) taps of output index `dst`. */
export function bicubicTaps(dst: number, inSize: number, outSize: number, alignCorners: boolean): { index: number[]; weight: number[] } {
  const s = bicubicSource(dst, inSize, outSize, alignCorners);
  // torch guards the top: the base index never passes the last input.
  const f = Math.min(Math.floor(s), inSize - 1);
  const index: number[] = [];
  const weight: number[] = [];
  for (let a = -1; a <= 2; a++) {
    index.push(Math.min(Math.max(f + a, 0), inSize - 1));
    weight.push(cubicKernel(s - (f + a)));
  }
  return { index, weight };
}

/** x [N,C,H,W] -> y [N,C,outH,outW]. The 2-D kernel is a product of the two axis
 *  kernels, so the sum runs along x first (tmp [H, outW]), then along y. */
export function bicubicRef(
  x: ArrayLike<number>, [n, c, h, w]: number[], outH: number, outW: number, alignCorners = false,
): Float64Array {
  const ty = Array.from({ length: outH }, (_, o) => bicubicTaps(o, h, outH, alignCorners));
  const tx = Array.from({ length: outW }, (_, o) => bicubicTaps(o, w, outW, alignCorners));
  const out = new Float64Array(n * c * outH * outW);
  const tmp = new Float64Array(h * outW);
  for (let pl = 0; pl < n * c; pl++) {
    const base = pl * h * w;
    // tmp[iy, ox] = sum_b W(sx - (fx + b)) x[pl, iy, cl(fx + b)]
    for (let iy = 0; iy < h; iy++) {
      for (let ox = 0; ox < outW; ox++) {
        const { index, weight } = tx[ox];
        let s = 0;
        for (let b = 0; b < 4; b++) s += weight[b] * x[base + iy * w + index[b]];
        tmp[iy * outW + ox] = s;
      }
    }
    // y[pl, oy, ox] = sum_a W(sy - (fy + a)) tmp[cl(fy + a), ox]
    for (let oy = 0; oy < outH; oy++) {
      const [r0, r1, r2, r3] = ty[oy].index.map((i) => i * outW);
      const [w0, w1, w2, w3] = ty[oy].weight;
      const row = (pl * outH + oy) * outW;
      for (let ox = 0; ox < outW; ox++) {
        out[row + ox] = w0 * tmp[r0 + ox] + w1 * tmp[r1 + ox] + w2 * tmp[r2 + ox] + w3 * tmp[r3 + ox];
      }
    }
  }
  return out;
}
