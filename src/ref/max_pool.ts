// Float64 reference for 2-D max pooling, from the definition (F.max_pool2d, dilation 1,
// ceil_mode False, padding with -inf): y[p, oy, ox] = max over iy in [oy*sh - ph,
// oy*sh - ph + kh) and ix likewise, restricted to the plane.

/** x [N, C, H, W] -> [N, C, floor((H + 2ph - kh)/sh) + 1, floor((W + 2pw - kw)/sw) + 1]. */
export function maxPoolRef(
  x: ArrayLike<number>, [n, c, h, w]: number[], [kh, kw]: [number, number], [sh, sw]: [number, number], [ph, pw]: [number, number],
): { y: Float64Array; shape: number[] } {
  const oh = Math.floor((h + 2 * ph - kh) / sh) + 1;
  const ow = Math.floor((w + 2 * pw - kw) / sw) + 1;
  const y = new Float64Array(n * c * oh * ow);
  for (let pl = 0; pl < n * c; pl++) {
    for (let oy = 0; oy < oh; oy++) {
      for (let ox = 0; ox < ow; ox++) {
        let m = -Infinity;
        for (let iy = oy * sh - ph; iy < oy * sh - ph + kh; iy++) {
          if (iy < 0 || iy >= h) continue;
          for (let ix = ox * sw - pw; ix < ox * sw - pw + kw; ix++) {
            if (ix >= 0 && ix < w) m = Math.max(m, x[(pl * h + iy) * w + ix]);
          }
        }
        y[(pl * oh + oy) * ow + ox] = m;
      }
    }
  }
  return { y, shape: [n, c, oh, ow] };
}
