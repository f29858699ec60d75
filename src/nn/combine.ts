// Linear combination out = sum_i coef_i * x_i + constant over 1..4 same-shape f32
// tensors in one pass (the schedulers' update rules), optionally clamped (DDIM's
// clip_sample). Inference only: its gradient is the coefficients times dout.
// Kernel: shaders/combine.wgsl.
import { InputError, ShapeError } from '../gpu/errors.js';
import { f32 } from '../gpu/params.js';
import { Tensor } from '../tensor/tensor.js';

const WG = 256;
const MAX_TERMS = 4;

const sameShape = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((d, i) => d === b[i]);

/** out = clamp(sum_i coef_i * x_i + constant, clampRange) with 1..4 terms of one shape. */
export function linearCombination(terms: Array<[number, Tensor]>, constant = 0, clampRange?: [number, number]): Tensor {
  if (terms.length < 1 || terms.length > MAX_TERMS) {
    throw new InputError(`linearCombination: takes 1..${MAX_TERMS} terms, got ${terms.length}; combine in two passes`);
  }
  const x0 = terms[0][1];
  for (const [c, t] of terms) {
    if (t.dtype !== 'f32') throw new ShapeError(`linearCombination: needs f32 tensors, got ${t.toString()}`);
    if (!sameShape(t.shape, x0.shape)) {
      throw new ShapeError(`linearCombination: every term must have shape [${x0.shape.join(',')}], found [${t.shape.join(',')}]`);
    }
    if (!Number.isFinite(c)) throw new InputError(`linearCombination: coefficient ${c} is not finite`);
  }
  const out = Tensor.empty(x0.rt, x0.shape, 'f32', 'linear_combination');
  if (out.size === 0) return out;
  const vec4 = out.size % 4 === 0;
  const n = vec4 ? out.size / 4 : out.size;
  const coef = [0, 0, 0, 0];
  terms.forEach(([c], i) => (coef[i] = c));
  const [lo, hi] = clampRange ?? [0, 0];
  const bindings = [0, 1, 2, 3].map((i) => (terms[i] ?? terms[0])[1].binding);
  x0.rt.dispatch(
    { family: 'combine', entry: vec4 ? 'combine_forward_vec4' : 'combine_forward', overrides: { N: terms.length, CLAMP: clampRange ? 1 : 0, WG } },
    {
      params: [n, f32(constant), f32(lo), f32(hi), ...coef.map(f32)],
      bindings: [...bindings, out.binding],
      workgroups: Math.ceil(n / WG),
    },
  );
  return out;
}
