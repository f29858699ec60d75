// Element-type conversion of float tensors, f32 <-> f16: where a model that runs in f16
// takes or returns f32 data (latents, timestep embeddings, images, text states) and where
// a computation needs f32 scores (the unfused attention paths). Inference only: nothing
// trains through a cast. Kernels: shaders/cast.wgsl.
import { ShapeError } from '../gpu/errors.js';
import { BYTES, Tensor } from '../tensor/tensor.js';
import { bindingRuns, runBinding } from './layout.js';

const WG = 256;

export type FloatDtype = 'f32' | 'f16';

/** x converted to `dtype`. When x already has it, a new view of the same storage (the
 *  caller may dispose it independently of x, as any op result). */
export function cast(x: Tensor, dtype: FloatDtype): Tensor {
  if ((x.dtype !== 'f32' && x.dtype !== 'f16') || (dtype !== 'f32' && dtype !== 'f16')) {
    throw new ShapeError(`cast: converts float tensors between f32 and f16, got ${x.toString()} to ${String(dtype)}`);
  }
  if (x.dtype === dtype) return x.reshape(x.shape);
  const y = Tensor.empty(x.rt, x.shape, dtype, `cast_${dtype}`);
  if (y.size === 0) return y;
  const narrow = dtype === 'f16';
  // Four elements per thread when the count allows (whole vec4s on both sides).
  const per = x.size % 4 === 0 ? 4 : 1;
  const units = x.size / per;
  const entry = `cast_${narrow ? 'narrow' : 'widen'}${per === 4 ? '_vec4' : ''}`;
  for (const run of bindingRuns(x.rt, units, [per * BYTES[x.dtype], per * BYTES[dtype]], 'cast')) {
    x.rt.dispatch(
      { family: 'cast', entry, dtype: 'f16', overrides: { WG } },
      {
        params: [run.count],
        bindings: [runBinding(x, run, per), runBinding(y, run, per)],
        workgroups: Math.ceil(run.count / WG),
        label: `${entry}[n=${x.size}]`,
      },
    );
  }
  return y;
}
