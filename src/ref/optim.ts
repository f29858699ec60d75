// Float64 reference of torch.optim.Adam / AdamW (single-tensor path), several steps.

export interface AdamRefOptions { lr: number; beta1: number; beta2: number; eps: number; weightDecay: number; decoupled: boolean }

/** Applies the given gradients in order; returns the parameters and moments after each step. */
export function adamRef(p0: ArrayLike<number>, grads: ArrayLike<number>[], o: AdamRefOptions): { param: Float64Array; m: Float64Array; v: Float64Array }[] {
  const p = Float64Array.from(p0);
  const m = new Float64Array(p.length);
  const v = new Float64Array(p.length);
  const out: { param: Float64Array; m: Float64Array; v: Float64Array }[] = [];
  grads.forEach((g0, k) => {
    const t = k + 1;
    const stepSize = o.lr / (1 - o.beta1 ** t);
    const bc2 = Math.sqrt(1 - o.beta2 ** t);
    for (let i = 0; i < p.length; i++) {
      let g = g0[i];
      if (o.decoupled) p[i] *= 1 - o.lr * o.weightDecay;
      else g += o.weightDecay * p[i];
      m[i] = o.beta1 * m[i] + (1 - o.beta1) * g;
      v[i] = o.beta2 * v[i] + (1 - o.beta2) * g * g;
      p[i] -= (stepSize * m[i]) / (Math.sqrt(v[i]) / bc2 + o.eps);
    }
    out.push({ param: Float64Array.from(p), m: Float64Array.from(m), v: Float64Array.from(v) });
  });
  return out;
}
