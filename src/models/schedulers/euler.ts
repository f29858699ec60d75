// EulerDiscreteScheduler (diffusers 0.25.1 scheduling_euler_discrete.py) with s_churn = 0
// (deterministic): sigmas = sqrt((1 - a) / a) interpolated at the (float) timesteps;
// the model sees sample / sqrt(sigma^2 + 1); step: prev = sample + (sigma_next - sigma) * d
// where d = (sample - x0) / sigma.
import { InputError } from '../../gpu/errors.js';
import { linearCombination } from '../../nn/combine.js';
import type { Tensor } from '../../tensor/tensor.js';
import {
  alphasCumprodOf, betasFor, checkSteps, f32, npArange, npInterpIndex, npLinspace, oneOf, readConfig,
  rescaleZeroTerminalSnr, roundHalfEven, stepIndexOf, type BetaConfig, type Scheduler,
} from './common.js';

export interface EulerConfig extends BetaConfig {
  interpolation_type: 'linear' | 'log_linear';
  use_karras_sigmas: boolean;
  sigma_min: number | null;
  sigma_max: number | null;
  timestep_type: 'discrete' | 'continuous';
  rescale_betas_zero_snr: boolean;
}

/** EulerDiscreteScheduler's __init__ defaults. */
export const EULER_DEFAULTS: EulerConfig = {
  num_train_timesteps: 1000,
  beta_start: 0.0001,
  beta_end: 0.02,
  beta_schedule: 'linear',
  trained_betas: null,
  prediction_type: 'epsilon',
  interpolation_type: 'linear',
  use_karras_sigmas: false,
  sigma_min: null,
  sigma_max: null,
  timestep_spacing: 'linspace',
  timestep_type: 'discrete',
  steps_offset: 0,
  rescale_betas_zero_snr: false,
};

export class EulerDiscreteScheduler implements Scheduler {
  readonly config: EulerConfig;
  readonly alphasCumprod: Float32Array;
  /** float32 sigmas of the training schedule, sqrt((1 - a) / a), in torch float32. */
  private readonly trainSigmas: Float32Array;
  timesteps: number[] = [];
  /** [n + 1] float32 sigmas, the last one 0. */
  sigmas: number[] = [];
  private stepIndex: number | null = null;

  constructor(raw: Record<string, unknown> = {}) {
    const what = 'EulerDiscreteScheduler';
    this.config = readConfig(what, EULER_DEFAULTS, raw);
    const c = this.config;
    oneOf(what, 'interpolation_type', c.interpolation_type, ['linear'] as const);
    if (c.use_karras_sigmas) throw new InputError(`${what}: use_karras_sigmas=true is not supported (use the default linear sigmas)`);
    oneOf(what, 'timestep_type', c.timestep_type, ['discrete'] as const);
    let betas = betasFor(what, c);
    if (c.rescale_betas_zero_snr) betas = rescaleZeroTerminalSnr(betas);
    this.alphasCumprod = alphasCumprodOf(betas);
    // diffusers sets the last alpha_cumprod to 2^-24 so that its sigma stays finite.
    if (c.rescale_betas_zero_snr) this.alphasCumprod[this.alphasCumprod.length - 1] = 2 ** -24;
    this.trainSigmas = this.alphasCumprod.map((a) => f32(Math.sqrt(f32(f32(1 - a) / a))));
  }

  get initNoiseSigma(): number {
    const maxSigma = this.sigmas.length ? Math.max(...this.sigmas) : Math.max(...this.trainSigmas);
    if (this.config.timestep_spacing === 'linspace' || this.config.timestep_spacing === 'trailing') return maxSigma;
    return f32(Math.sqrt(f32(f32(maxSigma * maxSigma) + 1)));
  }

  setTimesteps(n: number): void {
    const c = this.config;
    const what = 'EulerDiscreteScheduler';
    checkSteps(what, n, c.num_train_timesteps);
    const N = c.num_train_timesteps;
    switch (oneOf(what, 'timestep_spacing', c.timestep_spacing, ['leading', 'linspace', 'trailing'] as const)) {
      case 'linspace':
        this.timesteps = npLinspace(0, N - 1, n).map(f32).reverse();
        break;
      case 'leading': {
        const ratio = Math.floor(N / n);
        this.timesteps = Array.from({ length: n }, (_, i) => f32(i * ratio + c.steps_offset)).reverse();
        break;
      }
      case 'trailing':
        this.timesteps = npArange(N, 0, -N / n).map((t) => f32(roundHalfEven(t) - 1));
        break;
    }
    this.sigmas = [...this.timesteps.map((t) => f32(npInterpIndex(t, this.trainSigmas))), 0];
    this.stepIndex = null;
  }

  private sigmaIndex(t: number): number {
    this.stepIndex ??= stepIndexOf('EulerDiscreteScheduler', this.timesteps, f32(t));
    return this.stepIndex;
  }

  scaleModelInput(sample: Tensor, t: number): Tensor {
    const sigma = this.sigmas[this.sigmaIndex(t)];
    return linearCombination([[1 / f32(Math.sqrt(f32(f32(sigma * sigma) + 1))), sample]]);
  }

  step(modelOutput: Tensor, t: number, sample: Tensor): Tensor {
    if (this.timesteps.length === 0) throw new InputError('EulerDiscreteScheduler: call setTimesteps before step');
    const i = this.sigmaIndex(t);
    const sigma = this.sigmas[i];
    const dt = f32(this.sigmas[i + 1] - sigma);
    let prev: Tensor;
    switch (this.config.prediction_type) {
      case 'epsilon':
        // x0 = sample - sigma * eps, so d = eps.
        prev = linearCombination([[1, sample], [dt, modelOutput]]);
        break;
      case 'v_prediction': {
        // x0 = -sigma / sqrt(sigma^2 + 1) * v + sample / (sigma^2 + 1)
        const s2 = f32(f32(sigma * sigma) + 1);
        const cs = f32(1 / s2);
        const cv = f32(-sigma / f32(Math.sqrt(s2)));
        prev = linearCombination([[1 + ((1 - cs) / sigma) * dt, sample], [(-cv / sigma) * dt, modelOutput]]);
        break;
      }
      case 'sample':
        prev = linearCombination([[1 + dt / sigma, sample], [-dt / sigma, modelOutput]]);
        break;
    }
    this.stepIndex = i + 1;
    return prev;
  }

  addNoise(original: Tensor, noise: Tensor, t: number): Tensor {
    const sigma = this.sigmas[stepIndexOf('EulerDiscreteScheduler.addNoise', this.timesteps, f32(t))];
    return linearCombination([[1, original], [sigma, noise]]);
  }

  reset(): void {
    this.stepIndex = null;
  }
}
