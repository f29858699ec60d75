// The sampling loop of grounded generation: per step one UNet call on the CFG batch
// [uncond (B rows); cond (B rows)] (unconditional half first, as diffusers'
// StableDiffusionPipeline and the official ldm DDIMSampler, ddim.py:186-192), guidance
// uncond + g (cond - uncond), the scheduler step. The UNet call of `featureStep` also
// returns the feature taps, and every call hands cross-attention probabilities to the
// sink (DAAM). Unlike pipeline/generate.ts it takes prepared text states and latents
// (the parity check feeds a fixture's), and can show each step's tensors to a hook.
import type { Scheduler } from '../../models/schedulers/index.js';
import type { StableDiffusion } from '../../models/sd.js';
import type { CrossAttentionSink } from '../../models/unet/index.js';
import { linearCombination } from '../../nn/combine.js';
import { concat, slice } from '../../nn/layout.js';
import { scope } from '../../tensor/scope.js';
import type { Tensor } from '../../tensor/tensor.js';

/** One step's tensors, alive only during the onStep call. */
export interface StepTensors {
  index: number;
  timestep: number;
  /** UNet output on the CFG batch [2B, C, h, w], unconditional rows first. */
  noisePred: Tensor;
  /** Guided prediction [B, C, h, w]. */
  guided: Tensor;
  /** Latents after this step [B, C, h, w]. */
  latents: Tensor;
}

export interface DenoiseOptions {
  /** Text states [2B, L, D]: B unconditional rows, then B conditional. */
  text: Tensor;
  /** Initial latents [B, C, h, w], already scaled by init_noise_sigma; denoise owns and
   *  disposes them. */
  latents: Tensor;
  /** A scheduler after setTimesteps(). */
  scheduler: Scheduler;
  guidanceScale: number;
  /** Step index whose UNet call returns `taps` (-1: none). */
  featureStep: number;
  taps: string[];
  sink?: CrossAttentionSink;
  onStep?: (s: StepTensors) => void | Promise<void>;
}

/** Final latents and the taps of the feature step; the caller disposes both. */
export async function denoise(sd: StableDiffusion, o: DenoiseOptions): Promise<{ latents: Tensor; taps: Map<string, Tensor> }> {
  const rt = sd.rt;
  const B = o.latents.shape[0];
  const g = o.guidanceScale;
  const timesteps = o.scheduler.timesteps;
  let latents = o.latents;
  let taps = new Map<string, Tensor>();
  try {
    for (let i = 0; i < timesteps.length; i++) {
      const t = timesteps[i];
      const tapped = i === o.featureStep;
      const step = scope(() => {
        const input = o.scheduler.scaleModelInput(concat([latents, latents], 0), t);
        const out = sd.unet.forward(rt, input, [t], o.text, { taps: tapped ? o.taps : undefined, crossAttentionSink: o.sink });
        const guided = linearCombination([[1 - g, slice(out.sample, 0, 0, B)], [g, slice(out.sample, 0, B, 2 * B)]]);
        const next = o.scheduler.step(guided, t, latents);
        return { next, taps: tapped ? out.taps : undefined, shown: o.onStep ? { noisePred: out.sample, guided } : undefined };
      });
      latents.dispose();
      latents = step.next;
      if (step.taps) taps = step.taps;
      try {
        if (step.shown) await o.onStep?.({ index: i, timestep: t, noisePred: step.shown.noisePred, guided: step.shown.guided, latents });
      } finally {
        step.shown?.noisePred.dispose();
        step.shown?.guided.dispose();
      }
      // A sync per step keeps memory flat (nothing queues ahead) and progress honest.
      await rt.sync();
    }
    return { latents, taps };
  } catch (e) {
    latents.dispose();
    for (const v of taps.values()) v.dispose();
    throw e;
  } finally {
    o.scheduler.reset();
  }
}
