// Float64 references for multi-head attention, written from the definitions:
//   s[h, i, j] = scale * sum_d q[i, h*D + d] k[j, h*D + d]   (masked to -inf for j > i if causal)
//   p = softmax_j(s), out[i, h*D + d] = sum_j p[h, i, j] v[j, h*D + d]
//   lse[h, i] = log sum_j exp(s[h, i, j])
// and the backward of loss = sum(dout * out) by the chain rule through p:
//   dv = p^T dout, dp = dout v^T, ds = p * (dp - rowsum(dp * p)), dq = scale ds k,
//   dk = scale ds^T q.
// Shapes: q, out, dout [B, Lq, H*D]; k, v [B, Lk, H*D]; lse [B, H, Lq]; probsMean [B, Lq, Lk].

export interface AttentionDims {
  B: number;
  Lq: number;
  Lk: number;
  H: number;
  D: number;
  scale?: number;
  causal?: boolean;
}

const scaleOf = (d: AttentionDims) => d.scale ?? 1 / Math.sqrt(d.D);

/** p[b, h, i, j] as a [B, H, Lq, Lk] array (the materialised probabilities). */
export function attentionProbsRef(q: ArrayLike<number>, k: ArrayLike<number>, d: AttentionDims): { p: Float64Array; lse: Float64Array } {
  const { B, Lq, Lk, H, D } = d;
  const C = H * D;
  const scale = scaleOf(d);
  const p = new Float64Array(B * H * Lq * Lk);
  const lse = new Float64Array(B * H * Lq);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      for (let i = 0; i < Lq; i++) {
        const row = ((b * H + h) * Lq + i) * Lk;
        let m = -Infinity;
        for (let j = 0; j < Lk; j++) {
          let s = -Infinity;
          if (!(d.causal && j > i)) {
            s = 0;
            for (let e = 0; e < D; e++) s += q[(b * Lq + i) * C + h * D + e] * k[(b * Lk + j) * C + h * D + e];
            s *= scale;
          }
          p[row + j] = s;
          m = Math.max(m, s);
        }
        let sum = 0;
        for (let j = 0; j < Lk; j++) sum += Math.exp(p[row + j] - m);
        for (let j = 0; j < Lk; j++) p[row + j] = Math.exp(p[row + j] - m) / sum;
        lse[(b * H + h) * Lq + i] = m + Math.log(sum);
      }
    }
  }
  return { p, lse };
}

/** out [B, Lq, H*D], lse [B, H, Lq], probsMean [B, Lq, Lk] (mean of p over heads). */
export function attentionRef(
  q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>, d: AttentionDims,
): { out: Float64Array; lse: Float64Array; probsMean: Float64Array } {
  const { B, Lq, Lk, H, D } = d;
  const C = H * D;
  const { p, lse } = attentionProbsRef(q, k, d);
  const out = new Float64Array(B * Lq * C);
  const probsMean = new Float64Array(B * Lq * Lk);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      for (let i = 0; i < Lq; i++) {
        const row = ((b * H + h) * Lq + i) * Lk;
        for (let j = 0; j < Lk; j++) {
          const pj = p[row + j];
          probsMean[(b * Lq + i) * Lk + j] += pj / H;
          for (let e = 0; e < D; e++) out[(b * Lq + i) * C + h * D + e] += pj * v[(b * Lk + j) * C + h * D + e];
        }
      }
    }
  }
  return { out, lse, probsMean };
}

/** Gradients of sum(dout * attention(q, k, v)): dq [B, Lq, H*D], dk and dv [B, Lk, H*D]. */
export function attentionBackwardRef(
  q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>, dout: ArrayLike<number>, d: AttentionDims,
): { dq: Float64Array; dk: Float64Array; dv: Float64Array } {
  const { B, Lq, Lk, H, D } = d;
  const C = H * D;
  const scale = scaleOf(d);
  const { p } = attentionProbsRef(q, k, d);
  const dq = new Float64Array(B * Lq * C);
  const dk = new Float64Array(B * Lk * C);
  const dv = new Float64Array(B * Lk * C);
  const dp = new Float64Array(Lk);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      for (let i = 0; i < Lq; i++) {
        const row = ((b * H + h) * Lq + i) * Lk;
        const qi = (b * Lq + i) * C + h * D;
        let dot = 0;
        for (let j = 0; j < Lk; j++) {
          const kj = (b * Lk + j) * C + h * D;
          let s = 0;
          for (let e = 0; e < D; e++) {
            s += dout[qi + e] * v[kj + e];
            dv[kj + e] += p[row + j] * dout[qi + e];
          }
          dp[j] = s;
          dot += s * p[row + j];
        }
        for (let j = 0; j < Lk; j++) {
          const ds = p[row + j] * (dp[j] - dot);
          const kj = (b * Lk + j) * C + h * D;
          for (let e = 0; e < D; e++) {
            dq[qi + e] += scale * ds * k[kj + e];
            dk[kj + e] += scale * ds * q[qi + e];
          }
        }
      }
    }
  }
  return { dq, dk, dv };
}
