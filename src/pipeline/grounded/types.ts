// Options and results of generateGrounded (the library API of grounded generation).
import type { SchedulerName } from '../../models/schedulers/index.js';
import type { DaamWordMap } from '../daam.js';

/** Stages in run order; each is timed and reported to onProgress. */
export type GroundedStage = 'text' | 'denoise' | 'vae' | 'grounding' | 'daam';

/** Progress of one stage: `step` of `total` done (denoising steps, images). */
export interface GroundedProgress {
  stage: GroundedStage;
  step: number;
  total: number;
}

/**
 * How the grounding module's BatchNorm runs:
 * - 'official': batch statistics, as the official train.py and test.py run the module
 *   (they never call .eval()); every image also advances the module's buffers (spectral-norm
 *   u0/sv0, BatchNorm running statistics) as the official code does;
 * - 'eval': PyTorch's .eval() semantics, the stored running statistics; buffers untouched.
 */
export type BatchNormMode = 'official' | 'eval';

export interface GroundedOptions {
  /** The text prompt. */
  prompt: string;
  /** Classes to ground, each occurring in the prompt. Default: read from the paper's
   *  templates "a photograph of a X" / "a photograph of a X and a Y". */
  classes?: string[];
  /** Unconditional prompt of classifier-free guidance (default ''). */
  negativePrompt?: string;
  /** Denoising steps (default 50, the official DDIM setting). */
  steps?: number;
  /** Classifier-free guidance scale (default 7.5, the official test setting). */
  guidanceScale?: number;
  /** Seed of the initial latents (default 0); image i of the batch uses latent stream i
   *  of this seed (pipeline/latents.ts), so it does not depend on the batch size. */
  seed?: number;
  /** Images to generate with one prompt (default 1); they share every UNet call. */
  batch?: number;
  /** Image size (default: the size the grounding module was built for, e.g. 512 for SD
   *  1.x: its highest feature size times the VAE factor). Must be square. */
  height?: number;
  width?: number;
  /** Scheduler (default 'ddim', as the official code). */
  scheduler?: SchedulerName;
  /** DDPM timestep of the UNet call whose block outputs feed the grounding module.
   *  Default: the last timestep of the schedule (1 for DDIM with SD's steps_offset 1), as
   *  the official code (openaimodel.py:892 records the call whose timestep is 1). It must
   *  be a timestep of the sampling schedule (settings.timesteps): the official code only
   *  records a call the sampler makes (any other timestep would record nothing), so a
   *  timestep off the schedule is an InputError naming the nearest ones and a step count
   *  whose schedule has it (the paper's ablation t = 5: DDIM with 250 steps, or 201), never an
   *  extra UNet call. */
  featureStep?: number;
  /** BatchNorm mode of the grounding module (default 'official'). */
  batchNorm?: BatchNormMode;
  /** Mask = sigmoid(logit) > threshold (default 0.5, as test.py:262-264). */
  threshold?: number;
  /** Also compute DAAM heat maps and masks (default false). */
  daam?: boolean;
  /** Words to map with DAAM (default: the classes, then every other distinct word of the
   *  prompt); each must occur in the prompt. */
  daamWords?: string[];
  /** DAAM mask threshold on the normalised map (default 0.4). */
  daamThreshold?: number;
  /** Called as stages advance (synchronously; keep it cheap). */
  onProgress?: (p: GroundedProgress) => void;
}

/** Everything a run used, defaults resolved (for result files). */
export interface GroundedSettings {
  prompt: string;
  negativePrompt: string;
  classes: string[];
  steps: number;
  guidanceScale: number;
  seed: number;
  batch: number;
  height: number;
  width: number;
  scheduler: SchedulerName;
  /** The sampling schedule's timesteps, in order. */
  timesteps: number[];
  /** DDPM timestep of the feature call, and its index into `timesteps`. */
  featureStep: number;
  featureStepIndex: number;
  batchNorm: BatchNormMode;
  threshold: number;
  daam: boolean;
  daamWords: string[];
  daamThreshold: number;
}

/** Wall-clock milliseconds per stage (GPU work included: each stage ends with a sync). */
export interface GroundedTimings {
  text: number;
  denoise: number;
  vae: number;
  grounding: number;
  daam: number;
  total: number;
}

/** One generated image with its masks. Pixel arrays are row-major, top row first. */
export interface GroundedImage {
  /** Position in the batch; also its latent stream under `settings.seed`. */
  index: number;
  /** RGB in [0, 1], channel-major [3, height, width]. */
  rgb: Float32Array;
  /** The same image as 8-bit RGBA [height, width, 4] (alpha 255). */
  rgba: Uint8Array;
  /** The grounded classes, in mask order. */
  classes: string[];
  /** Per class: height*width bytes, 1 inside the mask (logit > log(t / (1 - t))). */
  masks: Uint8Array[];
  /** Per class: the grounding module's mask logits, height*width. */
  logits: Float32Array[];
  /** With `daam`: one map per word of settings.daamWords that occurs in the prompt. */
  daam?: DaamWordMap[];
}

export interface GroundedResult {
  width: number;
  height: number;
  images: GroundedImage[];
  settings: GroundedSettings;
  timings: GroundedTimings;
  /** Non-fatal notes (a prompt cut at the 77-token limit, with the text that was cut). */
  warnings: string[];
}
