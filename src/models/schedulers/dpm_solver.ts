// DPMSolverMultistepScheduler (diffusers 0.25.1 scheduling_dpmsolver_multistep.py),
// deterministic algorithms 'dpmsolver++' (SD's "DPM++ 2M" at solver_order 2) and
// 'dpmsolver', orders 1..3, midpoint or heun. Each step converts the model output to
// x0 (++) or eps, keeps it in a history of `solver_order` tensors, and forms the update
// as one linear combination of the sample and that history. The scalar math (alpha_t,
// sigma_t, lambda, h, exp) runs in float32 like diffusers' 0-d tensors.
import { InputError } from '../../gpu/errors.js';
import { linearCombination } from '../../nn/combine.js';
import { keep } from '../../tensor/scope.js';
import type { Tensor } from '../../tensor/tensor.js';
import {
  alphasCumprodOf, betasFor, checkSteps, f32, npArange, npInterpIndex, npLinspace, oneOf, readConfig, roundHalfEven,
  stepIndexOf, type BetaConfig, type Scheduler,
} from './common.js';

export interface DPMSolverConfig extends BetaConfig {
  solver_order: number;
  thresholding: boolean;
  dynamic_thresholding_ratio: number;
  sample_max_value: number;
  algorithm_type: 'dpmsolver++' | 'dpmsolver';
  solver_type: 'midpoint' | 'heun';
  lower_order_final: boolean;
  euler_at_final: boolean;
  use_karras_sigmas: boolean;
  use_lu_lambdas: boolean;
  lambda_min_clipped: number;
  variance_type: string | null;
}

/** DPMSolverMultistepScheduler's __init__ defaults. */
export const DPM_DEFAULTS: DPMSolverConfig = {
  num_train_timesteps: 1000,
  beta_start: 0.0001,
  beta_end: 0.02,
  beta_schedule: 'linear',
  trained_betas: null,
  solver_order: 2,
  prediction_type: 'epsilon',
  thresholding: false,
  dynamic_thresholding_ratio: 0.995,
  sample_max_value: 1.0,
  algorithm_type: 'dpmsolver++',
  solver_type: 'midpoint',
  lower_order_final: true,
  euler_at_final: false,
  use_karras_sigmas: false,
  use_lu_lambdas: false,
  lambda_min_clipped: -Infinity,
  variance_type: null,
  timestep_spacing: 'linspace',
  steps_offset: 0,
};

const WHAT = 'DPMSolverMultistepScheduler';

/** alpha_t, sigma_t and lambda_t of a sigma, in float32 (_sigma_to_alpha_sigma_t). */
function alphaSigma(sigma: number): { alpha: number; sigmaT: number; lambda: number } {
  const alpha = f32(1 / f32(Math.sqrt(f32(f32(sigma * sigma) + 1))));
  const sigmaT = f32(sigma * alpha);
  return { alpha, sigmaT, lambda: f32(f32(Math.log(alpha)) - f32(Math.log(sigmaT))) };
}

export class DPMSolverMultistepScheduler implements Scheduler {
  readonly config: DPMSolverConfig;
  readonly alphasCumprod: Float32Array;
  readonly initNoiseSigma = 1;
  timesteps: number[] = [];
  /** [n + 1] float32 sigmas; the last is the sigma of alphas_cumprod[0]. */
  sigmas: number[] = [];
  private stepIndex: number | null = null;
  private lowerOrderNums = 0;
  /** Converted model outputs (x0 for ++), oldest first, at most solver_order. */
  private history: Tensor[] = [];

