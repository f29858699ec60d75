// Float64 reference for layer normalisation over the last axis and its backward.

/** x [rows, D]; weight, bias [D]. Returns y [rows, D], mean and rstd [rows]. */
export function layerNormRef(
  x: ArrayLike<number>, rows: number, D: number, weight: ArrayLike<number>, bias: ArrayLike<number>, eps: number,
): { y: Float64Array; mean: Float64Array; rstd: Float64Array } {
  const y = new Float64Array(rows * D);
  const mean = new Float64Array(rows);
  const rstd = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let m = 0;
    for (let i = 0; i < D; i++) m += x[r * D + i];
    m /= D;
    let v = 0;
    for (let i = 0; i < D; i++) v += (x[r * D + i] - m) ** 2;
    const s = 1 / Math.sqrt(v / D + eps);
    for (let i = 0; i < D; i++) y[r * D + i] = (x[r * D + i] - m) * s * weight[i] + bias[i];
    mean[r] = m;
    rstd[r] = s;
  }
  return { y, mean, rstd };
}

/** Gradients of sum(dy * layerNorm(x)) with respect to x [rows, D], weight and bias [D]. */
export function layerNormBackwardRef(
  x: ArrayLike<number>, rows: number, D: number, weight: ArrayLike<number>, dy: ArrayLike<number>, eps: number,
): { dx: Float64Array; dweight: Float64Array; dbias: Float64Array } {
  const { mean, rstd } = layerNormRef(x, rows, D, weight, new Float64Array(D), eps);
  const dx = new Float64Array(rows * D);
  const dweight = new Float64Array(D);
  const dbias = new Float64Array(D);
  for (let r = 0; r < rows; r++) {
    const xhat = (i: number) => (x[r * D + i] - mean[r]) * rstd[r];
    // d/dx of (x - m) * s: the direct term, the mean term, and the rstd term.
    let gm = 0;
    let gxm = 0;
    for (let i = 0; i < D; i++) {
      const g = dy[r * D + i] * weight[i];
      gm += g;
      gxm += g * xhat(i);
      dweight[i] += dy[r * D + i] * xhat(i);
      dbias[i] += dy[r * D + i];
    }
    gm /= D;
    gxm /= D;
    for (let i = 0; i < D; i++) dx[r * D + i] = rstd[r] * (dy[r * D + i] * weight[i] - gm - xhat(i) * gxm);
  }
  return { dx, dweight, dbias };
}
