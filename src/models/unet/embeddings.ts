// Time conditioning (diffusers embeddings.py): Timesteps (the sinusoidal projection,
// no weights) and TimestepEmbedding (linear_1 -> SiLU -> linear_2).
import type { Runtime } from '../../gpu/runtime.js';
import { Module } from '../../nn/module.js';
import { timestepEmbedding } from '../../nn/timestep.js';
import { scope } from '../../tensor/scope.js';
import { Tensor } from '../../tensor/tensor.js';
import { Linear } from '../layers/linear.js';
import { moduleScope } from '../layers/module_scope.js';

/** get_timestep_embedding in float32, as torch computes it: timesteps [B] -> [B, dim].
 *  Integer timesteps (int64 in torch) convert to float32 exactly below 2^24. */
export function timeProjection(rt: Runtime, timesteps: readonly number[], dim: number, flipSinToCos: boolean, freqShift: number): Tensor {
  return scope(() => {
    const t = Tensor.from(rt, Float32Array.from(timesteps), [timesteps.length], 'f32', 'timesteps');
    return timestepEmbedding(t, dim, { flipSinToCos, freqShift });
  });
}

export class TimestepEmbedding extends Module {
  linear_1: Linear;
  linear_2: Linear;
  constructor(inChannels: number, timeEmbedDim: number) {
    super();
    this.linear_1 = new Linear(inChannels, timeEmbedDim);
    this.linear_2 = new Linear(timeEmbedDim, timeEmbedDim);
  }
  /** tEmb [B, in] -> [B, timeEmbedDim]. */
  forward(tEmb: Tensor): Tensor {
    return moduleScope(this, tEmb.rt, () => scope(() => this.linear_2.forward(this.linear_1.forward(tEmb, { activation: 'silu' }))));
  }
}
