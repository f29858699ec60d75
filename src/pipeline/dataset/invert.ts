// The real-image half of the 'ddim-inverse' dataset path (voc_source.ts): VAE encoding of
// a picture and deterministic DDIM inversion of its latents up to the feature timestep.
//
// encodeLatent: rgb [1, 3, S, S] in [0, 1] -> 2 rgb - 1 -> VAE encoder -> the posterior's
// mean (no sampling: the latent is a function of the picture) times the VAE's
// scaling_factor, as SD pipelines scale encoder samples.
//
// invertLatent: diffusers' DDIMInverseScheduler (eta = 0) over the timesteps of an N-step
// schedule up to and including `upTo`: each step evaluates the UNet at the target
// timestep t on the current, less noisy latents (the usual inversion approximation) and
// moves them from alpha(t - 1000/N) (the initial alpha for the first step) to alpha(t).
// The noise prediction is uncond + g (cond - uncond); g = 1 (the default of the dataset
// path) is the conditional prediction alone, which is what inverts best: a guided
// prediction is not the model's own ODE and the sampler would not retrace it.
// The inverse of one DDIM sampling step of the N-step schedule, so the latents after the
// step at `upTo` are what the sampler would have fed its UNet call at `upTo` (the feature
// call of the dataset's construction) had it produced this picture.
import { InputError } from '../../gpu/errors.js';
import { DDIMInverseScheduler } from '../../models/schedulers/index.js';
import type { StableDiffusion } from '../../models/sd.js';
import { linearCombination } from '../../nn/combine.js';
import { scope } from '../../tensor/scope.js';
import type { Tensor } from '../../tensor/tensor.js';
import { denoise } from '../grounded/denoise.js';

/** rgb [B, 3, S, S] in [0, 1] -> scaled posterior mean [B, C, S/f, S/f]. */
export function encodeLatent(sd: StableDiffusion, rgb: Tensor): Tensor {
  return scope(() => {
    const enc = sd.vae.encode(sd.rt, linearCombination([[2, rgb]], -1));
    return linearCombination([[sd.vae.config.scaling_factor, enc.mean]]);
  });
}

/** The inverse schedule's timesteps of an N-step schedule, up to `upTo` inclusive. */
export function inversionTimesteps(sd: StableDiffusion, steps: number, upTo: number): number[] {
  const inv = new DDIMInverseScheduler(sd.schedulerConfig);
  inv.setTimesteps(steps);
  const i = inv.timesteps.indexOf(upTo);
  if (i < 0) throw new InputError(`DDIM inversion: timestep ${upTo} is not in the ${steps}-step schedule (${inv.timesteps.slice(0, 4).join(', ')}, ...)`);
  return inv.timesteps.slice(0, i + 1);
}

export interface InversionOptions {
  /** Steps of the schedule (its spacing: 1000/steps timesteps). */
  steps: number;
  /** Last timestep to invert to (a timestep of the schedule). */
  upTo: number;
  /** Guidance of the noise prediction (1: the conditional prediction alone). */
  guidanceScale: number;
}

/** DDIM-inverts `latent` [B, C, h, w] with text states `text` [2B, L, D] (unconditional
 *  rows first) up to `o.upTo`; returns new latents (the input is kept). */
export async function invertLatent(sd: StableDiffusion, latent: Tensor, text: Tensor, o: InversionOptions): Promise<Tensor> {
  if (!Number.isFinite(o.guidanceScale) || o.guidanceScale < 0) throw new InputError(`DDIM inversion: guidance ${o.guidanceScale} must be a finite number >= 0`);
  const scheduler = new DDIMInverseScheduler(sd.schedulerConfig);
  scheduler.setTimesteps(o.steps);
  scheduler.timesteps = inversionTimesteps(sd, o.steps, o.upTo);
  const start = linearCombination([[1, latent]]);
  const run = await denoise(sd, { text, latents: start, scheduler, guidanceScale: o.guidanceScale, featureStep: -1, taps: [] });
  return run.latents;
}
