// Float64 references for elementwise ops, written from the definitions.

export function erf(x: number): number {
  // Series for small |x|, continued fraction (Lentz) for large: ~1e-15 accuracy.
  const ax = Math.abs(x);
  let r: number;
  if (ax < 2.5) {
    let term = ax;
    let sum = ax;
    for (let n = 1; n < 200; n++) {
      term *= (-ax * ax) / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    r = (2 / Math.sqrt(Math.PI)) * sum;
  } else {
    // erfc(x) = exp(-x^2)/sqrt(pi) * 1/(x + 1/2/(x + 1/(x + 3/2/(x + ...))))
    let f = 0;
    for (let k = 60; k >= 1; k--) f = (k / 2) / (ax + f);
    r = 1 - Math.exp(-ax * ax) / Math.sqrt(Math.PI) / (ax + f);
  }
  return x < 0 ? -r : r;
}

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

export const ACT_REF: Record<string, { f: (x: number) => number; df: (x: number) => number }> = {
  none: { f: (x) => x, df: () => 1 },
  silu: { f: (x) => x * sigmoid(x), df: (x) => sigmoid(x) * (1 + x * (1 - sigmoid(x))) },
  gelu: {
    f: (x) => 0.5 * x * (1 + erf(x / Math.SQRT2)),
    df: (x) => 0.5 * (1 + erf(x / Math.SQRT2)) + (x * Math.exp(-0.5 * x * x)) / Math.sqrt(2 * Math.PI),
  },
  gelu_tanh: {
    f: (x) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3))),
    df: (x) => {
      const k = Math.sqrt(2 / Math.PI);
      const t = Math.tanh(k * (x + 0.044715 * x ** 3));
      return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * k * (1 + 3 * 0.044715 * x * x);
    },
  },
  quick_gelu: { f: (x) => x * sigmoid(1.702 * x), df: (x) => sigmoid(1.702 * x) * (1 + 1.702 * x * (1 - sigmoid(1.702 * x))) },
  relu: { f: (x) => Math.max(x, 0), df: (x) => (x > 0 ? 1 : 0) },
  sigmoid: { f: sigmoid, df: (x) => sigmoid(x) * (1 - sigmoid(x)) },
  exp: { f: Math.exp, df: Math.exp },
};

/** y[i] = act(alpha * x[i] + beta) */
export function unaryRef(x: ArrayLike<number>, act: string, alpha = 1, beta = 0): Float64Array {
  const f = ACT_REF[act].f;
  return Float64Array.from(x, (v) => f(alpha * v + beta));
}

/** Broadcast binary op over NumPy-aligned shapes. */
export function binaryRef(
  a: ArrayLike<number>, aShape: number[], b: ArrayLike<number>, bShape: number[],
  op: (x: number, y: number) => number,
): { out: Float64Array; shape: number[] } {
  const rank = Math.max(aShape.length, bShape.length);
  const pa = [...new Array(rank - aShape.length).fill(1), ...aShape];
  const pb = [...new Array(rank - bShape.length).fill(1), ...bShape];
  const shape = pa.map((d, i) => Math.max(d, pb[i]));
  const n = shape.reduce((x, y) => x * y, 1);
  const out = new Float64Array(n);
  const idx = new Array(rank).fill(0);
  for (let i = 0; i < n; i++) {
    let rem = i;
    for (let d = rank - 1; d >= 0; d--) {
      idx[d] = rem % shape[d];
      rem = Math.floor(rem / shape[d]);
    }
    let ia = 0;
    let ib = 0;
    for (let d = 0; d < rank; d++) {
      ia = ia * pa[d] + (pa[d] === 1 ? 0 : idx[d]);
      ib = ib * pb[d] + (pb[d] === 1 ? 0 : idx[d]);
    }
    out[i] = op(a[ia], b[ib]);
  }
  return { out, shape };
}
