// Float64 reference for group normalisation, written from the definition.
import { ACT_REF } from './elementwise.js';

/** x [N, C, S] (S = product of spatial dims); weight, bias [C]. Mean and biased variance
 *  over each (n, g) block of C / groups channels, two-pass. Returns y [N, C, S]. */
export function groupNormRef(
  x: ArrayLike<number>, N: number, C: number, S: number, groups: number,
  weight: ArrayLike<number>, bias: ArrayLike<number>, eps: number, activation: 'none' | 'silu' = 'none',
): Float64Array {
  const f = ACT_REF[activation].f;
  const cg = C / groups;
  const M = cg * S;
  const y = new Float64Array(N * C * S);
  for (let r = 0; r < N * groups; r++) {
    const base = r * M;
    let mean = 0;
    for (let i = 0; i < M; i++) mean += x[base + i];
    mean /= M;
    let v = 0;
    for (let i = 0; i < M; i++) v += (x[base + i] - mean) ** 2;
    const rstd = 1 / Math.sqrt(v / M + eps);
    for (let i = 0; i < M; i++) {
      const c = (r % groups) * cg + Math.floor(i / S);
      y[base + i] = f((x[base + i] - mean) * rstd * weight[c] + bias[c]);
    }
  }
  return y;
}
