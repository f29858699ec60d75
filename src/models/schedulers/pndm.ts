// PNDMScheduler in its PLMS form (skip_prk_steps, as SD 1.x configures it), after
// diffusers 0.25.1 scheduling_pndm.py. A linear multistep method over the last four
// model outputs: n inference steps give n + 1 timesteps (the second step repeats the
// first timestep to warm the history up).
import { InputError } from '../../gpu/errors.js';
import { linearCombination } from '../../nn/combine.js';
import { keep } from '../../tensor/scope.js';
import type { Tensor } from '../../tensor/tensor.js';
import {
  alphasCumprodOf, betasFor, checkSteps, f32, npArange, npLinspace, oneOf, readConfig, roundHalfEven,
  type BetaConfig, type Scheduler,
} from './common.js';

export interface PNDMConfig extends BetaConfig {
  skip_prk_steps: boolean;
  set_alpha_to_one: boolean;
}

/** PNDMScheduler's __init__ defaults. */
export const PNDM_DEFAULTS: PNDMConfig = {
  num_train_timesteps: 1000,
  beta_start: 0.0001,
  beta_end: 0.02,
  beta_schedule: 'linear',
  trained_betas: null,
  skip_prk_steps: false,
  set_alpha_to_one: false,
  prediction_type: 'epsilon',
  timestep_spacing: 'leading',
  steps_offset: 0,
};

/** Adams-Bashforth weights of the PLMS history, newest first, by history length. */
const PLMS_WEIGHTS = [[1], [3 / 2, -1 / 2], [23 / 12, -16 / 12, 5 / 12], [55 / 24, -59 / 24, 37 / 24, -9 / 24]];

export class PNDMScheduler implements Scheduler {
  readonly config: PNDMConfig;
  readonly alphasCumprod: Float32Array;
  readonly initNoiseSigma = 1;
  private readonly finalAlphaCumprod: number;
  timesteps: number[] = [];
  private numInferenceSteps = 0;
  private counter = 0;
  /** Copies of past model outputs, oldest first (at most 4). */
  private ets: Tensor[] = [];
  /** The sample of the first step, reused by the second (same timestep). */
  private curSample: Tensor | null = null;

  constructor(raw: Record<string, unknown> = {}) {
    this.config = readConfig('PNDMScheduler', PNDM_DEFAULTS, raw);
    if (!this.config.skip_prk_steps) {
      throw new InputError('PNDMScheduler: skip_prk_steps=false (Runge-Kutta warm-up) is not supported; SD 1.x uses skip_prk_steps=true (PLMS)');
    }
    oneOf('PNDMScheduler', 'prediction_type', this.config.prediction_type, ['epsilon', 'v_prediction'] as const);
    this.alphasCumprod = alphasCumprodOf(betasFor('PNDMScheduler', this.config));
    this.finalAlphaCumprod = this.config.set_alpha_to_one ? 1 : this.alphasCumprod[0];
  }

  setTimesteps(n: number): void {
    const c = this.config;
    checkSteps('PNDMScheduler', n, c.num_train_timesteps);
    const N = c.num_train_timesteps;
    let ts: number[];
    switch (oneOf('PNDMScheduler', 'timestep_spacing', c.timestep_spacing, ['leading', 'linspace', 'trailing'] as const)) {
      case 'linspace':
        ts = npLinspace(0, N - 1, n).map(roundHalfEven);
        break;
      case 'leading': {
        const ratio = Math.floor(N / n);
        ts = Array.from({ length: n }, (_, i) => i * ratio + c.steps_offset);
        break;
      }
      case 'trailing':
        ts = npArange(N, 0, -N / n).reverse().map((t) => roundHalfEven(t) - 1);
        break;
    }
    // plms_timesteps = concat(ts[:-1], ts[-2:-1], ts[-1:])[::-1]
    this.timesteps = [...ts.slice(0, -1), ts[ts.length - 2], ts[ts.length - 1]].filter((t) => t !== undefined).reverse();
    this.numInferenceSteps = n;
    this.reset();
  }

