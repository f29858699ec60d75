// Float64 reference for batch normalisation (PyTorch BatchNorm2d semantics).

export interface BatchNormRefOpts {
  training: boolean;
  runningMean: ArrayLike<number>;
  runningVar: ArrayLike<number>;
  momentum: number;
  eps: number;
  weight?: ArrayLike<number>;
  bias?: ArrayLike<number>;
}

/** x [N, C, S]. Returns y, the mean/rstd used, and the updated running stats. */
export function batchNormRef(x: ArrayLike<number>, N: number, C: number, S: number, o: BatchNormRefOpts) {
  const y = new Float64Array(N * C * S);
  const mean = new Float64Array(C);
  const rstd = new Float64Array(C);
  const runningMean = Float64Array.from(o.runningMean);
  const runningVar = Float64Array.from(o.runningVar);
  const at = (n: number, c: number, s: number) => (n * C + c) * S + s;
  for (let c = 0; c < C; c++) {
    let m: number;
    let v: number;
    if (o.training) {
      const cnt = N * S;
      m = 0;
      for (let n = 0; n < N; n++) for (let s = 0; s < S; s++) m += x[at(n, c, s)];
      m /= cnt;
      v = 0;
      for (let n = 0; n < N; n++) for (let s = 0; s < S; s++) v += (x[at(n, c, s)] - m) ** 2;
      v /= cnt;
      runningMean[c] = (1 - o.momentum) * runningMean[c] + o.momentum * m;
      runningVar[c] = (1 - o.momentum) * runningVar[c] + (o.momentum * v * cnt) / (cnt - 1);
    } else {
      m = o.runningMean[c];
      v = o.runningVar[c];
    }
    mean[c] = m;
    rstd[c] = 1 / Math.sqrt(v + o.eps);
    const w = o.weight ? o.weight[c] : 1;
    const b = o.bias ? o.bias[c] : 0;
    for (let n = 0; n < N; n++) for (let s = 0; s < S; s++) y[at(n, c, s)] = (x[at(n, c, s)] - m) * rstd[c] * w + b;
  }
  return { y, mean, rstd, runningMean, runningVar };
}

/** Gradients of sum(dy * y). Training differentiates through the batch mean and variance. */
export function batchNormBackwardRef(
  x: ArrayLike<number>, dy: ArrayLike<number>, N: number, C: number, S: number, o: BatchNormRefOpts,
): { dx: Float64Array; dweight: Float64Array; dbias: Float64Array } {
  const { mean, rstd } = batchNormRef(x, N, C, S, o);
  const dx = new Float64Array(N * C * S);
  const dweight = new Float64Array(C);
  const dbias = new Float64Array(C);
  const at = (n: number, c: number, s: number) => (n * C + c) * S + s;
  for (let c = 0; c < C; c++) {
    const w = o.weight ? o.weight[c] : 1;
    for (let n = 0; n < N; n++) {
      for (let s = 0; s < S; s++) {
        dbias[c] += dy[at(n, c, s)];
        dweight[c] += dy[at(n, c, s)] * (x[at(n, c, s)] - mean[c]) * rstd[c];
      }
    }
    const cnt = N * S;
    for (let n = 0; n < N; n++) {
      for (let s = 0; s < S; s++) {
        const i = at(n, c, s);
        const xhat = (x[i] - mean[c]) * rstd[c];
        dx[i] = o.training
          ? w * rstd[c] * (dy[i] - dbias[c] / cnt - (xhat * dweight[c]) / cnt)
          : w * rstd[c] * dy[i];
      }
    }
  }
  return { dx, dweight, dbias };
}
