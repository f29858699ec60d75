// Float64 references for conv2d and its backward, written from the definitions
// (PyTorch semantics: NCHW, weight [Cout, Cin, KH, KW], symmetric zero padding).
import { ACT_REF } from './elementwise.js';

export interface ConvDims {
  N: number; Cin: number; H: number; W: number;
  Cout: number; KH: number; KW: number;
  stride: number; padding: number;
}

export function convOut(d: ConvDims): { Ho: number; Wo: number } {
  return {
    Ho: Math.floor((d.H + 2 * d.padding - d.KH) / d.stride) + 1,
    Wo: Math.floor((d.W + 2 * d.padding - d.KW) / d.stride) + 1,
  };
}

/** y[n, co, oy, ox] = (act(sum_{ci,ky,kx} w[co, ci, ky, kx] x[n, ci, oy*s - p + ky,
 *  ox*s - p + kx] + bias[co]) + residual[n, co, oy, ox]) / outputScale, with x = 0
 *  outside the image. Returns [N, Cout, Ho, Wo]. */
export function conv2dRef(
  x: ArrayLike<number>, w: ArrayLike<number>, d: ConvDims,
  o: { bias?: ArrayLike<number>; activation?: string; residual?: ArrayLike<number>; outputScale?: number } = {},
): Float64Array {
  const { Ho, Wo } = convOut(d);
  const f = ACT_REF[o.activation ?? 'none'].f;
  const y = new Float64Array(d.N * d.Cout * Ho * Wo);
  for (let n = 0; n < d.N; n++) {
    for (let co = 0; co < d.Cout; co++) {
      for (let oy = 0; oy < Ho; oy++) {
        for (let ox = 0; ox < Wo; ox++) {
          let s = 0;
          for (let ci = 0; ci < d.Cin; ci++) {
            for (let ky = 0; ky < d.KH; ky++) {
              const iy = oy * d.stride - d.padding + ky;
              if (iy < 0 || iy >= d.H) continue;
              for (let kx = 0; kx < d.KW; kx++) {
                const ix = ox * d.stride - d.padding + kx;
                if (ix < 0 || ix >= d.W) continue;
                s += w[((co * d.Cin + ci) * d.KH + ky) * d.KW + kx] * x[((n * d.Cin + ci) * d.H + iy) * d.W + ix];
              }
            }
          }
          const i = ((n * d.Cout + co) * Ho + oy) * Wo + ox;
          let v = f(s + (o.bias ? o.bias[co] : 0));
          if (o.residual) v += o.residual[i];
          y[i] = v / (o.outputScale ?? 1);
        }
      }
    }
  }
  return y;
}

/** Gradients of L = sum(dy * conv2d(x, w) + bias) (no activation):
 *  dx[n, ci, iy, ix] = sum over (co, ky, kx, oy, ox) with iy = oy*s - p + ky,
 *  ix = ox*s - p + kx of w[co, ci, ky, kx] dy[n, co, oy, ox];
 *  dweight[co, ci, ky, kx] = sum_{n, oy, ox} dy[n, co, oy, ox] x[n, ci, iy, ix];
 *  dbias[co] = sum_{n, oy, ox} dy[n, co, oy, ox]. */
export function conv2dBackwardRef(x: ArrayLike<number>, w: ArrayLike<number>, dy: ArrayLike<number>, d: ConvDims) {
  const { Ho, Wo } = convOut(d);
  const dx = new Float64Array(d.N * d.Cin * d.H * d.W);
  const dweight = new Float64Array(d.Cout * d.Cin * d.KH * d.KW);
  const dbias = new Float64Array(d.Cout);
  for (let n = 0; n < d.N; n++) {
    for (let co = 0; co < d.Cout; co++) {
      for (let oy = 0; oy < Ho; oy++) {
        for (let ox = 0; ox < Wo; ox++) {
          const g = dy[((n * d.Cout + co) * Ho + oy) * Wo + ox];
          dbias[co] += g;
          for (let ci = 0; ci < d.Cin; ci++) {
            for (let ky = 0; ky < d.KH; ky++) {
              const iy = oy * d.stride - d.padding + ky;
              if (iy < 0 || iy >= d.H) continue;
              for (let kx = 0; kx < d.KW; kx++) {
                const ix = ox * d.stride - d.padding + kx;
                if (ix < 0 || ix >= d.W) continue;
                const xi = ((n * d.Cin + ci) * d.H + iy) * d.W + ix;
                const wi = ((co * d.Cin + ci) * d.KH + ky) * d.KW + kx;
                dx[xi] += w[wi] * g;
                dweight[wi] += x[xi] * g;
              }
            }
          }
        }
      }
    }
  }
  return { dx, dweight, dbias };
}
