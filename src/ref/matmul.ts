// Float64 references for matmul and the linear layer, written from the definitions.
import { ACT_REF } from './elementwise.js';

export interface MatmulRefOptions {
  transA?: boolean;
  transB?: boolean;
  /** false: a is one matrix shared by the batch. */
  aBatched?: boolean;
  bBatched?: boolean;
  bias?: ArrayLike<number>;
  activation?: string;
  alpha?: number;
  residual?: ArrayLike<number>;
  /** Initial output contents to add into (accumulate). */
  accumulate?: ArrayLike<number>;
}

/** c[z, m, n] = act(alpha * sum_k A[z, m, k] B[z, k, n] + bias[n]) + residual[z, m, n] (+ c0),
 *  where A = a[z] ([M, K], or a[z]^T of [K, M] with transA) and B = b[z] ([K, N], or
 *  b[z]^T of [N, K] with transB). Returns [batch, M, N]. */
export function matmulRef(
  a: ArrayLike<number>, b: ArrayLike<number>, batch: number, M: number, N: number, K: number, o: MatmulRefOptions = {},
): Float64Array {
  const f = ACT_REF[o.activation ?? 'none'].f;
  const alpha = o.alpha ?? 1;
  const c = new Float64Array(batch * M * N);
  for (let z = 0; z < batch; z++) {
    const aOff = o.aBatched === false ? 0 : z * M * K;
    const bOff = o.bBatched === false ? 0 : z * K * N;
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let k = 0; k < K; k++) {
          const av = a[aOff + (o.transA ? k * M + m : m * K + k)];
          const bv = b[bOff + (o.transB ? n * K + k : k * N + n)];
          s += av * bv;
        }
        const i = (z * M + m) * N + n;
        let v = f(alpha * s + (o.bias ? o.bias[n] : 0));
        if (o.residual) v += o.residual[i];
        if (o.accumulate) v += o.accumulate[i];
        c[i] = v;
      }
    }
  }
  return c;
}

/** y [R, out] = x [R, in] W^T + bias, with W [out, in]. */
export function linearRef(x: ArrayLike<number>, w: ArrayLike<number>, bias: ArrayLike<number> | null, R: number, inF: number, outF: number): Float64Array {
  const y = new Float64Array(R * outF);
  for (let r = 0; r < R; r++) {
    for (let o = 0; o < outF; o++) {
      let s = bias ? bias[o] : 0;
      for (let i = 0; i < inF; i++) s += x[r * inF + i] * w[o * inF + i];
      y[r * outF + o] = s;
    }
  }
  return y;
}

/** Gradients of L with dL/dy = dy for y = x W^T + bias:
 *  dx [R, in] = dy W; dweight [out, in] = dy^T x; dbias [out] = sum_r dy[r]. */
export function linearBackwardRef(
  x: ArrayLike<number>, w: ArrayLike<number>, dy: ArrayLike<number>, R: number, inF: number, outF: number,
): { dx: Float64Array; dweight: Float64Array; dbias: Float64Array } {
  const dx = new Float64Array(R * inF);
  const dweight = new Float64Array(outF * inF);
  const dbias = new Float64Array(outF);
  for (let r = 0; r < R; r++) {
    for (let o = 0; o < outF; o++) {
      const g = dy[r * outF + o];
      dbias[o] += g;
      for (let i = 0; i < inF; i++) {
        dx[r * inF + i] += g * w[o * inF + i];
        dweight[o * inF + i] += g * x[r * inF + i];
      }
    }
  }
  return { dx, dweight, dbias };
}