  scaleModelInput(sample: Tensor): Tensor {
    return sample;
  }

  step(modelOutput: Tensor, t: number, sample: Tensor): Tensor {
    if (this.numInferenceSteps === 0) throw new InputError('PNDMScheduler: call setTimesteps before step');
    const stride = Math.floor(this.config.num_train_timesteps / this.numInferenceSteps);
    let timestep = t;
    let prevT = t - stride;
    if (this.counter !== 1) {
      this.ets.push(keep(linearCombination([[1, modelOutput]])));
      if (this.ets.length > 4) this.ets.shift()?.dispose();
    } else {
      // The second step re-evaluates the first timestep and averages the two outputs.
      prevT = t;
      timestep = t + stride;
    }
    let prev: Tensor;
    if (this.ets.length === 1 && this.counter === 0) {
      this.curSample = keep(linearCombination([[1, sample]]));
      prev = this.prevSample(sample, timestep, prevT, [[1, this.ets[0]]]);
    } else if (this.ets.length === 1 && this.counter === 1) {
      const first = this.curSample ?? sample;
      prev = this.prevSample(first, timestep, prevT, [[0.5, modelOutput], [0.5, this.ets[0]]]);
      this.curSample?.dispose();
      this.curSample = null;
    } else {
      const w = PLMS_WEIGHTS[this.ets.length - 1];
      const history: Array<[number, Tensor]> = w.map((c, k) => [c, this.ets[this.ets.length - 1 - k]]);
      prev = this.prevSample(sample, timestep, prevT, history);
    }
    this.counter++;
    return prev;
  }

  /** diffusers' _get_prev_sample with the model output given as a weighted history:
   *  prev = sqrt(ap / a) * sample - (ap - a) * eps / (a sqrt(1 - ap) + sqrt(a (1 - a) ap)). */
  private prevSample(sample: Tensor, t: number, prevT: number, eps: Array<[number, Tensor]>): Tensor {
    const a = this.alphasCumprod[t];
    const ap = prevT >= 0 ? this.alphasCumprod[prevT] : this.finalAlphaCumprod;
    const b = f32(1 - a);
    const bp = f32(1 - ap);
    const sampleCoeff = f32(Math.sqrt(f32(ap / a)));
    const denom = f32(f32(a * f32(Math.sqrt(bp))) + f32(Math.sqrt(f32(f32(a * b) * ap))));
    const k = -f32(ap - a) / denom;
    // The history first becomes one tensor (as diffusers forms model_output), then the
    // update; one pass when it is a single tensor.
    const combined = eps.length === 1 ? null : linearCombination(eps);
    const epsTerm: [number, Tensor] = combined ? [1, combined] : eps[0];
    let prev: Tensor;
    if (this.config.prediction_type === 'v_prediction') {
      // eps = sqrt(a) * v + sqrt(1 - a) * sample
      const sa = f32(Math.sqrt(a));
      const sb = f32(Math.sqrt(b));
      prev = linearCombination([[sampleCoeff + k * sb, sample], [k * sa * epsTerm[0], epsTerm[1]]]);
    } else {
      prev = linearCombination([[sampleCoeff, sample], [k * epsTerm[0], epsTerm[1]]]);
    }
    combined?.dispose();
    return prev;
  }

  addNoise(original: Tensor, noise: Tensor, t: number): Tensor {
    const a = this.alphasCumprod[t];
    if (a === undefined) throw new InputError(`PNDMScheduler.addNoise: timestep ${t} is outside 0..${this.alphasCumprod.length - 1}`);
    return linearCombination([[f32(Math.sqrt(a)), original], [f32(Math.sqrt(f32(1 - a))), noise]]);
  }

  reset(): void {
    for (const e of this.ets) e.dispose();
    this.ets = [];
    this.curSample?.dispose();
    this.curSample = null;
    this.counter = 0;
  }
}
