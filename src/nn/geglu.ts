// GEGLU gate of diffusers' FeedForward (SD 1.x transformer blocks): the projection
// output [..., 2n] is split into hidden (first half) and gate (second half), and
// y = hidden * gelu(gate) (exact erf GELU) in one pass instead of two slices and a
// product. Inference only (the UNet is not trained here). Kernel: shaders/geglu.wgsl.
import { ShapeError } from '../gpu/errors.js';
import { Tensor } from '../tensor/tensor.js';
import { ACT } from './elementwise.js';

const WG = 256;

/** x [..., 2n] -> [..., n]: x[..., :n] * gelu(x[..., n:]). */
export function geglu(x: Tensor): Tensor {
  if (x.dtype !== 'f32' && x.dtype !== 'f16') throw new ShapeError(`geglu: needs a float tensor, got ${x.toString()}`);
  const last = x.shape[x.shape.length - 1] ?? 0;
  if (x.shape.length === 0 || last % 2 !== 0) {
    throw new ShapeError(`geglu: the last dim of ${x.toString()} must be even (hidden and gate halves of the projection)`);
  }
  const n = last / 2;
  const y = Tensor.empty(x.rt, [...x.shape.slice(0, -1), n], x.dtype, 'geglu');
  const vec = n % 4 === 0 ? 4 : 1;
  const total = y.size / vec;
  if (total === 0) return y;
  x.rt.dispatch(
    { family: 'geglu', entry: vec === 4 ? 'geglu_forward_vec4' : 'geglu_forward', dtype: x.dtype, overrides: { WG, ACT: ACT.gelu } },
    { params: [total, n / vec], bindings: [x.binding, y.binding], workgroups: Math.ceil(total / WG), label: `geglu_forward[${y.size / n}x${n}]` },
  );
  return y;
}
