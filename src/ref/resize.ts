// Float64 references for resizing, written from the definitions (PyTorch F.interpolate).
// Bilinear source coordinates are computed with f32 rounding, as torch computes them for
// f32 tensors (scale = in/out, src = scale * (dst + 0.5) - 0.5, clamped at 0); values
// and weights are then combined in float64.

const fr = Math.fround;

/** [N,C,H,W] -> [N,C,2H,2W]: y[n,c,y,x] = x[n,c,floor(y/2),floor(x/2)]. */
export function nearest2xRef(x: ArrayLike<number>, [n, c, h, w]: number[]): Float64Array {
  const out = new Float64Array(n * c * 4 * h * w);
  for (let pl = 0; pl < n * c; pl++) {
    for (let oy = 0; oy < 2 * h; oy++) {
      for (let ox = 0; ox < 2 * w; ox++) out[(pl * 2 * h + oy) * 2 * w + ox] = x[(pl * h + (oy >> 1)) * w + (ox >> 1)];
    }
  }
  return out;
}

/** Taps of output index `dst` along one axis: inputs i0, i1 and the weight lam of i1. */
export function bilinearTaps(dst: number, inSize: number, outSize: number): { i0: number; i1: number; lam: number } {
  const scale = fr(inSize / outSize);
  const s = Math.max(fr(fr(scale * fr(dst + 0.5)) - 0.5), 0);
  const i0 = Math.min(Math.floor(s), inSize - 1);
  return { i0, i1: Math.min(i0 + 1, inSize - 1), lam: Math.min(Math.max(s - i0, 0), 1) };
}

/** Per-axis interpolation matrix M[out, in] (dense, small sizes only). */
function axisMatrix(inSize: number, outSize: number): Float64Array {
  const m = new Float64Array(outSize * inSize);
  for (let o = 0; o < outSize; o++) {
    const t = bilinearTaps(o, inSize, outSize);
    m[o * inSize + t.i0] += 1 - t.lam;
    m[o * inSize + t.i1] += t.lam;
  }
  return m;
}

/** y[p, oy, ox] = sum_{iy, ix} My[oy, iy] Mx[ox, ix] x[p, iy, ix]; x [N,C,H,W] -> [N,C,outH,outW]. */
export function bilinearRef(x: ArrayLike<number>, [n, c, h, w]: number[], outH: number, outW: number): Float64Array {
  const my = axisMatrix(h, outH);
  const mx = axisMatrix(w, outW);
  const out = new Float64Array(n * c * outH * outW);
  const tmp = new Float64Array(h * outW);
  for (let pl = 0; pl < n * c; pl++) {
    // Along x first: tmp[iy, ox] = sum_ix Mx[ox, ix] x[iy, ix].
    tmp.fill(0);
    for (let iy = 0; iy < h; iy++) {
      for (let ox = 0; ox < outW; ox++) {
        let s = 0;
        for (let ix = 0; ix < w; ix++) s += mx[ox * w + ix] * x[(pl * h + iy) * w + ix];
        tmp[iy * outW + ox] = s;
      }
    }
    for (let oy = 0; oy < outH; oy++) {
      for (let ox = 0; ox < outW; ox++) {
        let s = 0;
        for (let iy = 0; iy < h; iy++) s += my[oy * h + iy] * tmp[iy * outW + ox];
        out[(pl * outH + oy) * outW + ox] = s;
      }
    }
  }
  return out;
}

/** The adjoint: dx[p, iy, ix] = sum_{oy, ox} My[oy, iy] Mx[ox, ix] dy[p, oy, ox];
 *  dy [N,C,outH,outW] -> dx [N,C,inH,inW]. */
export function bilinearBackwardRef(dy: ArrayLike<number>, [n, c, outH, outW]: number[], inH: number, inW: number): Float64Array {
  const my = axisMatrix(inH, outH);
  const mx = axisMatrix(inW, outW);
  const dx = new Float64Array(n * c * inH * inW);
  const tmp = new Float64Array(outH * inW);
  for (let pl = 0; pl < n * c; pl++) {
    tmp.fill(0);
    for (let oy = 0; oy < outH; oy++) {
      for (let ix = 0; ix < inW; ix++) {
        let s = 0;
        for (let ox = 0; ox < outW; ox++) s += mx[ox * inW + ix] * dy[(pl * outH + oy) * outW + ox];
        tmp[oy * inW + ix] = s;
      }
    }
    for (let iy = 0; iy < inH; iy++) {
      for (let ix = 0; ix < inW; ix++) {
        let s = 0;
        for (let oy = 0; oy < outH; oy++) s += my[oy * inH + iy] * tmp[oy * inW + ix];
        dx[(pl * inH + iy) * inW + ix] = s;
      }
    }
  }
  return dx;
}
