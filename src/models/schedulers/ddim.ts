// DDIMScheduler and DDIMInverseScheduler (diffusers 0.25.1 scheduling_ddim.py,
// scheduling_ddim_inverse.py), deterministic (eta = 0). One update is
//   prev = sqrt(a_prev) * x0 + sqrt(1 - a_prev) * eps,
// with x0 and eps linear in (sample, model output), so it folds into one
// linearCombination; clip_sample clamps x0 first (two passes).
import { InputError } from '../../gpu/errors.js';
import { linearCombination } from '../../nn/combine.js';
import type { Tensor } from '../../tensor/tensor.js';
import {
  alphasCumprodOf, betasFor, checkSteps, f32, npArange, npLinspace, oneOf, predictions, readConfig,
  rescaleZeroTerminalSnr, roundHalfEven, type BetaConfig, type Scheduler,
} from './common.js';

export interface DDIMConfig extends BetaConfig {
  clip_sample: boolean;
  clip_sample_range: number;
  set_alpha_to_one: boolean;
  thresholding: boolean;
  dynamic_thresholding_ratio: number;
  sample_max_value: number;
  rescale_betas_zero_snr: boolean;
}

/** DDIMScheduler's __init__ defaults. */
export const DDIM_DEFAULTS: DDIMConfig = {
  num_train_timesteps: 1000,
  beta_start: 0.0001,
  beta_end: 0.02,
  beta_schedule: 'linear',
  trained_betas: null,
  clip_sample: true,
  set_alpha_to_one: true,
  steps_offset: 0,
  prediction_type: 'epsilon',
  thresholding: false,
  dynamic_thresholding_ratio: 0.995,
  clip_sample_range: 1.0,
  sample_max_value: 1.0,
  timestep_spacing: 'leading',
  rescale_betas_zero_snr: false,
};

function buildAlphas(what: string, config: DDIMConfig): Float32Array {
  if (config.thresholding) {
    throw new InputError(`${what}: thresholding=true (dynamic thresholding) is not supported; it is meant for pixel-space models, not SD latents`);
  }
  let betas = betasFor(what, config);
  if (config.rescale_betas_zero_snr) betas = rescaleZeroTerminalSnr(betas);
  return alphasCumprodOf(betas);
}

/** One DDIM move from alpha_prod `a` to `aPrev`: prev = sqrt(aPrev) x0 + sqrt(1 - aPrev) eps. */
function ddimMove(config: DDIMConfig, what: string, a: number, aPrev: number, modelOutput: Tensor, sample: Tensor): Tensor {
  const sqrtA = f32(Math.sqrt(a));
  const sqrtB = f32(Math.sqrt(f32(1 - a)));
  const { x0, eps } = predictions(what, config.prediction_type, sqrtA, sqrtB);
  const cx = f32(Math.sqrt(aPrev));
  const ce = f32(Math.sqrt(f32(1 - aPrev)));
  if (!config.clip_sample) {
    return linearCombination([
      [cx * x0.s + ce * eps.s, sample],
      [cx * x0.m + ce * eps.m, modelOutput],
    ]);
  }
  const r = config.clip_sample_range;
  const x0t = linearCombination([[x0.s, sample], [x0.m, modelOutput]], 0, [-r, r]);
  const prev = linearCombination([[cx, x0t], [ce * eps.s, sample], [ce * eps.m, modelOutput]]);
  x0t.dispose();
  return prev;
}

function ddimAddNoise(alphas: Float32Array, original: Tensor, noise: Tensor, t: number): Tensor {
  const a = alphas[t];
  if (a === undefined) throw new InputError(`addNoise: timestep ${t} is outside 0..${alphas.length - 1}`);
  return linearCombination([[f32(Math.sqrt(a)), original], [f32(Math.sqrt(f32(1 - a))), noise]]);
}

export class DDIMScheduler implements Scheduler {
  readonly config: DDIMConfig;
  readonly alphasCumprod: Float32Array;
  readonly initNoiseSigma = 1;
  private readonly finalAlphaCumprod: number;
  timesteps: number[] = [];
  private numInferenceSteps = 0;

  constructor(raw: Record<string, unknown> = {}) {
    this.config = readConfig('DDIMScheduler', DDIM_DEFAULTS, raw);
    this.alphasCumprod = buildAlphas('DDIMScheduler', this.config);
    this.finalAlphaCumprod = this.config.set_alpha_to_one ? 1 : this.alphasCumprod[0];
  }

