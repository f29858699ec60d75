// Text-to-image sampling for SD 1.x (diffusers' StableDiffusionPipeline.__call__ without
// safety checker): prompt and negative prompt encoded once, seeded latents scaled by the
// scheduler's init_noise_sigma, then per step ONE UNet call on the batch [uncond; cond]
// (2B rows), classifier-free guidance uncond + g * (cond - uncond), the scheduler step;
// finally latents / scaling_factor through the VAE decoder and (x + 1) / 2 clamped to
// [0, 1]. Optional UNet taps at one chosen step (the grounding module reads the block
// outputs of the last step).
import { InputError } from '../gpu/errors.js';
import { linearCombination } from '../nn/combine.js';
import { concat, slice } from '../nn/layout.js';
import { createScheduler, type SchedulerName } from '../models/schedulers/index.js';
import type { StableDiffusion } from '../models/sd.js';
import { scope } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { initialLatents } from './latents.js';
import { checkGenerationSize, deviceLimits, generationModel } from './size_check.js';

export interface GenerateOptions {
  prompt: string;
  /** Unconditional prompt of CFG (default ''). */
  negativePrompt?: string;
  steps: number;
  /** CFG scale; 1 still runs the batched call (uncond rows then cancel out). */
  guidanceScale: number;
  /** Row b of the batch uses latent stream b of this seed (pipeline/latents.ts). */
  seed: number;
  height: number;
  width: number;
  batchSize?: number;
  /** Default: the model's scheduler config class (PNDM for SD 1.5). */
  scheduler?: SchedulerName;
  /** UNet outputs to keep (UNet2DConditionModel.tapNames()) at step `tapAtStep`. */
  taps?: string[];
  /** 0-based step index whose UNet call records the taps (default: the last step). */
  tapAtStep?: number;
  onStep?: (info: { step: number; total: number; timestep: number }) => void;
}

export interface GenerateResult {
  /** [B, 3, H, W] in [0, 1]. */
  images: Tensor;
  /** Final latents [B, latent_channels, H/8, W/8] (before the 1/scaling_factor). */
  latents: Tensor;
  /** With `taps`: each tap of the UNet call at `tapAtStep`, rows [uncond (B); cond (B)]. */
  taps?: Map<string, Tensor>;
  /** The timestep of the tapped call. */
  tapTimestep?: number;
}

function checkOptions(sd: StableDiffusion, o: GenerateOptions): void {
  const bad: string[] = [];
  if (!Number.isInteger(o.steps) || o.steps < 1) bad.push(`steps ${o.steps} must be a positive integer`);
  if (!Number.isFinite(o.guidanceScale)) bad.push(`guidanceScale ${o.guidanceScale} must be finite`);
  if (!Number.isInteger(o.seed) || o.seed < 0 || o.seed > 0xffffffff) bad.push(`seed ${o.seed} must be an integer in 0..2^32-1`);
  if (o.tapAtStep !== undefined && (!Number.isInteger(o.tapAtStep) || o.tapAtStep < 0 || o.tapAtStep >= o.steps)) {
    bad.push(`tapAtStep ${o.tapAtStep} must be a step index in 0..${o.steps - 1}`);
  }
  if (bad.length) throw new InputError(`generate: ${bad.join('; ')}`);
  // Sizes against the VAE factor, the adapter's limits and a memory estimate, before
  // the first allocation.
  const size = { height: o.height, width: o.width, batchSize: o.batchSize ?? 1 };
  checkGenerationSize(generationModel({ unet: sd.unet, vae: sd.vae, textEncoder: sd.textEncoder }, sd.dtype), size, deviceLimits(sd.rt));
}

/** Runs the sampling loop; the caller owns (and disposes) the returned tensors. */
export async function generate(sd: StableDiffusion, o: GenerateOptions): Promise<GenerateResult> {
  checkOptions(sd, o);
  const rt = sd.rt;
  const B = o.batchSize ?? 1;
  const g = o.guidanceScale;
  const scheduler = createScheduler(o.scheduler ?? sd.defaultScheduler, sd.schedulerConfig);
  scheduler.setTimesteps(o.steps);
  const timesteps = scheduler.timesteps;
  const tapAt = o.taps?.length ? (o.tapAtStep ?? timesteps.length - 1) : -1;
  const scale = sd.vae.config.scaling_factor;
  const latentShape: [number, number, number, number] = [B, sd.unet.resolved.inChannels, o.height / sd.vae.scaleFactor, o.width / sd.vae.scaleFactor];

  const text = sd.encodePrompts([...Array<string>(B).fill(o.negativePrompt ?? ''), ...Array<string>(B).fill(o.prompt)]);
  let latents = initialLatents(rt, o.seed, latentShape, scheduler.initNoiseSigma);
  let taps: Map<string, Tensor> | undefined;
  try {
    for (let i = 0; i < timesteps.length; i++) {
      const t = timesteps[i];
      const step = scope(() => {
        const doubled = concat([latents, latents], 0);
        const input = scheduler.scaleModelInput(doubled, t);
        const out = sd.unet.forward(rt, input, [t], text, { taps: i === tapAt ? o.taps : undefined });
        const uncond = slice(out.sample, 0, 0, B);
        const cond = slice(out.sample, 0, B, 2 * B);
        const guided = linearCombination([[1 - g, uncond], [g, cond]]);
        return { next: scheduler.step(guided, t, latents), taps: i === tapAt ? out.taps : undefined };
      });
      latents.dispose();
      latents = step.next;
      if (step.taps) taps = step.taps;
      // Reading nothing back would let a long loop queue every step before any runs; a
      // sync per step keeps memory flat and makes the progress callback honest.
      await rt.sync();
      o.onStep?.({ step: i + 1, total: timesteps.length, timestep: t });
    }
    scheduler.reset();
    // Every step has finished (synced): hand the UNet's cached free buffers back before the
    // VAE allocates its larger maps, so the device does not hold both (pool.trim).
    rt.pool.trim();
    const images = scope(() => {
      const decoded = sd.vae.decode(rt, linearCombination([[1 / scale, latents]]));
      return linearCombination([[0.5, decoded]], 0.5, [0, 1]);
    });
    return { images, latents, taps, tapTimestep: tapAt >= 0 ? timesteps[tapAt] : undefined };
  } catch (e) {
    latents.dispose();
    for (const v of taps?.values() ?? []) v.dispose();
    scheduler.reset();
    throw e;
  } finally {
    text.dispose();
  }
}
