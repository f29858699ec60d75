// The element type a model runs in. Weights decide it: loadWeights / initRandomWeights
// store every parameter of a model in one dtype, and each forward converts its inputs to
// that dtype and its outputs back to f32 (nn/cast.ts), so schedulers, latents, images and
// everything between models stay f32. Inside an f16 model the kernels keep f16 storage
// with f32 arithmetic: matmul and convolution accumulate in f32, norm statistics and
// softmax are f32, and the attention paths that materialise scores run in f32.
import { InputError, LimitError } from '../gpu/errors.js';
import type { Runtime } from '../gpu/runtime.js';
import type { Param } from '../nn/module.js';

export type ModelDtype = 'f32' | 'f16';

export const MODEL_DTYPES: readonly ModelDtype[] = ['f32', 'f16'];

/** Refuses a dtype the runtime cannot run: anything but f32/f16, and f16 on an adapter
 *  without shader-f16. `what` names the caller or option in the message. */
export function checkModelDtype(rt: Runtime, dtype: unknown, what: string): asserts dtype is ModelDtype {
  if (dtype !== 'f32' && dtype !== 'f16') throw new InputError(`${what}: dtype must be 'f32' or 'f16', got ${JSON.stringify(dtype)}`);
  if (dtype === 'f16' && !rt.gpu.hasF16) {
    throw new LimitError(
      `${what}: dtype 'f16' needs the adapter's shader-f16 feature, which ${rt.adapterName} does not offer; run in f32 ` +
        `(--dtype f32). On NVIDIA under Vulkan, Dawn exposes shader-f16 only with the vulkan_enable_f16_on_nvidia toggle, which grounded-sd sets.`,
    );
  }
}

/** The dtype of a loaded parameter, as the model's dtype (f32 for anything else). */
export function paramDtype(p: Param): ModelDtype {
  return p.t.dtype === 'f16' ? 'f16' : 'f32';
}
