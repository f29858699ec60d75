// Sinusoidal timestep embedding (diffusers get_timestep_embedding), computed in f32 in
// torch's order. Defaults are that function's (flip_sin_to_cos=False,
// downscale_freq_shift=1, scale=1, max_period=10000); SD 1.x's UNet uses
// { flipSinToCos: true, freqShift: 0 }. Inference only: timesteps are not trained.
// Kernel: shaders/timestep.wgsl.
import { InputError, ShapeError } from '../gpu/errors.js';
import { f32 } from '../gpu/params.js';
import { Tensor } from '../tensor/tensor.js';

const WG = 64;

export interface TimestepOptions {
  /** Put cos before sin (diffusers flip_sin_to_cos). */
  flipSinToCos?: boolean;
  /** diffusers downscale_freq_shift. */
  freqShift?: number;
  /** Multiplies the arguments. */
  scale?: number;
  maxPeriod?: number;
}

/** timesteps [B] f32 -> [B, dim] f32. */
export function timestepEmbedding(timesteps: Tensor, dim: number, opts: TimestepOptions = {}): Tensor {
  const { flipSinToCos = false, freqShift = 1, scale = 1, maxPeriod = 10000 } = opts;
  if (timesteps.shape.length !== 1 || timesteps.dtype !== 'f32') {
    throw new ShapeError(`timestepEmbedding: timesteps must be f32 [B], got ${timesteps.toString()}`);
  }
  if (!Number.isInteger(dim) || dim < 1) throw new InputError(`timestepEmbedding: dim ${dim} must be a positive integer`);
  if (!(maxPeriod > 0) || !Number.isFinite(scale) || !Number.isFinite(freqShift)) {
    throw new InputError(`timestepEmbedding: needs maxPeriod > 0 and finite scale and freqShift (got ${maxPeriod}, ${scale}, ${freqShift})`);
  }
  const half = Math.floor(dim / 2);
  const out = Tensor.empty(timesteps.rt, [timesteps.shape[0], dim], 'f32', 'timestep_embedding');
  if (out.size === 0) return out;
  timesteps.rt.dispatch(
    { family: 'timestep', entry: 'timestep_forward', overrides: { WG } },
    {
      params: [out.size, dim, half, flipSinToCos ? 1 : 0, f32(-Math.log(maxPeriod)), f32(half - freqShift), f32(scale)],
      bindings: [timesteps.binding, out.binding],
      workgroups: Math.ceil(out.size / WG),
      label: `timestep_forward[dim=${dim}]`,
    },
  );
  return out;
}