  constructor(raw: Record<string, unknown> = {}) {
    this.config = readConfig(WHAT, DPM_DEFAULTS, raw);
    const c = this.config;
    // diffusers maps 'deis' and the UniPC solver types onto these.
    if ((c.algorithm_type as string) === 'deis') c.algorithm_type = 'dpmsolver++';
    if (['logrho', 'bh1', 'bh2'].includes(c.solver_type)) c.solver_type = 'midpoint';
    oneOf(WHAT, 'algorithm_type', c.algorithm_type, ['dpmsolver++', 'dpmsolver'] as const);
    oneOf(WHAT, 'solver_type', c.solver_type, ['midpoint', 'heun'] as const);
    if (![1, 2, 3].includes(c.solver_order)) throw new InputError(`${WHAT}: solver_order=${c.solver_order} is not supported (use 1, 2 or 3)`);
    if (c.thresholding) throw new InputError(`${WHAT}: thresholding=true is not supported; it is meant for pixel-space models`);
    if (c.use_karras_sigmas || c.use_lu_lambdas) throw new InputError(`${WHAT}: use_karras_sigmas / use_lu_lambdas are not supported (use the default interpolated sigmas)`);
    if (c.variance_type !== null) throw new InputError(`${WHAT}: variance_type=${JSON.stringify(c.variance_type)} is not supported (SD predicts eps only)`);
    this.alphasCumprod = alphasCumprodOf(betasFor(WHAT, c));
  }

  setTimesteps(n: number): void {
    const c = this.config;
    checkSteps(WHAT, n, c.num_train_timesteps);
    // Timesteps whose lambda falls below lambda_min_clipped are cut from the top.
    const lambdas = Array.from(this.alphasCumprod, (a) => f32(f32(Math.log(f32(Math.sqrt(a)))) - f32(Math.log(f32(Math.sqrt(f32(1 - a)))))));
    const clipped = lambdas.filter((l) => l < c.lambda_min_clipped).length;
    const last = c.num_train_timesteps - clipped;
    let ts: number[];
    switch (oneOf(WHAT, 'timestep_spacing', c.timestep_spacing, ['leading', 'linspace', 'trailing'] as const)) {
      case 'linspace':
        ts = npLinspace(0, last - 1, n + 1).map(roundHalfEven).reverse().slice(0, -1);
        break;
      case 'leading': {
        const ratio = Math.floor(last / (n + 1));
        ts = Array.from({ length: n + 1 }, (_, i) => i * ratio).reverse().slice(0, -1).map((t) => t + c.steps_offset);
        break;
      }
      case 'trailing':
        ts = npArange(last, 0, -c.num_train_timesteps / n).map((t) => roundHalfEven(t) - 1);
        break;
    }
    const trainSigmas = this.alphasCumprod.map((a) => f32(Math.sqrt(f32(f32(1 - a) / a))));
    const a0 = this.alphasCumprod[0];
    const sigmaLast = f32(Math.sqrt(f32(f32(1 - a0) / a0)));
    this.timesteps = ts;
    this.sigmas = [...ts.map((t) => f32(npInterpIndex(t, trainSigmas))), sigmaLast];
    this.reset();
  }

  scaleModelInput(sample: Tensor): Tensor {
    return sample;
  }

  /** The model output as the solver's variable: x0 for ++, eps otherwise. */
  private convert(modelOutput: Tensor, sample: Tensor, sigma: number): Tensor {
    const { alpha, sigmaT } = alphaSigma(sigma);
    const pp = this.config.algorithm_type === 'dpmsolver++';
    switch (oneOf(WHAT, 'prediction_type', this.config.prediction_type, ['epsilon', 'v_prediction', 'sample'] as const)) {
      case 'epsilon':
        return pp ? linearCombination([[1 / alpha, sample], [-sigmaT / alpha, modelOutput]]) : linearCombination([[1, modelOutput]]);
      case 'v_prediction':
        return pp
          ? linearCombination([[alpha, sample], [-sigmaT, modelOutput]])
          : linearCombination([[sigmaT, sample], [alpha, modelOutput]]);
      case 'sample':
        return pp ? linearCombination([[1, modelOutput]]) : linearCombination([[1 / sigmaT, sample], [-alpha / sigmaT, modelOutput]]);
    }
  }

