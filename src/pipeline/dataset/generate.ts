// One dataset sample's sampling run, and the single UNet call that regenerates its features.
//
// generateSample: the paper's construction for one prompt (batch 1): DDIM with classifier-
// free guidance, the UNet taps at the feature step (grounded/denoise.ts), the latents that
// feature call took as input (the stored part of a 'regen' sample), VAE decode, the class
// embeddings (grounded/text.ts) and, when asked, DAAM word maps of the classes from the
// same run (daam.ts, as generateGrounded computes them).
//
// featureCall: the feature step's UNet call alone, from the stored latents, timestep and
// prompt pair: scaleModelInput(cat([x, x])), UNet(t, cat([uncond, cond] text states)) with
// the taps, grouped per image (grounded/features.ts). It is the call the sampler made, on
// the same inputs, so it gives the same features as the sampling run.
import { InputError } from '../../gpu/errors.js';
import type { HostArray } from '../../io/samples.js';
import { chwToRgba } from '../../io/png.js';
import type { Group } from '../../models/grounding/config.js';
import { createScheduler } from '../../models/schedulers/index.js';
import type { StableDiffusion } from '../../models/sd.js';
import { linearCombination } from '../../nn/combine.js';
import { concat } from '../../nn/layout.js';
import { scope, scopeAsync } from '../../tensor/scope.js';
import type { Tensor } from '../../tensor/tensor.js';
import { DAAM_THRESHOLD, DaamAccumulator, daamLayers, daamWordMaps, type DaamWordMap } from '../daam.js';
import { denoise } from '../grounded/denoise.js';
import { groupFeatures, type FeatureTap } from '../grounded/features.js';
import { locateClasses, promptWindow, tokenStrings, wordMergeIndices } from '../grounded/prompt.js';
import { classEmbeddings } from '../grounded/text.js';
import { initialLatents } from '../latents.js';
import type { PlannedSample } from './plan.js';

export interface SampleGeneration {
  steps: number;
  guidanceScale: number;
  featureTimestep: number;
  featureStepIndex: number;
  size: number;
  negativePrompt: string;
  layout: FeatureTap[];
}

export interface GeneratedSample {
  width: number;
  height: number;
  /** RGB in [0, 1], [3, H, W]. */
  rgb: Float32Array;
  /** RGBA bytes [H, W, 4]. */
  rgba: Uint8Array;
  /** Input latents of the feature call, [C, h, w] (before the CFG duplication). */
  latent: Float32Array;
  /** Token ids of the negative prompt then the prompt, [2, L]. */
  promptIds: Int32Array;
  /** Class embeddings, [n, context_dim]. */
  textEmbedding: Float32Array;
  /** The grouped features ([1, 2C, h, w] each), when asked for. */
  features?: Record<Group, HostArray[]>;
  /** Root of the sum of squares of the 'low' group's features (float64 sum): a cheap
   *  fingerprint that a regenerated sample has the same features. */
  lowNorm: number;
  /** DAAM maps of the classes (in class order), when asked for. */
  daam?: DaamWordMap[];
}

const GROUP_ORDER: readonly Group[] = ['low', 'mid', 'high', 'highest'];

/** sqrt(sum x^2) over a group's arrays, summed in float64. */
export function groupNorm2(arrays: readonly Float32Array[]): number {
  let s = 0;
  for (const a of arrays) for (let i = 0; i < a.length; i++) s += a[i] * a[i];
  return Math.sqrt(s);
}

/** Reads grouped feature tensors back to the host (disposing them). */
export async function readFeatures(features: Record<Group, Tensor[]>): Promise<Record<Group, HostArray[]>> {
  const out = {} as Record<Group, HostArray[]>;
  try {
    for (const g of GROUP_ORDER) {
      out[g] = [];
      for (const t of features[g]) out[g].push({ shape: [...t.shape], data: await t.toArray() });
    }
  } finally {
    for (const g of GROUP_ORDER) for (const t of features[g]) t.dispose();
  }
  return out;
}

/** The feature step's UNet call: grouped features [1, 2C, h, w] of one image from its
 *  input latents [1, C, h, w] and text states [2, L, D] (unconditional first). */
export function featureCall(sd: StableDiffusion, g: Pick<SampleGeneration, 'steps' | 'featureTimestep' | 'layout'>, latent: Tensor, text: Tensor): Record<Group, Tensor[]> {
  return scope(() => {
    const scheduler = createScheduler('ddim', sd.schedulerConfig);
    scheduler.setTimesteps(g.steps);
    const input = scheduler.scaleModelInput(concat([latent, latent], 0), g.featureTimestep);
    const out = sd.unet.forward(sd.rt, input, [g.featureTimestep], text, { taps: g.layout.map((t) => t.name) });
    return groupFeatures(g.layout, out.taps, 0, 1);
  });
}

