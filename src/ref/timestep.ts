// Float64 reference for diffusers get_timestep_embedding, written from its definition.
// With `torchF32` every intermediate is rounded to f32 in torch's order (the f32 scalar
// operands, exponent, exp, product, scale) and only sin/cos are exact, which is what
// torch's f32 computation approximates to an ulp.

export interface TimestepRefOptions {
  flipSinToCos?: boolean;
  freqShift?: number;
  scale?: number;
  maxPeriod?: number;
}

/** timesteps [B] -> emb [B, dim]; also returns the arguments [B, half] for error bounds. */
export function timestepEmbeddingRef(
  timesteps: ArrayLike<number>, dim: number, opts: TimestepRefOptions = {}, torchF32 = false,
): { emb: Float64Array; args: Float64Array } {
  const { flipSinToCos = false, freqShift = 1, scale = 1, maxPeriod = 10000 } = opts;
  const r = torchF32 ? Math.fround : (v: number) => v;
  const b = timesteps.length;
  const half = Math.floor(dim / 2);
  const emb = new Float64Array(b * dim);
  const args = new Float64Array(b * half);
  for (let i = 0; i < b; i++) {
    for (let k = 0; k < half; k++) {
      const exponent = r(r(r(-Math.log(maxPeriod)) * k) / r(half - freqShift));
      const arg = r(r(scale) * r(timesteps[i] * r(Math.exp(exponent))));
      args[i * half + k] = arg;
      const [first, second] = flipSinToCos ? [Math.cos(arg), Math.sin(arg)] : [Math.sin(arg), Math.cos(arg)];
      emb[i * dim + k] = first;
      emb[i * dim + half + k] = second;
    }
  }
  return { emb, args };
}