  setTimesteps(n: number): void {
    const c = this.config;
    checkSteps('DDIMScheduler', n, c.num_train_timesteps);
    this.numInferenceSteps = n;
    const N = c.num_train_timesteps;
    switch (oneOf('DDIMScheduler', 'timestep_spacing', c.timestep_spacing, ['leading', 'linspace', 'trailing'] as const)) {
      case 'linspace':
        this.timesteps = npLinspace(0, N - 1, n).map(roundHalfEven).reverse();
        break;
      case 'leading': {
        const ratio = Math.floor(N / n);
        this.timesteps = Array.from({ length: n }, (_, i) => i * ratio + c.steps_offset).reverse();
        break;
      }
      case 'trailing':
        this.timesteps = npArange(N, 0, -N / n).map((t) => roundHalfEven(t) - 1);
        break;
    }
  }

  scaleModelInput(sample: Tensor): Tensor {
    return sample;
  }

  step(modelOutput: Tensor, t: number, sample: Tensor): Tensor {
    if (this.numInferenceSteps === 0) throw new InputError('DDIMScheduler: call setTimesteps before step');
    const prevT = t - Math.floor(this.config.num_train_timesteps / this.numInferenceSteps);
    const a = this.alphasCumprod[t];
    const aPrev = prevT >= 0 ? this.alphasCumprod[prevT] : this.finalAlphaCumprod;
    return ddimMove(this.config, 'DDIMScheduler', a, aPrev, modelOutput, sample);
  }

  addNoise(original: Tensor, noise: Tensor, t: number): Tensor {
    return ddimAddNoise(this.alphasCumprod, original, noise, t);
  }

  reset(): void {}
}

/** DDIM inversion (image latent -> noise): timesteps run upward and each step moves the
 *  sample from t - N/n (or the initial alpha below 0) up to t. Its __init__ defaults
 *  are DDIMScheduler's; set_alpha_to_one picks the initial alpha instead of the final. */
export class DDIMInverseScheduler implements Scheduler {
  readonly config: DDIMConfig;
  readonly alphasCumprod: Float32Array;
  readonly initNoiseSigma = 1;
  private readonly initialAlphaCumprod: number;
  timesteps: number[] = [];
  private numInferenceSteps = 0;

  constructor(raw: Record<string, unknown> = {}) {
    this.config = readConfig('DDIMInverseScheduler', DDIM_DEFAULTS, raw);
    this.alphasCumprod = buildAlphas('DDIMInverseScheduler', this.config);
    this.initialAlphaCumprod = this.config.set_alpha_to_one ? 1 : this.alphasCumprod[0];
  }

  setTimesteps(n: number): void {
    const c = this.config;
    checkSteps('DDIMInverseScheduler', n, c.num_train_timesteps);
    this.numInferenceSteps = n;
    const N = c.num_train_timesteps;
    switch (oneOf('DDIMInverseScheduler', 'timestep_spacing', c.timestep_spacing, ['leading', 'trailing'] as const)) {
      case 'leading': {
        const ratio = Math.floor(N / n);
        this.timesteps = Array.from({ length: n }, (_, i) => i * ratio + c.steps_offset);
        break;
      }
      case 'trailing':
        this.timesteps = npArange(N, 0, -N / n).reverse().map((t) => roundHalfEven(t) - 1);
        break;
    }
  }

  scaleModelInput(sample: Tensor): Tensor {
    return sample;
  }

  step(modelOutput: Tensor, t: number, sample: Tensor): Tensor {
    if (this.numInferenceSteps === 0) throw new InputError('DDIMInverseScheduler: call setTimesteps before step');
    const N = this.config.num_train_timesteps;
    const from = Math.min(t - Math.floor(N / this.numInferenceSteps), N - 1);
    const a = from >= 0 ? this.alphasCumprod[from] : this.initialAlphaCumprod;
    return ddimMove(this.config, 'DDIMInverseScheduler', a, this.alphasCumprod[t], modelOutput, sample);
  }

  addNoise(original: Tensor, noise: Tensor, t: number): Tensor {
    return ddimAddNoise(this.alphasCumprod, original, noise, t);
  }

  reset(): void {}
}
