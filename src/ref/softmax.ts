// Float64 references for softmax over the last axis and its backward, from the
// definitions: y = exp(s*x - max) / sum exp(s*x - max); dx = s * y * (dy - <dy, y>).

/** x [rows, n] -> y [rows, n] */
export function softmaxRef(x: ArrayLike<number>, rows: number, n: number, scale = 1): Float64Array {
  const y = new Float64Array(rows * n);
  for (let r = 0; r < rows; r++) {
    let m = -Infinity;
    for (let i = 0; i < n; i++) m = Math.max(m, scale * x[r * n + i]);
    let s = 0;
    for (let i = 0; i < n; i++) {
      const e = Math.exp(scale * x[r * n + i] - m);
      y[r * n + i] = e;
      s += e;
    }
    for (let i = 0; i < n; i++) y[r * n + i] /= s;
  }
  return y;
}

/** y, dy [rows, n] -> dx [rows, n] */
export function softmaxBackwardRef(y: ArrayLike<number>, dy: ArrayLike<number>, rows: number, n: number, scale = 1): Float64Array {
  const dx = new Float64Array(rows * n);
  for (let r = 0; r < rows; r++) {
    let dot = 0;
    for (let i = 0; i < n; i++) dot += dy[r * n + i] * y[r * n + i];
    for (let i = 0; i < n; i++) dx[r * n + i] = scale * y[r * n + i] * (dy[r * n + i] - dot);
  }
  return dx;
}
