// What every scheduler shares: the config reader (diffusers' keys and class defaults,
// like `from_config`: unknown keys are ignored, bad values rejected), the beta schedule
// and alphas_cumprod with torch's float32 rounding, the timestep spacings with numpy's
// rounding, and predictions as linear forms of (sample, model output).
// Coefficients are computed on the host; `f32` marks each place where diffusers computes
// a scalar in float32 torch, so the trajectories match the golden fixtures to ~1e-7.
import { InputError } from '../../gpu/errors.js';
import type { Tensor } from '../../tensor/tensor.js';

export const f32 = Math.fround;

export type BetaSchedule = 'linear' | 'scaled_linear' | 'squaredcos_cap_v2';
export type PredictionType = 'epsilon' | 'v_prediction' | 'sample';
export type TimestepSpacing = 'leading' | 'linspace' | 'trailing';

/** Keys every scheduler reads (diffusers names). */
export interface BetaConfig {
  num_train_timesteps: number;
  beta_start: number;
  beta_end: number;
  beta_schedule: BetaSchedule;
  trained_betas: number[] | null;
  prediction_type: PredictionType;
  timestep_spacing: TimestepSpacing;
  steps_offset: number;
}

export interface Scheduler {
  /** After setTimesteps (Euler: float values). */
  readonly timesteps: number[];
  readonly initNoiseSigma: number;
  /** float32 [num_train_timesteps], as diffusers' `alphas_cumprod`. */
  readonly alphasCumprod: Float32Array;
  setTimesteps(n: number): void;
  /** Identity except Euler (sample / sqrt(sigma^2 + 1)). */
  scaleModelInput(sample: Tensor, t: number): Tensor;
  /** The previous (less noisy) sample; t is one of `timesteps`. */
  step(modelOutput: Tensor, t: number, sample: Tensor): Tensor;
  /** The forward process q(x_t | x_0) at timestep t. */
  addNoise(original: Tensor, noise: Tensor, t: number): Tensor;
  /** Frees the tensors a multistep scheduler keeps between steps. */
  reset(): void;
}

type Scalar = number | boolean | string | null;
type ConfigValue = Scalar | number[];

/** Resolves a config the way `Class.from_config` does: the class defaults, overridden by
 *  the keys the class knows; everything else (other classes' keys, `_class_name`,
 *  `_use_default_values`) is ignored. Values of the wrong type are rejected. */
export function readConfig<C extends { [K in keyof C]: ConfigValue }>(what: string, defaults: C, raw: Record<string, unknown>): C {
  const out = { ...defaults };
  const bad: string[] = [];
  for (const key of Object.keys(defaults) as (keyof C & string)[]) {
    const v = raw[key];
    if (v === undefined) continue;
    const d = defaults[key];
    const ok =
      v === null ? d === null || key === 'trained_betas' || key === 'sigma_min' || key === 'sigma_max' || key === 'variance_type'
      : Array.isArray(v) ? key === 'trained_betas' && v.every((x) => typeof x === 'number')
      : d === null ? typeof v === 'number' || typeof v === 'string'
      : typeof v === typeof d;
    if (!ok) bad.push(`${key}=${JSON.stringify(v)} (expected ${d === null ? 'null or a value' : typeof d})`);
    else out[key] = v as C[keyof C & string];
  }
  if (bad.length) throw new InputError(`${what} config: ${bad.join(', ')}`);
  return out;
}

/** Rejects a config value outside `allowed`, naming the key and the supported values. */
export function oneOf<T extends string>(what: string, key: string, value: unknown, allowed: readonly T[]): T {
  if (!allowed.includes(value as T)) {
    throw new InputError(`${what}: ${key}=${JSON.stringify(value)} is not supported (use one of ${allowed.map((a) => `'${a}'`).join(', ')})`);
  }
  return value as T;
}

/** torch 1.13's CPU float32 linspace: AVX2 lanes of 8, each lane `base + i * step`
 *  with base = start + step * idx (first half) or end - step * (steps - idx - 1)
 *  (second half), both contracted to fused multiply-adds. Reproduces the stored betas
 *  bit for bit, which keeps alphas_cumprod exact. */
function torchLinspaceF32(start: number, end: number, steps: number): Float32Array {
  const s = f32(start);
  const e = f32(end);
  if (steps === 1) return Float32Array.of(s);
  const step = f32((e - s) / (steps - 1));
  const half = Math.floor(steps / 2);
  const out = new Float32Array(steps);
  for (let i = 0; i < steps; i++) {
    const idx = i - (i % 8);
    const base = idx < half ? f32(step * idx + s) : f32(-step * (steps - idx - 1) + e);
    out[i] = f32((i % 8) * step + base);
  }
  return out;
}

/** diffusers' betas_for_alpha_bar (cosine), in float64 then float32. */
function cosineBetas(n: number, maxBeta = 0.999): Float32Array {
  const alphaBar = (t: number) => Math.cos(((t + 0.008) / 1.008) * (Math.PI / 2)) ** 2;
  return Float32Array.from({ length: n }, (_, i) => Math.min(1 - alphaBar((i + 1) / n) / alphaBar(i / n), maxBeta));
}