  step(modelOutput: Tensor, t: number, sample: Tensor): Tensor {
    if (this.timesteps.length === 0) throw new InputError(`${WHAT}: call setTimesteps before step`);
    const c = this.config;
    this.stepIndex ??= stepIndexOf(WHAT, this.timesteps, t, true);
    const i = this.stepIndex;
    const len = this.timesteps.length;
    const lowerFinal = i === len - 1 && (c.euler_at_final || (c.lower_order_final && len < 15));
    const lowerSecond = i === len - 2 && c.lower_order_final && len < 15;

    this.history.push(keep(this.convert(modelOutput, sample, this.sigmas[i])));
    if (this.history.length > c.solver_order) this.history.shift()?.dispose();

    let order = 3;
    if (c.solver_order === 1 || this.lowerOrderNums < 1 || lowerFinal) order = 1;
    else if (c.solver_order === 2 || this.lowerOrderNums < 2 || lowerSecond) order = 2;
    const coef = this.update(order, i);
    const h = this.history;
    const terms: Array<[number, Tensor]> = [[coef[0], sample]];
    for (let k = 0; k < order; k++) terms.push([coef[k + 1], h[h.length - 1 - k]]);
    const prev = linearCombination(terms);

    if (this.lowerOrderNums < c.solver_order) this.lowerOrderNums++;
    this.stepIndex = i + 1;
    return prev;
  }

  /** Coefficients of [sample, m0, m1, m2] (m0 newest) for the order-k update from
   *  sigmas[i] to sigmas[i + 1], expanded from diffusers' D0, D1, D2 forms. */
  private update(order: number, i: number): number[] {
    const c = this.config;
    const t = alphaSigma(this.sigmas[i + 1]);
    const s0 = alphaSigma(this.sigmas[i]);
    const h = f32(t.lambda - s0.lambda);
    const pp = c.algorithm_type === 'dpmsolver++';
    // ++: x_t = (sigma_t / sigma_s) x - alpha_t (e^-h - 1) D0 + ...;  plain: eps form.
    const cs = pp ? f32(t.sigmaT / s0.sigmaT) : f32(t.alpha / s0.alpha);
    const em1 = pp ? f32(f32(Math.exp(-h)) - 1) : f32(f32(Math.exp(h)) - 1);
    const scale = pp ? t.alpha : t.sigmaT;
    // Weights of D0, D1, D2 in x_t (besides cs * x).
    const w0 = -f32(scale * em1);
    if (order === 1) return [cs, w0];
    const s1 = alphaSigma(this.sigmas[i - 1]);
    const h0 = f32(s0.lambda - s1.lambda);
    const r0 = f32(h0 / h);
    const ir0 = f32(1 / r0);
    const heunD1 = pp ? f32(scale * f32(f32(em1 / h) + 1)) : -f32(scale * f32(f32(em1 / h) - 1));
    if (order === 2) {
      const w1 = c.solver_type === 'midpoint' ? -f32(0.5 * f32(scale * em1)) : heunD1;
      // D1 = (1 / r0) (m0 - m1)
      return [cs, w0 + w1 * ir0, -w1 * ir0];
    }
    const s2 = alphaSigma(this.sigmas[i - 2]);
    const h1 = f32(s1.lambda - s2.lambda);
    const r1 = f32(h1 / h);
    const ir1 = f32(1 / r1);
    const k1 = f32(r0 / f32(r0 + r1));
    const k2 = f32(1 / f32(r0 + r1));
    // diff = D1_0 - D1_1 = ir0 m0 - (ir0 + ir1) m1 + ir1 m2; D1 = D1_0 + k1 diff; D2 = k2 diff
    const diff = [ir0, -(ir0 + ir1), ir1];
    const d1 = [ir0 + k1 * diff[0], -ir0 + k1 * diff[1], k1 * diff[2]];
    const d2 = diff.map((v) => k2 * v);
    const w1 = heunD1;
    const hh = f32(h * h);
    const w2 = -f32(scale * f32(f32(f32(pp ? em1 + h : em1 - h) / hh) - 0.5));
    return [cs, w0 + w1 * d1[0] + w2 * d2[0], w1 * d1[1] + w2 * d2[1], w1 * d1[2] + w2 * d2[2]];
  }

  addNoise(original: Tensor, noise: Tensor, t: number): Tensor {
    const { alpha, sigmaT } = alphaSigma(this.sigmas[stepIndexOf(`${WHAT}.addNoise`, this.timesteps, t, true)]);
    return linearCombination([[alpha, original], [sigmaT, noise]]);
  }

  reset(): void {
    for (const m of this.history) m.dispose();
    this.history = [];
    this.lowerOrderNums = 0;
    this.stepIndex = null;
  }
}
