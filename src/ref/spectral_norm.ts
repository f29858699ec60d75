// Float64 references for BigGAN spectral normalisation (one or more power iterations
// from u0, normalize(z) = z / max(||z||, eps)) and the gradient through sigma.

export interface SnRef { weight: Float64Array; sigma: number; u: Float64Array; v: Float64Array }

const normalize = (z: Float64Array, eps: number) => {
  const n = Math.max(Math.sqrt(z.reduce((s, x) => s + x * x, 0)), eps);
  return z.map((x) => x / n);
};

/** W [O, K] row-major, u0 [O]. */
export function spectralNormRef(w: ArrayLike<number>, O: number, u0: ArrayLike<number>, eps: number, iterations = 1): SnRef {
  const K = w.length / O;
  let u = Float64Array.from(u0);
  let v = new Float64Array(K);
  let t = new Float64Array(O);
  for (let it = 0; it < iterations; it++) {
    v = new Float64Array(K);
    for (let i = 0; i < O; i++) for (let j = 0; j < K; j++) v[j] += u[i] * w[i * K + j];
    v = normalize(v, eps);
    t = new Float64Array(O);
    for (let i = 0; i < O; i++) for (let j = 0; j < K; j++) t[i] += v[j] * w[i * K + j];
    u = normalize(t, eps);
  }
  const sigma = t.reduce((s, x, i) => s + x * u[i], 0);
  return { weight: Float64Array.from(w, (x) => x / sigma), sigma, u, v };
}

/** dW = G / sigma - sum(G * W) / sigma^2 * u v^T (u, v held constant). */
export function spectralNormBackwardRef(w: ArrayLike<number>, sn: SnRef, g: ArrayLike<number>): Float64Array {
  const O = sn.u.length;
  const K = sn.v.length;
  let s = 0;
  for (let i = 0; i < w.length; i++) s += g[i] * w[i];
  const out = new Float64Array(O * K);
  for (let i = 0; i < O; i++) for (let j = 0; j < K; j++) out[i * K + j] = g[i * K + j] / sn.sigma - (s / (sn.sigma * sn.sigma)) * sn.u[i] * sn.v[j];
  return out;
}