/** DAAM's merge indices of each class in the prompt (classes are checked to lie inside
 *  the window, so every class has indices). */
function classWords(sd: StableDiffusion, prompt: string, classes: readonly string[]): { words: Array<{ word: string; mergeIndices: number[] }>; nKeep: number } {
  const window = sd.textEncoder.config.max_position_embeddings;
  const p = promptWindow(sd.tokenizer, prompt, window);
  locateClasses(sd.tokenizer, p, [...classes], window);
  const nKeep = p.kept + 2;
  const words = classes.map((c) => ({ word: c, mergeIndices: wordMergeIndices(p.tokens, tokenStrings(sd.tokenizer, c.toLowerCase())).filter((i) => i < nKeep - 1) }));
  return { words, nKeep };
}

/** Generates sample `plan` with settings `g`. */
export async function generateSample(sd: StableDiffusion, plan: PlannedSample, g: SampleGeneration, want: { features: boolean; daam: boolean }): Promise<GeneratedSample> {
  const rt = sd.rt;
  const f = sd.vae.scaleFactor;
  const [lh, lw] = [g.size / f, g.size / f];
  const C = sd.unet.resolved.inChannels;
  const words = want.daam ? classWords(sd, plan.prompt, plan.classes) : undefined;
  const promptIds = Int32Array.from([...sd.tokenizer.encodePadded(g.negativePrompt), ...sd.tokenizer.encodePadded(plan.prompt)]);
  if (promptIds.length !== 2 * sd.textEncoder.config.max_position_embeddings) {
    throw new InputError(`dataset: the tokenizer gave ${promptIds.length / 2} token ids per prompt, the text encoder takes ${sd.textEncoder.config.max_position_embeddings}`);
  }
  return scopeAsync(async () => {
    const text = sd.encodePrompts([g.negativePrompt, plan.prompt]);
    const textEmbedding = await scope(() => classEmbeddings(sd, plan.classes)).toArray();
    const scheduler = createScheduler('ddim', sd.schedulerConfig);
    scheduler.setTimesteps(g.steps);
    const start = initialLatents(rt, plan.seed, [1, C, lh, lw], scheduler.initNoiseSigma);
    let latent: Float32Array | undefined = g.featureStepIndex === 0 ? await start.toArray() : undefined;
    const daam = words ? new DaamAccumulator(daamLayers(sd.unet, lh, lw), 1) : undefined;
    try {
      const run = await denoise(sd, {
        text, latents: start, scheduler, guidanceScale: g.guidanceScale, featureStep: g.featureStepIndex,
        taps: g.layout.map((t) => t.name), sink: daam,
        // The feature call of step i takes the latents step i - 1 produced.
        onStep: g.featureStepIndex > 0 ? async (st) => {
          if (st.index === g.featureStepIndex - 1) latent = await st.latents.toArray();
        } : undefined,
      });
      const scale = sd.vae.config.scaling_factor;
      const pixels = await scope(() => linearCombination([[0.5, sd.vae.decode(rt, linearCombination([[1 / scale, run.latents]]))]], 0.5, [0, 1])).toArray();
      run.latents.dispose();
      const grouped = groupFeatures(g.layout, run.taps, 0, 1);
      for (const t of run.taps.values()) t.dispose();
      let features: Record<Group, HostArray[]> | undefined;
      let lowNorm: number;
      if (want.features) {
        features = await readFeatures(grouped);
        lowNorm = groupNorm2(features.low.map((a) => a.data));
      } else {
        for (const gr of ['mid', 'high', 'highest'] as const) for (const t of grouped[gr]) t.dispose();
        const low = await readFeatures({ low: grouped.low, mid: [], high: [], highest: [] });
        lowNorm = groupNorm2(low.low.map((a) => a.data));
      }
      let maps: DaamWordMap[] | undefined;
      if (daam && words) {
        const tokenMaps = daam.tokenMaps(0, words.nKeep, lh, lw);
        const host = await tokenMaps.toArray();
        tokenMaps.dispose();
        maps = await daamWordMaps(rt, host, [lh, lw], [g.size, g.size], words.words, DAAM_THRESHOLD);
      }
      if (!latent) throw new InputError(`dataset: the sampler never reached step ${g.featureStepIndex}; the feature step must lie in the schedule`);
      return {
        width: g.size, height: g.size, rgb: pixels, rgba: chwToRgba(pixels, 0, 3, g.size, g.size),
        latent, promptIds, textEmbedding, features, lowNorm, daam: maps,
      };
    } finally {
      daam?.dispose();
    }
  });
}