export function betasFor(what: string, c: BetaConfig): Float32Array {
  if (c.trained_betas) return Float32Array.from(c.trained_betas);
  const n = c.num_train_timesteps;
  switch (oneOf(what, 'beta_schedule', c.beta_schedule, ['linear', 'scaled_linear', 'squaredcos_cap_v2'] as const)) {
    case 'linear':
      return torchLinspaceF32(c.beta_start, c.beta_end, n);
    case 'scaled_linear':
      return torchLinspaceF32(Math.sqrt(c.beta_start), Math.sqrt(c.beta_end), n).map((b) => f32(b * b));
    case 'squaredcos_cap_v2':
      return cosineBetas(n);
  }
}

/** diffusers' rescale_zero_terminal_snr, in float32 like torch. */
export function rescaleZeroTerminalSnr(betas: Float32Array): Float32Array {
  const sqrtBar = alphasCumprodOf(betas).map((a) => f32(Math.sqrt(a)));
  const s0 = sqrtBar[0];
  const sT = sqrtBar[sqrtBar.length - 1];
  const k = f32(s0 / f32(s0 - sT));
  const bar = sqrtBar.map((v) => f32(f32(f32(v - sT) * k) ** 2));
  return bar.map((v, i) => f32(1 - (i === 0 ? v : f32(v / bar[i - 1]))));
}

/** cumprod(1 - betas): torch's CPU cumprod accumulates float32 inputs in double and
 *  rounds each output to float32. */
export function alphasCumprodOf(betas: Float32Array): Float32Array {
  const out = new Float32Array(betas.length);
  let acc = 1;
  for (let i = 0; i < betas.length; i++) {
    acc *= f32(1 - betas[i]);
    out[i] = acc;
  }
  return out;
}

/** numpy's round (half to even). */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** numpy.linspace(start, stop, num) in float64 (y = i * step + start; y[-1] = stop). */
export function npLinspace(start: number, stop: number, num: number): number[] {
  if (num === 1) return [start];
  const step = (stop - start) / (num - 1);
  return Array.from({ length: num }, (_, i) => (i === num - 1 ? stop : i * step + start));
}

/** numpy.arange(start, stop, step) for a float step (start + i * step). */
export function npArange(start: number, stop: number, step: number): number[] {
  const len = Math.max(0, Math.ceil((stop - start) / step));
  return Array.from({ length: len }, (_, i) => start + i * step);
}

/** numpy.interp(x, [0, 1, ..., fp.length - 1], fp), evaluated in float64. */
export function npInterpIndex(x: number, fp: ArrayLike<number>): number {
  const last = fp.length - 1;
  if (x <= 0) return fp[0];
  if (x >= last) return fp[last];
  const j = Math.floor(x);
  if (j === x) return fp[j];
  return (fp[j + 1] - fp[j]) * (x - j) + fp[j];
}

/** A prediction as a linear form of the step's inputs: value = s * sample + m * modelOutput. */
export interface LinearForm {
  s: number;
  m: number;
}

/** x0 and epsilon predictions of DDIM/PNDM from sqrt(alpha_prod_t) and sqrt(beta_prod_t)
 *  (float32 scalars, as diffusers computes them). */
export function predictions(what: string, type: PredictionType, sqrtAlpha: number, sqrtBeta: number): { x0: LinearForm; eps: LinearForm } {
  switch (oneOf(what, 'prediction_type', type, ['epsilon', 'v_prediction', 'sample'] as const)) {
    case 'epsilon':
      return { x0: { s: 1 / sqrtAlpha, m: -sqrtBeta / sqrtAlpha }, eps: { s: 0, m: 1 } };
    case 'v_prediction':
      return { x0: { s: sqrtAlpha, m: -sqrtBeta }, eps: { s: sqrtBeta, m: sqrtAlpha } };
    case 'sample':
      return { x0: { s: 0, m: 1 }, eps: { s: 1 / sqrtBeta, m: -sqrtAlpha / sqrtBeta } };
  }
}

/** Index of t in the schedule; with duplicates the second one, as diffusers'
 *  `_init_step_index` (so a restart mid-schedule does not skip a step). */
export function stepIndexOf(what: string, timesteps: readonly number[], t: number, fallbackLast = false): number {
  const hits: number[] = [];
  timesteps.forEach((v, i) => v === t && hits.push(i));
  if (hits.length === 0) {
    if (fallbackLast) return timesteps.length - 1;
    throw new InputError(`${what}: timestep ${t} is not in the schedule [${timesteps.slice(0, 4).join(', ')}, ...]; pass one of scheduler.timesteps`);
  }
  return hits.length > 1 ? hits[1] : hits[0];
}

export function checkSteps(what: string, n: number, numTrain: number): void {
  if (!Number.isInteger(n) || n < 1 || n > numTrain) {
    throw new InputError(`${what}: num_inference_steps must be an integer in 1..${numTrain}, got ${n}`);
  }
}
